"""Markup typed into the forms comes back as text, everywhere it is shown.

The payloads go in through the real forms; the pages that show them are then opened in
a browser that ignores the Content-Security-Policy, so the escaping alone has to stop
them (the CSP is a second line of defence, not the first). Each page must run none of
them, open no dialog, and show each payload literally: ``<script>`` as text, not
``&lt;script&gt;`` (escaped once, not twice).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext
from playwright.sync_api import Dialog
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.browser import ui
from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

TASK = "<script>window.__xss=1</script>"
ARCHIVED_TASK = '<img src=x onerror="window.__xss=1;alert(1)">'
DESCRIPTION = (
    '</textarea><img src=x onerror="window.__xss=1"> <a href="javascript:window.__xss=1">open</a>'
)
TASK_EMOTION = '<svg onload="window.__xss=1">'
LISTED_EMOTION = "<img src=x onerror=alert(1)>"
PREDICTION_NOTES = "<iframe src=\"javascript:alert('xss')\"></iframe>"
CONTEXT = '"><script>window.__xss=1</script>'
PAUSE_REASON = "<svg/onload=alert(1)>"
OUTCOME_NOTES = "javascript:window.__xss=1 <b onmouseover=alert(1)>bold?</b>"
CANCEL_REASON = "<script>alert('cancelled')</script>"
NOTE = '</textarea><img src=x onerror="window.__xss=1"> and <b>more</b>'
ATTEMPT_NOTE = "<script>window.__xss='note'</script>"

# Elements or attributes that only exist if some payload was parsed as markup.
INJECTED = (
    "[onerror], [onload], [onmouseover], iframe, b, a[href^='javascript:' i], "
    "main script:not([type='application/json'])"
)


def test_markup_typed_into_forms_is_shown_as_text_and_never_runs(
    live_server: LiveServer,
    open_context: Callable[..., BrowserContext],
    subtests: pytest.Subtests,
) -> None:
    page = open_context(bypass_csp=True).new_page()
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message} on {page.url}")
        dialog.dismiss()

    page.on("dialog", dismiss)
    done, cancelled, task_id = _store_payloads(page)
    note = _store_note_payloads(page, done)

    screens = {
        "dashboard": ("/", [TASK]),
        "completed attempt": (
            f"/attempts/{done}",
            [TASK, PREDICTION_NOTES, CONTEXT, TASK_EMOTION, PAUSE_REASON, OUTCOME_NOTES],
        ),
        "cancelled attempt": (f"/attempts/{cancelled}", [TASK, CANCEL_REASON]),
        "archived tasks": ("/tasks/archived", [ARCHIVED_TASK]),
        "emotions": ("/emotions", [TASK_EMOTION, LISTED_EMOTION]),
        "task form": (f"/tasks/{task_id}/edit", [TASK, TASK_EMOTION, LISTED_EMOTION]),
        "initialize form": (f"/tasks/{task_id}/initialize", [TASK, TASK_EMOTION]),
        "analytics": ("/analytics", [TASK]),
        # The task's name is also a (hidden) option of the task filter there.
        "history": ("/history", [CANCEL_REASON]),
        "history searched": ("/history?q=cancelled", [CANCEL_REASON]),
        "notes": ("/notes", [NOTE, ATTEMPT_NOTE, TASK]),
        "note on the attempt": (f"/attempts/{done}", [ATTEMPT_NOTE]),
        "deleting a note": (f"/notes/{note}/delete", [NOTE]),
    }
    for name, (path, payloads) in screens.items():
        with subtests.test(name):
            page.goto(path)
            _shows_literally_and_runs_nothing(page, payloads)

    with subtests.test("form fields keep the text as typed"):
        page.goto(f"/tasks/{task_id}/edit")
        expect(page.get_by_label("Name")).to_have_value(TASK)
        expect(page.get_by_label("Description")).to_have_value(DESCRIPTION)
        expect(page.get_by_label(TASK_EMOTION, exact=True)).to_be_checked()
        expect(page).to_have_title(re.compile("^Edit " + re.escape(TASK)))

    with subtests.test("a note's edit form keeps the text as typed"):
        page.goto(f"/notes/{note}/edit")
        expect(page.get_by_label("Note")).to_have_value(NOTE)

    assert not dialogs, dialogs


def _store_payloads(page: Page) -> tuple[int, int, int]:
    """Type every payload into its form; returns the done and cancelled attempts, the task."""
    ui.sign_up(page, "mallory")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Emotions").click()
    page.get_by_label("New emotion").fill(LISTED_EMOTION)
    page.get_by_role("button", name="Add").click()
    expect(ui.flash(page)).to_have_text(f"Added “{LISTED_EMOTION}”.")

    ui.create_task(page, TASK, description=DESCRIPTION, new_emotions=TASK_EMOTION)
    edit_link = ui.task_row(page, TASK).get_by_role("link", name="Edit").get_attribute("href")
    task_id = int(re.findall(r"\d+", edit_link or "")[0])

    ui.open_initialize(page, TASK)
    page.get_by_label(TASK_EMOTION, exact=True).check()
    page.get_by_label("Where (physical context)").fill(CONTEXT)
    page.get_by_label("Notes for this attempt").fill(PREDICTION_NOTES)
    page.get_by_role("button", name="Initialize").click()
    expect(ui.flash(page)).to_have_text(f"“{TASK}” is ready to start.")
    ui.start(page, TASK)
    ui.pause(page, PAUSE_REASON)
    ui.start(page, TASK)
    ui.section(page, "Current task").get_by_role("link", name="Complete").click()
    done = ui.attempt_id_from_url(page)
    ui.complete_form(page, TASK, notes=OUTCOME_NOTES)

    ui.initialize(page, TASK)
    ui.ready_item(page, TASK).get_by_role("link", name="Cancel").click()
    cancelled = ui.attempt_id_from_url(page)
    page.get_by_label("Why are you cancelling?").fill(CANCEL_REASON)
    page.get_by_role("button", name="Cancel this attempt").click()
    expect(ui.flash(page)).to_have_text(f"Cancelled “{TASK}”.")

    ui.create_task(page, ARCHIVED_TASK)
    ui.task_row(page, ARCHIVED_TASK).get_by_role("button", name="Archive").click()
    expect(ui.flash(page)).to_contain_text(f"Archived “{ARCHIVED_TASK}”.")
    return done, cancelled, task_id


def _store_note_payloads(page: Page, attempt: int) -> int:
    """A note on the attempt (from its page) and one on nothing; returns the latter's id."""
    page.goto(f"/attempts/{attempt}")
    page.get_by_label("Note on this attempt").fill(ATTEMPT_NOTE)
    page.get_by_role("button", name="Save note").click()
    expect(ui.flash(page)).to_have_text(f"Note saved on “{TASK}”.")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Notes").click()
    page.get_by_label("New note").fill(NOTE)
    page.get_by_role("button", name="Save note").click()
    expect(ui.flash(page)).to_have_text("Note saved.")
    edit = ui.main(page).get_by_role("link", name=re.compile("^Edit the note")).first
    return int(re.findall(r"\d+", edit.get_attribute("href") or "")[0])


def _shows_literally_and_runs_nothing(page: Page, payloads: list[str]) -> None:
    main = ui.main(page)
    for payload in payloads:
        expect(main.get_by_text(payload).first).to_be_visible()
    text = main.inner_text()
    assert "&lt;" not in text and "&gt;" not in text and "&quot;" not in text, (
        f"escaped twice on {page.url}"
    )
    injected = page.locator(INJECTED)
    assert injected.count() == 0, f"markup from a payload on {page.url}: " + ", ".join(
        injected.evaluate_all("(els) => els.map((el) => el.outerHTML.slice(0, 120))")
    )
    assert page.evaluate("typeof window.__xss") == "undefined", f"a payload ran on {page.url}"

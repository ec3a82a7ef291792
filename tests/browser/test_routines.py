"""Routines in a real browser on a 375 px phone: a task made to repeat every day through
the task form (after its message for a weekday schedule without a weekday), shown with its
schedule on the dashboard; once its occurrence has fallen due, its attempt is ready once,
the day nobody came is shown as missed, and starting it does not bring another. Every page
on the way passes axe and fits the phone's width."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import expect
from sqlalchemy import text

from tests.browser import ui
from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 667}
STRETCH = "Morning stretch"


def _check_page(page: Page, what: str) -> None:
    """No serious or critical axe violations, and nothing wider than the phone."""
    violations = [
        f"{v['id']} ({v['impact']}): {v['help']}: "
        + "; ".join(str(node["target"]) for node in v["nodes"])
        for v in Axe().run(page).response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not violations, f"axe on {what} ({page.url}):\n" + "\n".join(violations)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{what} scrolls sideways on a phone: {width}px wide"


def test_a_daily_routine_set_up_in_the_form_is_ready_once_with_its_missed_day(
    open_context: Callable[..., BrowserContext], live_server: LiveServer
) -> None:
    context = open_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    ui.sign_up(page, "routine.person")  # the browser's zone: Europe/Berlin
    # Ten minutes ago, Berlin time: today's occurrence has fallen due.
    due = dt.datetime.now(ZoneInfo("Europe/Berlin")) - dt.timedelta(minutes=10)

    ui.section(page, "Tasks").get_by_role("link", name="New task").click()
    page.get_by_label("Name").fill(STRETCH)
    page.get_by_label("On the weekdays chosen below").check()
    page.get_by_label("Time of day it falls due (HH:MM)").fill(f"{due:%H:%M}")
    page.get_by_role("button", name="Create task").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Choose at least one weekday, or another way to repeat."
    )
    _check_page(page, "the task form with a schedule error")
    page.get_by_label("Every day").check()
    page.get_by_role("button", name="Create task").click()
    expect(ui.flash(page)).to_have_text(f"Created “{STRETCH}”.")

    # A schedule counts from when it is saved: nothing is due yet, the next one is shown.
    routines = ui.section(page, "Routines")
    expect(routines).to_contain_text(f"{STRETCH} every day at {due:%H:%M} · next")
    expect(ui.ready_item(page, STRETCH)).to_have_count(0)
    _check_page(page, "the dashboard with a routine")

    # As if it had been saved a day and a half ago: yesterday was missed, today is due.
    with live_server.app.extensions["db_engine"].begin() as conn:
        conn.execute(
            text("UPDATE tasks SET routine_since = now() - interval '36 hours' WHERE name = :n"),
            {"n": STRETCH},
        )
    page.reload()
    ready = ui.ready_item(page, STRETCH)
    expect(ready).to_have_count(1)
    expect(ready).to_contain_text(f"routine · {due:%a %d %b}")
    missed = ui.section(page, "Routines").get_by_text("missed 1×")
    expect(missed).to_be_visible()
    missed.click()  # opens the list of missed days
    yesterday = due - dt.timedelta(days=1)
    expect(ui.section(page, "Routines").get_by_role("listitem").last).to_have_text(
        f"{yesterday:%a %d %b %Y}"
    )
    _check_page(page, "the dashboard with a ready routine and a missed day")

    ready.get_by_role("button", name="Start").click()
    expect(ui.section(page, "Current task")).to_contain_text(STRETCH)
    page.reload()
    expect(ui.ready_item(page, STRETCH)).to_have_count(0)  # not made again

    # The edit form shows the schedule as saved.
    ui.task_row(page, STRETCH).get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Every day")).to_be_checked()
    expect(page.get_by_label("Time of day it falls due (HH:MM)")).to_have_value(f"{due:%H:%M}")
    _check_page(page, "the edit form of a routine")

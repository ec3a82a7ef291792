"""The main pages pass axe-core without serious or critical violations, and fit a phone.

One server and one seeded account serve the whole module (a running attempt, a ready
one, completed ones, an archived task), so each page check is only a page load. A second
account holds a year of attempts, for the pages whose tables only overflow with real data.
"""

from __future__ import annotations

import io
import itertools
import re
import zipfile
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import expect
from sqlalchemy import text

import db.legacy
from tests.browser import ui
from tests.browser.conftest import LiveServer
from tests.browser.conftest import Watch
from tests.browser.conftest import new_context
from tests.browser.conftest import own_database
from tests.browser.conftest import serve
from tests.conftest import PostgresServer

pytestmark = pytest.mark.browser

BLOCKING_IMPACTS = ("serious", "critical")
PHONE = {"width": 375, "height": 667}
DONE, READY, RUNNING, ARCHIVED = "Water the plants", "Tidy the desk", "Write the report", "Old"
NEWCOMERS = itertools.count(1)  # the module's server is shared: each sign-up needs a new name


@dataclass
class Site:
    server: LiveServer
    storage_state: dict[str, Any]
    ids: dict[str, int]
    year_storage_state: dict[str, Any]


@dataclass(frozen=True)
class Screen:
    """A page a person sees, how to get there, and the buttons that matter on it."""

    name: str
    path: str
    signed_in: bool = True
    buttons: tuple[tuple[str, str], ...] = ()
    then: Callable[[Page], None] | None = None  # an action after loading (a form error)


def _submit_empty_cancel_form(page: Page) -> None:
    page.get_by_role("button", name="Cancel this attempt").click()
    expect(page.get_by_role("alert")).to_be_visible()


def _fail_sign_in(page: Page) -> None:
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Sign-in key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()


def _submit_empty_note(page: Page) -> None:
    page.get_by_role("button", name="Save note").click()
    expect(page.get_by_role("alert")).to_be_visible()


def _check_the_later_export(page: Page) -> None:
    """Upload the old app's later export: the dry run's report, with what waits for a home."""
    folder = Path(db.legacy.__file__).parent / "examples" / "late-export"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(folder.glob("*.csv")):
            out.write(path, path.name)
    page.get_by_label("Zip of your old app's data folder").set_input_files(
        {"name": "late-export.zip", "mimeType": "application/zip", "buffer": archive.getvalue()}
    )
    page.get_by_role("button", name="Check the upload").click()
    expect(page.get_by_role("heading", name="Read but not imported yet")).to_be_visible()


def _sign_up_someone(page: Page) -> None:
    page.get_by_label("Username").fill(f"newcomer{next(NEWCOMERS)}")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#signin-key")).to_be_visible()


SCREENS = (
    Screen("welcome", "/", False, (("link", "Create an account"), ("link", "Sign in"))),
    Screen("sign-up", "/signup", False, (("button", "Sign up"),)),
    Screen("sign-in key", "/signup", False,
           (("button", "Copy"), ("button", "Continue to your dashboard")), then=_sign_up_someone),
    Screen("sign-in", "/signin", False, (("button", "Sign in"),)),
    Screen("sign-in refused", "/signin", False, (("button", "Sign in"),), then=_fail_sign_in),
    Screen("dashboard", "/", True,
           (("link", "Complete"), ("button", "Pause"), ("button", "Start"), ("link", "New task"))),
    Screen("new task", "/tasks/new", True, (("button", "Create task"),)),
    Screen("edit task", "/tasks/{done_task}/edit", True, (("button", "Save"),)),
    Screen("archived tasks", "/tasks/archived", True, (("button", "Restore"),)),
    Screen("initialize", "/tasks/{done_task}/initialize", True, (("button", "Initialize"),)),
    Screen("complete", "/attempts/{ready}/complete", True, (("button", "Complete"),)),
    Screen("cancel", "/attempts/{ready}/cancel", True, (("button", "Cancel this attempt"),)),
    Screen("cancel with an error", "/attempts/{ready}/cancel", True,
           (("button", "Cancel this attempt"),), then=_submit_empty_cancel_form),
    Screen("attempt", "/attempts/{done}", True, (("link", "Back to the dashboard"),)),
    Screen("fix a prediction", "/attempts/{done}/prediction", True,
           (("button", "Save prediction"),)),
    Screen("fix an outcome", "/attempts/{done}/outcome", True, (("button", "Save the outcome"),)),
    Screen("delete an attempt", "/attempts/{done}/delete", True,
           (("button", "Delete the attempt"),)),
    Screen("postpone", "/attempts/{ready}/postpone", True, (("button", "Postpone"),)),
    Screen("emotions", "/emotions", True, (("button", "Add"),)),
    Screen("account", "/account", True,
           (("button", "Save time zone"), ("button", "Make a new sign-in key"),
            ("button", "Delete my account and all its data"))),
    Screen("analytics", "/analytics", True, (("button", "Show trend"),)),
    Screen("import", "/account/import", True, (("button", "Check the upload"),)),
    Screen("import report", "/account/import", True, (("button", "Import now"),),
           then=_check_the_later_export),
    Screen("history", "/history", True, (("button", "Show"),)),
    Screen("history with a bad date", "/history?start=2026-13-40&q=water", True,
           (("button", "Show"),)),
    Screen("notes", "/notes", True, (("button", "Save note"),)),
    Screen("notes with an error", "/notes", True, (("button", "Save note"),),
           then=_submit_empty_note),
    Screen("edit note", "/notes/{note}/edit", True, (("button", "Save"),)),
    Screen("delete note", "/notes/{note}/delete", True, (("button", "Delete the note"),)),
    Screen("running attempt with a note", "/attempts/{running}", True, (("button", "Save note"),)),
    Screen("not found", "/attempts/999999", True, (("link", "Back to the start page"),)),
    Screen("groups", "/groups", True, (("button", "Create group"),)),
    Screen("rename group", "/groups/{group}/edit", True, (("button", "Save"),)),
    Screen("delete group", "/groups/{group}/delete", True, (("button", "Delete the group"),)),
    Screen("dashboard of a group", "/?group={group}", True,
           (("button", "Show"), ("link", "New task"))),
    Screen("dashboard with a bad group", "/?group=999999", True, (("button", "Show"),)),
    Screen("history of a group", "/history?group={group}", True, (("button", "Show"),)),
    Screen("analytics of a group", "/analytics?group={group}", True, (("button", "Show trend"),)),
)  # fmt: skip


def _seed(page: Page) -> dict[str, int]:
    """One person's data through the real pages; returns the ids the URLs need."""
    ui.sign_up(page, "axe.person")
    ui.create_task(page, DONE, description="The ones on the balcony too.", new_emotions="Hopeful")
    ui.do_task_once(page, DONE, relief="70", minutes="15")
    ui.do_task_once(page, DONE, relief="90", minutes="10")
    ui.create_task(page, ARCHIVED)
    ui.task_row(page, ARCHIVED).get_by_role("button", name="Archive").click()
    expect(ui.flash(page)).to_contain_text(f"Archived “{ARCHIVED}”")
    ui.create_task(page, READY, kind="Routine", estimate="5")
    ui.initialize(page, READY, notes="Start with the cables.")
    ui.create_task(page, RUNNING, kind="Project", estimate="90")
    ui.initialize(page, RUNNING)
    ui.start(page, RUNNING)
    current = ui.section(page, "Current task")
    current.get_by_label("Note on this task").fill("The intro is done; the figures are next.")
    current.get_by_role("button", name="Save note").click()
    expect(ui.flash(page)).to_contain_text(f"Note saved on “{RUNNING}”")
    running = ui.section(page, "Current task").get_by_role("link", name=RUNNING)
    running_id = re.search(r"/attempts/(\d+)", running.get_attribute("href") or "")
    assert running_id
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Notes").click()
    page.get_by_label("New note").fill("Slept badly; everything felt heavier today.")
    page.get_by_role("button", name="Save note").click()
    expect(ui.flash(page)).to_have_text("Note saved.")
    note = ui.main(page).get_by_role("link", name=re.compile("^Edit the note")).first
    note_id = re.search(r"/notes/(\d+)/", note.get_attribute("href") or "")
    assert note_id
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Groups").click()
    page.get_by_label("New group").fill("Garden")
    page.get_by_role("button", name="Create group").click()
    expect(ui.flash(page)).to_contain_text("Created the group “Garden”")
    rename = ui.main(page).get_by_role("link", name="Rename Garden")
    group_id = re.search(r"/groups/(\d+)/", rename.get_attribute("href") or "")
    assert group_id
    ui.go_to_dashboard(page)
    ui.task_row(page, DONE).get_by_role("link", name="Edit").click()
    page.get_by_role("checkbox", name="Garden").check()
    page.get_by_role("button", name="Save").click()
    expect(ui.flash(page)).to_have_text(f"Saved the groups of “{DONE}”.")
    ui.go_to_dashboard(page)

    def number(link: Any) -> int:
        match = re.search(r"/(\d+)/", link.get_attribute("href") or "")
        assert match, "no id in the link"
        return int(match.group(1))

    ready = ui.ready_item(page, READY).get_by_role("link", name="Complete")
    recent = ui.section(page, "Recently completed").get_by_role("link", name=DONE).first
    edit = ui.task_row(page, DONE).get_by_role("link", name="Edit")
    done = re.search(r"/attempts/(\d+)", recent.get_attribute("href") or "")
    assert done
    return {
        "ready": number(ready),
        "done": int(done.group(1)),
        "done_task": number(edit),
        "note": int(note_id.group(1)),
        "running": int(running_id.group(1)),
        "group": int(group_id.group(1)),
    }


YEAR_PERSON = "year.person"
# Eight tasks with everyday names, two attempts a day for a year: completed ones with
# outcomes (and the measures the app derives from them), every seventh one cancelled.
YEAR_OF_TASKS = """
INSERT INTO tasks (user_id, name, kind, default_estimate_minutes)
SELECT u.id, t.name, t.kind, t.estimate
FROM users u, (VALUES
    ('Answer the week''s emails', 'routine', 30),
    ('Quarterly report for the board', 'project', 120),
    ('Call the insurance about the claim', 'one-time', 20),
    ('Clean the kitchen', 'routine', 25),
    ('Physiotherapy exercises', 'recurring', 15),
    ('Sort the tax receipts', 'one-time', 60),
    ('Prepare the team meeting', 'recurring', 45),
    ('Water the plants', 'routine', 5)
) AS t(name, kind, estimate)
WHERE u.username = :username
"""
YEAR_OF_ATTEMPTS = """
INSERT INTO attempts (
    user_id, task_id, task_version, status, initialized_at, started_at, completed_at,
    cancelled_at, cancel_reason, minutes_spent, expected_aversion, expected_relief,
    expected_cognitive_load, expected_emotional_load, expected_physical_load, motivation,
    time_estimate_minutes, actual_relief, actual_cognitive_load, actual_emotional_load,
    actual_physical_load, completion_percent, stress, net_wellbeing, net_wellbeing_normalized,
    stress_efficiency, relief_surprise, time_accuracy)
SELECT t.user_id, t.id, 1, s.status, s.done - interval '3 hours', s.done - interval '1 hour',
       CASE WHEN s.cancelled THEN NULL ELSE s.done END,
       CASE WHEN s.cancelled THEN s.done END, CASE WHEN s.cancelled THEN 'Ran out of time' END,
       s.minutes, s.aversion, s.expected, 40, 45, 20, 60, t.default_estimate_minutes,
       s.relief, s.load, s.load + 10, s.load / 2, CASE WHEN s.cancelled THEN 30 ELSE 100 END,
       s.stress, s.relief - s.stress, 50 + (s.relief - s.stress) / 2.0,
       s.relief / greatest(s.stress, 1), s.relief - s.expected,
       s.minutes / t.default_estimate_minutes
FROM (SELECT id, user_id, default_estimate_minutes,
             row_number() OVER (ORDER BY id) - 1 AS k
      FROM tasks WHERE user_id = (SELECT id FROM users WHERE username = :username)) t
JOIN LATERAL (
    SELECT n % 7 = 3 AS cancelled, now() - make_interval(days => n / 2, hours => n % 2 * 5) AS done,
           (n * 37 + t.k * 11) % 101 AS aversion, (n * 23 + t.k * 7) % 101 AS expected,
           (n * 41 + t.k * 13) % 101 AS relief, (n * 17 + t.k * 5) % 81 AS load,
           ((n * 17 + t.k * 5) % 81 * 3 + 10) / 3.0 AS stress,
           t.default_estimate_minutes * (0.5 + (n % 10) / 6.0) AS minutes,
           CASE WHEN n % 7 = 3 THEN 'cancelled' ELSE 'completed' END AS status
    FROM generate_series(0, 729) AS n
    WHERE n % 8 = t.k
) s ON true
"""


def _seed_a_year(page: Page, server: LiveServer) -> None:
    """Sign up through the pages, then a year of attempts straight into the database."""
    ui.sign_up(page, YEAR_PERSON)
    with server.app.extensions["db_engine"].begin() as conn:
        conn.execute(text(YEAR_OF_TASKS), {"username": YEAR_PERSON})
        conn.execute(text(YEAR_OF_ATTEMPTS), {"username": YEAR_PERSON})


@pytest.fixture(scope="module")
def site(chromium: Browser, pg_server: PostgresServer, template_database: str) -> Iterator[Site]:
    with own_database(pg_server, template_database) as url, serve(url) as server:
        watch = Watch()

        def signed_in(seed: Callable[[Page], Any]) -> tuple[Any, dict[str, Any]]:
            context = new_context(chromium, server.url, watch)
            try:
                return seed(context.new_page()), dict(context.storage_state())
            finally:
                context.close()

        ids, state = signed_in(_seed)
        _, year_state = signed_in(lambda page: _seed_a_year(page, server))
        assert not watch.problems(), watch.problems()
        yield Site(server, state, ids, year_state)


@pytest.fixture
def visit(chromium: Browser, site: Site, watch: Watch) -> Iterator[Callable[..., Page]]:
    """Open a screen as the seeded person (or signed out) in a fresh context."""
    opened: list[BrowserContext] = []

    def _visit(screen: Screen, **options: Any) -> Page:
        if screen.signed_in:
            options.setdefault("storage_state", site.storage_state)
        context = new_context(chromium, site.server.url, watch, **options)
        opened.append(context)
        page = context.new_page()
        page.goto(screen.path.format(**site.ids))
        if screen.then:
            screen.then(page)
            # What `then` waited for can show before the new page's stylesheet has loaded
            # (a form post's answer): measure the page as it is drawn, styled.
            page.wait_for_load_state("load")
        # Canvas charts (the dashboard's Chart.js) draw after load; check the finished page.
        # The analytics charts are SVG written by the server: drawn as soon as they're there.
        canvases = page.locator("canvas")
        for index in range(canvases.count()):
            expect(canvases.nth(index)).to_have_attribute("data-drawn", "true")
        return page

    yield _visit
    for context in opened:
        context.close()


def _report(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            lines.append(f"    {', '.join(map(str, node['target']))}: {node['html'][:200]}")
            if node.get("failureSummary"):
                lines.append("      " + node["failureSummary"].replace("\n", "\n      "))
    return "\n".join(lines)


@pytest.mark.parametrize("screen", SCREENS, ids=lambda s: s.name)
def test_page_has_no_serious_accessibility_violations(
    visit: Callable[..., Page], screen: Screen
) -> None:
    page = visit(screen)
    results = Axe().run(page)
    blocking = [v for v in results.response["violations"] if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, f"axe on {screen.name} ({page.url}):\n{_report(blocking)}"


@pytest.mark.parametrize("screen", SCREENS, ids=lambda s: s.name)
def test_page_fits_a_375px_phone_and_its_buttons_can_be_tapped(
    visit: Callable[..., Page], screen: Screen
) -> None:
    page = visit(screen, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= PHONE["width"], (
        f"{screen.name} scrolls sideways on a phone: {scroll_width}px wide; "
        f"widest: {_widest_elements(page)}"
    )
    for role, name in screen.buttons:
        control = ui.main(page).get_by_role(role, name=name, exact=True).first
        expect(control).to_be_visible()
        control.scroll_into_view_if_needed()
        box = control.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (
            f"“{name}” on {screen.name} is cut off: {box}"
        )
        control.click(trial=True)  # visible, enabled, not covered: a tap would land


def _open_the_tables(page: Page) -> None:
    for summary in page.locator("summary").all():
        summary.click()


def test_analytics_with_a_year_of_data_on_a_phone_lets_the_keyboard_scroll_its_tables(
    visit: Callable[..., Page], site: Site
) -> None:
    screen = Screen("analytics with a year of data", "/analytics", then=_open_the_tables)
    page = visit(screen, storage_state=site.year_storage_state, viewport=PHONE, is_mobile=True)
    # Every chart's words stay readable on the phone: a chart across the card scrolls
    # sideways instead of shrinking its 12 px text to 4 px.
    text_heights = page.locator("svg[data-chart] text").evaluate_all(
        "(texts) => texts.map((t) => [t.closest('svg').id, t.getBoundingClientRect().height])"
    )
    assert text_heights, "no chart text on analytics with a year of data"
    tiny = sorted({chart for chart, height in text_heights if height < 8})
    assert not tiny, f"chart text under 8 px tall on a 375 px phone in: {tiny}"

    boxes = page.locator(".table-wrap")
    scrolling = boxes.evaluate_all(
        "(boxes) => boxes.flatMap((box, i) => box.scrollWidth > box.clientWidth ? [i] : [])"
    )
    assert scrolling, "no table is wider than its box: this check would not see the problem"

    results = Axe().run(page)
    blocking = [v for v in results.response["violations"] if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, f"axe on {screen.name} ({page.url}):\n{_report(blocking)}"

    # A keyboard user tabs to the first table that scrolls and moves it with the arrows.
    box = boxes.nth(scrolling[0])
    for _ in range(200):
        page.keyboard.press("Tab")
        if box.evaluate("(box) => box === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reaches the first table that scrolls sideways")
    expect(box).to_have_accessible_name(re.compile(r"\w"))
    page.keyboard.press("ArrowRight")
    page.wait_for_function("(box) => box.scrollLeft > 0", arg=box.element_handle())


def _widest_elements(page: Page) -> list[str]:
    return page.evaluate(
        """(limit) => [...document.querySelectorAll('body *')]
            .filter((el) => el.getBoundingClientRect().right > limit
                            && !el.parentElement.closest('.table-wrap'))
            .slice(0, 5)
            .map((el) => `${el.tagName.toLowerCase()}.${el.className}`
                         + ` (right ${Math.round(el.getBoundingClientRect().right)}px)`)""",
        PHONE["width"],
    )

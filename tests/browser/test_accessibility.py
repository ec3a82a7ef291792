"""The main pages pass axe-core without serious or critical violations, and fit a phone.

One server and one seeded account serve the whole module (a running attempt, a ready
one, completed ones, an archived task), so each page check is only a page load.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import expect

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


@dataclass(frozen=True)
class Screen:
    """A page a person sees, how to get there, and the buttons that matter on it."""

    name: str
    path: str
    signed_in: bool = True
    buttons: tuple[tuple[str, str], ...] = ()
    endpoint: str = ""  # skip while this endpoint doesn't exist yet
    then: Callable[[Page], None] | None = None  # an action after loading (a form error)


def _submit_empty_cancel_form(page: Page) -> None:
    page.get_by_role("button", name="Cancel this attempt").click()
    expect(page.get_by_role("alert")).to_be_visible()


def _fail_sign_in(page: Page) -> None:
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Sign-in key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()


def _sign_up_someone(page: Page) -> None:
    page.get_by_label("Username").fill(f"newcomer{next(NEWCOMERS)}")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#signin-key")).to_be_visible()


SCREENS = (
    Screen("welcome", "/", False, (("link", "Create an account"), ("link", "Sign in"))),
    Screen("sign-up", "/signup", False, (("button", "Sign up"),)),
    Screen("sign-in key", "/signup", False, (("link", "Continue to your dashboard"),),
           then=_sign_up_someone),
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
    Screen("emotions", "/emotions", True, (("button", "Add"),)),
    Screen("account", "/account", True,
           (("button", "Save time zone"), ("button", "Make a new sign-in key"),
            ("button", "Delete my account and all its data"))),
    Screen("analytics", "/analytics", True, (("button", "Show trend"),),
           endpoint="analytics.index"),
    Screen("import", "/account/import", True, (("button", "Check the upload"),),
           endpoint="transfer.import_form"),
    Screen("history", "/history", True, (("button", "Show"),), endpoint="history.index"),
    Screen("history with a bad date", "/history?start=2026-13-40&q=water", True,
           (("button", "Show"),), endpoint="history.index"),
    Screen("not found", "/attempts/999999", True, (("link", "Back to the start page"),)),
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

    def number(link: Any) -> int:
        match = re.search(r"/(\d+)/", link.get_attribute("href") or "")
        assert match, "no id in the link"
        return int(match.group(1))

    ready = ui.ready_item(page, READY).get_by_role("link", name="Complete")
    recent = ui.section(page, "Recently completed").get_by_role("link", name=DONE).first
    edit = ui.task_row(page, DONE).get_by_role("link", name="Edit")
    done = re.search(r"/attempts/(\d+)", recent.get_attribute("href") or "")
    assert done
    return {"ready": number(ready), "done": int(done.group(1)), "done_task": number(edit)}


@pytest.fixture(scope="module")
def site(chromium: Browser, pg_server: PostgresServer, template_database: str) -> Iterator[Site]:
    with own_database(pg_server, template_database) as url, serve(url) as server:
        watch = Watch()
        context = new_context(chromium, server.url, watch)
        try:
            ids = _seed(context.new_page())
            state = context.storage_state()
        finally:
            context.close()
        assert not watch.problems(), watch.problems()
        yield Site(server, dict(state), ids)


@pytest.fixture
def visit(chromium: Browser, site: Site, watch: Watch) -> Iterator[Callable[..., Page]]:
    """Open a screen as the seeded person (or signed out) in a fresh context."""
    opened: list[BrowserContext] = []

    def _visit(screen: Screen, **options: Any) -> Page:
        if screen.endpoint and not site.server.has_endpoint(screen.endpoint):
            pytest.skip(f"{screen.path} ({screen.endpoint}) doesn't exist yet")
        if screen.signed_in:
            options["storage_state"] = site.storage_state
        context = new_context(chromium, site.server.url, watch, **options)
        opened.append(context)
        page = context.new_page()
        page.goto(screen.path.format(**site.ids))
        if screen.then:
            screen.then(page)
        # Charts draw after load; check the finished page.
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


def _widest_elements(page: Page) -> list[str]:
    return page.evaluate(
        """(limit) => [...document.querySelectorAll('body *')]
            .filter((el) => el.getBoundingClientRect().right > limit)
            .slice(0, 5)
            .map((el) => `${el.tagName.toLowerCase()}.${el.className}`
                         + ` (right ${Math.round(el.getBoundingClientRect().right)}px)`)""",
        PHONE["width"],
    )

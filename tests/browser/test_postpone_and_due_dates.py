"""Due dates and postponing in a real browser on a 375 px phone: an attempt initialized
with a due date in the past is marked overdue and listed first; postponed with a reason,
it shows under Postponed; the history's "Postponed" filter finds it; back to Ready again.
Every page on the way passes axe and fits the phone's width."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.browser import ui

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 667}
RENT, PLANTS = "Pay the rent", "Water the plants"
REASON = "Waiting for the salary"


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


def _history_rows(page: Page) -> Any:
    return ui.main(page).get_by_role("table").locator("tbody tr")


def test_overdue_first_then_postponed_with_a_reason_found_in_history_and_back(
    open_context: Callable[..., BrowserContext],
) -> None:
    context = open_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    ui.sign_up(page, "due.person")
    ui.create_task(page, PLANTS, estimate="5")
    ui.initialize(page, PLANTS)  # initialized first: without its due date, it would lead
    ui.create_task(page, RENT, estimate="10")

    ui.open_initialize(page, RENT)
    yesterday = dt.datetime.now(ZoneInfo("Europe/Berlin")).date() - dt.timedelta(days=1)
    page.get_by_label("Due date (optional)").fill(yesterday.isoformat())
    page.get_by_label("Due time (optional)").fill("09:00")
    _check_page(page, "the initialize form with a due date")
    page.get_by_role("button", name="Initialize").click()
    expect(ui.flash(page)).to_have_text(f"“{RENT}” is ready to start.")

    ready = ui.section(page, "Ready").locator("li")
    expect(ready).to_have_count(2)
    expect(ready.first).to_contain_text(RENT)
    expect(ready.first).to_contain_text("overdue")
    expect(ui.ready_item(page, PLANTS)).not_to_contain_text("overdue")
    _check_page(page, "the dashboard with an overdue attempt")

    ui.ready_item(page, RENT).get_by_role("link", name="Postpone…").click()
    expect(page.get_by_role("heading", name=f"Postpone “{RENT}”")).to_be_visible()
    page.get_by_role("button", name="Postpone").click()  # no reason yet
    expect(page.get_by_role("alert")).to_have_text("Say why, even briefly: it helps you later.")
    _check_page(page, "the postpone form with an error")
    page.get_by_label("Why are you postponing it?").fill(REASON)
    page.get_by_role("button", name="Postpone").click()
    expect(ui.flash(page)).to_have_text(f"Postponed “{RENT}”.")

    postponed = ui.section(page, "Postponed")
    expect(postponed).to_contain_text(RENT)
    expect(postponed).to_contain_text(f"Because: {REASON}")
    expect(postponed).to_contain_text("overdue")
    expect(ui.ready_item(page, RENT)).to_have_count(0)
    _check_page(page, "the dashboard with a postponed attempt")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="History").click()
    page.get_by_label("Status").select_option(label="Postponed")
    page.get_by_role("button", name="Show").click()
    expect(_history_rows(page)).to_have_count(1)
    expect(_history_rows(page)).to_contain_text(RENT)
    expect(_history_rows(page)).to_contain_text("postponed")
    _check_page(page, "history filtered to postponed attempts")
    page.get_by_label("Status").select_option(label="Paused")
    page.get_by_role("button", name="Show").click()
    expect(ui.main(page)).to_contain_text("No attempts match these filters.")

    page.get_by_label("Status").select_option(label="Postponed")
    page.get_by_role("button", name="Show").click()
    # The attempt's page shows the postponement.
    _history_rows(page).get_by_role("link", name=RENT).click()
    expect(page.get_by_role("heading", name=RENT)).to_be_visible()
    postponements = ui.main(page).locator("dt", has_text="Postponed").locator("+ dd")
    expect(postponements).to_have_text(f"1×: {REASON}")
    _check_page(page, "the postponed attempt's page")

    ui.go_to_dashboard(page)
    ui.section(page, "Postponed").get_by_role("button", name="Back to Ready").click()
    expect(ui.flash(page)).to_have_text(f"“{RENT}” is back in Ready.")
    expect(ui.section(page, "Postponed")).to_have_count(0)
    expect(ready.first).to_contain_text(RENT)
    expect(ready.first).to_contain_text("overdue")

"""History in a real browser: found from the dashboard, searched, an attempt opened."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.browser import ui

pytestmark = pytest.mark.browser

DONE, DROPPED = "Quarterly taxes", "Call grandma"


def _history_rows(page: Page):
    return ui.main(page).get_by_role("table").locator("tbody tr")


def test_a_person_finds_a_cancelled_attempt_in_history_by_a_word_of_its_reason(page: Page):
    ui.sign_up(page, "searching.person")
    ui.create_task(page, DONE, description="Bring the receipts folder")
    ui.do_task_once(page, DONE, relief="70")
    ui.create_task(page, DROPPED)
    ui.initialize(page, DROPPED)
    ui.ready_item(page, DROPPED).get_by_role("link", name="Cancel").click()
    page.get_by_role("radio", name="Started by mistake").check()
    page.get_by_label("Why are you cancelling?").fill("Phone battery died")
    page.get_by_role("button", name="Cancel this attempt").click()
    expect(ui.flash(page)).to_have_text(f"Cancelled “{DROPPED}”.")

    # From the dashboard's "Recently completed", then through the main navigation.
    ui.section(page, "Recently completed").get_by_role("link", name="All history").click()
    expect(page.get_by_role("heading", name="History", exact=True)).to_be_visible()
    ui.go_to_dashboard(page)
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="History", exact=True).click()
    expect(page.get_by_role("heading", name="History", exact=True)).to_be_visible()
    expect(_history_rows(page)).to_have_count(2)
    expect(_history_rows(page).first).to_contain_text(DROPPED)  # newest first

    page.get_by_label("Search").fill("batt")
    page.get_by_role("button", name="Show").click()
    expect(_history_rows(page)).to_have_count(1)
    expect(_history_rows(page)).to_contain_text("Started by mistake: Phone battery died")
    expect(page.get_by_label("Search")).to_have_value("batt")

    page.get_by_label("Search").fill("")
    page.get_by_label("Status").select_option(label="Completed")
    page.get_by_role("button", name="Show").click()
    expect(_history_rows(page)).to_have_count(1)
    expect(_history_rows(page)).to_contain_text(DONE)

    _history_rows(page).get_by_role("link", name=DONE).click()
    expect(page.get_by_role("heading", name=DONE)).to_be_visible()
    expect(ui.main(page)).to_contain_text("Relief")
    page.get_by_role("link", name="All history").click()
    page.get_by_label("Search").fill("phone")
    page.get_by_role("button", name="Show").click()
    _history_rows(page).get_by_role("link", name=DROPPED).click()
    expect(page.get_by_role("heading", name=DROPPED)).to_be_visible()
    because = ui.main(page).locator("dt", has_text="Cancelled because").locator("+ dd")
    expect(because).to_have_text("Started by mistake: Phone battery died")

"""Task groups in a real browser on a 375 px phone: a group is made on the Groups page,
tasks are put in it on their form (found by labels), and the dashboard, history and
analytics show that group only when it is chosen, the choice kept in the URL. Every page
on the way passes axe and fits the phone's width."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext
from playwright.sync_api import expect

from tests.browser import ui
from tests.browser.test_postpone_and_due_dates import PHONE
from tests.browser.test_postpone_and_due_dates import _check_page

pytestmark = pytest.mark.browser

WORK, HOME = "Write the report", "Water the plants"


def test_a_group_is_made_filled_and_chosen_on_dashboard_history_and_analytics(
    open_context: Callable[..., BrowserContext],
) -> None:
    context = open_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    ui.sign_up(page, "group.person")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Groups").click()
    page.get_by_label("New group").fill("Office")
    page.get_by_role("button", name="Create group").click()
    expect(ui.flash(page)).to_contain_text("Created the group “Office”")
    page.get_by_label("New group").fill("office")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("alert")).to_have_text("You already have a group called “office”.")
    _check_page(page, "the Groups page with a refused name")

    ui.go_to_dashboard(page)
    ui.section(page, "Tasks").get_by_role("link", name="New task").click()
    page.get_by_label("Name", exact=True).fill(WORK)
    page.get_by_role("group", name="Groups").get_by_role("checkbox", name="Office").check()
    _check_page(page, "the task form with groups")
    page.get_by_role("button", name="Create task").click()
    expect(ui.flash(page)).to_have_text(f"Created “{WORK}”.")
    ui.create_task(page, HOME)
    ui.do_task_once(page, WORK)
    ui.do_task_once(page, HOME)

    page.get_by_label("Group", exact=True).select_option(label="Office")
    page.get_by_role("button", name="Show", exact=True).click()
    expect(page).to_have_url(re.compile(r"/\?group=\d+$"))
    tasks = ui.section(page, "Tasks").locator(".task-name")
    expect(tasks).to_have_text([WORK])
    recent = ui.section(page, "Recently completed").get_by_role("row")
    expect(recent).to_have_count(2)  # the header and the report
    _check_page(page, "the dashboard of one group")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="History").click()
    page.get_by_label("Group", exact=True).select_option(label="Office")
    page.get_by_role("button", name="Show", exact=True).click()
    rows = ui.main(page).get_by_role("table").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(WORK)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Analytics").click()
    page.get_by_label("Group", exact=True).select_option(label="Office")
    page.get_by_role("button", name="Show", exact=True).click()
    expect(page.get_by_text("Showing the group “Office” only.")).to_be_visible()
    expect(ui.main(page)).to_contain_text("1 completed of 1 finished")
    _check_page(page, "analytics of one group")

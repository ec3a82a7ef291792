"""The dashboard's buttons say what they do: one prepares an attempt from your averages at
once, the other opens the prediction form. No button is called just "Initialize" there.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.browser import ui

pytestmark = pytest.mark.browser

TASK = "Water the plants"


def test_start_from_averages_prepares_at_once_and_initialize_opens_the_form(page: Page) -> None:
    ui.sign_up(page, "labels.person")
    ui.create_task(page, TASK, estimate="10")
    ui.do_task_once(page, TASK, relief="70", minutes="12")  # now in Quick start too
    ui.go_to_dashboard(page)

    bare = re.compile(r"^\s*Initialize\s*$")
    expect(ui.main(page).get_by_role("button", name=bare)).to_have_count(0)
    expect(ui.main(page).get_by_role("link", name=bare)).to_have_count(0)
    for heading in ("Recommendations", "Quick start"):
        card = ui.section(page, heading)
        expect(card.get_by_role("button", name="Start from averages")).to_have_count(1)
        expect(card.get_by_role("link", name="Initialize…")).to_have_count(0)
    row = ui.task_row(page, TASK)
    expect(row.get_by_role("link", name="Initialize…", exact=True)).to_be_visible()
    expect(row.get_by_role("button", name="Start from averages")).to_have_count(0)

    # "Initialize…" opens the form and prepares nothing until it is sent.
    row.get_by_role("link", name="Initialize…", exact=True).click()
    expect(page.get_by_role("heading", name=f"Initialize “{TASK}”")).to_be_visible()
    ui.go_to_dashboard(page)
    expect(ui.ready_item(page, TASK)).to_have_count(0)

    # "Start from averages" prepares the attempt at once, from the averages.
    ui.section(page, "Quick start").get_by_role("button", name="Start from averages").click()
    expect(ui.flash(page)).to_have_text(
        f"“{TASK}” is ready to start (prediction from your averages)."
    )
    expect(ui.ready_item(page, TASK)).to_be_visible()

"""Emotion intensities in a real browser on a 375 px phone: emotions are ticked with an
intensity before and after a task (found by their labels), a bad intensity is explained,
and analytics shows how each emotion changed, in its table and its chart. Every page on
the way passes axe and fits the phone's width."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext
from playwright.sync_api import Locator
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.browser import ui
from tests.browser.test_postpone_and_due_dates import PHONE
from tests.browser.test_postpone_and_due_dates import _check_page

pytestmark = pytest.mark.browser

TASK = "Call the dentist"


def _intensity(page: Page, emotion: str) -> Locator:
    """The intensity input next to an emotion's checkbox."""
    row = page.get_by_role("listitem").filter(has=page.get_by_role("checkbox", name=emotion))
    return row.get_by_label("Intensity (0–100)")


def test_emotions_with_intensities_before_and_after_show_on_analytics(
    open_context: Callable[..., BrowserContext],
) -> None:
    context = open_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    ui.sign_up(page, "feeling.person")
    ui.create_task(page, TASK, estimate="10")

    ui.open_initialize(page, TASK)
    page.get_by_role("checkbox", name="Anxious").check()
    _intensity(page, "Anxious").fill("150")
    page.get_by_role("button", name="Initialize").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Intensity of “Anxious”: enter a whole number from 0 to 100."
    )
    _check_page(page, "the initialize form with a refused intensity")
    _intensity(page, "Anxious").fill("80")
    page.get_by_role("button", name="Initialize").click()
    expect(ui.flash(page)).to_have_text(f"“{TASK}” is ready to start.")

    ui.start(page, TASK)
    ui.section(page, "Current task").get_by_role("link", name="Complete").click()
    page.get_by_role("checkbox", name="Anxious").check()
    _intensity(page, "Anxious").fill("30")
    page.get_by_role("checkbox", name="Calm").check()
    _intensity(page, "Calm").fill("75")
    _check_page(page, "the complete form with intensities")
    ui.complete_form(page, TASK)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Analytics").click()
    section = ui.section(page, "Emotions before and after")
    anxious = section.get_by_role("row", name="Anxious")
    expect(anxious.get_by_role("cell")).to_have_text(["1", "80.0 (1)", "30.0 (1)", "-50.0"])
    calm = section.get_by_role("row", name="Calm")
    expect(calm.get_by_role("cell")).to_have_text(["1", "—", "75.0 (1)", "—"])
    chart = section.get_by_role("img", name="Mean intensity of each emotion before and after")
    expect(chart).to_be_visible()
    expect(chart.locator("rect title")).to_have_text(
        ["Anxious, before: 80", "Anxious, after: 30", "Calm, after: 75"]
    )
    _check_page(page, "analytics with emotions")

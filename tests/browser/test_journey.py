"""A new person's whole first session, through the real pages in a real browser."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.browser import ui
from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

TASK = "Write the quarterly report"
OTHER_TASK = "Call the dentist"
USERNAME = "journey.person"


def test_new_person_signs_up_plans_does_and_reviews_a_task_then_signs_out(
    page: Page,
    live_server: LiveServer,
    open_context: Callable[..., BrowserContext],
    subtests: pytest.Subtests,
) -> None:
    key = _sign_up_and_keep_the_key(page)
    with subtests.test("the sign-in key page greets the new person as signed in"):
        _greeted_by_name_and_signed_in(page)
    page.get_by_role("button", name="Continue to your dashboard").click()
    expect(page.get_by_role("heading", name="Current task")).to_be_visible()
    expect(ui.section(page, "Tasks")).to_contain_text("No tasks yet")
    _create_a_task_with_a_new_emotion(page)
    _initialize_with_sliders(page)
    _start_watch_the_clock_pause_and_resume(page)
    _complete_with_the_outcome_form(page)
    _see_it_on_the_dashboard(page)

    with subtests.test("analytics shows the completed attempt"):
        _see_analytics_charts(page)

    _cancel_another_attempt_with_a_reason(page)

    with subtests.test("export downloads a zip with the task"):
        _export_and_find_the_task(page)

    _sign_in_on_another_device(open_context, key)
    _sign_out_ends_the_session(page, open_context)


def _sign_up_and_keep_the_key(page: Page) -> str:
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("dread")
    expect(page.get_by_role("note")).to_contain_text("Temporary sign-in without passwords")
    ui.main(page).get_by_role("link", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    expect(page.get_by_role("note")).to_contain_text("Temporary sign-in without passwords")
    ui.wait_for_time_zone(page)
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_role("button", name="Sign up").click()

    expect(page.get_by_role("heading", name=re.compile("^Welcome"))).to_be_visible()
    expect(page.get_by_role("note")).to_contain_text("Temporary sign-in without passwords")
    expect(page.get_by_text("It is shown only once.")).to_be_visible()
    key = page.get_by_label("Sign-in key").input_value()
    assert re.fullmatch(r"[\w-]{16,}", key), f"unexpected sign-in key {key!r}"
    return key


def _greeted_by_name_and_signed_in(page: Page) -> None:
    heading = page.get_by_role("heading", level=1)
    nav = page.get_by_role("navigation", name="Main")
    expect(heading).to_have_text(f"Welcome, {USERNAME}!")
    expect(nav.get_by_role("button", name="Sign out")).to_be_visible()
    expect(nav.get_by_role("link", name="Sign up")).to_have_count(0)


def _create_a_task_with_a_new_emotion(page: Page) -> None:
    ui.section(page, "Tasks").get_by_role("link", name="New task").click()
    expect(page.get_by_role("heading", name="New task")).to_be_visible()
    page.get_by_label("Name").fill(TASK)
    page.get_by_label("Description").fill("Numbers for Q3, two pages.")
    page.get_by_label("Kind").select_option(label="Recurring")
    page.get_by_label("Default time estimate (minutes)").fill("45")
    page.get_by_label("Calm").check()
    page.get_by_label("Add emotions (comma-separated)").fill("Dread")
    page.get_by_role("button", name="Create task").click()

    expect(ui.flash(page)).to_have_text(f"Created “{TASK}”.")
    row = ui.task_row(page, TASK)
    expect(row).to_contain_text("recurring · 45 min · done 0×")
    # The new emotion joined the person's own list.
    row.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Dread")).to_be_checked()
    expect(page.get_by_label("Calm")).to_be_checked()
    ui.go_to_dashboard(page)


def _initialize_with_sliders(page: Page) -> None:
    ui.open_initialize(page, TASK)
    # The estimate defaults to the task's own (shown as "45.0" today: cosmetic).
    expect(page.get_by_label("Time estimate (minutes)")).to_have_value(re.compile(r"^45(\.0)?$"))

    aversion = page.get_by_label("Aversion: how much you don't want to do it")
    expect(aversion).to_have_value("50")
    aversion.focus()
    for _ in range(20):
        aversion.press("ArrowRight")
    expect(aversion).to_have_value("70")
    # The value shown next to the slider follows it.
    expect(page.locator(f"output[for='{aversion.get_attribute('id')}']")).to_have_text("70")
    relief = page.get_by_label("Expected relief afterwards")
    relief.focus()
    relief.press("End")
    expect(relief).to_have_value("100")
    page.get_by_label("Expected mental load").fill("60")

    page.get_by_label("Dread").check()
    page.get_by_label("Where (physical context)").fill("Home")
    page.get_by_label("Notes for this attempt").fill("Start with the revenue table.")
    page.get_by_role("button", name="Initialize").click()

    expect(ui.flash(page)).to_have_text(f"“{TASK}” is ready to start.")
    ready = ui.ready_item(page, TASK)
    expect(ready).to_contain_text("45 min · initialized")
    ready.locator("summary", has_text="Prediction").click()
    expect(ready.locator("dd").nth(0)).to_have_text("70")
    expect(ready.locator("dd").nth(1)).to_have_text("100")


def _start_watch_the_clock_pause_and_resume(page: Page) -> None:
    ui.ready_item(page, TASK).get_by_role("button", name="Start").click()
    expect(ui.flash(page)).to_have_text(f"Started “{TASK}”.")
    current = ui.section(page, "Current task")
    expect(current.get_by_role("link", name=TASK)).to_be_visible()
    elapsed = current.get_by_role("timer")
    expect(elapsed).to_have_text(re.compile(r"\d+ min \d\d s"))
    first = elapsed.inner_text()
    # The clock ticks in the page, without a reload.
    expect(elapsed).not_to_have_text(first)

    current.get_by_label("Reason for pausing (optional)").fill("Phone call from the bank")
    current.get_by_role("button", name="Pause").click()
    expect(ui.flash(page)).to_contain_text(f"Paused “{TASK}” after")
    expect(current).to_contain_text("Nothing running")
    ready = ui.ready_item(page, TASK)
    expect(ready.locator(".badge")).to_contain_text("paused")

    ready.get_by_role("button", name="Resume").click()
    expect(ui.flash(page)).to_have_text(f"Resumed “{TASK}”.")
    expect(current.get_by_role("timer")).to_be_visible()


def _complete_with_the_outcome_form(page: Page) -> None:
    ui.section(page, "Current task").get_by_role("link", name="Complete").click()
    expect(page.get_by_role("heading", name=f"Complete “{TASK}”")).to_be_visible()
    expect(page.get_by_text("Tracked time:")).to_be_visible()
    relief = page.get_by_label("Relief", exact=True)
    relief.fill("85")
    expect(page.locator(f"output[for='{relief.get_attribute('id')}']")).to_have_text("85")
    page.get_by_label("Mental load").fill("40")
    page.get_by_label("How much got done (%)").fill("100")
    page.get_by_label("Minutes spent").fill("40")
    page.get_by_label("Add emotions (comma-separated)").fill("Proud")
    page.get_by_label("Notes", exact=True).fill("Easier than I feared.")
    page.get_by_role("button", name="Complete").click()
    expect(ui.flash(page)).to_have_text(f"Completed “{TASK}”. Well done.")


def _see_it_on_the_dashboard(page: Page) -> None:
    expect(ui.section(page, "Current task")).to_contain_text("Nothing running")
    recent = ui.section(page, "Recently completed")
    row = recent.get_by_role("row").filter(has_text=TASK)
    expect(row).to_have_count(1)
    expect(row.get_by_role("cell").nth(2)).to_have_text("40")
    expect(row.get_by_role("cell").nth(3)).to_have_text("85")

    week = ui.section(page, "This week")
    values = week.locator(".kpi-value")
    expect(values.nth(0)).to_have_text("40 min")
    expect(values.nth(1)).to_have_text("3400")  # relief 85 × 40 minutes
    expect(week.locator("canvas#history-chart")).to_have_attribute("data-drawn", "true")
    expect(ui.task_row(page, TASK)).to_contain_text("done 1×")
    expect(ui.section(page, "Quick start")).to_contain_text(TASK)

    # The attempt's own page keeps both sides of the story.
    row.get_by_role("link", name=TASK).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("completed")
    values_shown = ui.main(page)
    expect(values_shown).to_contain_text("Easier than I feared.")
    expect(values_shown).to_contain_text("Start with the revenue table.")
    expect(values_shown).to_contain_text("Proud")
    expect(values_shown).to_contain_text("1×: Phone call from the bank")
    ui.go_to_dashboard(page)


def _see_analytics_charts(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Analytics").click()
    charts = page.locator("main svg[data-chart]")
    expect(charts.first).to_be_visible()
    assert charts.count() > 0, "the analytics page has no charts"
    for name in (
        "Relief per day and cumulative relief, since your first completed task",
        "Aversion before the task against actual relief after it",
        "Expected relief against actual relief",
        "Distribution of relief",
    ):
        expect(page.get_by_role("img", name=name, exact=True)).to_be_visible()
    # Drawn: the day's relief is a bar, titled with its value; and no chart script ran.
    relief = page.locator('svg[data-chart="relief-chart"] rect.series-a title')
    expect(relief.last).to_contain_text(":")
    assert page.locator("main canvas").count() == 0
    assert page.evaluate("typeof window.Chart") == "undefined"
    expect(ui.main(page)).to_contain_text(TASK)
    ui.go_to_dashboard(page)


def _cancel_another_attempt_with_a_reason(page: Page) -> None:
    ui.create_task(page, OTHER_TASK, estimate="10")
    ui.initialize(page, OTHER_TASK)
    ui.ready_item(page, OTHER_TASK).get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name=f"Cancel “{OTHER_TASK}”")).to_be_visible()

    page.get_by_label("Progress made (%)").fill("10")
    page.get_by_label("Notes").fill("Office closed today.")
    page.get_by_role("button", name="Cancel this attempt").click()
    reason = page.get_by_label("Why are you cancelling?")
    expect(reason).to_have_attribute("aria-invalid", "true")
    message = page.locator(".field").filter(has=reason).get_by_role("alert")
    expect(message).to_have_text("Say why, even briefly: it helps your analytics.")
    expect(page.get_by_label("Notes")).to_have_value("Office closed today.")
    expect(page.get_by_label("Progress made (%)")).to_have_value("10")

    reason.fill("The practice is closed until Monday")
    page.get_by_role("button", name="Cancel this attempt").click()
    expect(ui.flash(page)).to_have_text(f"Cancelled “{OTHER_TASK}”.")
    expect(ui.section(page, "Ready")).not_to_contain_text(OTHER_TASK)
    expect(ui.section(page, "Recently completed")).not_to_contain_text(OTHER_TASK)


def _export_and_find_the_task(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Account").click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile("Download all my data")).click()
    download = download_info.value
    assert download.suggested_filename.endswith(".zip"), download.suggested_filename
    with zipfile.ZipFile(download.path()) as archive:
        names = {name.rsplit("/", 1)[-1]: name for name in archive.namelist()}
        assert {"tasks.csv", "task_instances.csv"} <= names.keys(), sorted(names)
        tasks = archive.read(names["tasks.csv"]).decode("utf-8-sig")
        instances = archive.read(names["task_instances.csv"]).decode("utf-8-sig")
    task_names = [row.get("name") for row in csv.DictReader(io.StringIO(tasks))]
    assert TASK in task_names, task_names
    assert TASK in instances
    ui.go_to_dashboard(page)


def _sign_in_on_another_device(open_context: Callable[..., BrowserContext], key: str) -> None:
    phone = open_context().new_page()
    phone.goto("/")
    expect(phone.get_by_role("link", name="Create an account")).to_be_visible()
    phone.get_by_role("navigation", name="Main").get_by_role("link", name="Sign in").click()
    expect(phone.get_by_role("note")).to_contain_text("Temporary sign-in without passwords")
    phone.get_by_label("Username").fill(USERNAME.upper())  # names ignore capitals
    phone.get_by_label("Sign-in key").fill(key)
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.get_by_role("heading", name="Current task")).to_be_visible()
    expect(ui.section(phone, "Recently completed")).to_contain_text(TASK)
    phone.close()


def _sign_out_ends_the_session(page: Page, open_context: Callable[..., BrowserContext]) -> None:
    cookies = page.context.cookies()
    assert any(c["name"] == "session" for c in cookies), cookies
    page.get_by_role("button", name="Sign out").click()
    expect(ui.flash(page)).to_have_text("You are signed out.")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto("/")
    expect(page.get_by_role("link", name="Create an account")).to_be_visible()

    # Someone who copied the cookie before sign-out gets nothing from it.
    stale = open_context()
    stale.add_cookies(cookies)
    copied = stale.new_page()
    copied.goto("/account")
    expect(copied).to_have_url(re.compile(r"/signin\?next="))
    expect(copied.get_by_role("heading", name="Sign in")).to_be_visible()
    copied.goto("/")
    expect(copied.get_by_role("link", name="Create an account")).to_be_visible()

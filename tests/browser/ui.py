"""Steps a person takes in the app, through the real pages: clicks and typing only.

Each helper starts from where a person would be (usually the dashboard), finds things by
their visible labels and names, and waits for what the person would see next.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from playwright.sync_api import Locator
from playwright.sync_api import Page
from playwright.sync_api import expect


def flash(page: Page) -> Locator:
    return page.locator("p.flash")


def main(page: Page) -> Locator:
    return page.get_by_role("main")


def section(page: Page, heading: str) -> Locator:
    """A dashboard card, found by its heading."""
    return page.locator("section").filter(has=page.get_by_role("heading", name=heading, exact=True))


def sign_up(page: Page, username: str) -> str:
    """Sign up from the welcome page; returns the sign-in key shown once."""
    page.goto("/")
    main(page).get_by_role("link", name="Create an account").click()
    wait_for_time_zone(page)
    page.get_by_label("Username").fill(username)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name=re.compile("^Welcome"))).to_be_visible()
    key = page.get_by_label("Sign-in key").input_value()
    assert len(key) >= 16, f"the sign-in key looks too short: {key!r}"
    page.get_by_role("button", name="Continue to your dashboard").click()
    expect(page.get_by_role("heading", name="Current task")).to_be_visible()
    return key


def wait_for_time_zone(page: Page) -> None:
    """Until the page's script has put the browser's zone into the sign-up form.

    The script is deferred: a robot can submit the form before it has run, which no
    person can, and the account would get UTC instead of the browser's zone.
    """
    expect(page.locator("input[data-detect-timezone]")).not_to_have_value("")


def sign_in(page: Page, username: str, key: str) -> None:
    page.goto("/signin")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Sign-in key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Current task")).to_be_visible()


def go_to_dashboard(page: Page) -> None:
    """Through the menu, unless the dashboard is already what the person sees."""
    if (
        urlsplit(page.url).path != "/"
        or page.get_by_role("heading", name="Current task").count() == 0
    ):
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Current task")).to_be_visible()


def create_task(
    page: Page,
    name: str,
    *,
    description: str = "",
    kind: str = "One-time",
    estimate: str = "30",
    new_emotions: str = "",
) -> None:
    go_to_dashboard(page)
    section(page, "Tasks").get_by_role("link", name="New task").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Description").fill(description)
    page.get_by_label("Kind").select_option(label=kind)
    page.get_by_label("Default time estimate (minutes)").fill(estimate)
    if new_emotions:
        page.get_by_label("Add emotions (comma-separated)").fill(new_emotions)
    page.get_by_role("button", name="Create task").click()
    expect(flash(page)).to_have_text(f"Created “{name}”.")


def task_row(page: Page, name: str) -> Locator:
    return (
        section(page, "Tasks")
        .locator("li")
        .filter(has=page.locator(".task-name").get_by_text(name, exact=True))
    )


def ready_item(page: Page, name: str) -> Locator:
    return (
        section(page, "Ready")
        .locator("li")
        .filter(has=page.locator("strong").get_by_text(name, exact=True))
    )


def open_initialize(page: Page, name: str) -> None:
    go_to_dashboard(page)
    task_row(page, name).get_by_role("link", name="Initialize…").click()
    expect(page.get_by_role("heading", name=f"Initialize “{name}”")).to_be_visible()


def initialize(page: Page, name: str, *, notes: str = "", new_emotions: str = "") -> None:
    """Initialize with the default prediction (plus optional notes and emotions)."""
    open_initialize(page, name)
    if notes:
        page.get_by_label("Notes for this attempt").fill(notes)
    if new_emotions:
        page.get_by_label("Add emotions (comma-separated)").fill(new_emotions)
    page.get_by_role("button", name="Initialize").click()
    expect(flash(page)).to_have_text(f"“{name}” is ready to start.")


def start(page: Page, name: str) -> None:
    ready_item(page, name).get_by_role("button", name=re.compile("^(Start|Resume)$")).click()
    expect(section(page, "Current task").get_by_role("link", name=name, exact=True)).to_be_visible()


def pause(page: Page, reason: str = "") -> None:
    current = section(page, "Current task")
    current.get_by_label("Reason for pausing (optional)").fill(reason)
    current.get_by_role("button", name="Pause").click()
    expect(flash(page)).to_contain_text("Paused")


def complete_running(
    page: Page, name: str, *, relief: str = "80", minutes: str = "25", notes: str = ""
) -> None:
    section(page, "Current task").get_by_role("link", name="Complete").click()
    complete_form(page, name, relief=relief, minutes=minutes, notes=notes)


def complete_form(
    page: Page, name: str, *, relief: str = "80", minutes: str = "25", notes: str = ""
) -> None:
    expect(page.get_by_role("heading", name=f"Complete “{name}”")).to_be_visible()
    page.get_by_role("slider", name="Relief", exact=True).fill(relief)
    page.get_by_label("Minutes spent").fill(minutes)
    if notes:
        page.get_by_label("Notes", exact=True).fill(notes)
    page.get_by_role("button", name="Complete").click()
    expect(flash(page)).to_have_text(f"Completed “{name}”. Well done.")


def do_task_once(page: Page, name: str, *, relief: str = "80", minutes: str = "25") -> None:
    """Initialize, start and complete one attempt at an existing task."""
    initialize(page, name)
    start(page, name)
    complete_running(page, name, relief=relief, minutes=minutes)


def attempt_id_from_url(page: Page) -> int:
    match = re.search(r"/attempts/(\d+)/", page.url)
    assert match, f"not on an attempt page: {page.url}"
    return int(match.group(1))

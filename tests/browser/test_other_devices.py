"""Signing out other devices from the account page, as a person does it in two browsers."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.browser import ui

pytestmark = pytest.mark.browser


def _open_account(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", name=re.compile("^Account"))).to_be_visible()


def _is_signed_out(page: Page) -> None:
    page.goto("/account")
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_new_key_signs_the_other_browser_out(
    page: Page, open_context: Callable[..., BrowserContext]
) -> None:
    old_key = ui.sign_up(page, "two.devices")
    phone = open_context().new_page()
    ui.sign_in(phone, "two.devices", old_key)

    _open_account(page)
    page.get_by_role("button", name="Make a new sign-in key").click()
    expect(page.get_by_role("heading", name="Your new sign-in key")).to_be_visible()
    expect(ui.main(page)).to_contain_text("Other devices were signed out.")
    new_key = page.get_by_label("Sign-in key").input_value()
    assert new_key != old_key
    page.get_by_role("button", name="Continue to your dashboard").click()
    expect(page.get_by_role("heading", name="Current task")).to_be_visible()

    _is_signed_out(phone)
    ui.sign_in(phone, "two.devices", new_key)


def test_sign_out_everywhere_signs_out_both_browsers(
    page: Page, open_context: Callable[..., BrowserContext]
) -> None:
    key = ui.sign_up(page, "everywhere")
    phone = open_context().new_page()
    ui.sign_in(phone, "everywhere", key)

    _open_account(page)
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(ui.flash(page)).to_have_text("You are signed out on every device, this one included.")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    _is_signed_out(page)
    _is_signed_out(phone)

"""The sign-in key page: the Copy button puts the key on the clipboard and says so."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_copy_puts_the_sign_in_key_on_the_clipboard(context: BrowserContext, page: Page) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/signup")
    page.get_by_label("Username").fill("copy.person")
    page.get_by_role("button", name="Sign up").click()
    key = page.get_by_label("Sign-in key").input_value()
    assert len(key) >= 16, f"the sign-in key looks too short: {key!r}"

    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == key

    # The username and key can be saved together: continuing signs in as before.
    page.get_by_role("button", name="Continue to your dashboard").click()
    expect(page.get_by_role("heading", name="Current task")).to_be_visible()
    assert key not in page.url, "the key went into the URL"

"""Accounts without passwords, as a person meets them over HTTP."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from sqlalchemy import text

from service import create_app
from tests.conftest import Browser
from tests.conftest import app_config

NOTICE = "Temporary sign-in without passwords"


def _count(app, table: str) -> int:
    with app.extensions["db_engine"].connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_signup_shows_the_key_once_and_signs_the_browser_in(client, app):
    person = Browser(client)
    response = person.signup("Alice")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert NOTICE in page
    assert re.fullmatch(r"[a-z2-9]{5}(-[a-z2-9]{5}){4}", person.key)
    assert "Alice" in client.get("/").get_data(as_text=True)
    # The key is stored only as a hash.
    with app.extensions["db_engine"].connect() as conn:
        stored = conn.execute(text("SELECT signin_key_hash FROM users")).scalar_one()
    assert person.key not in stored and len(stored) == 64


class _FormFields(HTMLParser):
    """The attributes of each form's input fields, form by form."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[list[dict[str, Any]]] = []
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form":
            self.forms.append([])
            self._in_form = True
        elif tag == "input" and self._in_form and dict(attrs).get("type") != "hidden":
            self.forms[-1].append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def _form_with(page: str, **attrs: str) -> list[dict[str, Any]]:
    """The fields of the one form holding a field with these attributes."""
    parser = _FormFields()
    parser.feed(page)
    found = [form for form in parser.forms if any(attrs.items() <= field.items() for field in form)]
    assert len(found) == 1, f"{len(found)} forms with a field {attrs}"
    return found[0]


def test_password_managers_save_the_shown_key_with_the_username_and_fill_it_in(client, app):
    person = Browser(client)
    keys = []
    for page in (
        person.signup("Alice").get_data(as_text=True),
        person.post("/account/key").get_data(as_text=True),  # a new key, the same page
    ):
        fields = _form_with(page, autocomplete="new-password")
        assert [(f["autocomplete"], f["id"]) for f in fields] == [
            ("username", "signin-username"),
            ("new-password", "signin-key"),
        ]
        assert fields[0]["value"] == "Alice"
        keys.append(fields[1]["value"])
        assert all("readonly" in f and "name" not in f for f in fields)  # not sent anywhere
        assert re.search(r'<button type="button" data-copy="signin-key"[^>]*>Copy</button>', page)
    assert keys[0] == person.key != keys[1]

    sign_in = app.test_client().get("/signin").get_data(as_text=True)
    fields = _form_with(sign_in, name="key")
    assert [(f["name"], f.get("type"), f["autocomplete"]) for f in fields] == [
        ("username", "text", "username"),
        ("key", "password", "current-password"),
    ]
    device = Browser(app.test_client())
    assert device.post("/signin", {"username": "Alice", "key": keys[1]}).status_code == 302


def test_the_notice_is_on_signup_signin_and_account_pages(browser):
    for path in ("/account",):
        assert NOTICE in browser.client.get(path).get_data(as_text=True)
    fresh = browser.client.application.test_client()
    for path in ("/signup", "/signin"):
        assert NOTICE in fresh.get(path).get_data(as_text=True)


def test_a_name_taken_in_other_capitals_is_refused_with_suggestions(browser, app):
    second = Browser(app.test_client())
    response = second.signup("ALICE")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "is taken" in page
    assert "Free names you could take" in page
    assert 'value="ALICE"' in page  # the person's input is kept
    assert _count(app, "users") == 1


def test_invalid_usernames_get_a_message_next_to_the_field(client, app):
    person = Browser(client)
    for bad in ("", "a b", "<script>", "x" * 41, "-lead"):
        page = person.signup(bad).get_data(as_text=True)
        assert 'class="error"' in page, bad
    assert _count(app, "users") == 0


def test_signin_from_another_device_with_username_and_key(browser, app):
    device = Browser(app.test_client())
    response = device.post(
        "/signin", {"username": "ALICE", "key": browser.key.upper()}, follow_redirects=True
    )
    assert response.status_code == 200
    assert "Current task" in response.get_data(as_text=True)


def test_a_wrong_key_is_refused_without_saying_which_part_was_wrong(browser, app):
    device = Browser(app.test_client())
    for username, key in (("alice", "wrong-key"), ("nobody", browser.key)):
        page = device.post("/signin", {"username": username, "key": key}).get_data(as_text=True)
        assert "don&#39;t match" in page or "don't match" in page
    assert device.client.get("/").status_code == 200
    assert "Current task" not in device.client.get("/").get_data(as_text=True)


def test_signin_changes_the_session_id_and_signout_ends_it_on_the_server(browser, app):
    client = browser.client
    old_cookie = client.get_cookie("session").value
    device = Browser(app.test_client())
    device.post("/signin", {"username": "alice", "key": browser.key})
    assert device.client.get_cookie("session").value != old_cookie
    assert _count(app, "user_sessions") == 2

    stolen = app.test_client()
    stolen.set_cookie("session", old_cookie)
    assert "Current task" in stolen.get("/").get_data(as_text=True)
    browser.post("/signout")
    assert _count(app, "user_sessions") == 1
    # The copied cookie no longer opens the account.
    response = stolen.get("/account")
    assert response.status_code == 302 and "/signin" in response.headers["Location"]


def test_regenerating_the_key_makes_the_old_one_useless(browser, app):
    old_key = browser.key
    page = browser.post("/account/key").get_data(as_text=True)
    new_key = re.search(r'id="signin-key" value="([^"]+)"', page).group(1)
    assert new_key != old_key
    device = Browser(app.test_client())
    assert device.post("/signin", {"username": "alice", "key": old_key}).status_code == 200
    assert device.post("/signin", {"username": "alice", "key": new_key}).status_code == 302


def test_signup_closes_at_the_user_cap_but_existing_users_still_sign_in(database_url):
    app = create_app(app_config(database_url, MAX_USERS=1))
    first = Browser(app.test_client())
    first.signup("first")
    second = Browser(app.test_client())
    page = second.signup("second").get_data(as_text=True)
    assert "Sign-up is closed for now" in page
    assert _count(app, "users") == 1
    again = Browser(app.test_client())
    assert again.post("/signin", {"username": "first", "key": first.key}).status_code == 302
    app.extensions["db_engine"].dispose()


def test_changing_the_time_zone_changes_how_times_are_shown(browser, app):
    browser.post("/account/timezone", {"timezone": "Asia/Tokyo"})
    with app.extensions["db_engine"].connect() as conn:
        assert conn.execute(text("SELECT timezone FROM users")).scalar_one() == "Asia/Tokyo"
    response = browser.post("/account/timezone", {"timezone": "Mars/Olympus"})
    assert response.status_code == 400
    assert "Not a valid choice" in response.get_data(as_text=True)


def test_deleting_the_account_removes_all_its_data(browser, app):
    task_id = browser.create_task("Taxes")
    browser.post(f"/tasks/{task_id}/quick-initialize")
    wrong = browser.post("/account/delete", {"confirm": "bob"})
    assert wrong.status_code == 400 and _count(app, "users") == 1
    response = browser.post("/account/delete", {"confirm": "ALICE"})
    assert response.status_code == 302
    for table in ("users", "tasks", "attempts", "emotions", "user_sessions"):
        assert _count(app, table) == 0, table
    assert browser.client.get("/account").status_code == 302


def test_signup_is_rate_limited_with_retry_after(database_url):
    app = create_app(app_config(database_url, RATELIMIT_ENABLED=True))
    person = Browser(app.test_client())
    statuses = [person.signup(f"user{n}").status_code for n in range(12)]
    assert statuses[:10] == [200] * 10
    limited = person.signup("one-more")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert "Slow down" in limited.get_data(as_text=True)
    app.extensions["db_engine"].dispose()


def test_session_cookie_is_httponly_lax_and_secure_in_production(database_url):
    app = create_app(app_config(database_url, APP_ENV="production", SESSION_COOKIE_SECURE=True))
    client = app.test_client()
    response = Browser(client).signup("carol")
    assert response.status_code == 200
    cookie = client.get_cookie("session")
    assert cookie.http_only and cookie.secure and cookie.same_site == "Lax"
    app.extensions["db_engine"].dispose()

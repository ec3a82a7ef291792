"""Ending sessions on other devices: a new sign-in key, "sign out everywhere", pruning.

Each person here signs in from several test clients (devices) against a real PostgreSQL;
what a device sees is what its next request answers.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from releases.loadtest import CSRF
from service import auth
from service import create_app
from service.accounts.services import key_hash
from tests.conftest import Browser
from tests.conftest import app_config

SIGNIN_FAILED = "That username and sign-in key don&#39;t match."


def _device(app: Flask, username: str, key: str) -> Browser:
    device = Browser(app.test_client())
    response = device.post("/signin", {"username": username, "key": key})
    assert response.status_code == 302, response.get_data(as_text=True)
    device.username, device.key = username, key
    return device


def _signed_in_as(client: FlaskClient, username: str) -> bool:
    response = client.get("/account")
    return response.status_code == 200 and f"Account: {username}" in response.get_data(as_text=True)


def _sent_to_signin(client: FlaskClient) -> bool:
    response = client.get("/account")
    return response.status_code == 302 and response.headers["Location"].startswith("/signin")


def _sessions(app: Flask, username: str) -> list[str]:
    with app.extensions["db_engine"].connect() as conn:
        return sorted(
            conn.execute(
                text(
                    "SELECT s.token_hash FROM user_sessions s JOIN users u ON u.id = s.user_id "
                    "WHERE u.username = :u"
                ),
                {"u": username},
            ).scalars()
        )


def _people(app: Flask) -> tuple[Browser, Browser, Browser, Browser]:
    """Alice on two devices, Bob on two devices."""
    alice = Browser(app.test_client())
    assert alice.signup("alice").status_code == 200
    bob = Browser(app.test_client())
    assert bob.signup("bob").status_code == 200
    return alice, _device(app, "alice", alice.key), bob, _device(app, "bob", bob.key)


def test_a_new_key_signs_out_the_other_devices_and_keeps_this_one(app: Flask) -> None:
    alice, phone, bob, bobs_phone = _people(app)
    bobs_sessions = _sessions(app, "bob")
    copied_cookie = alice.client.get_cookie("session")
    assert copied_cookie is not None
    old_key = alice.key

    page = alice.post("/account/key").get_data(as_text=True)
    assert "Other devices were signed out." in page
    match = re.search(r'id="signin-key" value="([^"]+)"', page)
    assert match and match.group(1) != old_key
    new_key = match.group(1)

    assert _sent_to_signin(phone.client)
    assert _signed_in_as(alice.client, "alice")
    # A copy of this browser's cookie taken before the change is worthless too.
    thief = app.test_client()
    thief.set_cookie("session", copied_cookie.value)
    assert _sent_to_signin(thief)
    assert len(_sessions(app, "alice")) == 1

    refused = phone.post("/signin", {"username": "alice", "key": old_key})
    assert refused.status_code == 200 and SIGNIN_FAILED in refused.get_data(as_text=True)
    assert _sent_to_signin(phone.client)
    assert phone.post("/signin", {"username": "alice", "key": new_key}).status_code == 302
    assert _signed_in_as(phone.client, "alice")

    # Bob's devices never noticed.
    assert _sessions(app, "bob") == bobs_sessions
    assert _signed_in_as(bob.client, "bob") and _signed_in_as(bobs_phone.client, "bob")

    # The key page's own forms (the menu's Sign out) work with the new session.
    form_token = CSRF.search(page)
    assert form_token is not None
    signout = alice.client.post("/signout", data={"csrf_token": form_token.group(1)})
    assert signout.status_code == 302 and _sent_to_signin(alice.client)


def test_sign_out_everywhere_signs_out_every_device_of_the_person(app: Flask) -> None:
    alice, phone, bob, bobs_phone = _people(app)
    bobs_sessions = _sessions(app, "bob")
    page = alice.client.get("/account").get_data(as_text=True)
    assert 'action="/account/signout-everywhere"' in page and "Sign out everywhere" in page

    response = alice.post("/account/signout-everywhere")
    assert response.status_code == 302 and response.headers["Location"] == "/signin"
    signin_page = alice.client.get("/signin").get_data(as_text=True)
    assert "You are signed out on every device, this one included." in signin_page

    assert _sent_to_signin(alice.client) and _sent_to_signin(phone.client)
    assert _sessions(app, "alice") == []
    assert _sessions(app, "bob") == bobs_sessions
    assert _signed_in_as(bob.client, "bob") and _signed_in_as(bobs_phone.client, "bob")
    # The key still works: signing out is not losing the account.
    assert phone.post("/signin", {"username": "alice", "key": alice.key}).status_code == 302
    assert _signed_in_as(phone.client, "alice")


def test_sign_out_everywhere_needs_a_post_with_this_sessions_token(app: Flask) -> None:
    alice, phone, _bob, _bobs_phone = _people(app)
    sessions = _sessions(app, "alice")

    assert alice.client.get("/account/signout-everywhere").status_code == 405
    missing = alice.client.post("/account/signout-everywhere")
    assert missing.status_code == 400 and "CSRF" in missing.get_data(as_text=True)
    # A page elsewhere posting with its own visitor's token gets nowhere either.
    foreign = Browser(app.test_client()).token()
    forged = alice.client.post("/account/signout-everywhere", data={"csrf_token": foreign})
    assert forged.status_code == 400

    assert _sessions(app, "alice") == sessions
    assert _signed_in_as(alice.client, "alice") and _signed_in_as(phone.client, "alice")


def test_sign_out_everywhere_is_rate_limited(database_url: str) -> None:
    app = create_app(app_config(database_url, RATELIMIT_ENABLED=True))
    try:
        alice = Browser(app.test_client())
        alice.signup("alice")
        for n in range(10):
            assert alice.post("/account/signout-everywhere").status_code == 302, n
            alice.post("/signin", {"username": "alice", "key": alice.key})
        limited = alice.post("/account/signout-everywhere")
        assert limited.status_code == 429 and "Slow down" in limited.get_data(as_text=True)
    finally:
        app.extensions["db_engine"].dispose()


def _in_the_background(request: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    answer: list[Any] = []
    thread = threading.Thread(target=lambda: answer.append(request()), daemon=True)
    thread.start()
    return thread, answer


def _wait_until_blocked_or_done(app: Flask, thread: threading.Thread) -> None:
    """Until the request is waiting for a row lock in PostgreSQL, or has finished."""
    deadline = time.monotonic() + 30  # a bound on a hang, not a measurement
    with app.extensions["db_engine"].connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        while thread.is_alive() and time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            if waiting:
                return
            time.sleep(0.02)


def test_a_sign_in_with_the_old_key_while_a_new_one_is_being_made_fails(app: Flask) -> None:
    alice = Browser(app.test_client())
    alice.signup("alice")
    phone = Browser(app.test_client())
    token = phone.token()
    new_key = "abcde-fghjk-mnpqr-stuvw-xyz23"
    with app.extensions["db_engine"].connect() as conn:
        # A new key, made but not yet committed (the account page's request, paused).
        conn.execute(
            text("UPDATE users SET signin_key_hash = :h WHERE username = 'alice'"),
            {"h": key_hash(new_key)},
        )
        thread, answer = _in_the_background(
            lambda: phone.client.post(
                "/signin", data={"csrf_token": token, "username": "alice", "key": alice.key}
            )
        )
        _wait_until_blocked_or_done(app, thread)
        conn.commit()
    thread.join(timeout=30)
    assert answer and answer[0].status_code == 200
    assert SIGNIN_FAILED in answer[0].get_data(as_text=True)
    assert _sent_to_signin(phone.client)


def test_a_sign_in_finishing_while_a_new_key_is_made_is_signed_out_too(app: Flask) -> None:
    alice = Browser(app.test_client())
    alice.signup("alice")
    token = alice.token()
    with app.extensions["db_engine"].connect() as conn:
        # A sign-in on another device that checked the old key and is about to commit.
        conn.execute(
            text("SELECT 1 FROM users WHERE username = 'alice' AND signin_key_hash = :h FOR SHARE"),
            {"h": key_hash(alice.key)},
        )
        conn.execute(
            text(
                "INSERT INTO user_sessions (token_hash, user_id, expires_at) "
                "SELECT 'the-other-device', id, now() + interval '1 day' FROM users "
                "WHERE username = 'alice'"
            )
        )
        thread, answer = _in_the_background(
            lambda: alice.client.post("/account/key", data={"csrf_token": token})
        )
        _wait_until_blocked_or_done(app, thread)
        conn.commit()
    thread.join(timeout=30)
    assert answer and "Other devices were signed out." in answer[0].get_data(as_text=True)
    assert "the-other-device" not in _sessions(app, "alice")
    assert len(_sessions(app, "alice")) == 1 and _signed_in_as(alice.client, "alice")


def _expire(app: Flask, username: str, count: int) -> list[str]:
    """Expire ``count`` of the person's sessions; return the hashes of those expired."""
    with app.extensions["db_engine"].begin() as conn:
        return sorted(
            conn.execute(
                text(
                    "UPDATE user_sessions SET expires_at = now() - interval '1 day' "
                    "WHERE token_hash IN (SELECT s.token_hash FROM user_sessions s "
                    "JOIN users u ON u.id = s.user_id WHERE u.username = :u "
                    "ORDER BY s.token_hash LIMIT :n) RETURNING token_hash"
                ),
                {"u": username, "n": count},
            ).scalars()
        )


def test_prune_sessions_deletes_the_expired_ones_and_says_how_many(app: Flask) -> None:
    alice, phone, bob, bobs_phone = _people(app)
    old_devices = [_device(app, "alice", alice.key) for _ in range(3)]
    assert len(_sessions(app, "alice")) == 5
    expired = _expire(app, "alice", 3)
    live_alice = sorted(set(_sessions(app, "alice")) - set(expired))
    live_bob = _sessions(app, "bob")
    signed_in = [d for d in (alice, phone, *old_devices) if _signed_in_as(d.client, "alice")]
    assert len(signed_in) == 2

    result = app.test_cli_runner().invoke(args=["prune-sessions"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Deleted 3 expired sessions."
    assert _sessions(app, "alice") == live_alice
    assert _sessions(app, "bob") == live_bob
    assert all(_signed_in_as(d.client, "alice") for d in signed_in)
    assert _signed_in_as(bob.client, "bob") and _signed_in_as(bobs_phone.client, "bob")

    again = app.test_cli_runner().invoke(args=["prune-sessions"])
    assert again.exit_code == 0 and again.output.strip() == "Deleted 0 expired sessions."


def test_prune_sessions_works_through_many_in_batches(app: Flask) -> None:
    alice = Browser(app.test_client())
    alice.signup("alice")
    for _ in range(4):
        _device(app, "alice", alice.key)
    _expire(app, "alice", 5)
    with app.app_context():
        assert auth.prune_expired_sessions(app.extensions["db_engine"], batch=2) == 5
    assert _sessions(app, "alice") == []


def test_prune_sessions_explains_itself(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["prune-sessions", "--help"])
    assert result.exit_code == 0
    words = " ".join(result.output.split())  # click wraps the lines
    assert "Delete expired sign-in sessions and print how many." in words
    assert "Safe while the app serves" in words

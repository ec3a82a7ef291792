"""Sessions: a planted, stolen, forged or expired cookie never opens someone's account.

tests/integration/test_accounts.py covers the basics (key stored hashed, session id
changes at sign-in, sign-out ends the session, cookie flags at sign-up); this adds the
attacks around them.
"""

from __future__ import annotations

import hashlib

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from service import create_app
from tests.conftest import Browser
from tests.conftest import app_config
from tests.security import web


@pytest.fixture(scope="module")
def alice(module_app: Flask) -> Browser:
    person = Browser(module_app.test_client())
    assert person.signup("alice").status_code == 200
    return person


def _signed_in_as(client: FlaskClient, username: str) -> bool:
    response = client.get("/account")
    return response.status_code == 200 and username in response.get_data(as_text=True)


def _session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _count(app: Flask, sql: str) -> int:
    with app.extensions["db_engine"].connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_a_planted_cookie_does_not_sign_the_attacker_in_when_the_victim_signs_in(
    module_app: Flask, alice: Browser
) -> None:
    # Session fixation: the attacker gets a cookie, plants it in the victim's browser,
    # waits for the victim to sign in and then uses the same cookie.
    attacker = module_app.test_client()
    attacker.get("/signin")
    planted = _session_cookie(attacker)
    victim = Browser(module_app.test_client())
    victim.client.set_cookie("session", planted)
    assert victim.post("/signin", {"username": "alice", "key": alice.key}).status_code == 302
    assert _signed_in_as(victim.client, "alice")
    assert _session_cookie(victim.client) != planted
    assert not _signed_in_as(attacker, "alice")


def test_a_planted_cookie_does_not_follow_the_victim_into_a_new_account(
    module_app: Flask,
) -> None:
    attacker = module_app.test_client()
    attacker.get("/signup")
    planted = _session_cookie(attacker)
    victim = Browser(module_app.test_client())
    victim.client.set_cookie("session", planted)
    assert victim.signup("victim-fix").status_code == 200
    assert _signed_in_as(victim.client, "victim-fix")
    assert not _signed_in_as(attacker, "victim-fix")


def test_the_database_keeps_only_hashes_of_session_tokens_and_keys(
    module_app: Flask, alice: Browser
) -> None:
    serializer = module_app.session_interface.get_signing_serializer(module_app)  # type: ignore[attr-defined]
    token = serializer.loads(_session_cookie(alice.client))["sid"]
    with module_app.extensions["db_engine"].connect() as conn:
        stored = list(conn.execute(text("SELECT token_hash FROM user_sessions")).scalars())
        keys = list(conn.execute(text("SELECT signin_key_hash FROM users")).scalars())
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    assert token not in stored
    assert alice.key not in keys and all(len(k) == 64 for k in keys)
    # After the one time it is shown, the key appears on no page.
    pages = web.get_pages(module_app, web.owned_ids(module_app, "alice"))
    for page in pages:
        assert alice.key.encode() not in alice.client.get(page).data, page


def test_a_forged_or_tampered_cookie_opens_nothing(module_app: Flask, alice: Browser) -> None:
    cookie = _session_cookie(alice.client)
    payload, _, signature = cookie.rpartition(".")
    forged_signature = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    other_key = create_app(app_config(module_app.config["DATABASE_URL"]))
    try:
        # A cookie signed with another secret key (e.g. from a test or old deployment).
        foreign = other_key.session_interface.get_signing_serializer(other_key)  # type: ignore[attr-defined]
        serializer = module_app.session_interface.get_signing_serializer(module_app)  # type: ignore[attr-defined]
        resigned = foreign.dumps(serializer.loads(cookie))
    finally:
        other_key.extensions["db_engine"].dispose()
    made_up = module_app.session_interface.get_signing_serializer(module_app).dumps(  # type: ignore[attr-defined]
        {"sid": "guessed-token"}
    )
    for value in (forged_signature, resigned, made_up, "garbage", ""):
        client = module_app.test_client()
        client.set_cookie("session", value)
        assert not _signed_in_as(client, "alice"), value[:20]
        assert client.get("/").status_code == 200  # a bad cookie is no error either


def test_an_expired_session_is_signed_out(module_app: Flask) -> None:
    person = Browser(module_app.test_client())
    person.signup("expiring")
    with module_app.extensions["db_engine"].begin() as conn:
        conn.execute(
            text(
                "UPDATE user_sessions SET expires_at = now() - interval '1 second' "
                "WHERE user_id = (SELECT id FROM users WHERE username = 'expiring')"
            )
        )
    assert not _signed_in_as(person.client, "expiring")


def test_after_sign_out_the_old_cookie_cannot_change_anything(
    module_app: Flask, alice: Browser
) -> None:
    device = Browser(module_app.test_client())
    device.post("/signin", {"username": "alice", "key": alice.key})
    token = device.token()
    copied = _session_cookie(device.client)  # holds the sid and a valid CSRF token
    device.post("/signout")
    thief = module_app.test_client()
    thief.set_cookie("session", copied)
    before = web.snapshot(module_app)
    response = thief.post("/tasks/new", data={"csrf_token": token, "name": "x", "kind": "one-time"})
    assert response.status_code == 302 and "/signin" in response.headers["Location"]
    assert web.snapshot(module_app) == before


def test_deleting_the_account_ends_its_sessions_on_every_device(module_app: Flask) -> None:
    first = Browser(module_app.test_client())
    first.signup("leaving")
    second = Browser(module_app.test_client())
    second.post("/signin", {"username": "leaving", "key": first.key})
    assert _signed_in_as(second.client, "leaving")
    assert first.post("/account/delete", {"confirm": "leaving"}).status_code == 302
    assert not _signed_in_as(second.client, "leaving")
    assert _count(module_app, "SELECT count(*) FROM users WHERE username = 'leaving'") == 0


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:evil.example",
        "/%2F%2Fevil.example",
        " //evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
    ],
)
def test_sign_in_never_redirects_to_another_site(
    module_app: Flask, alice: Browser, target: str
) -> None:
    device = Browser(module_app.test_client())
    response = device.post(
        "/signin", {"username": "alice", "key": alice.key}, query_string={"next": target}
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    cleaned = "".join(c for c in location if c not in "\t\r\n ")  # as a browser reads it
    assert cleaned.startswith("/") and not cleaned.startswith(("//", "/\\")), location


def test_session_cookie_flags_in_production_at_sign_in(database_url: str) -> None:
    app = create_app(app_config(database_url, APP_ENV="production", SESSION_COOKIE_SECURE=True))
    try:
        person = Browser(app.test_client())
        person.signup("carol")
        device = Browser(app.test_client())
        response = device.post("/signin", {"username": "carol", "key": person.key})
        cookie_header = response.headers["Set-Cookie"]
        for flag in ("HttpOnly", "Secure", "SameSite=Lax"):
            assert flag in cookie_header
    finally:
        app.extensions["db_engine"].dispose()

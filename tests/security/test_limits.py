"""Rate limits on everything that guesses or creates accounts, and on field lengths.

The sign-up limit itself is checked in tests/integration/test_accounts.py; here: sign-in,
sign-in-key regeneration, and that the limit can't be dodged with a forged
X-Forwarded-For header (directly or behind nginx).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from service import create_app
from service import security
from tests.conftest import Browser
from tests.conftest import app_config
from tests.security import web
from tests.security.test_headers import assert_security_headers

ALLOWED_PER_MINUTE = 10


@pytest.fixture
def limited_app(database_url: str) -> Iterator[Flask]:
    app = create_app(app_config(database_url, RATELIMIT_ENABLED=True))
    yield app
    app.extensions["db_engine"].dispose()


def _assert_slowed_down(response: TestResponse) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Slow down" in body and web.leaks(body) == []
    assert_security_headers(response, "429 page")


def test_guessing_sign_in_keys_is_stopped_even_for_the_right_key(limited_app: Flask) -> None:
    owner = Browser(limited_app.test_client())
    owner.signup("owner")
    guesser = Browser(limited_app.test_client())
    for n in range(ALLOWED_PER_MINUTE):
        response = guesser.post("/signin", {"username": "owner", "key": f"guess-{n}"})
        assert response.status_code == 200, n
    _assert_slowed_down(guesser.post("/signin", {"username": "owner", "key": "guess-x"}))
    # Once limited, even the right key waits: guessing can't go on at full speed.
    _assert_slowed_down(guesser.post("/signin", {"username": "owner", "key": owner.key}))
    # Someone else (another address) can still sign in.
    elsewhere = Browser(limited_app.test_client())
    elsewhere.client.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert elsewhere.post("/signin", {"username": "owner", "key": owner.key}).status_code == 302


def test_a_limited_address_still_reads_pages_while_its_posts_wait(limited_app: Flask) -> None:
    """The limits guard form posts; reading the sign-in form itself is never slowed down."""
    guesser = Browser(limited_app.test_client())
    for n in range(ALLOWED_PER_MINUTE):
        guesser.post("/signin", {"username": "nobody", "key": f"guess-{n}"})
    _assert_slowed_down(guesser.post("/signin", {"username": "nobody", "key": "guess-x"}))
    for _ in range(3 * ALLOWED_PER_MINUTE):
        assert guesser.client.get("/signin").status_code == 200
        assert guesser.client.head("/signin").status_code == 200


def test_regenerating_the_sign_in_key_is_rate_limited(limited_app: Flask) -> None:
    person = Browser(limited_app.test_client())
    person.signup("regen")
    for n in range(ALLOWED_PER_MINUTE):
        assert person.post("/account/key").status_code == 200, n
    _assert_slowed_down(person.post("/account/key"))


def test_a_forged_forwarded_for_header_does_not_reset_the_limit(limited_app: Flask) -> None:
    guesser = Browser(limited_app.test_client())
    statuses = [
        guesser.post(
            "/signin",
            {"username": "nobody", "key": "x"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        ).status_code
        for n in range(ALLOWED_PER_MINUTE + 1)
    ]
    assert statuses[-1] == 429


def test_behind_nginx_only_the_address_nginx_saw_counts(database_url: str) -> None:
    app = create_app(app_config(database_url, RATELIMIT_ENABLED=True, PROXY_COUNT=1))
    try:
        guesser = Browser(app.test_client())
        statuses = []
        for n in range(ALLOWED_PER_MINUTE + 1):
            # The client forges the first entry; nginx appends the address it really saw.
            forwarded = f"198.51.100.{n}, 192.0.2.50"
            response = guesser.post(
                "/signin",
                {"username": "nobody", "key": "x"},
                headers={"X-Forwarded-For": forwarded},
            )
            statuses.append(response.status_code)
        assert statuses[:-1] == [200] * ALLOWED_PER_MINUTE
        assert statuses[-1] == 429
        other = Browser(app.test_client())
        response = other.post(
            "/signin",
            {"username": "nobody", "key": "x"},
            headers={"X-Forwarded-For": "192.0.2.51"},
        )
        assert response.status_code == 200
    finally:
        app.extensions["db_engine"].dispose()


def test_an_app_wide_limit_is_still_checked_on_every_page(database_url: str) -> None:
    """Only route limits exist today, so the check before every request is dropped
    (service.security.limit_in_routes_only); an operator who sets a default limit gets it
    on every page."""
    app = create_app(app_config(database_url, RATELIMIT_ENABLED=True, RATELIMIT_DEFAULT="2/minute"))
    try:
        visitor = app.test_client()
        assert [visitor.get("/").status_code for _ in range(2)] == [200, 200]
        _assert_slowed_down(visitor.get("/"))
    finally:
        app.extensions["db_engine"].dispose()
        security.limiter.limit_manager.set_default_limits([])  # the limiter is shared

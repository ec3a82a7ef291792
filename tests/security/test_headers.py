"""The security headers are on every page — error pages included — and no page needs inline
script, so the strict CSP never has to be loosened.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from service import create_app
from tests.conftest import Browser
from tests.conftest import app_config
from tests.security import web


def assert_security_headers(response: TestResponse, where: str) -> None:
    headers = response.headers
    directives = {}
    for part in headers.get("Content-Security-Policy", "").split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value.split()
    assert directives.get("default-src") == ["'self'"], where
    assert directives.get("script-src") == ["'self'"], where  # no inline, eval or CDN
    assert directives.get("object-src") == ["'none'"], where
    assert directives.get("frame-ancestors") == ["'none'"], where
    assert directives.get("base-uri") == ["'none'"], where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("Referrer-Policy") == "same-origin", where
    if response.mimetype == "text/html":
        assert headers.get("Cache-Control") == "no-store", where


class InlineScriptFinder(HTMLParser):
    """Inline <script> code, on* handlers and javascript: URLs (all blocked by the CSP)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and not a.get("src") and a.get("type") != "application/json":
            self.found.append("<script> without src")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")
            if (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:…>")
        if tag == "style" or "style" in a:
            self.found.append(f"inline style on <{tag}>")


def inline_code(html: str) -> list[str]:
    finder = InlineScriptFinder()
    finder.feed(html)
    return finder.found


@pytest.fixture(scope="module")
def person(module_app: Flask) -> Browser:
    someone = Browser(module_app.test_client())
    someone.signup("hedda")
    task_id = someone.create_task("Report", new_emotions="Keen")
    someone.post(f"/tasks/{task_id}/quick-initialize")
    attempt = someone.latest_id("attempts")
    someone.post(f"/attempts/{attempt}/start")
    someone.post(f"/attempts/{attempt}/complete", {**_outcome(), "notes": "done"})
    someone.post(f"/tasks/{task_id}/quick-initialize")
    return someone


def _outcome() -> dict[str, Any]:
    scales = ("actual_relief", "actual_cognitive_load", "actual_emotional_load")
    return {
        **dict.fromkeys(scales, "50"),
        "actual_physical_load": "10",
        "completion_percent": "100",
        "minutes_spent": "20",
    }


def test_every_page_carries_the_headers_and_no_inline_code(
    module_app: Flask, person: Browser
) -> None:
    visitor = module_app.test_client()
    pages = web.get_pages(module_app, web.owned_ids(module_app, person.username))
    checked = 0
    for client, label in ((person.client, "signed in"), (visitor, "visitor")):
        for page in pages:
            response = client.get(page)
            assert response.status_code < 500, page
            assert_security_headers(response, f"{label} {page}")
            if response.mimetype == "text/html":
                assert inline_code(response.get_data(as_text=True)) == [], page
            checked += 1
    static = person.client.get("/static/css/app.css")
    assert_security_headers(static, "static file")
    assert checked >= 20


def _error_pages(module_app: Flask, person: Browser) -> Iterator[tuple[int, TestResponse]]:
    yield 404, person.client.get("/no/such/page")
    yield 404, person.client.get("/tasks/999999/edit")
    yield 405, person.client.get("/signout")
    yield 405, person.client.delete("/tasks/new")
    yield 400, person.client.post("/tasks/new", data={"name": "no token"})


def test_error_pages_are_friendly_and_carry_the_headers(module_app: Flask, person: Browser) -> None:
    for status, response in _error_pages(module_app, person):
        body = response.get_data(as_text=True)
        assert response.status_code == status, body[:200]
        assert_security_headers(response, f"error {status}")
        assert f"Error {status}" in body and "Back to the start page" in body
        assert web.leaks(body) == [], (status, web.leaks(body))
        assert inline_code(body) == []


@pytest.fixture
def boom_app(database_url: str) -> Iterator[Flask]:
    """An app with test-only routes that fail the ways production code can."""
    app = create_app(app_config(database_url, MAX_UPLOAD_MB=1))

    @app.get("/test-only/boom")
    def boom() -> str:
        raise RuntimeError(f"secret detail from {__file__}")

    @app.get("/test-only/bad-sql")
    def bad_sql() -> str:
        from service import database  # noqa: PLC0415

        database.session().execute(__import__("sqlalchemy").text("SELECT * FROM nowhere"))
        return "unreachable"

    yield app
    app.extensions["db_engine"].dispose()


def test_a_crash_shows_the_friendly_500_page_without_details(boom_app: Flask) -> None:
    client = boom_app.test_client()
    for path in ("/test-only/boom", "/test-only/bad-sql"):
        response = client.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code == 500
        assert "Something went wrong" in body and "Error 500" in body
        assert "secret detail" not in body and "nowhere" not in body
        assert web.leaks(body) == []
        assert_security_headers(response, f"500 at {path}")
        as_json = client.get(path, headers={"Accept": "application/json"})
        assert as_json.status_code == 500 and "secret" not in as_json.get_data(as_text=True)


def test_too_large_a_body_gets_the_friendly_413_page(boom_app: Flask) -> None:
    client = boom_app.test_client()
    person = Browser(client)
    person.signup("big")
    token = person.token()
    just_under = client.post(
        "/tasks/new",
        data={"csrf_token": token, "name": "ok", "kind": "one-time", "description": "x" * 1000},
    )
    assert just_under.status_code == 302
    for path in ("/tasks/new", "/signin", "/emotions"):
        response = client.post(
            path, data={"csrf_token": token, "name": "big", "description": "x" * (2 * 1024**2)}
        )
        body = response.get_data(as_text=True)
        assert response.status_code == 413, path
        assert "Too large" in body and web.leaks(body) == []
        assert_security_headers(response, f"413 at {path}")


def test_an_unreachable_database_gives_the_503_page_fast(database_url: str) -> None:
    # Port 1 on loopback: nothing listens there, so connecting fails at once.
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    app = create_app(app_config(unreachable))
    client = app.test_client()
    with client.session_transaction() as session:
        session["sid"] = "some-token"  # a signed-in browser: the first request reads the DB
    try:
        for path in ("/", "/account", "/healthz"):
            started = time.monotonic()
            response = client.get(path)
            assert time.monotonic() - started < 10, f"{path} hung"
            body = response.get_data(as_text=True)
            assert response.status_code == 503, path
            assert web.leaks(body) == [], web.leaks(body)
            assert_security_headers(response, f"503 at {path}")
        assert "Temporarily unavailable" in client.get("/").get_data(as_text=True)
    finally:
        app.extensions["db_engine"].dispose()

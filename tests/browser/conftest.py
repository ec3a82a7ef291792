"""Fixtures for the browser tests: the real app over real HTTP, driven by headless Chromium.

The app runs in a background thread (werkzeug's threaded server on 127.0.0.1, a free
port) against the test's own migrated database. One Chromium for the browser suite;
every test gets fresh browser contexts (no cookies shared between tests).

Chromium is the system one (``CHROMIUM`` names it, else ``/usr/bin/chromium``):
``playwright install`` is never needed. Without it the tests skip and say why; with
``CI_REQUIRE_ALL=1`` (CI) a missing browser is a failure instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import Response
from playwright.sync_api import sync_playwright
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

from service import create_app
from tests.conftest import PostgresServer
from tests.conftest import app_config

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Generous for a loaded CI machine, short enough that a missing element fails quickly.
TIMEOUT_MS = 10_000
# A page that links a script, style sheet or image that isn't there is broken.
ASSET_TYPES = ("script", "stylesheet", "image", "font")


def chromium_path() -> str:
    return os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _require_chromium() -> str:
    path = chromium_path()
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    reason = f"browser tests need Chromium at {path} (install it, or set CHROMIUM to its path)"
    if os.environ.get("CI_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason} (CI_REQUIRE_ALL=1: not skipping)", pytrace=False)
    pytest.skip(reason)


def _require_no_running_loop() -> None:
    # Playwright's sync API runs its own event loop; it refuses to start inside another.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    pytest.fail("an asyncio loop is running in this thread; Playwright's sync API can't")


# One browser for the whole browser suite, closed when its last test is done: while
# Playwright's sync API is alive its event loop counts as running in this thread, so a
# later test elsewhere calling asyncio.run() would fail if the browser lived to the end
# of the session.
@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    path = _require_chromium()
    _require_no_running_loop()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@dataclass
class LiveServer:
    url: str
    app: Flask


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log: a failing test's output should show the failure, not every GET."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextlib.contextmanager
def serve(database_url: str) -> Iterator[LiveServer]:
    """The app on a free port of 127.0.0.1 until the block ends."""
    app = create_app(app_config(database_url))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["db_engine"].dispose()


@pytest.fixture
def live_server(database_url: str) -> Iterator[LiveServer]:
    with serve(database_url) as server:
        yield server


@contextlib.contextmanager
def own_database(pg_server: PostgresServer, template_database: str) -> Iterator[str]:
    """A migrated database for a wider scope than one test (a module's shared data)."""
    name = f"tas_browser_{uuid.uuid4().hex[:10]}"
    url = pg_server.create(name, template=template_database)
    try:
        yield url
    finally:
        pg_server.drop(name)


@dataclass
class Watch:
    """What a person would notice went wrong: server errors and script crashes."""

    server_errors: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)
    missing_assets: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("response", self._response)
        page.on("pageerror", lambda error: self.script_errors.append(f"{page.url}: {error}"))

    def _response(self, response: Response) -> None:
        request = response.request
        if response.status >= 500:
            self.server_errors.append(f"{response.status} {request.method} {response.url}")
        elif response.status == 404 and request.resource_type in ASSET_TYPES:
            self.missing_assets.append(f"404 {request.resource_type} {response.url}")

    def problems(self) -> list[str]:
        return [*self.server_errors, *self.script_errors, *self.missing_assets]


def new_context(browser: Browser, base_url: str, watch: Watch, **options: Any) -> BrowserContext:
    settings: dict[str, Any] = {
        "base_url": base_url,
        "timezone_id": "Europe/Berlin",
        "locale": "en-GB",
        "accept_downloads": True,
        **options,
    }
    context = browser.new_context(**settings)
    context.set_default_timeout(TIMEOUT_MS)
    context.on("page", watch.attach)
    return context


@pytest.fixture
def watch() -> Iterator[Watch]:
    seen = Watch()
    yield seen
    assert not seen.problems(), "the browser saw errors:\n" + "\n".join(seen.problems())


@pytest.fixture
def open_context(
    chromium: Browser, live_server: LiveServer, watch: Watch
) -> Iterator[Callable[..., BrowserContext]]:
    """Open another browser context (another device: no shared cookies)."""
    opened: list[BrowserContext] = []

    def _open(**options: Any) -> BrowserContext:
        context = new_context(chromium, live_server.url, watch, **options)
        opened.append(context)
        return context

    yield _open
    for context in opened:
        context.close()


@pytest.fixture
def context(open_context: Callable[..., BrowserContext]) -> BrowserContext:
    return open_context()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()

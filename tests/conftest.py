"""Shared fixtures: a real PostgreSQL, a migrated template database, a fresh clone per test.

The server is, in order: the one named by ``TEST_DATABASE_URL``; the one on
127.0.0.1:5432 if it answers; an embedded one (``pgserver``) under ``.data/test-pg``.
The template database is migrated once per run with Alembic; every test gets its own
database cloned from it (``CREATE DATABASE ... TEMPLATE``), so tests can commit freely
and still never see each other's rows.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import CacheStats

from db import migrate
from db.embedded import embedded_server_url
from releases.loadtest import CSRF
from service import create_app

ROOT = Path(__file__).resolve().parent.parent


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _server_url() -> str:
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        return explicit
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if _answers(local):
        return local
    return embedded_server_url(ROOT / ".data" / "test-pg")


def _with_database(url: str, name: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql+psycopg", database=name)
        .render_as_string(hide_password=False)
    )


class PostgresServer:
    """Create and drop databases on the test server."""

    def __init__(self, url: str) -> None:
        self.url = url

    def admin(self) -> psycopg.Connection[Any]:
        libpq_url = (
            make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        return psycopg.connect(libpq_url, autocommit=True)

    def create(self, name: str, template: str | None = None) -> str:
        with self.admin() as conn:
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{suffix}')
        return _with_database(self.url, name)

    def drop(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server() -> PostgresServer:
    return PostgresServer(_server_url())


@pytest.fixture(scope="session")
def template_database(pg_server: PostgresServer) -> Iterator[str]:
    name = f"tas_tmpl_{uuid.uuid4().hex[:10]}"
    url = pg_server.create(name)
    migrate.upgrade(url)
    yield name
    pg_server.drop(name)


@pytest.fixture
def empty_database_url(pg_server: PostgresServer) -> Iterator[str]:
    """A database with no schema at all (for migration tests)."""
    name = f"tas_empty_{uuid.uuid4().hex[:10]}"
    url = pg_server.create(name)
    yield url
    pg_server.drop(name)


@pytest.fixture
def database_url(pg_server: PostgresServer, template_database: str) -> Iterator[str]:
    """A migrated database of this test's own."""
    name = f"tas_test_{uuid.uuid4().hex[:10]}"
    url = pg_server.create(name, template=template_database)
    yield url
    pg_server.drop(name)


def app_config(database_url: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "APP_ENV": "testing",
        "TESTING": True,
        # Generated per run: no secret is ever committed, not even a test one.
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": database_url,
        "MAX_USERS": 25,
        "SESSION_COOKIE_SECURE": False,
        "RATELIMIT_STORAGE_URI": "memory://",
        # Tests sign up many people from one address; the rate-limit tests turn it on.
        "RATELIMIT_ENABLED": False,
    }
    config.update(overrides)
    return config


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    application = create_app(app_config(database_url))
    yield application
    application.extensions["db_engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_token(client: FlaskClient, path: str = "/signin") -> str:
    """The session's CSRF token, read from a real form the way a browser gets it."""
    page = client.get(path).get_data(as_text=True)
    match = CSRF.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


class Browser:
    """A signed-in person driving the app over HTTP with real forms and CSRF tokens."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.key = ""
        self.username = ""

    def token(self) -> str:
        return csrf_token(self.client, "/signin")

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        payload = {"csrf_token": self.token(), **(data or {})}
        return self.client.post(path, data=payload, **kwargs)

    def signup(self, username: str, timezone: str = "Europe/Berlin") -> Any:
        response = self.post("/signup", {"username": username, "timezone": timezone})
        match = re.search(r'id="signin-key" value="([^"]+)"', response.get_data(as_text=True))
        if match:
            self.key, self.username = match.group(1), username
        return response

    def create_task(self, name: str = "Write report", **fields: Any) -> int:
        data = {"name": name, "kind": "one-time", "default_estimate_minutes": "30", **fields}
        response = self.post("/tasks/new", data)
        assert response.status_code == 302, response.get_data(as_text=True)
        return self.latest_id("tasks")

    def latest_id(self, table: str) -> int:
        app = self.client.application
        with app.extensions["db_engine"].connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT max(id) FROM {table}").scalar_one())


@pytest.fixture
def browser(client: FlaskClient) -> Browser:
    person = Browser(client)
    response = person.signup("alice")
    assert response.status_code == 200 and person.key
    return person


@pytest.fixture
def other_browser(app: Flask) -> Browser:
    person = Browser(app.test_client())
    person.signup("mallory")
    return person


@contextlib.contextmanager
def uncached_statements(app: Flask) -> Iterator[list[str]]:
    """The statements run meanwhile that SQLAlchemy could not cache (no cache key: compiled
    afresh every time, CPU on every request that runs them)."""
    found: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, *_: Any):
        compiled = context is not None and context.compiled is not None  # not raw SQL
        if compiled and context.cache_hit is CacheStats.NO_CACHE_KEY:
            found.append(statement)

    engine = app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", record)


def count_statements(app: Flask, client: FlaskClient, path: str) -> tuple[int, int]:
    """GET ``path`` and return its status and how many SQL statements the request ran."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        status = client.get(path).status_code
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return status, len(statements)

"""Shared fixtures: a real PostgreSQL, a migrated template database, a fresh clone per test.

The server is, in order: the one named by ``TEST_DATABASE_URL``; the one on
127.0.0.1:5432 if it answers; an embedded one (``pgserver``) under ``.data/test-pg``.
The template database is migrated once per run with Alembic; every test gets its own
database cloned from it (``CREATE DATABASE ... TEMPLATE``), so tests can commit freely
and still never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from db import migrate
from db.embedded import embedded_server_url
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

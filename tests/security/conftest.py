"""Fixtures for the attack suite: one database and one app per module, to stay fast.

Each module attacks one app many times; cloning a database per test (the default
``database_url`` fixture) would cost seconds per test for nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask

from service import create_app
from tests.conftest import PostgresServer
from tests.conftest import app_config


@pytest.fixture(scope="module")
def module_database_url(pg_server: PostgresServer, template_database: str) -> Iterator[str]:
    name = f"tas_sec_{uuid.uuid4().hex[:10]}"
    url = pg_server.create(name, template=template_database)
    yield url
    pg_server.drop(name)


@pytest.fixture(scope="module")
def module_app(module_database_url: str) -> Iterator[Flask]:
    application = create_app(app_config(module_database_url, MAX_USERS=10_000))
    yield application
    application.extensions["db_engine"].dispose()

"""Engine and session helpers shared by the web app, the importer and the tests."""

from __future__ import annotations

import os

from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker


class DatabaseNotConfigured(RuntimeError):
    """Raised when DATABASE_URL is missing where a database is required."""


def normalize_url(url: str) -> str:
    """Return a SQLAlchemy URL that uses psycopg 3 whatever scheme the operator wrote.

    Operators paste URLs like ``postgres://`` or ``postgresql://``; SQLAlchemy would pick
    psycopg2 for those, which we do not install.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def database_url_from_env() -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        raise DatabaseNotConfigured("DATABASE_URL is not set")
    return normalize_url(url)


def make_engine(url: str, *, pool_size: int = 5, connect_timeout: int = 3) -> Engine:
    """Create an engine that fails fast when the database is unreachable.

    ``connect_timeout`` keeps a request from hanging when PostgreSQL is down, and
    ``pool_pre_ping`` throws away connections that died with a server restart so the
    app recovers by itself once the database is back.
    """
    return create_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"connect_timeout": connect_timeout, "application_name": "tas"},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: views render objects after the request's single commit.
    return sessionmaker(bind=engine, expire_on_commit=False)

"""Engine and session helpers shared by the web app, the importer and the tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
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


# A pooled connection is pinged before use only when it sat unused for longer than this.
PING_AFTER_IDLE_SECONDS = 1.0


def make_engine(url: str, *, pool_size: int = 5, connect_timeout: int = 3) -> Engine:
    """Create an engine that fails fast when the database is unreachable.

    ``connect_timeout`` keeps a request from hanging when PostgreSQL is down. A connection
    that died with a server restart is replaced by itself, so the app recovers once the
    database is back: a connection idle for over a second is pinged before use, and a
    statement that fails on a dead connection (the server went away while it was busy)
    gets the request the 503 page and throws away every connection opened before it.
    """
    engine = create_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        pool_recycle=1800,
        connect_args={"connect_timeout": connect_timeout, "application_name": "tas"},
    )
    event.listen(engine, "checkin", _note_idle_since)
    event.listen(engine, "checkout", _ping_when_idle(engine.dialect))
    return engine


def _note_idle_since(dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_when_idle(dialect: Dialect) -> Callable[[Any, Any, Any], None]:
    """Ping only connections that sat idle, instead of ``pool_pre_ping`` on every checkout.

    Under load a worker's connection comes back within milliseconds, and a round trip to
    PostgreSQL before every request was about a tenth of the CPU of a cached page. A
    connection that has been idle (when a quiet server is restarted, say) is pinged as
    ``pool_pre_ping`` would, with the dialect's own ping; the pool replaces a dead one.
    """

    def ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_SECONDS:
            return  # just opened, or back from work a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise DisconnectionError() from error  # the pool opens a new connection
            raise

    return ping


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: views render objects after the request's single commit.
    return sessionmaker(bind=engine, expire_on_commit=False)

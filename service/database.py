"""The app's database: one engine per process, one session (and transaction) per request.

Views call :func:`commit` once, after the work is done; anything not committed is rolled
back when the request ends (including on errors), so a failed request changes nothing.
"""

from __future__ import annotations

from flask import Flask
from flask import current_app
from flask import g
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from db.engine import make_engine
from db.engine import make_session_factory


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"], pool_size=app.config["DB_POOL_SIZE"])
    app.extensions["db_engine"] = engine
    app.extensions["db_sessionmaker"] = make_session_factory(engine)
    app.teardown_appcontext(_close_session)


def engine() -> Engine:
    result: Engine = current_app.extensions["db_engine"]
    return result


def session() -> Session:
    """The request's session, opened on first use."""
    if "db_session" not in g:
        factory: sessionmaker[Session] = current_app.extensions["db_sessionmaker"]
        g.db_session = factory()
    result: Session = g.db_session
    return result


def commit() -> None:
    """Commit the request's transaction: the one visible place where a request writes."""
    if "db_session" in g:
        g.db_session.commit()


def rollback() -> None:
    if "db_session" in g:
        try:
            g.db_session.rollback()
        except SQLAlchemyError:
            # The connection died with the error being handled; the pool replaces it.
            g.db_session.invalidate()


def _close_session(_exc: BaseException | None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()  # rolls back whatever was not committed

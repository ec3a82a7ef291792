"""The app's database: one engine per process, one session (and transaction) per request.

Views call :func:`commit` once, after the work is done; anything not committed is rolled
back when the request ends (including on errors), so a failed request changes nothing.

Requests that only read (GET and HEAD) run their statements in autocommit mode instead:
no BEGIN and no ROLLBACK round trip to PostgreSQL around them, which was a third of the
database work of a cached page. They lose nothing by it: under READ COMMITTED each
statement takes its own snapshot inside a transaction too, and the one write a page may
make (its cache row) is a single statement.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import psycopg
from flask import Flask
from flask import current_app
from flask import g
from flask import has_request_context
from flask import request
from sqlalchemy import Connection
from sqlalchemy import CursorResult
from sqlalchemy import Engine
from sqlalchemy import Executable
from sqlalchemy import Label
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from db.engine import make_engine

READ_METHODS = frozenset({"GET", "HEAD"})


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"], pool_size=app.config["DB_POOL_SIZE"])
    app.extensions["db_engine"] = engine
    app.extensions["db_read_engine"] = engine.execution_options(isolation_level="AUTOCOMMIT")
    app.teardown_appcontext(_close_session)


def engine() -> Engine:
    result: Engine = current_app.extensions["db_engine"]
    return result


def connection() -> Connection:
    """The request's connection, opened on first use: the person's lookup runs on it, and
    the request's session (if the view needs one) is bound to it.

    A page kept whole (the dashboard viewed again) needs nothing but the lookup: without a
    session it skips the ORM's set-up and clean-up, which were a fifth of its CPU.
    """
    if "db_connection" not in g:
        reads_only = has_request_context() and request.method in READ_METHODS
        source: Engine = current_app.extensions["db_read_engine" if reads_only else "db_engine"]
        g.db_connection = source.connect()
    result: Connection = g.db_connection
    return result


def fetch_one(sql: str, parameters: Mapping[str, Any]) -> Sequence[Any] | None:
    """One row of plain SQL (``%(name)s`` parameters) on the request's connection, through
    the driver alone: for the person's lookup, which every request makes.

    SQLAlchemy's steps around a statement (its execution context, events and result
    metadata) were a seventh of a cached page's CPU. Should the statement fail, it is run
    again SQLAlchemy's way, so the failure is met as any other: a lost connection is
    replaced and the request gets the 503 page. While anything listens to the engine's
    statements (a count of a page's statements), it goes SQLAlchemy's way, to be seen.
    """
    db_connection = connection()
    dispatch = db_connection.engine.dispatch
    if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
        return db_connection.exec_driver_sql(sql, parameters).fetchone()
    driver = db_connection.connection.driver_connection
    assert driver is not None  # a checked-out connection always has one
    try:
        with driver.cursor() as cursor:
            cursor.execute(sql, parameters)
            row: Sequence[Any] | None = cursor.fetchone()
            return row
    except psycopg.Error:
        with contextlib.suppress(psycopg.Error):
            driver.rollback()  # this is the request's first statement: nothing else is lost
        return db_connection.exec_driver_sql(sql, parameters).fetchone()


def session() -> Session:
    """The request's session, opened on first use, on the request's connection.

    It takes over the transaction the lookup may have begun on that connection
    (``control_fully``): :func:`commit` commits the lookup and the view's work together,
    and closing the session rolls back whatever was not committed.
    """
    if "db_session" not in g:
        g.db_session = Session(
            bind=connection(), expire_on_commit=False, join_transaction_mode="control_fully"
        )
    result: Session = g.db_session
    return result


def run(
    db: Session, statement: Executable, parameters: Mapping[str, Any] | None = None
) -> CursorResult[Any]:
    """A statement that reads or writes rows, not ORM objects, run on the session's
    connection and in its transaction.

    ``Session.execute`` puts the ORM's own steps around every statement (its compile state,
    events, result set-up): a third of a dashboard query's CPU, for rows the ORM does
    nothing with. Changes waiting in the session are flushed first, as ``Session.execute``
    does, so the statement sees them.
    """
    if db.new or db.dirty or db.deleted:
        db.flush()
    return db.connection().execute(statement, parameters)


def choices_column(
    id_column: Any,
    name_column: Any,
    owned: Any,
    order_by: Sequence[Any],
    correlate: Any,
    label: str,
) -> Label[Any]:
    """A person's rows (``owned``: the condition naming the person by a column of
    ``correlate``, the table of the statement this goes into) as one JSON array of
    [id, name] pairs in ``order_by`` order, empty when none: for a form page that reads its
    choices with its other data, in one statement. :func:`choice_pairs` reads it."""
    pairs = func.json_agg(
        aggregate_order_by(func.json_build_array(id_column, name_column), *order_by)
    )
    return (
        select(func.coalesce(pairs, text("'[]'::json")))
        .where(owned)
        .correlate(correlate)
        .scalar_subquery()
        .label(label)
    )


def choice_pairs(pairs: list[list[Any]]) -> list[tuple[int, str]]:
    """What a :func:`choices_column` read, as a form's choices."""
    return [(int(choice_id), str(name)) for choice_id, name in pairs]


def commit() -> None:
    """Commit the request's transaction: the one visible place where a request writes."""
    if "db_session" in g:
        g.db_session.commit()


def rollback() -> None:
    db_session = g.get("db_session")
    db_connection = g.get("db_connection")
    try:
        if db_session is not None:
            db_session.rollback()
        elif db_connection is not None:
            db_connection.rollback()
    except SQLAlchemyError:
        # The connection died with the error being handled; the pool replaces it.
        if db_connection is not None:
            db_connection.invalidate()


def _close_session(_exc: BaseException | None) -> None:
    db_session = g.pop("db_session", None)
    db_connection = g.pop("db_connection", None)
    try:
        if db_session is not None:
            db_session.close()  # rolls back whatever was not committed
    finally:
        if db_connection is not None:
            db_connection.close()  # back to the pool, which rolls back what is left

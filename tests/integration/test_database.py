"""The request's database work: reads through its connection see its own changes."""

from __future__ import annotations

from typing import Any

import psycopg
from flask import Flask
from sqlalchemy import Select
from sqlalchemy import event
from sqlalchemy import func
from sqlalchemy import select

from db.models import User
from service import database
from tests.conftest import Browser


def _people_named(name: str) -> Select[Any]:
    return select(func.count()).select_from(User).where(User.username == name)


def test_a_plain_read_sees_what_the_request_changed_and_a_failed_request_keeps_nothing(
    app: Flask,
) -> None:
    """``database.run`` skips the ORM, not the session's transaction: a person added in the
    request is counted by a read that follows it (flushed first, as the ORM would), and
    without a commit nothing of it stays."""
    with app.test_request_context("/signup", method="POST"):
        db = database.session()
        assert database.run(db, _people_named("run.reader")).scalar() == 0
        db.add(User(username="run.reader", signin_key_hash="x" * 64))
        assert database.run(db, _people_named("run.reader")).scalar() == 1
        # The request ends without committing (as when a view fails).
    with app.test_request_context("/"):
        assert database.run(database.session(), _people_named("run.reader")).scalar() == 0


def _checkouts(app: Flask, request: Any) -> tuple[Any, int]:
    """Run ``request()`` and count the connections it took from the pool."""
    taken: list[object] = []

    def record(*_args: Any) -> None:
        taken.append(object())

    engine = app.extensions["db_engine"]
    event.listen(engine, "checkout", record)
    try:
        response = request()
    finally:
        event.remove(engine, "checkout", record)
    return response, len(taken)


def test_each_request_takes_one_connection_and_a_write_commits_with_its_lookup(
    browser: Browser,
) -> None:
    """The person's lookup and the view's work share the request's connection: one pooled
    connection per request (so the pool's size is the number of requests served at once),
    and a write made on it after the lookup is committed by the view and kept."""
    app = browser.client.application
    browser.client.get("/")  # the dashboard is now kept whole
    response, taken = _checkouts(app, lambda: browser.client.get("/"))
    assert response.status_code == 200 and taken == 1
    token = browser.token()
    data = {"csrf_token": token, "name": "One connection", "kind": "one-time"}
    response, taken = _checkouts(app, lambda: browser.client.post("/tasks/new", data=data))
    assert response.status_code == 302 and taken == 1
    with app.extensions["db_engine"].connect() as conn:
        named = "SELECT count(*) FROM tasks WHERE name = 'One connection'"
        assert conn.exec_driver_sql(named).scalar_one() == 1
    response, taken = _checkouts(app, lambda: browser.client.get("/"))
    assert response.status_code == 200 and "One connection" in response.get_data(as_text=True)
    assert taken == 1


def test_a_connection_lost_under_the_lookup_gives_the_503_page_and_the_next_request_works(
    browser: Browser,
) -> None:
    """The person's lookup, the first statement of every request, runs on the driver alone;
    when its connection has died (PostgreSQL restarted, an administrator ended it) the
    request still gets the friendly 503 page, not an error, and the pool replaces the
    connection for the next request."""
    app = browser.client.application
    assert browser.client.get("/").status_code == 200
    url = app.config["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as admin:  # not one of the app's
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'tas'"
        ).fetchone()
    assert ended is not None and ended[0] >= 1
    # Within a second of its last use a pooled connection is not pinged: the lookup meets it.
    response = browser.client.get("/")
    assert response.status_code == 503
    assert "Temporarily unavailable" in response.get_data(as_text=True)
    again = browser.client.get("/")
    assert again.status_code == 200 and "Write report" not in again.get_data(as_text=True)

"""The request's database work: reads through its connection see its own changes."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import Select
from sqlalchemy import func
from sqlalchemy import select

from db.models import User
from service import database


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

"""Migration 0007 (due dates, postponing): expand-only, the previous release keeps working
on the new schema, and its downgrade restores the previous schema with every row."""

from __future__ import annotations

from db import migrate
from tests import schema
from tests.schema import run_sql

COLUMNS = {"due_at", "postponed_at", "postponed_until"}
INDEX = "ix_attempts_user_id_postponed"


def _schema(url: str) -> tuple[set[str], set[str]]:
    return schema.columns(url, "attempts"), schema.valid_indexes(url)


# What the previous release writes: attempts without due dates or postponements, and its
# lifecycle moves on them (start, pause, complete), by the columns it knows.
PREVIOUS_RELEASE_WRITES = (
    "INSERT INTO users (username, signin_key_hash) VALUES ('old', 'x')",
    "INSERT INTO tasks (user_id, name) SELECT id, 'Taxes' FROM users",
    "INSERT INTO attempts (user_id, task_id, task_version, status)"
    " SELECT user_id, id, 1, 'initialized' FROM tasks",
)
PREVIOUS_RELEASE_MOVES = (
    "UPDATE attempts SET status = 'started', started_at = now(), resumed_at = now()",
    "UPDATE attempts SET status = 'paused', resumed_at = NULL, minutes_spent = 5",
    "UPDATE attempts SET status = 'completed', completed_at = now(), actual_relief = 70",
)


def test_0007_adds_nullable_columns_and_a_valid_index_and_comes_down_again(empty_database_url):
    url = empty_database_url
    migrate.upgrade(url, "0006")
    for statement in PREVIOUS_RELEASE_WRITES:
        run_sql(url, statement)

    migrate.upgrade(url, "0007")
    columns, indexes = _schema(url)
    assert COLUMNS <= columns
    assert INDEX in indexes  # built CONCURRENTLY, and valid
    assert run_sql(url, "SELECT count(*), count(due_at), count(postponed_at) FROM attempts") == [
        (1, 0, 0)
    ]
    # The new release postpones the attempt; the previous one still serves and moves it on.
    run_sql(url, "UPDATE attempts SET postponed_at = now(), due_at = now() + interval '1 day'")
    for statement in PREVIOUS_RELEASE_MOVES:
        run_sql(url, statement)
    run_sql(url, PREVIOUS_RELEASE_WRITES[2])
    statuses = run_sql(url, "SELECT status FROM attempts ORDER BY id")
    assert statuses == [("completed",), ("initialized",)]

    migrate.downgrade(url, "0006")
    columns, indexes = _schema(url)
    assert not COLUMNS & columns
    assert INDEX not in indexes
    assert run_sql(url, "SELECT count(*), sum(actual_relief) FROM attempts") == [(2, 70)]
    migrate.upgrade(url, "0007")  # and up again, as a failed rollback's retry would
    assert COLUMNS <= _schema(url)[0]

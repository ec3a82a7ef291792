"""Migration 0007 (due dates, postponing): expand-only, the previous release keeps working
on the new schema, and its downgrade restores the previous schema with every row."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy import text

from db import migrate

COLUMNS = {"due_at", "postponed_at", "postponed_until"}
INDEX = "ix_attempts_user_id_postponed"


def _run(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _schema(url: str) -> tuple[set[str], set[str]]:
    columns = {
        row[0]
        for row in _run(
            url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'attempts'"
        )
    }
    indexes = {
        row[0]
        for row in _run(
            url,
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indisvalid",
        )
    }
    return columns, indexes


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
        _run(url, statement)

    migrate.upgrade(url, "0007")
    columns, indexes = _schema(url)
    assert COLUMNS <= columns
    assert INDEX in indexes  # built CONCURRENTLY, and valid
    assert _run(url, "SELECT count(*), count(due_at), count(postponed_at) FROM attempts") == [
        (1, 0, 0)
    ]
    # The new release postpones the attempt; the previous one still serves and moves it on.
    _run(url, "UPDATE attempts SET postponed_at = now(), due_at = now() + interval '1 day'")
    for statement in PREVIOUS_RELEASE_MOVES:
        _run(url, statement)
    _run(url, PREVIOUS_RELEASE_WRITES[2])
    statuses = _run(url, "SELECT status FROM attempts ORDER BY id")
    assert statuses == [("completed",), ("initialized",)]

    migrate.downgrade(url, "0006")
    columns, indexes = _schema(url)
    assert not COLUMNS & columns
    assert INDEX not in indexes
    assert _run(url, "SELECT count(*), sum(actual_relief) FROM attempts") == [(2, 70)]
    migrate.upgrade(url, "0007")  # and up again, as a failed rollback's retry would
    assert COLUMNS <= _schema(url)[0]

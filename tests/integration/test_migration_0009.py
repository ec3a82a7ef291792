"""Migration 0009 (routines): expand-only, the previous release keeps working on the new
schema, the database itself allows one attempt per routine occurrence and only whole
schedules, and the downgrade restores the previous schema with every row."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from db import migrate
from tests import schema
from tests.schema import run_sql

TASK_COLUMNS = {"routine_frequency", "routine_weekdays", "routine_time", "routine_since"}
INDEX = "uq_attempts_task_id_routine_occurrence"

# What the previous release writes: tasks and attempts by the columns it knows, and its
# lifecycle moves on them.
PREVIOUS_RELEASE_WRITES = (
    "INSERT INTO users (username, signin_key_hash) VALUES ('old', 'x')",
    "INSERT INTO tasks (user_id, name) SELECT id, 'Taxes' FROM users",
    "INSERT INTO attempts (user_id, task_id, task_version, status)"
    " SELECT user_id, id, 1, 'initialized' FROM tasks",
)
PREVIOUS_RELEASE_MOVES = (
    "UPDATE tasks SET name = 'Stretch', version = version + 1",
    "UPDATE attempts SET status = 'started', started_at = now(), resumed_at = now()"
    " WHERE id = (SELECT min(id) FROM attempts)",
    "UPDATE attempts SET status = 'completed', completed_at = now(), actual_relief = 70"
    " WHERE status = 'started'",
)
ROUTINE = (
    "UPDATE tasks SET routine_frequency = 'daily', routine_weekdays = 127,"
    " routine_time = '08:00', routine_since = now()"
)
OCCURRENCE = (
    "INSERT INTO attempts (user_id, task_id, task_version, routine_occurrence)"
    " SELECT user_id, id, 1, DATE '2026-12-03' FROM tasks"
)


def _schema(url: str) -> tuple[set[str], set[str], set[str]]:
    return (
        schema.columns(url, "tasks"),
        schema.columns(url, "attempts"),
        schema.valid_indexes(url),
    )


def test_0009_adds_routines_one_attempt_per_occurrence_and_comes_down_again(
    empty_database_url,
):
    url = empty_database_url
    migrate.upgrade(url, "0008")
    for statement in PREVIOUS_RELEASE_WRITES:
        run_sql(url, statement)

    migrate.upgrade(url, "0009")
    tasks, attempts, indexes = _schema(url)
    assert TASK_COLUMNS <= tasks and "routine_occurrence" in attempts
    assert INDEX in indexes  # built CONCURRENTLY, and valid
    assert run_sql(url, "SELECT count(routine_frequency) FROM tasks") == [(0,)]

    # The new release makes the task a routine and its occurrence's attempt, once.
    run_sql(url, ROUTINE)
    run_sql(url, OCCURRENCE)
    with pytest.raises(IntegrityError, match=INDEX):
        run_sql(url, OCCURRENCE)
    # A schedule missing its time, or with no weekday, is refused by the database.
    for broken in ("routine_time = NULL", "routine_weekdays = 0", "routine_frequency = 'hourly'"):
        with pytest.raises(IntegrityError, match="ck_tasks_routine_valid"):
            run_sql(url, f"UPDATE tasks SET {broken}")  # noqa: S608 - the test's own SQL
    # The previous release still serves: its writes and moves go through.
    for statement in PREVIOUS_RELEASE_MOVES:
        run_sql(url, statement)
    run_sql(url, PREVIOUS_RELEASE_WRITES[2])
    assert run_sql(url, "SELECT count(*), count(routine_occurrence) FROM attempts") == [(3, 1)]

    migrate.downgrade(url, "0008")
    tasks, attempts, indexes = _schema(url)
    assert not TASK_COLUMNS & tasks and "routine_occurrence" not in attempts
    assert INDEX not in indexes
    assert run_sql(url, "SELECT count(*), sum(actual_relief) FROM attempts") == [(3, 70)]
    assert run_sql(url, "SELECT name FROM tasks") == [("Stretch",)]
    migrate.upgrade(url, "0009")  # and up again, as a failed rollback's retry would
    assert TASK_COLUMNS <= _schema(url)[0]

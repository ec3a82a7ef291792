"""Migration 0010 (emotion intensities, task groups): expand-only, the previous release
keeps working on the new schema, changes to the new rows make cached pages stale, and its
downgrade restores the previous schema with every row it knew."""

from __future__ import annotations

import pytest
import sqlalchemy.exc

from db import migrate
from tests import schema
from tests.schema import run_sql

NEW_TABLES = {"task_groups", "task_group_tasks"}

# What the previous release writes: a task, an attempt and its emotions (no intensity).
PREVIOUS_RELEASE_WRITES = (
    "INSERT INTO users (username, signin_key_hash) VALUES ('old', 'x')",
    "INSERT INTO tasks (user_id, name) SELECT id, 'Taxes' FROM users",
    "INSERT INTO emotions (user_id, name) SELECT id, 'Dread' FROM users",
    "INSERT INTO attempts (user_id, task_id, task_version, status)"
    " SELECT user_id, id, 1, 'initialized' FROM tasks",
    "INSERT INTO attempt_emotions (attempt_id, emotion_id, phase, user_id)"
    " SELECT a.id, e.id, 'before', a.user_id FROM attempts a JOIN emotions e USING (user_id)",
)


def _versions(url: str) -> tuple[int, int]:
    return run_sql(url, "SELECT data_version, history_version FROM users WHERE username = 'old'")[0]


def _tables(url: str) -> set[str]:
    rows = run_sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row[0] for row in rows}


def test_0010_adds_intensities_and_groups_and_comes_down_again(empty_database_url):
    url = empty_database_url
    migrate.upgrade(url, "0009")
    for statement in PREVIOUS_RELEASE_WRITES:
        run_sql(url, statement)

    migrate.upgrade(url, "0010")
    assert "intensity" in schema.columns(url, "attempt_emotions")
    assert NEW_TABLES <= _tables(url)
    assert run_sql(url, "SELECT count(*), count(intensity) FROM attempt_emotions") == [(1, 0)]

    # The previous release goes on writing emotions without an intensity.
    run_sql(url, "UPDATE attempts SET status = 'completed', completed_at = now()")
    run_sql(
        url,
        "INSERT INTO attempt_emotions (attempt_id, emotion_id, phase, user_id)"
        " SELECT attempt_id, emotion_id, 'after', user_id FROM attempt_emotions",
    )
    # The new release writes intensities, 0–100 only.
    run_sql(url, "UPDATE attempt_emotions SET intensity = 80 WHERE phase = 'after'")
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        run_sql(url, "UPDATE attempt_emotions SET intensity = 101")
    # Groups hold the person's own tasks only.
    run_sql(url, "INSERT INTO task_groups (user_id, name) SELECT id, 'Work' FROM users")
    run_sql(
        url,
        "INSERT INTO task_group_tasks (group_id, task_id, user_id)"
        " SELECT g.id, t.id, t.user_id FROM task_groups g JOIN tasks t USING (user_id)",
    )
    run_sql(url, "INSERT INTO users (username, signin_key_hash) VALUES ('other', 'y')")
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        run_sql(
            url,
            "INSERT INTO task_group_tasks (group_id, task_id, user_id)"
            " SELECT g.id, t.id, (SELECT id FROM users WHERE username = 'other')"
            " FROM task_groups g JOIN tasks t USING (user_id)",
        )
    with pytest.raises(sqlalchemy.exc.IntegrityError):  # names unique per person, any case
        run_sql(url, "INSERT INTO task_groups (user_id, name) SELECT id, 'WORK' FROM users")

    migrate.downgrade(url, "0009")
    assert "intensity" not in schema.columns(url, "attempt_emotions")
    # The previous release's function body again: attempts still bump, emotions don't.
    data, history = _versions(url)
    run_sql(url, "UPDATE attempts SET notes = 'after the downgrade'")
    run_sql(url, "UPDATE attempt_emotions SET phase = phase")
    assert _versions(url) == (data + 1, history + 1)
    assert not NEW_TABLES & _tables(url)
    assert run_sql(url, "SELECT count(*) FROM attempt_emotions") == [(2,)]
    run_sql(url, PREVIOUS_RELEASE_WRITES[3])  # the previous release still writes
    migrate.upgrade(url, "0010")  # and up again, as a failed rollback's retry would
    assert NEW_TABLES <= _tables(url)


def test_changes_to_emotions_and_groups_make_cached_pages_stale(empty_database_url):
    url = empty_database_url
    migrate.upgrade(url, "0010")
    for statement in PREVIOUS_RELEASE_WRITES[:4]:
        run_sql(url, statement)

    # An emotion of an open attempt: the data changed, the history did not.
    data, history = _versions(url)
    run_sql(url, PREVIOUS_RELEASE_WRITES[4])
    assert _versions(url) == (data + 1, history)

    # Once the attempt is finished, a change to its emotions is a change of history.
    run_sql(url, "UPDATE attempts SET status = 'completed', completed_at = now()")
    data, history = _versions(url)
    run_sql(url, "UPDATE attempt_emotions SET intensity = 40")
    assert _versions(url) == (data + 1, history + 1)

    # Groups and their tasks show on the dashboard and analytics, emotion names on
    # analytics: always history (a new emotion is on no attempt: no change).
    data, history = _versions(url)
    run_sql(url, "INSERT INTO emotions (user_id, name) SELECT id, 'Calm' FROM users")
    assert _versions(url) == (data, history)
    for statement in (
        "UPDATE emotions SET name = 'Calmer' WHERE name = 'Calm'",
        "DELETE FROM emotions WHERE name = 'Calmer'",
        "INSERT INTO task_groups (user_id, name) SELECT id, 'Home' FROM users",
        "INSERT INTO task_group_tasks (group_id, task_id, user_id)"
        " SELECT g.id, t.id, t.user_id FROM task_groups g JOIN tasks t USING (user_id)",
        "UPDATE task_groups SET name = 'House'",
        "DELETE FROM task_group_tasks",
        "DELETE FROM task_groups",
    ):
        data, history = _versions(url)
        run_sql(url, statement)
        assert _versions(url) == (data + 1, history + 1), statement

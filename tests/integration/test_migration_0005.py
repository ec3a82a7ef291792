"""Migration 0005 (cancel category, history indexes): expand-only, and its downgrade works."""

from __future__ import annotations

from db import migrate
from tests import schema
from tests.schema import run_sql

INDEXES = ("ix_attempts_user_id_initialized_at_id", "ix_attempts_search", "ix_tasks_search")


def _schema(url: str) -> tuple[set[str], set[str], list[tuple]]:
    checks = run_sql(
        url,
        "SELECT conname, convalidated FROM pg_constraint"
        " WHERE conname = 'ck_attempts_cancel_category_length'",
    )
    return schema.columns(url, "attempts"), schema.valid_indexes(url), checks


# What the previous release writes: no cancel category.
PREVIOUS_RELEASE_WRITES = """
INSERT INTO users (username, signin_key_hash) VALUES ('old', 'x');
INSERT INTO tasks (user_id, name) SELECT id, 'Taxes' FROM users;
INSERT INTO attempts (user_id, task_id, task_version, status, cancel_reason, cancelled_at)
SELECT user_id, id, 1, 'cancelled', 'Rain', now() FROM tasks
"""


def test_0005_adds_the_column_and_valid_indexes_and_comes_down_again(empty_database_url):
    url = empty_database_url
    migrate.upgrade(url, "0004")
    for statement in PREVIOUS_RELEASE_WRITES.strip().split(";\n"):
        run_sql(url, statement)

    migrate.upgrade(url, "0005")
    columns, indexes, checks = _schema(url)
    assert "cancel_category" in columns
    assert set(INDEXES) <= indexes  # built CONCURRENTLY, and valid
    assert checks == [("ck_attempts_cancel_category_length", True)]
    # The previous release still writes as it did; its cancellations have no category.
    run_sql(url, PREVIOUS_RELEASE_WRITES.strip().split(";\n")[2])
    assert run_sql(url, "SELECT count(*), count(cancel_category) FROM attempts") == [(2, 0)]

    migrate.downgrade(url, "0004")
    columns, indexes, checks = _schema(url)
    assert "cancel_category" not in columns
    assert not set(INDEXES) & indexes
    assert checks == []
    assert run_sql(url, "SELECT count(*) FROM attempts WHERE cancel_reason = 'Rain'") == [(2,)]

"""Migration 0005 (cancel category, history indexes): expand-only, and its downgrade works."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy import text

from db import migrate

INDEXES = ("ix_attempts_user_id_initialized_at_id", "ix_attempts_search", "ix_tasks_search")


def _run(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _schema(url: str) -> tuple[set[str], set[str], list[tuple]]:
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
    checks = _run(
        url,
        "SELECT conname, convalidated FROM pg_constraint"
        " WHERE conname = 'ck_attempts_cancel_category_length'",
    )
    return columns, indexes, checks


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
        _run(url, statement)

    migrate.upgrade(url, "0005")
    columns, indexes, checks = _schema(url)
    assert "cancel_category" in columns
    assert set(INDEXES) <= indexes  # built CONCURRENTLY, and valid
    assert checks == [("ck_attempts_cancel_category_length", True)]
    # The previous release still writes as it did; its cancellations have no category.
    _run(url, PREVIOUS_RELEASE_WRITES.strip().split(";\n")[2])
    assert _run(url, "SELECT count(*), count(cancel_category) FROM attempts") == [(2, 0)]

    migrate.downgrade(url, "0004")
    columns, indexes, checks = _schema(url)
    assert "cancel_category" not in columns
    assert not set(INDEXES) & indexes
    assert checks == []
    assert _run(url, "SELECT count(*) FROM attempts WHERE cancel_reason = 'Rain'") == [(2,)]

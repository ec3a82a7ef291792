"""Migration 0013: the 0–100 check on emotion intensities, added NOT VALID by 0010, is
validated while the previous release goes on writing; what reads the schema sees a whole
constraint; the downgrade leaves it as 0010 did."""

from __future__ import annotations

import warnings

import psycopg
import pytest
import sqlalchemy as sa
import sqlalchemy.exc

from db import migrate
from tests.schema import run_sql

CHECK = "ck_attempt_emotions_intensity_range"

# What the previous release writes: a task, an attempt and its emotions, one rated.
PREVIOUS_RELEASE_WRITES = (
    "INSERT INTO users (username, signin_key_hash) VALUES ('old', 'x')",
    "INSERT INTO tasks (user_id, name) SELECT id, 'Taxes' FROM users",
    "INSERT INTO emotions (user_id, name) SELECT id, 'Dread' FROM users",
    "INSERT INTO attempts (user_id, task_id, task_version, status)"
    " SELECT user_id, id, 1, 'initialized' FROM tasks",
    "INSERT INTO attempt_emotions (attempt_id, emotion_id, phase, user_id, intensity)"
    " SELECT a.id, e.id, 'before', a.user_id, 70 FROM attempts a JOIN emotions e USING (user_id)",
)
AFTER_EMOTION = (
    "INSERT INTO attempt_emotions (attempt_id, emotion_id, phase, user_id, intensity)"
    " SELECT attempt_id, emotion_id, 'after', user_id, {intensity} FROM attempt_emotions"
    " WHERE phase = 'before'"
)


def _validated(url: str) -> bool:
    rows = run_sql(url, f"SELECT convalidated FROM pg_constraint WHERE conname = '{CHECK}'")  # noqa: S608 - a constant
    assert len(rows) == 1, rows
    return bool(rows[0][0])


def _rows(url: str) -> list[tuple]:
    return run_sql(url, "SELECT phase, intensity FROM attempt_emotions ORDER BY phase")


def _reflection_warnings(url: str) -> list[str]:
    """What SQLAlchemy says when it reads the table (as Alembic's drift check does)."""
    engine = sa.create_engine(url)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sa.Table("attempt_emotions", sa.MetaData(), autoload_with=engine)
    finally:
        engine.dispose()
    return [str(warning.message) for warning in caught]


def _refuses_out_of_range(url: str) -> None:
    with pytest.raises(sqlalchemy.exc.IntegrityError, match=CHECK):
        run_sql(url, AFTER_EMOTION.format(intensity=101))


def test_0013_validates_the_intensity_check_and_comes_down_again(empty_database_url):
    url = empty_database_url
    migrate.upgrade(url, "0012")
    for statement in PREVIOUS_RELEASE_WRITES:
        run_sql(url, statement)
    assert not _validated(url)
    assert any("dialect_options" in message for message in _reflection_warnings(url))

    migrate.upgrade(url, "0013")
    assert _validated(url)
    assert _reflection_warnings(url) == []
    assert _rows(url) == [("before", 70)]
    # The previous release goes on writing; out of range is still refused.
    run_sql(url, AFTER_EMOTION.format(intensity=0))
    _refuses_out_of_range(url)
    assert _rows(url) == [("after", 0), ("before", 70)]

    migrate.downgrade(url, "0012")
    assert not _validated(url)  # as 0010 left it
    _refuses_out_of_range(url)  # and still enforced on every write
    assert _rows(url) == [("after", 0), ("before", 70)]
    migrate.upgrade(url, "0013")  # and up again, as a failed rollback's retry would
    assert _validated(url)


def test_0013_lets_writes_go_on_and_gives_up_on_a_held_lock_changing_nothing(
    empty_database_url,
):
    """A write in flight (ROW EXCLUSIVE) does not hold the validation up; a maintenance job
    holding SHARE UPDATE EXCLUSIVE does, until the lock timeout: the migration then fails,
    its transaction takes everything back, and it goes through once the lock is free (as
    after a dropped connection or a killed process, which also roll back)."""
    url = empty_database_url
    migrate.upgrade(url, "0012")
    for statement in PREVIOUS_RELEASE_WRITES:
        run_sql(url, statement)
    libpq = url.replace("postgresql+psycopg://", "postgresql://")

    with psycopg.connect(libpq) as other:
        other.execute("LOCK TABLE attempt_emotions IN SHARE UPDATE EXCLUSIVE MODE")
        with pytest.raises(Exception, match="lock timeout"):
            migrate.upgrade(url, "0013")
        other.rollback()
    assert not _validated(url)
    assert run_sql(url, "SELECT version_num FROM alembic_version") == [("0012",)]

    with psycopg.connect(libpq) as writer:
        writer.execute(AFTER_EMOTION.format(intensity=55))  # not committed yet
        migrate.upgrade(url, "0013")
        writer.commit()
    assert _validated(url)
    assert _rows(url) == [("after", 55), ("before", 70)]

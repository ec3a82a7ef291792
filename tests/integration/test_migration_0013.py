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
from tests.integration.test_migration_0010 import PREVIOUS_RELEASE_WRITES as ROWS_OF_0009S_RELEASE
from tests.schema import constraint_validated
from tests.schema import run_sql

CHECK = "ck_attempt_emotions_intensity_range"

# What the previous release writes: the rows 0010's test has its release before write,
# and an intensity on the emotion.
PREVIOUS_RELEASE_WRITES = (
    *ROWS_OF_0009S_RELEASE,
    "UPDATE attempt_emotions SET intensity = 70",
)
AFTER_EMOTION = (
    "INSERT INTO attempt_emotions (attempt_id, emotion_id, phase, user_id, intensity)"
    " SELECT attempt_id, emotion_id, 'after', user_id, {intensity} FROM attempt_emotions"
    " WHERE phase = 'before'"
)


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
    assert not constraint_validated(url, CHECK)
    assert any("dialect_options" in message for message in _reflection_warnings(url))

    migrate.upgrade(url, "0013")
    assert constraint_validated(url, CHECK)
    assert _reflection_warnings(url) == []
    assert _rows(url) == [("before", 70)]
    # The previous release goes on writing; out of range is still refused.
    run_sql(url, AFTER_EMOTION.format(intensity=0))
    _refuses_out_of_range(url)
    assert _rows(url) == [("after", 0), ("before", 70)]

    migrate.downgrade(url, "0012")
    assert not constraint_validated(url, CHECK)  # as 0010 left it
    _refuses_out_of_range(url)  # and still enforced on every write
    assert _rows(url) == [("after", 0), ("before", 70)]
    migrate.upgrade(url, "0013")  # and up again, as a failed rollback's retry would
    assert constraint_validated(url, CHECK)


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
    assert not constraint_validated(url, CHECK)
    assert run_sql(url, "SELECT version_num FROM alembic_version") == [("0012",)]

    with psycopg.connect(libpq) as writer:
        writer.execute(AFTER_EMOTION.format(intensity=55))  # not committed yet
        migrate.upgrade(url, "0013")
        writer.commit()
    assert constraint_validated(url, CHECK)
    assert _rows(url) == [("after", 55), ("before", 70)]

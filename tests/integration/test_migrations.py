"""Alembic: the schema builds from nothing, comes down to 0001 (never below), matches the models."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine
from sqlalchemy import inspect

from db import migrate
from db.models import Base

PERSON_OWNED = {
    "emotions",
    "tasks",
    "task_emotions",
    "attempts",
    "attempt_emotions",
    "import_runs",
    "user_sessions",
    "notes",
    "task_groups",
    "task_group_tasks",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_then_downgrade_to_0001_then_upgrade_again(empty_database_url):
    migrate.upgrade(empty_database_url)
    assert {"users", "tasks", "attempts", "page_cache", "alembic_version"} <= _tables(
        empty_database_url
    )

    # 0001 is irreversible: as far down as a downgrade goes.
    migrate.downgrade(empty_database_url, "0001")
    assert "page_cache" not in _tables(empty_database_url)
    assert {"users", "tasks", "attempts"} <= _tables(empty_database_url)

    migrate.upgrade(empty_database_url)
    engine = create_engine(empty_database_url)
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()
    engine.dispose()


def test_every_reversible_revision_downgrades_and_upgrades_again(empty_database_url):
    config = migrate.alembic_config(empty_database_url, configure_logging=False)
    script = ScriptDirectory.from_config(config)
    revisions = list(reversed(list(script.walk_revisions())))
    for revision in revisions:
        command.upgrade(config, revision.revision)
        if revision.module.irreversible:
            with pytest.raises(CommandError, match=f"through {revision.revision}: irreversible"):
                command.downgrade(config, revision.down_revision or "base")
            continue
        command.downgrade(config, revision.down_revision or "base")
        command.upgrade(config, revision.revision)
    assert [r.revision for r in revisions if r.module.irreversible] == ["0001"]


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "db/alembic.ini", *args],
        env={"DATABASE_URL": url, "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )


def _contents(url: str) -> dict[str, int]:
    """Rows per table (alembic_version included)."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return {
            table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            for table in sorted(_tables(url))
        }


def test_downgrade_to_base_is_refused_and_leaves_every_table_and_row(database_url):
    libpq = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq) as conn:
        user_id = conn.execute(
            "INSERT INTO users (username, signin_key_hash) VALUES ('ada', 'x') RETURNING id"
        ).fetchone()[0]
        task_id = conn.execute(
            "INSERT INTO tasks (user_id, name) VALUES (%s, 'write') RETURNING id", (user_id,)
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO attempts (user_id, task_id, task_version) VALUES (%s, %s, 1)",
            (user_id, task_id),
        )
        conn.execute(
            "INSERT INTO page_cache (user_id, page, data_version, key, body) "
            "VALUES (%s, 'dashboard', 1, 'k', 'cached')",
            (user_id,),
        )
    before = _contents(database_url)
    assert before["users"] == before["tasks"] == before["attempts"] == 1

    result = _cli(database_url, "downgrade", "base")
    assert result.returncode != 0
    assert "refusing to downgrade through 0001: irreversible" in result.stderr
    assert "nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    # Not even the revisions above 0001 were taken down on the way.
    assert _contents(database_url) == before
    assert _cli(database_url, "current").stdout.split()[0] == migrate.head_revision()

    with pytest.raises(CommandError, match="through 0001: irreversible"):
        migrate.downgrade(database_url, "base")
    assert _contents(database_url) == before


def test_models_and_migrations_do_not_drift(database_url):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_alembic_check_command_reports_no_drift(database_url):
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "db/alembic.ini", "check"],
        env={"DATABASE_URL": database_url, "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_there_is_exactly_one_head():
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1


def test_every_person_owned_table_has_a_not_null_user_id():
    for name in PERSON_OWNED:
        column = Base.metadata.tables[name].c.user_id
        assert column.nullable is False, name


def test_usernames_are_unique_case_insensitively_in_the_database(database_url):
    libpq = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq) as conn:
        conn.execute("INSERT INTO users (username, signin_key_hash) VALUES ('Alice', 'x')")
        try:
            conn.execute("INSERT INTO users (username, signin_key_hash) VALUES ('alice', 'y')")
        except psycopg.errors.UniqueViolation:
            conn.rollback()
        else:
            raise AssertionError("a second 'alice' was accepted")


def test_scales_outside_0_to_100_are_refused_by_the_database(database_url):
    libpq = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq) as conn:
        user_id = conn.execute(
            "INSERT INTO users (username, signin_key_hash) VALUES ('bob', 'x') RETURNING id"
        ).fetchone()[0]
        task_id = conn.execute(
            "INSERT INTO tasks (user_id, name) VALUES (%s, 'write') RETURNING id", (user_id,)
        ).fetchone()[0]
        try:
            conn.execute(
                "INSERT INTO attempts (user_id, task_id, task_version, expected_relief) "
                "VALUES (%s, %s, 1, 101)",
                (user_id, task_id),
            )
        except psycopg.errors.CheckViolation as exc:
            assert "expected_relief_range" in str(exc)
        else:
            raise AssertionError("expected_relief = 101 was accepted")


def test_an_attempt_needs_a_task_of_its_own_person_and_goes_with_the_person(database_url):
    # Since 0003 attempts have no key of their own to users: the key to the person's
    # task stands for it.
    libpq = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq) as conn:
        ann, ben = (
            conn.execute(
                "INSERT INTO users (username, signin_key_hash) VALUES (%s, 'x') RETURNING id",
                (name,),
            ).fetchone()[0]
            for name in ("ann", "ben")
        )
        task_id = conn.execute(
            "INSERT INTO tasks (user_id, name) VALUES (%s, 'write') RETURNING id", (ann,)
        ).fetchone()[0]
        insert = "INSERT INTO attempts (user_id, task_id, task_version) VALUES (%s, %s, 1)"
        for stranger in (ben, ben + 1000):  # another person's, nobody's
            try:
                with conn.transaction():
                    conn.execute(insert, (stranger, task_id))
            except psycopg.errors.ForeignKeyViolation:
                pass
            else:
                raise AssertionError(f"an attempt of user {stranger} on ann's task was accepted")
        conn.execute(insert, (ann, task_id))
        conn.execute("DELETE FROM users WHERE id = %s", (ann,))
        left = conn.execute("SELECT count(*) FROM attempts WHERE task_id = %s", (task_id,))
        assert left.fetchone()[0] == 0


def test_0006_adds_notes_that_go_with_their_person_and_comes_down_again(empty_database_url):
    url = empty_database_url
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    migrate.upgrade(url, "0005")
    with psycopg.connect(libpq, autocommit=True) as conn:  # what the previous release writes
        ann, ben = (
            conn.execute(
                "INSERT INTO users (username, signin_key_hash) VALUES (%s, 'x') RETURNING id",
                (name,),
            ).fetchone()[0]
            for name in ("ann", "ben")
        )
        task_id = conn.execute(
            "INSERT INTO tasks (user_id, name) VALUES (%s, 'write') RETURNING id", (ann,)
        ).fetchone()[0]
        attempt_id = conn.execute(
            "INSERT INTO attempts (user_id, task_id, task_version) VALUES (%s, %s, 1) RETURNING id",
            (ann, task_id),
        ).fetchone()[0]
    before = _contents(url)

    migrate.upgrade(url)
    insert = "INSERT INTO notes (user_id, attempt_id, body) VALUES (%s, %s, %s)"
    with psycopg.connect(libpq, autocommit=True) as conn:
        for body in ("", "x" * 10_001):
            with pytest.raises(psycopg.errors.CheckViolation, match="ck_notes_body_length"):
                conn.execute(insert, (ann, None, body))
        conn.execute(insert, (ann, None, "x" * 10_000))
        conn.execute(insert, (ann, attempt_id, "on the attempt"))
        conn.execute(insert, (ben, None, "ben's"))
        # An attempt that goes keeps its notes, unlinked; a person who goes takes theirs.
        conn.execute("DELETE FROM attempts WHERE id = %s", (attempt_id,))
        linked = conn.execute("SELECT attempt_id FROM notes WHERE body = 'on the attempt'")
        assert linked.fetchone() == (None,)
        conn.execute("DELETE FROM users WHERE id = %s", (ann,))
        left = conn.execute("SELECT user_id, body FROM notes").fetchall()
        assert left == [(ben, "ben's")]
        conn.execute("SET enable_seqscan = off")  # a handful of rows: only ask if it can
        plan = conn.execute(
            "EXPLAIN SELECT id FROM notes WHERE user_id = 1"
            " ORDER BY created_at DESC, id DESC LIMIT 51"
        ).fetchall()
        assert "ix_notes_user_id_created_at_id" in " ".join(row[0] for row in plan)

    migrate.downgrade(url, "0005")
    assert "notes" not in _tables(url)
    after = _contents(url)
    assert after["users"] == before["users"] - 1  # ann, deleted above
    assert after["tasks"] == after["attempts"] == 0  # ann's, gone with her
    migrate.upgrade(url)
    assert "notes" in _tables(url)


def test_0008_lists_load_test_accounts_that_go_with_their_person_and_comes_down_again(
    empty_database_url,
):
    url = empty_database_url
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    migrate.upgrade(url, "0007")
    with psycopg.connect(libpq, autocommit=True) as conn:  # what the previous release writes
        ann = conn.execute(
            "INSERT INTO users (username, signin_key_hash) VALUES ('ann', 'x') RETURNING id"
        ).fetchone()[0]
    migrate.upgrade(url, "0008")
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO load_test_accounts (user_id, run, expires_at) VALUES (%s, 'r1', now())",
            (ann,),
        )
        with pytest.raises(psycopg.errors.UniqueViolation):  # one run per account
            conn.execute(
                "INSERT INTO load_test_accounts VALUES (%s, 'r2', now())",
                (ann,),
            )
        conn.execute("DELETE FROM users WHERE id = %s", (ann,))
        assert conn.execute("SELECT count(*) FROM load_test_accounts").fetchone() == (0,)
    migrate.downgrade(url, "0007")
    assert "load_test_accounts" not in _tables(url)
    migrate.upgrade(url)
    assert "load_test_accounts" in _tables(url)

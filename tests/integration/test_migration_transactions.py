"""Each migration runs in a transaction of its own, under the lock and statement timeouts.

The revisions here exist only for the test: db/migrations is copied into a temporary
folder and they are stacked on its head, then run through the project's own Alembic
config (db/migrate.alembic_config), as a deploy runs them.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy import exc

from db import migrate

MIGRATIONS = Path(migrate.__file__).with_name("migrations")
HEAD = migrate.head_revision()

REVISION = '''"""{doc}"""
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None
irreversible = False
compatible_with_previous = True


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''

# Writes what the migration saw into a table the test reads afterwards.
RECORD = """op.execute(
    "INSERT INTO migration_notes SELECT '{name}', current_setting('lock_timeout'), "
    "current_setting('statement_timeout'), "
    "(SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() "
    "AND relation = 'tasks'::regclass AND mode = 'AccessExclusiveLock')"
)"""
NOTES_TABLE = (
    'op.execute("CREATE TABLE migration_notes (name text, lock_timeout text, '
    'statement_timeout text, tasks_locks bigint)")'
)


def scripts(tmp_path: Path, *revisions: tuple[str, str]) -> Path:
    """db/migrations copied into tmp_path with ``revisions`` (upgrade, downgrade) on its head.

    They are named t1, t2, ... in order, each on top of the one before.
    """
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    down = HEAD
    for number, (upgrade, downgrade) in enumerate(revisions, 1):
        revision = f"t{number}"
        source = REVISION.format(
            doc=f"test revision {revision}",
            revision=revision,
            down=down,
            upgrade=textwrap.indent(upgrade, "    "),
            downgrade=textwrap.indent(downgrade, "    "),
        )
        (folder / "versions" / f"test_{revision}.py").write_text(source)
        down = revision
    return folder


def config(url: str, folder: Path, **attributes: object) -> Config:
    cfg = migrate.alembic_config(url, configure_logging=False, script_location=folder)
    cfg.attributes.update(attributes)
    return cfg


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq(url)) as conn:
        return conn.execute(sql).fetchall()


def revision_of(url: str) -> str:
    return query(url, "SELECT version_num FROM alembic_version")[0][0]


# As the migration template (db/migrations/script.py.mako) advises.
CONCURRENT_INDEX = (
    """with op.get_context().autocommit_block():
    op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_tasks_description")
    op.execute("CREATE INDEX CONCURRENTLY ix_tasks_description ON tasks (description)")""",
    """with op.get_context().autocommit_block():
    op.execute("DROP INDEX CONCURRENTLY ix_tasks_description")""",
)


def index_state(url: str) -> list[tuple[Any, ...]]:
    return query(
        url,
        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('ix_tasks_description')",
    )


def test_an_index_built_concurrently_in_an_autocommit_block_upgrades_and_downgrades(
    empty_database_url, tmp_path
):
    url = empty_database_url
    folder = scripts(tmp_path, CONCURRENT_INDEX)
    # From nothing: every shipped revision and the test one, in one run.
    command.upgrade(config(url, folder), "head")
    assert revision_of(url) == "t1"
    assert index_state(url) == [(True,)]

    command.downgrade(config(url, folder), HEAD)
    assert revision_of(url) == HEAD
    assert index_state(url) == []

    command.upgrade(config(url, folder), "head")
    assert index_state(url) == [(True,)]


def test_a_connection_handed_to_alembic_runs_each_migration_on_its_own_too(database_url, tmp_path):
    folder = scripts(tmp_path, CONCURRENT_INDEX)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            command.upgrade(config(database_url, folder, connection=connection), "head")
    finally:
        engine.dispose()
    assert revision_of(database_url) == "t1"
    assert index_state(database_url) == [(True,)]


def test_a_failing_migration_keeps_the_ones_before_it_committed(database_url, tmp_path):
    folder = scripts(
        tmp_path,
        (NOTES_TABLE + "\n" + RECORD.format(name="t1"), 'op.drop_table("migration_notes")'),
        ('op.execute("SELECT 1 / 0")', "pass"),
    )
    with pytest.raises(exc.DataError, match="division by zero"):
        command.upgrade(config(database_url, folder), "head")
    # t1 stays done and says so; only t2 is undone, and a rerun starts from it.
    assert revision_of(database_url) == "t1"
    assert [name for name, *_ in query(database_url, "SELECT * FROM migration_notes")] == ["t1"]


def test_a_lock_taken_by_one_migration_is_released_before_the_next_runs(database_url, tmp_path):
    folder = scripts(
        tmp_path,
        (
            NOTES_TABLE
            + '\nop.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")\n'
            + RECORD.format(name="t1"),
            'op.drop_table("migration_notes")',
        ),
        (RECORD.format(name="t2"), "pass"),
    )
    command.upgrade(config(database_url, folder), "head")
    locks = dict(query(database_url, "SELECT name, tasks_locks FROM migration_notes"))
    # The site's requests wait on tasks only while t1 runs, not until the last one ends.
    assert locks == {"t1": 1, "t2": 0}


def test_the_lock_and_statement_timeouts_apply_in_and_out_of_autocommit_blocks(
    database_url, tmp_path
):
    folder = scripts(
        tmp_path,
        (NOTES_TABLE + "\n" + RECORD.format(name="in a transaction"), "pass"),
        (
            "with op.get_context().autocommit_block():\n"
            + textwrap.indent(RECORD.format(name="autocommit"), "    "),
            "pass",
        ),
    )
    command.upgrade(config(database_url, folder), "head")
    seen = query(database_url, "SELECT name, lock_timeout, statement_timeout FROM migration_notes")
    # The defaults of db/migrations/env.py: 5s, 60s (PostgreSQL shows it as 1min).
    assert sorted(seen) == [("autocommit", "5s", "1min"), ("in a transaction", "5s", "1min")]


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        # A request in flight holds a lock on tasks: the migration gives up instead of
        # queueing every later request behind its own lock.
        ('op.add_column("tasks", sa.Column("probe", sa.Integer()))', "lock timeout"),
        ('op.execute("SELECT pg_sleep(5)")', "statement timeout"),
    ],
    ids=["lock", "statement"],
)
def test_a_migration_that_waits_too_long_fails_and_changes_nothing(
    database_url, tmp_path, statement, error
):
    folder = scripts(tmp_path, ("import sqlalchemy as sa\n" + statement, "pass"))
    short = config(database_url, folder, lock_timeout="200ms", statement_timeout="500ms")
    with psycopg.connect(libpq(database_url)) as request:
        request.execute("SELECT count(*) FROM tasks")  # its transaction stays open
        with pytest.raises(exc.OperationalError, match=f"canceling statement due to {error}"):
            command.upgrade(short, "head")
        request.commit()
    assert revision_of(database_url) == HEAD
    assert "probe" not in {
        name
        for (name,) in query(
            database_url,
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'tasks'",
        )
    }

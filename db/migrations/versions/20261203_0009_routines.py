"""routines: tasks that repeat daily or on weekdays at a time; one attempt per occurrence

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 19:30:00.000000+00:00

MIGRATIONS RUN WHILE THE PREVIOUS RELEASE IS STILL SERVING.
Keep every step compatible with the code of the release before this one, and short-locking:
- add columns nullable (or with a constant default); backfill in batches, not in one UPDATE;
- create indexes CONCURRENTLY (inside ``op.get_context().autocommit_block()``);
- add constraints NOT VALID, then VALIDATE in a later step;
- never rename or drop what the previous release still reads: expand now, contract later.
Write a downgrade that really restores the previous schema, or mark the revision
irreversible by setting ``irreversible = True`` below and raising in ``downgrade()``:
the rollback planner reads that flag.

Why: a task can be a routine. ``tasks.routine_frequency`` (``daily`` or ``weekdays``; none:
the task does not repeat), ``routine_weekdays`` (a bit per weekday, Monday = 1, Sunday =
64; every bit for ``daily``), ``routine_time`` (the local time of day, in the person's time
zone) and ``routine_since`` (when the schedule was saved: occurrences before it neither
fall due nor count as missed). When an occurrence falls due, the dashboard creates its
attempt with ``attempts.routine_occurrence`` = the occurrence's local date; the unique
index makes "one attempt per routine occurrence" true in the database, so two dashboard
loads at the same moment cannot both create it (``INSERT ... ON CONFLICT DO NOTHING``).

Expand only: five nullable columns without default (metadata-only, no rewrite), one check
added NOT VALID (new rows are checked at once; the previous release never writes these
columns, so none of its writes can break it) and validated after the index is built (a
scan that lets reads and writes go on), and a partial unique index built CONCURRENTLY
that holds only routine attempts (none yet). The previous release neither reads nor
writes the columns: it shows a routine as an ordinary task and its attempts as ordinary
attempts.

Downgrade: drops the index, the check and the columns. Schedules are lost (tasks stay,
not repeating), attempts made for routine occurrences stay as ordinary attempts.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
irreversible = False
# Expand only: code written for 0008 neither reads nor writes what this adds.
compatible_with_previous = True

TASK_COLUMNS = {
    "routine_frequency": "TEXT",
    "routine_weekdays": "SMALLINT",
    "routine_time": "TIME WITHOUT TIME ZONE",
    "routine_since": "TIMESTAMPTZ",
}
CHECK = "ck_tasks_routine_valid"
CHECK_DEFINITION = (
    "routine_frequency IS NULL OR (routine_frequency IN ('daily', 'weekdays')"
    " AND routine_weekdays BETWEEN 1 AND 127"
    " AND routine_time IS NOT NULL AND routine_since IS NOT NULL)"
)
INDEX = "uq_attempts_task_id_routine_occurrence"
INDEX_DEFINITION = "attempts (task_id, routine_occurrence) WHERE routine_occurrence IS NOT NULL"


def upgrade() -> None:
    # Each step can run again after a failure part way through (squawk: prefer-robust-stmts).
    for column, kind in TASK_COLUMNS.items():
        op.execute(f"ALTER TABLE tasks ADD COLUMN IF NOT EXISTS {column} {kind}")
    op.execute("ALTER TABLE attempts ADD COLUMN IF NOT EXISTS routine_occurrence DATE")
    # Only this revision's own check, left by an earlier run that failed later on.
    op.execute(
        f"-- squawk-ignore ban-drop-constraint\nALTER TABLE tasks DROP CONSTRAINT IF EXISTS {CHECK}"
    )
    op.execute(f"ALTER TABLE tasks ADD CONSTRAINT {CHECK} CHECK ({CHECK_DEFINITION}) NOT VALID")
    with op.get_context().autocommit_block():
        # An interrupted build leaves an invalid index of that name: build it again.
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        op.execute(f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON {INDEX_DEFINITION}")
    # In the transaction that follows the block: a scan that lets reads and writes go on.
    op.execute(f"ALTER TABLE tasks VALIDATE CONSTRAINT {CHECK}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
    op.execute(f"ALTER TABLE tasks DROP CONSTRAINT {CHECK}")
    op.drop_column("attempts", "routine_occurrence")
    for column in reversed(TASK_COLUMNS):
        op.drop_column("tasks", column)

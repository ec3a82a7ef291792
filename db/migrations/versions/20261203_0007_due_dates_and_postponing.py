"""attempts: a due date, and postponing (when, until when) with a partial index for it

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 16:00:00.000000+00:00

MIGRATIONS RUN WHILE THE PREVIOUS RELEASE IS STILL SERVING.
Keep every step compatible with the code of the release before this one, and short-locking:
- add columns nullable (or with a constant default); backfill in batches, not in one UPDATE;
- create indexes CONCURRENTLY (inside ``op.get_context().autocommit_block()``);
- add constraints NOT VALID, then VALIDATE in a later step;
- never rename or drop what the previous release still reads: expand now, contract later.
Write a downgrade that really restores the previous schema, or mark the revision
irreversible by setting ``irreversible = True`` below and raising in ``downgrade()``:
the rollback planner reads that flag.

Why: an open attempt can have a due date (overdue ones come first on the dashboard), and
can be postponed with a reason, optionally until a given time. ``postponed_at`` says that
(and since when) an attempt is postponed, ``postponed_until`` until when; the reasons are
kept as the attempt's history in ``extra`` (``postponements``), like its pauses. The history
page's "Postponed" filter walks the partial index instead of every attempt of the person.

Expand only: three nullable columns without default (metadata-only, no rewrite) and one
index built CONCURRENTLY. Postponing is not a status: the previous release shows a
postponed attempt as an ordinary open one and can start, complete or cancel it (the new
code ignores the postponement of an attempt that is no longer open). Its queries are
untouched by the new index.

Downgrade: drops the index and the columns. Due dates and whether an attempt is postponed
now are lost; the postponements' reasons stay in ``extra``.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
irreversible = False
# Expand only: code written for 0006 neither reads nor writes what this adds.
compatible_with_previous = True

COLUMNS = ("due_at", "postponed_at", "postponed_until")
INDEX = "ix_attempts_user_id_postponed"
INDEX_DEFINITION = "attempts (user_id, initialized_at, id) WHERE postponed_at IS NOT NULL"


def upgrade() -> None:
    # Each step can run again after a failure part way through (squawk: prefer-robust-stmts).
    for column in COLUMNS:
        op.execute(f"ALTER TABLE attempts ADD COLUMN IF NOT EXISTS {column} TIMESTAMPTZ")
    with op.get_context().autocommit_block():
        # An interrupted build leaves an invalid index of that name: build it again.
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON {INDEX_DEFINITION}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
    for column in reversed(COLUMNS):
        op.drop_column("attempts", column)

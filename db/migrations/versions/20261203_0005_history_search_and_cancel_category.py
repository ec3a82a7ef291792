"""history: a cancellation's category, and indexes for the history page and its search

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 13:00:00.000000+00:00

MIGRATIONS RUN WHILE THE PREVIOUS RELEASE IS STILL SERVING.
Keep every step compatible with the code of the release before this one, and short-locking:
- add columns nullable (or with a constant default); backfill in batches, not in one UPDATE;
- create indexes CONCURRENTLY (inside ``op.get_context().autocommit_block()``);
- add constraints NOT VALID, then VALIDATE in a later step;
- never rename or drop what the previous release still reads: expand now, contract later.
Write a downgrade that really restores the previous schema, or mark the revision
irreversible by setting ``irreversible = True`` below and raising in ``downgrade()``:
the rollback planner reads that flag.

Why: the history page lists every attempt of a person newest first, a page at a time
without OFFSET (keyset on ``(initialized_at, id)``), and searches the words of attempts
(description, notes, cancel reason) and of their tasks (name, description) with full-text
search. Cancelling now records a category (the old app's) besides the free-text reason.

Expand only: a nullable column without default (metadata-only), its length check added
NOT VALID (new rows are checked at once) and validated after the column's transaction
has committed (a scan that lets reads and writes go on), and three indexes built
CONCURRENTLY. The previous
release neither reads nor writes the column (its cancellations have no category) and its
queries are untouched by new indexes.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
irreversible = False
# Expand only: code written for 0004 neither reads nor writes what this adds.
compatible_with_previous = True

CHECK = "ck_attempts_cancel_category_length"
# The expressions must match db.models.search_vector's exactly, or queries miss the index.
INDEXES = {
    "ix_attempts_user_id_initialized_at_id": "attempts (user_id, initialized_at, id)",
    "ix_attempts_search": (
        "attempts USING gin (to_tsvector('simple'::regconfig, translate("
        "(((description || ' ') || notes) || ' ') || coalesce(cancel_reason, ''), '<>', '  ')))"
    ),
    "ix_tasks_search": (
        "tasks USING gin (to_tsvector('simple'::regconfig,"
        " translate((name || ' ') || description, '<>', '  ')))"
    ),
}


def upgrade() -> None:
    # Each step can run again after a failure part way through (squawk: prefer-robust-stmts).
    op.execute("ALTER TABLE attempts ADD COLUMN IF NOT EXISTS cancel_category TEXT")
    # Only this revision's own check, left by an earlier run that failed later on.
    op.execute(
        "-- squawk-ignore ban-drop-constraint\n"
        f"ALTER TABLE attempts DROP CONSTRAINT IF EXISTS {CHECK}"
    )
    op.execute(
        f"ALTER TABLE attempts ADD CONSTRAINT {CHECK}"
        " CHECK (char_length(cancel_category) <= 60) NOT VALID"
    )
    with op.get_context().autocommit_block():
        for name, definition in INDEXES.items():
            # An interrupted build leaves an invalid index of that name: build it again.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {definition}")
    # In the transaction that follows the block: a scan that lets reads and writes go on.
    op.execute(f"ALTER TABLE attempts VALIDATE CONSTRAINT {CHECK}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute(f"ALTER TABLE attempts DROP CONSTRAINT {CHECK}")
    op.drop_column("attempts", "cancel_category")

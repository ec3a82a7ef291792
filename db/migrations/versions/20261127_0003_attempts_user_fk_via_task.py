"""attempts: drop the foreign key to users, implied by the one to the person's task

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 12:10:00.000000+00:00

MIGRATIONS RUN WHILE THE PREVIOUS RELEASE IS STILL SERVING.
Keep every step compatible with the code of the release before this one, and short-locking:
- add columns nullable (or with a constant default); backfill in batches, not in one UPDATE;
- create indexes CONCURRENTLY (inside ``op.get_context().autocommit_block()``);
- add constraints NOT VALID, then VALIDATE in a later step;
- never rename or drop what the previous release still reads: expand now, contract later.
Write a downgrade that really restores the previous schema, or mark the revision
irreversible by setting ``irreversible = True`` below and raising in ``downgrade()``:
the rollback planner reads that flag.

Why: every attempt row inserted runs one referential-integrity query per foreign key.
``attempts (user_id, task_id) → tasks (user_id, id)`` already proves that the person
exists (``tasks.user_id → users`` with ``ON DELETE CASCADE``; both columns are NOT NULL,
so the composite key is always checked), and deleting a person still deletes their
attempts, through their tasks. The second key, ``attempts.user_id → users``, only cost
a query per row: about 13 % of PostgreSQL's time in a bulk COPY of attempts (the legacy
import of issue 4).

Dropping a constraint that nothing relies on loosens nothing the previous release could
notice: it never inserts an attempt without its task, and its deletes cascade the same
way. So this is compatible with the previous release (a rollback can be code-only) and
takes only a brief lock (catalog change, no scan). The downgrade adds the key back
NOT VALID and validates it in the same transaction (the migration environment runs each
revision in one): writes to attempts wait for that one scan, about a second per million
attempts.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
irreversible = False
# Only a redundant constraint goes: code written for 0002 works unchanged on 0003.
compatible_with_previous = True

CONSTRAINT = "fk_attempts_user_id_users"


def upgrade() -> None:
    # squawk warns on any dropped constraint (a guarantee clients may assume); this one
    # guarantees nothing the key to tasks does not (see above).
    op.execute(
        f"-- squawk-ignore ban-drop-constraint\nALTER TABLE attempts DROP CONSTRAINT {CONSTRAINT}"
    )


def downgrade() -> None:
    op.create_foreign_key(
        CONSTRAINT,
        "attempts",
        "users",
        ["user_id"],
        ["id"],
        ondelete="CASCADE",
        postgresql_not_valid=True,
    )
    # Every row passes (the key to tasks guarantees it); the check is one scan of
    # attempts joined to users, during which writes to attempts wait.
    op.execute(f"ALTER TABLE attempts VALIDATE CONSTRAINT {CONSTRAINT}")

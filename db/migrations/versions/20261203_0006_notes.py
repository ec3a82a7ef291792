"""notes: a person's timestamped free-text notes, some on an attempt

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:00:00.000000+00:00

MIGRATIONS RUN WHILE THE PREVIOUS RELEASE IS STILL SERVING.
Keep every step compatible with the code of the release before this one, and short-locking:
- add columns nullable (or with a constant default); backfill in batches, not in one UPDATE;
- create indexes CONCURRENTLY (inside ``op.get_context().autocommit_block()``);
- add constraints NOT VALID, then VALIDATE in a later step;
- never rename or drop what the previous release still reads: expand now, contract later.
Write a downgrade that really restores the previous schema, or mark the revision
irreversible by setting ``irreversible = True`` below and raising in ``downgrade()``:
the rollback planner reads that flag.

Why: the old app kept free-text notes (its Notes page, and notes written while a task was
running); the Notes page lists them newest first a page at a time (keyset on
``(created_at, id)``, hence the index), and an attempt's page shows the notes written on it.

Expand only: a new table and its indexes, built in the same transaction as the table (it
is empty and no one else can see it yet, so CONCURRENTLY would buy nothing). The two
foreign keys lock ``users`` and ``attempts`` against writes (SHARE ROW EXCLUSIVE) only
until this short transaction commits. The previous release never reads the table; deleting
a person (or an attempt) still works for it, and takes that person's notes along (or
unlinks them from the attempt).

No trigger bumps ``users.data_version``: no cached page (dashboard, analytics) shows notes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
irreversible = False
# Expand only: code written for 0005 neither reads nor writes the new table.
compatible_with_previous = True


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt_id", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "char_length(body) BETWEEN 1 AND 10000", name=op.f("ck_notes_body_length")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notes_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["attempt_id"],
            ["attempts.id"],
            name=op.f("fk_notes_attempt_id_attempts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes")),
    )
    op.create_index("ix_notes_user_id_created_at_id", "notes", ["user_id", "created_at", "id"])
    op.create_index("ix_notes_attempt_id", "notes", ["attempt_id"])


def downgrade() -> None:
    op.drop_table("notes")  # its indexes go with it

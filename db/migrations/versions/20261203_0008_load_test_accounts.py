"""load_test_accounts: the accounts a load test on the live site made, and their expiry

Revision ID: 0008
Revises: 0007
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

Why: ``invoke loadtest --host`` makes its accounts on the server (``flask load-accounts``)
and must remove exactly those afterwards, also after a run that died; a name pattern could
match a person's own account. Each account made is listed here with its run and an expiry
the nightly clean-up honours; the sign-up cap does not count them.

Expand only: a new table (empty, seen by no one yet: its indexes are built with it). The
foreign key locks ``users`` against writes only until this short transaction commits. The
previous release never reads the table; deleting a person takes their row along.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
irreversible = False
# Expand only: code written for 0007 neither reads nor writes the new table.
compatible_with_previous = True


def upgrade() -> None:
    op.create_table(
        "load_test_accounts",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("run", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_load_test_accounts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_load_test_accounts")),
    )
    op.create_index("ix_load_test_accounts_run", "load_test_accounts", ["run"])
    op.create_index("ix_load_test_accounts_expires_at", "load_test_accounts", ["expires_at"])


def downgrade() -> None:
    op.drop_table("load_test_accounts")

"""page cache: a per-person data version bumped by triggers, and cached page figures

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:55:00.000000+00:00

MIGRATIONS RUN WHILE THE PREVIOUS RELEASE IS STILL SERVING.
Keep every step compatible with the code of the release before this one, and short-locking:
- add columns nullable (or with a constant default); backfill in batches, not in one UPDATE;
- create indexes CONCURRENTLY (inside ``op.get_context().autocommit_block()``);
- add constraints NOT VALID, then VALIDATE in a later step;
- never rename or drop what the previous release still reads: expand now, contract later.
Write a downgrade that really restores the previous schema, or mark the revision
irreversible by setting ``irreversible = True`` below and raising in ``downgrade()``:
the rollback planner reads that flag.

Expand only: a new column with a constant default (metadata-only since PostgreSQL 11, no
rewrite), a new table, and statement-level triggers. The previous release neither reads
nor writes any of it; its writes to tasks and attempts bump the version like the new
release's do. A trigger runs once per statement, not per row, with the changed rows in a
transition table, so the legacy importer's bulk COPY pays one small UPDATE per COPY.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
irreversible = False
# Expand only: the previous release's inserts into users get the default data_version.
compatible_with_previous = True

# The tables whose changes make a person's cached pages out of date.
VERSIONED_TABLES = ("tasks", "attempts")
EVENTS = ("insert", "update", "delete")

BUMP_FUNCTION = """
CREATE FUNCTION bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE users SET data_version = data_version + 1
        WHERE id IN (SELECT user_id FROM new_rows);
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE users SET data_version = data_version + 1
        WHERE id IN (SELECT user_id FROM new_rows UNION SELECT user_id FROM old_rows);
    ELSE
        UPDATE users SET data_version = data_version + 1
        WHERE id IN (SELECT user_id FROM old_rows);
    END IF;
    RETURN NULL;
END
$$
"""


def _transition_tables(event: str) -> str:
    if event == "insert":
        return "NEW TABLE AS new_rows"
    if event == "update":
        return "OLD TABLE AS old_rows NEW TABLE AS new_rows"
    return "OLD TABLE AS old_rows"


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("data_version", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.create_table(
        "page_cache",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("page", sa.Text(), nullable=False),
        sa.Column("data_version", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_page_cache_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "page", name=op.f("pk_page_cache")),
    )
    op.execute(BUMP_FUNCTION)
    for table in VERSIONED_TABLES:
        for event in EVENTS:
            op.execute(
                f"CREATE TRIGGER {table}_bump_data_version_{event} AFTER {event.upper()} "
                f"ON {table} REFERENCING {_transition_tables(event)} "
                "FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
            )


def downgrade() -> None:
    for table in VERSIONED_TABLES:
        for event in EVENTS:
            op.execute(f"DROP TRIGGER {table}_bump_data_version_{event} ON {table}")
    op.execute("DROP FUNCTION bump_data_version()")
    op.drop_table("page_cache")
    op.drop_column("users", "data_version")

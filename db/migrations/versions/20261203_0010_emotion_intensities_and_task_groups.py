"""emotion intensities (0–100) on attempt_emotions; task groups and their tasks

Revision ID: 0010
Revises: 0009
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

Why: each emotion chosen before or after an attempt gets an intensity (0–100), and
analytics compares them per emotion; tasks can belong to groups (the old app's "jobs"),
and the dashboard, history and analytics can be filtered by group.

Expand only:
- ``attempt_emotions.intensity``: a nullable column without default (metadata-only), and
  its 0–100 check added NOT VALID (no scan under the lock). PostgreSQL enforces it on every
  write from now on, and every row already there has no intensity (the column is new), so
  it holds for all rows; a later migration may VALIDATE it. The previous release never
  writes the column, so its rows (NULL) always pass.
- ``task_groups`` and ``task_group_tasks``: new tables with their indexes, built with the
  tables (empty, and invisible to anyone else until this commits). Their foreign keys lock
  ``users`` and ``tasks`` against writes only until this short transaction commits. The
  previous release never reads them; deleting a person or a task takes their rows along.
- Triggers: the analytics page now reads emotions and the dashboard and analytics read
  groups, so their changes bump ``users.data_version`` like changes to tasks and attempts
  do (migrations 0002 and 0004). An emotion of an attempt that is open leaves the history
  version alone, like the attempt itself would. Statement-level, as the others: a COPY of
  the legacy importer pays one small UPDATE per statement, the previous release's writes
  to attempt_emotions included.

Downgrade: drops the triggers, their function, the tables and the column. Intensities and
groups are lost (the previous release never knew them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
irreversible = False
# Expand only: code written for 0009 neither reads nor writes what this adds.
compatible_with_previous = True

CHECK = "ck_attempt_emotions_intensity_range"
EVENTS = ("insert", "update", "delete")
GROUP_TABLES = ("task_groups", "task_group_tasks")
OPEN_STATUSES = "('initialized', 'started', 'paused')"

_ROWS = {
    "INSERT": "SELECT user_id, attempt_id FROM new_rows",
    "UPDATE": (
        "SELECT user_id, attempt_id FROM new_rows"
        " UNION ALL SELECT user_id, attempt_id FROM old_rows"
    ),
    "DELETE": "SELECT user_id, attempt_id FROM old_rows",
}


def _bump(event: str) -> str:
    # An emotion's attempt gone (deleted in the same statement) counts as history.
    return f"""
        UPDATE users u SET data_version = u.data_version + 1,
                           history_version = u.history_version + c.history
        FROM (SELECT r.user_id,
                     max(CASE WHEN a.status IN {OPEN_STATUSES} THEN 0 ELSE 1 END) AS history
              FROM ({_ROWS[event]}) r
              LEFT JOIN attempts a ON a.id = r.attempt_id AND a.user_id = r.user_id
              GROUP BY r.user_id) c
        WHERE u.id = c.user_id;"""


EMOTIONS_BUMP_FUNCTION = f"""
CREATE OR REPLACE FUNCTION bump_data_version_by_attempt() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN{_bump("INSERT")}
    ELSIF TG_OP = 'UPDATE' THEN{_bump("UPDATE")}
    ELSE{_bump("DELETE")}
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


def _create_trigger(table: str, event: str, function: str) -> None:
    op.execute(f"DROP TRIGGER IF EXISTS {table}_bump_data_version_{event} ON {table}")
    op.execute(
        f"CREATE TRIGGER {table}_bump_data_version_{event} AFTER {event.upper()} "
        f"ON {table} REFERENCING {_transition_tables(event)} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
    )


def upgrade() -> None:
    op.execute("ALTER TABLE attempt_emotions ADD COLUMN IF NOT EXISTS intensity SMALLINT")
    op.execute(
        f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_constraint WHERE conname = '{CHECK}') THEN
                ALTER TABLE attempt_emotions ADD CONSTRAINT {CHECK}
                    CHECK (intensity BETWEEN 0 AND 100) NOT VALID;
            END IF;
        END $$"""
    )
    op.create_table(
        "task_groups",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("legacy_id", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "char_length(name) BETWEEN 1 AND 100", name=op.f("ck_task_groups_name_length")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_task_groups_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_groups")),
        sa.UniqueConstraint("user_id", "id", name=op.f("uq_task_groups_user_id_id")),
        sa.UniqueConstraint("user_id", "legacy_id", name=op.f("uq_task_groups_user_id_legacy_id")),
        if_not_exists=True,
    )
    op.create_index(
        "uq_task_groups_user_id_lower_name",
        "task_groups",
        ["user_id", sa.text("lower(name)")],
        unique=True,
        if_not_exists=True,
    )
    op.create_table(
        "task_group_tasks",
        sa.Column("group_id", sa.BigInteger(), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id", "group_id"],
            ["task_groups.user_id", "task_groups.id"],
            name=op.f("fk_task_group_tasks_user_id_group_id_task_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id", "task_id"],
            ["tasks.user_id", "tasks.id"],
            name=op.f("fk_task_group_tasks_user_id_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "task_id", name=op.f("pk_task_group_tasks")),
        if_not_exists=True,
    )
    op.create_index(
        "ix_task_group_tasks_task_id", "task_group_tasks", ["task_id"], if_not_exists=True
    )
    op.execute(EMOTIONS_BUMP_FUNCTION)
    for event in EVENTS:
        _create_trigger("attempt_emotions", event, "bump_data_version_by_attempt")
        for table in GROUP_TABLES:
            _create_trigger(table, event, "bump_data_version")


def downgrade() -> None:
    for event in EVENTS:
        op.execute(
            f"DROP TRIGGER IF EXISTS attempt_emotions_bump_data_version_{event} ON attempt_emotions"
        )
    op.execute("DROP FUNCTION IF EXISTS bump_data_version_by_attempt()")
    op.drop_table("task_group_tasks")  # its triggers and indexes go with it
    op.drop_table("task_groups")
    op.execute(f"ALTER TABLE attempt_emotions DROP CONSTRAINT IF EXISTS {CHECK}")
    op.drop_column("attempt_emotions", "intensity")

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
  it holds for all rows; migration 0013 validates it. The previous release never
  writes the column, so its rows (NULL) always pass.
- ``task_groups`` and ``task_group_tasks``: new tables with their indexes, built with the
  tables (empty, and invisible to anyone else until this commits). Their foreign keys lock
  ``users`` and ``tasks`` against writes only until this short transaction commits. The
  previous release never reads them; deleting a person or a task takes their rows along.
- Triggers: the analytics page now reads attempt emotions and emotion names, and the
  dashboard and analytics read groups, so their changes bump ``users.data_version`` like
  changes to tasks and attempts do (migrations 0002 and 0004), through the same function
  ``bump_data_version()`` (``CREATE OR REPLACE``: the existing triggers stay, no table is
  locked for it) with a branch for attempt emotions: one of an open attempt leaves the
  history version alone, like the attempt itself would. Emotions: renaming or deleting
  only (a new one is on no attempt). Statement-level, as the others: a COPY of the legacy
  importer pays one small UPDATE per statement, the previous release's writes to
  attempt_emotions included.

Downgrade: drops the new triggers, puts back 0004's function body, drops the tables and
the column. Intensities and
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


def _rows(event: str, status: str, *, through_attempt: bool = False) -> str:
    """The changed rows as (user_id, status) for one event: ``status`` is a column (or
    literal) of the rows; ``through_attempt``: the status of the attempt each row is of
    (attempt emotions), or none when that attempt is gone (deleted in the same statement)."""
    tables = {"INSERT": ("new_rows",), "UPDATE": ("new_rows", "old_rows"), "DELETE": ("old_rows",)}
    parts = []
    for table in tables[event]:
        if through_attempt:
            parts.append(
                f"SELECT r.user_id, a.status FROM {table} r"
                " LEFT JOIN attempts a ON a.id = r.attempt_id AND a.user_id = r.user_id"
            )
        else:
            parts.append(f"SELECT user_id, {status} AS status FROM {table}")
    return " UNION ALL ".join(parts)


def _bump(rows: str) -> str:
    # A change touching only open attempts leaves the history version alone (0004); a
    # row whose attempt is gone (status NULL) counts as history.
    return f"""
        UPDATE users u SET data_version = u.data_version + 1,
                           history_version = u.history_version + c.history
        FROM (SELECT user_id,
                     max(CASE WHEN status IN {OPEN_STATUSES} THEN 0 ELSE 1 END) AS history
              FROM ({rows}) r GROUP BY user_id) c
        WHERE u.id = c.user_id;"""


def _branches(**options: object) -> str:
    status = str(options.get("status", "status"))
    through = bool(options.get("through_attempt", False))
    return f"""
        IF TG_OP = 'INSERT' THEN{_bump(_rows("INSERT", status, through_attempt=through))}
        ELSIF TG_OP = 'UPDATE' THEN{_bump(_rows("UPDATE", status, through_attempt=through))}
        ELSE{_bump(_rows("DELETE", status, through_attempt=through))}
        END IF;"""


def _bump_function(with_emotions: bool) -> str:
    """``bump_data_version()``: 0004's body, and (``with_emotions``) a branch for attempt
    emotions, which count as history unless their attempt is open. Each branch names only
    the columns its tables have (PL/pgSQL parses a statement when it first runs it)."""
    emotions = (
        f"""
    ELSIF TG_TABLE_NAME = 'attempt_emotions' THEN{_branches(through_attempt=True)}"""
        if with_emotions
        else ""
    )
    return f"""
CREATE OR REPLACE FUNCTION bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'attempts' THEN{_branches()}{emotions}
    ELSE{_branches(status="'history'")}
    END IF;
    RETURN NULL;
END
$$
"""


# Tables whose changes now make cached pages stale, and on which events: a new emotion is
# on no attempt yet, so only renaming or deleting one matters.
VERSIONED = {
    "attempt_emotions": EVENTS,
    "task_groups": EVENTS,
    "task_group_tasks": EVENTS,
    "emotions": ("update", "delete"),
}


def _transition_tables(event: str) -> str:
    if event == "insert":
        return "NEW TABLE AS new_rows"
    if event == "update":
        return "OLD TABLE AS old_rows NEW TABLE AS new_rows"
    return "OLD TABLE AS old_rows"


def _create_trigger(table: str, event: str) -> None:
    op.execute(f"DROP TRIGGER IF EXISTS {table}_bump_data_version_{event} ON {table}")
    op.execute(
        f"CREATE TRIGGER {table}_bump_data_version_{event} AFTER {event.upper()} "
        f"ON {table} REFERENCING {_transition_tables(event)} "
        "FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
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
    op.execute(_bump_function(with_emotions=True))
    for table, events in VERSIONED.items():
        for event in events:
            _create_trigger(table, event)


def downgrade() -> None:
    for table in ("attempt_emotions", "emotions"):
        for event in VERSIONED[table]:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_bump_data_version_{event} ON {table}")
    op.execute(_bump_function(with_emotions=False))  # 0004's body again
    op.drop_table("task_group_tasks")  # its triggers and indexes go with it
    op.drop_table("task_groups")
    op.execute(f"ALTER TABLE attempt_emotions DROP CONSTRAINT IF EXISTS {CHECK}")
    op.drop_column("attempt_emotions", "intensity")

"""history version: a second per-person version, left alone by changes to open attempts only

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 16:45:00.000000+00:00

MIGRATIONS RUN WHILE THE PREVIOUS RELEASE IS STILL SERVING.
Keep every step compatible with the code of the release before this one, and short-locking:
- add columns nullable (or with a constant default); backfill in batches, not in one UPDATE;
- create indexes CONCURRENTLY (inside ``op.get_context().autocommit_block()``);
- add constraints NOT VALID, then VALIDATE in a later step;
- never rename or drop what the previous release still reads: expand now, contract later.
Write a downgrade that really restores the previous schema, or mark the revision
irreversible by setting ``irreversible = True`` below and raising in ``downgrade()``:
the rollback planner reads that flag.

Why: ``users.data_version`` changes with every write, so after initializing or starting an
attempt the dashboard was computed afresh, although only its open attempts had changed:
its task list, per-task means, recent attempts and daily totals read completed history
only. ``users.history_version`` is bumped like ``data_version`` by every change, except one
that touches open attempts only (initialized, started or paused before and after: a new
attempt, a start, a pause). A stored dashboard computed at the current history version
keeps everything but its open attempts (``service.page_cache``).

Expand only: two columns with a constant default or none (metadata-only, no rewrite) and
a new body for the trigger function of 0002 (``CREATE OR REPLACE``: the triggers stay, so
no table is locked). The previous release reads neither column; its writes bump both
versions through the same triggers; its page-cache rows have no history version and are
never reused in part.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
irreversible = False
# Expand only: code written for 0003 neither reads nor writes the new columns.
compatible_with_previous = True

OPEN_STATUSES = "('initialized', 'started', 'paused')"

# One UPDATE of users per statement (the triggers are statement-level), whatever the number of
# rows or people: the changed rows are grouped by person first. A tasks change always counts
# as history (names, estimates and archiving show in the task list and the means). Each
# branch names only the transition tables its event has (PL/pgSQL parses a statement when it
# first runs it, separately for each table the function is a trigger of).
_ROWS = {
    "INSERT": "SELECT user_id, {status} AS status FROM new_rows",
    "UPDATE": (
        "SELECT user_id, {status} AS status FROM new_rows"
        " UNION ALL SELECT user_id, {status} AS status FROM old_rows"
    ),
    "DELETE": "SELECT user_id, {status} AS status FROM old_rows",
}


def _bump(event: str, status: str) -> str:
    rows = _ROWS[event].format(status=status)
    return f"""
        UPDATE users u SET data_version = u.data_version + 1,
                           history_version = u.history_version + c.history
        FROM (SELECT user_id,
                     max(CASE WHEN status IN {OPEN_STATUSES} THEN 0 ELSE 1 END) AS history
              FROM ({rows}) r GROUP BY user_id) c
        WHERE u.id = c.user_id;"""


BUMP_FUNCTION = f"""
CREATE OR REPLACE FUNCTION bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'attempts' THEN
        IF TG_OP = 'INSERT' THEN{_bump("INSERT", "status")}
        ELSIF TG_OP = 'UPDATE' THEN{_bump("UPDATE", "status")}
        ELSE{_bump("DELETE", "status")}
        END IF;
    ELSIF TG_OP = 'INSERT' THEN{_bump("INSERT", "'history'")}
    ELSIF TG_OP = 'UPDATE' THEN{_bump("UPDATE", "'history'")}
    ELSE{_bump("DELETE", "'history'")}
    END IF;
    RETURN NULL;
END
$$
"""

# The body 0002 created, restored by the downgrade.
PREVIOUS_BUMP_FUNCTION = """
CREATE OR REPLACE FUNCTION bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
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


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("history_version", sa.BigInteger(), server_default="0", nullable=False),
    )
    # No default: rows stored before this revision (or by the previous release) have none,
    # so they are never taken as current for their history.
    op.add_column("page_cache", sa.Column("history_version", sa.BigInteger(), nullable=True))
    op.execute(BUMP_FUNCTION)


def downgrade() -> None:
    op.execute(PREVIOUS_BUMP_FUNCTION)
    op.drop_column("page_cache", "history_version")
    op.drop_column("users", "history_version")

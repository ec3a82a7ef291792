"""page_cache.body compressed with lz4 where the server has it

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 11:40:00.000000+00:00

MIGRATIONS RUN WHILE THE PREVIOUS RELEASE IS STILL SERVING.
Keep every step compatible with the code of the release before this one, and short-locking:
- add columns nullable (or with a constant default); backfill in batches, not in one UPDATE;
- create indexes CONCURRENTLY (inside ``op.get_context().autocommit_block()``);
- never rename or drop what the previous release still reads: expand now, contract later.
Write a downgrade that really restores the previous schema, or mark the revision
irreversible by setting ``irreversible = True`` below and raising in ``downgrade()``:
the rollback planner reads that flag.

Why: a stored page (``service.page_cache``) is a whole dashboard or analytics page, tens
of kilobytes, written again after every change of the person's data. PostgreSQL compresses
such values with pglz by default, and that upsert was the costliest statement of the load
test's mix on the database (0.40 ms of the server's time per call; about a third of all its
statement time in a step ramp); with lz4 it took 0.17-0.18 ms
(``tests/load/profile_requests.py``, pg_stat_statements, 2026-12-04).

Only the column's setting changes (catalog only: no rewrite, no scan; the lock is held
for an instant, and ``lock_timeout`` bounds the wait for it). Values already stored stay
pglz until their row is written again; PostgreSQL reads both. A server built without lz4
(it lists only pglz for ``default_toast_compression``) keeps pglz: nothing changes there.
The previous release reads and writes the column as before.

Downgrade: the column's compression back to the server's default (pglz); values stored
with lz4 stay readable (PostgreSQL keeps the method with each value).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
irreversible = False
# Storage only: code written for 0010 reads and writes the column unchanged.
compatible_with_previous = True


def upgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
          IF EXISTS (SELECT FROM pg_settings WHERE name = 'default_toast_compression'
                     AND 'lz4' = ANY (enumvals)) THEN
            ALTER TABLE page_cache ALTER COLUMN body SET COMPRESSION lz4;
          END IF;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE page_cache ALTER COLUMN body SET COMPRESSION DEFAULT")

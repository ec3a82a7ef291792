"""page_cache is an unlogged table: a cache needs no write-ahead log

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 15:10:00.000000+00:00

MIGRATIONS RUN WHILE THE PREVIOUS RELEASE IS STILL SERVING.
Keep every step compatible with the code of the release before this one, and short-locking:
- add columns nullable (or with a constant default); backfill in batches, not in one UPDATE;
- create indexes CONCURRENTLY (inside ``op.get_context().autocommit_block()``);
- never rename or drop what the previous release still reads: expand now, contract later.
Write a downgrade that really restores the previous schema, or mark the revision
irreversible by setting ``irreversible = True`` below and raising in ``downgrade()``:
the rollback planner reads that flag.

Why: a stored page (``service.page_cache``) is written again after every change of the
person's data, by the request that shows the page next. As a logged table, each such write
put the whole page (tens of kilobytes) into PostgreSQL's write-ahead log and made that
request wait for the log to reach the disk at its commit, for data that can always be
computed again. Unlogged, the write skips the log and its flush: through nginx at
saturation, 3.8-5.9 % less CPU per request on the machine and 4.7-7.0 % more requests per
second, in two alternated pairs of runs (docs/benchmarks.md, 2026-12-04).

What unlogged costs, for a cache nothing: after a crash of PostgreSQL (not a clean restart)
the table comes back empty, and standbys and file-level base backups do not carry its rows;
every page is then computed afresh on its next view, which the cache's versions make safe
(a row that is missing is a miss, never a stale page). ``pg_dump`` still dumps the rows.

Locks: ``SET UNLOGGED`` rewrites the table under an ACCESS EXCLUSIVE lock. The table is
emptied first, in the same transaction, so the rewrite copies nothing and the lock is held
for an instant (``lock_timeout`` bounds the wait for it). Emptying loses nothing a deploy
keeps: a stored page's key names the release that computed it, so the new release would
not use the old pages anyway; the previous release, still serving, recomputes the pages
it is asked for and stores them again.

Downgrade: emptied and made logged again, the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
irreversible = False
# Storage only: code written for 0011 reads and writes the table unchanged.
compatible_with_previous = True


def upgrade() -> None:
    op.execute("TRUNCATE page_cache")
    op.execute("ALTER TABLE page_cache SET UNLOGGED")


def downgrade() -> None:
    op.execute("TRUNCATE page_cache")
    op.execute("ALTER TABLE page_cache SET LOGGED")

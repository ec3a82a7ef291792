"""the 0–100 check on emotion intensities covers every row: validated

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 14:00:00.000000+00:00

MIGRATIONS RUN WHILE THE PREVIOUS RELEASE IS STILL SERVING.
Keep every step compatible with the code of the release before this one, and short-locking:
- add columns nullable (or with a constant default); backfill in batches, not in one UPDATE;
- create indexes CONCURRENTLY inside ``with op.get_context().autocommit_block():`` (it
  commits what this migration did before it); a failed build leaves an INVALID index, so
  ``DROP INDEX CONCURRENTLY IF EXISTS`` it first;
- never rename or drop what the previous release still reads: expand now, contract later.
Each migration runs in a transaction of its own, with lock_timeout 5s and
statement_timeout 60s (autocommit blocks included): a lock it takes is released when it
ends, and a failure undoes this migration only.
A constraint added NOT VALID skips the check of existing rows only: PostgreSQL enforces
it on every new write at once, so the previous release fails on any write that breaks it.
It is an expand step only if that release never writes such rows; VALIDATE it later.
Write a downgrade that really restores the previous schema, or mark the revision
irreversible by setting ``irreversible = True`` below and raising in ``downgrade()``:
a downgrade through it is then refused before any step runs, and the rollback planner
reads the flag.
``compatible_with_previous``: True for an expand step (it only adds: tables, nullable
columns, indexes), so the code of the release before the one that ships this keeps
working after it. ``invoke release`` records which release that is, and a rollback to
that release (only) can be code-only; one to an older release runs this downgrade, as
this migration promises nothing about older code. Set it to False for a contract step
(drop, rename, new NOT NULL, type change, tighter constraint, a NOT VALID constraint the
previous release may break): a rollback across it always runs this downgrade first.

Why: 0010 added ``ck_attempt_emotions_intensity_range`` NOT VALID and left its validation
to a later migration; this is it. Until now PostgreSQL enforced the check on every write
but marked it as not proven for the rows already there, and everything that reads the
schema saw a half-finished constraint: ``pg_dump`` restores it NOT VALID, and SQLAlchemy's
reflection (Alembic's drift check among its users) warned on it ("Can't validate argument
'dialect_options'").

Locks: ``VALIDATE CONSTRAINT`` scans ``attempt_emotions`` under a SHARE UPDATE EXCLUSIVE
lock, which lets the previous release's reads and writes go on; it waits for that lock no
longer than the lock timeout, and a scan that outran the statement timeout would fail and
leave everything as 0012 had it. Rows written since 0010 passed the check when
written, and rows from before it have no intensity (NULL passes), so the scan finds none
that fails.

Downgrade: the constraint is dropped and added again NOT VALID, as 0010 left it (the same
check, no scan; an instant ACCESS EXCLUSIVE lock, bounded by the lock timeout).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
irreversible = False
# Schema proof only: code written for 0012 writes the same rows, checked the same way.
compatible_with_previous = True

CHECK = "ck_attempt_emotions_intensity_range"


def upgrade() -> None:
    op.execute(f"ALTER TABLE attempt_emotions VALIDATE CONSTRAINT {CHECK}")


def downgrade() -> None:
    op.execute(
        "-- squawk-ignore ban-drop-constraint\n"
        f"ALTER TABLE attempt_emotions DROP CONSTRAINT {CHECK}"
    )
    op.execute(
        f"ALTER TABLE attempt_emotions ADD CONSTRAINT {CHECK}"
        " CHECK (intensity BETWEEN 0 AND 100) NOT VALID"
    )

"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

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
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}
irreversible = False
compatible_with_previous = True


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}

"""Alembic upgrade/downgrade under the migrations' advisory lock; run from a release's venv.

Run on the server as the app user with the service's env file (``DATABASE_URL``) by
``python <this file> upgrade|downgrade TARGET [--expect-before REV|--expect-none]``.
It imports only ``db.migrate`` from the venv it runs in, so the same file works with the
venv of any release (the newer one has the down scripts of a downgrade).

Under ``pg_advisory_lock(hashtext('tas migrations'))`` — two deploys, or a deploy and a
rollback, never migrate at once — it reads the revision the database is at. With
``--expect-before`` it refuses (exit 3, nothing changed) unless that is the revision the
caller planned from: the revision an undo may go back to is the one seen here, under the
lock, never a guess made before it. The migrations set their own lock_timeout and
statement_timeout (db/migrations/env.py); waiting for the advisory lock is bounded too.
Prints ``{"before": ..., "after": ...}`` as its last line; on a failure it prints the
revision the database was left at (each migration commits on its own) before failing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

import sqlalchemy as sa

from db import migrate
from db.engine import normalize_url

LOCK = "SELECT pg_advisory_lock(hashtext('tas migrations'))"
UNLOCK = "SELECT pg_advisory_unlock(hashtext('tas migrations'))"
REFUSED = 3
ERROR = "migration failed: "


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["upgrade", "downgrade", "current"])
    parser.add_argument("target", nargs="?", default="head")
    parser.add_argument("--expect-before", default=None)
    parser.add_argument("--expect-none", action="store_true")
    args = parser.parse_args(argv)
    url = os.environ["DATABASE_URL"]
    engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
    with engine.connect() as guard:
        guard.execute(sa.text("SET lock_timeout = '120s'"))
        guard.execute(sa.text(LOCK))
        guard.commit()
        before = migrate.current_revision(guard)
        guard.commit()
        expected = None if args.expect_none else args.expect_before
        if (args.expect_none or args.expect_before is not None) and before != expected:
            print(
                json.dumps({"before": before, "after": before, "refused": True}),
                flush=True,
            )
            print(
                f"the database is at {before or 'no revision'}, not at "
                f"{expected or 'no revision'} as when this was planned: refusing to "
                f"{args.action}",
                file=sys.stderr,
            )
            return REFUSED
        try:
            if args.action == "upgrade":
                migrate.upgrade(url, args.target)
            elif args.action == "downgrade":
                migrate.downgrade(url, args.target)
        except Exception as exc:
            # The whole traceback for the journal, then one plain line for the operator.
            traceback.print_exc()
            guard.rollback()
            print(json.dumps({"before": before, "after": _revision(engine)}), flush=True)
            reason = " ".join(str(exc).split())[:500] or type(exc).__name__
            print(f"{ERROR}{type(exc).__name__}: {reason}", file=sys.stderr, flush=True)
            return 1
        after = migrate.current_revision(guard)
        guard.execute(sa.text(UNLOCK))
        guard.commit()
    print(json.dumps({"before": before, "after": after}), flush=True)
    return 0


def _revision(engine: sa.Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return migrate.current_revision(connection)
    except sa.exc.SQLAlchemyError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

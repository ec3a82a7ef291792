#!/usr/bin/python3
"""Restore the app's database from a dump: into a new database, then swapped in by name.

Installed by ``invoke provision`` as /usr/local/sbin/tas-restore (local edits are
overwritten) and run as root by ``invoke restore`` and ``invoke rollback --restore-backup``:

    tas-restore [--expect-revision REV] [--check] DUMP

In order; the first failure stops it and says why:

1. Check the dump, changing nothing: a file in the backup folder, whose table of contents
   (``pg_restore --list``) and data (a full ``pg_restore`` to /dev/null) read to the end,
   and whose Alembic revision is read from its own ``alembic_version`` data.
   ``--expect-revision`` refuses a dump at another revision; ``--check`` stops here.
2. Restore into a new database ``<db>_restore_<stamp>`` (owned by the app role, the live
   one's encoding and locale) with ``pg_restore --no-owner --single-transaction
   --exit-on-error`` as the app role. If that fails the new database is dropped: the live
   database and the running app were never touched. (A restore database a killed run
   left behind is dropped first.)
3. Drop the database the previous restore replaced (its data is in the safety dump it took).
4. Dump the live database into the backup folder (``tas-pre-restore-<stamp>.dump``,
   read back with ``pg_restore --list``). The app still serves meanwhile (no downtime for
   the dump); what it writes after the dump is in the replaced database, kept below.
5. Stop the app (socket and service: no request re-activates it), end the connections left
   on the live database, and swap the names in ONE transaction (``ALTER DATABASE ... RENAME``
   is transactional): the live one becomes ``<db>_replaced_<stamp>``, the new one ``<db>``.
   The units that were running are started again whatever happens.
6. Print one JSON line: the dump, its revision, the safety dump, the replaced database, the
   rows per table of the restored database, the duration.

Why not ``pg_restore --clean`` into the live database: it drops only what the dump knows,
so tables, functions and constraints added by later migrations survive (and a constraint
of a later table that depends on an old one makes the drop fail). A new database holds
exactly the dump, and the live one is kept whole until the swap.

The replaced database is kept until the next restore: to go back to it at once, stop the
app and swap the names again by hand. Exit status: 0 restored (or checked), 2 refused
(nothing changed), 1 failed (the message says what state things are in).

Standard library only, Python 3.10+ (the server's python3). The options let the tests run
it against a local server: with empty ``--app-user``/``--admin-user`` the PostgreSQL
client tools run directly, with PGHOST/PGUSER/... from the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

REFUSED, FAILED = 2, 1
NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
MAINTENANCE_DB = "postgres"
SAFETY_PREFIX = "tas-pre-restore-"


class Refused(Exception):
    """The restore was not started; nothing changed."""


class Failed(Exception):
    """A step failed; the message says what state things are in."""


class Interrupted(Failed):
    """SIGTERM, SIGHUP or SIGINT: the cleanup still runs."""


def say(line: str) -> None:
    # The client may be gone (a dropped SSH connection): never let output stop the cleanup.
    with contextlib.suppress(OSError):
        print(line, flush=True)


class Tools:
    """psql, pg_dump and pg_restore: as the app's role, or as the database superuser."""

    def __init__(self, app_role: str, app_user: str, admin_user: str) -> None:
        self.app_role = app_role
        self.app_user = app_user
        self.admin_user = admin_user

    def run(
        self, argv: Sequence[str], *, admin: bool = False, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        user = self.admin_user if admin else self.app_user
        if not admin:
            argv = [argv[0], f"--username={self.app_role}", *argv[1:]]
        prefix = ["runuser", "-u", user, "--"] if user else []
        return subprocess.run(
            [*prefix, *argv], input=stdin, capture_output=True, text=True, cwd="/", check=False
        )

    def reads(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """pg_restore reading a file only (no database): as the user that owns the dumps."""
        prefix = ["runuser", "-u", self.app_user, "--"] if self.app_user else []
        return subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, cwd="/", check=False
        )

    def sql(self, script: str, *, database: str = MAINTENANCE_DB, **variables: str) -> str:
        """A script as the superuser (stdin, so ``:'var'`` and ``:"var"`` are quoted)."""
        argv = ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", database]
        for name, value in variables.items():
            argv += ["-v", f"{name}={value}"]
        result = self.run(argv, admin=True, stdin=script)
        if result.returncode != 0:
            raise Failed(f"psql on {database}: {last_lines(result.stderr)}")
        return result.stdout.strip()


def last_lines(text: str, count: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:]) or "(no message)"


# --- 1. the dump ---------------------------------------------------------------------------


def dump_path(dump: str, backup_dir: str) -> str:
    """The dump's real path; only a regular file directly in the backup folder qualifies."""
    folder = os.path.realpath(backup_dir)
    path = os.path.realpath(dump if os.path.isabs(dump) else os.path.join(folder, dump))
    if os.path.dirname(path) != folder:
        raise Refused(f"{dump} is not in the backup folder {backup_dir}")
    if not os.path.isfile(path):
        raise Refused(f"no dump {dump} in {backup_dir}")
    return path


def revision_of(pg_restore_script: str) -> str | None:
    """The Alembic revision in ``pg_restore --data-only --table=alembic_version`` output.

    The rows of the ``COPY ... alembic_version ... FROM stdin;`` block, comma-joined and
    sorted (several only with branches); None when the dump has no such table or rows.
    """
    rows: list[str] = []
    copying = False
    for line in pg_restore_script.splitlines():
        if copying:
            if line == "\\.":
                break
            rows.append(line.strip())
        elif line.startswith("COPY ") and "alembic_version" in line and line.endswith("stdin;"):
            copying = True
    revisions = sorted(row for row in rows if row)
    return ",".join(revisions) or None


def check_dump(tools: Tools, dump: str, backup_dir: str, expect: str | None) -> dict[str, Any]:
    path = dump_path(dump, backup_dir)
    listing = tools.reads(["pg_restore", "--list", path])
    if listing.returncode != 0:
        raise Refused(f"{path} is not a dump pg_restore can read: {last_lines(listing.stderr)}")
    # --list reads the table of contents only: a dump cut short after it passes. Reading
    # every data block (into no database) finds that before anything changes.
    whole = tools.reads(["pg_restore", "--file=/dev/null", path])
    if whole.returncode != 0:
        raise Refused(
            f"{path} is damaged (its data does not read to the end): {last_lines(whole.stderr)}"
        )
    data = tools.reads(["pg_restore", "--data-only", "--table=alembic_version", "--file=-", path])
    if data.returncode != 0:
        raise Refused(f"cannot read the Alembic revision of {path}: {last_lines(data.stderr)}")
    revision = revision_of(data.stdout)
    if expect is not None and revision != expect:
        raise Refused(
            f"{path} holds revision {revision or 'none (no alembic_version rows)'}, not "
            f"{expect}: refusing to restore it"
        )
    entries = sum(1 for line in listing.stdout.splitlines() if line and not line.startswith(";"))
    return {"dump": path, "revision": revision, "entries": entries}


# --- 2.-5. the restore ---------------------------------------------------------------------


def utc_stamp() -> tuple[str, str]:
    """One instant for file names (``20261127T101500Z``) and database names (``..._101500``)."""
    now = time.gmtime()
    return time.strftime("%Y%m%dT%H%M%SZ", now), time.strftime("%Y%m%d_%H%M%S", now)


@contextlib.contextmanager
def restore_lock(backup_dir: str) -> Iterator[None]:
    """One restore at a time (the client holds the deploy lock too; this guards a hand run).

    The lock is on the backup folder itself: nothing is written, and it goes with the process.
    """
    fd = os.open(backup_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Refused("another restore is running on this server") from None
        yield
    finally:
        os.close(fd)


def live_database(tools: Tools, database: str) -> dict[str, str] | None:
    found = tools.sql(
        "SELECT json_build_object('encoding', pg_encoding_to_char(encoding),"
        " 'collate', datcollate, 'ctype', datctype, 'owner', pg_get_userbyid(datdba))"
        " FROM pg_database WHERE datname = :'db'",
        db=database,
    )
    return json.loads(found) if found else None


def leftovers(tools: Tools, database: str) -> list[str]:
    """Databases earlier restores left: ``<db>_replaced_<stamp>`` and ``<db>_restore_<stamp>``."""
    names = tools.sql("SELECT datname FROM pg_database ORDER BY datname").splitlines()
    pattern = re.compile(rf"^{re.escape(database)}_(replaced|restore)_\d{{8}}_\d{{6}}$")
    return [name for name in names if pattern.match(name)]


def drop_database(tools: Tools, name: str) -> None:
    tools.sql('DROP DATABASE IF EXISTS :"name" WITH (FORCE)', name=name)


def create_database(tools: Tools, name: str, role: str, like: dict[str, str] | None) -> None:
    if like is None:
        tools.sql('CREATE DATABASE :"name" OWNER :"role" TEMPLATE template0', name=name, role=role)
        return
    tools.sql(
        'CREATE DATABASE :"name" OWNER :"role" TEMPLATE template0 ENCODING :\'encoding\''
        " LC_COLLATE :'collate' LC_CTYPE :'ctype'",
        name=name,
        role=role,
        encoding=like["encoding"],
        collate=like["collate"],
        ctype=like["ctype"],
    )


ROW_COUNTS = """
SELECT format('SELECT %L, count(*) FROM %I.%I', table_name, table_schema, table_name)
FROM information_schema.tables
WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version'
ORDER BY table_name
\\gexec
"""


def row_counts(tools: Tools, database: str) -> dict[str, int]:
    counts = {}
    for line in tools.sql(ROW_COUNTS, database=database).splitlines():
        name, _, count = line.rpartition("|")
        counts[name] = int(count)
    return counts


def safety_dump(tools: Tools, database: str, backup_dir: str, stamp: str) -> str:
    final = os.path.join(backup_dir, f"{SAFETY_PREFIX}{stamp}.dump")
    partial = os.path.join(backup_dir, f".{SAFETY_PREFIX}{stamp}.dump.partial")
    try:
        made = tools.run(
            ["pg_dump", "--format=custom", f"--dbname={database}", f"--file={partial}"]
        )
        if made.returncode != 0:
            raise Failed(f"pg_dump {database}: {last_lines(made.stderr)}")
        listing = tools.reads(["pg_restore", "--list", partial])
        if listing.returncode != 0:
            raise Failed(f"the safety dump does not read back: {last_lines(listing.stderr)}")
        os.replace(partial, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
    return final


CAUGHT = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)


SWAP = """
BEGIN;
SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
WHERE datname IN (:'live', :'new') AND pid <> pg_backend_pid();
ALTER DATABASE :"live" RENAME TO :"replaced";
ALTER DATABASE :"new" RENAME TO :"live";
COMMIT;
"""

SWAP_NEW_ONLY = """
BEGIN;
SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
WHERE datname = :'new' AND pid <> pg_backend_pid();
ALTER DATABASE :"new" RENAME TO :"live";
COMMIT;
"""


def restore(args: argparse.Namespace, tools: Tools, checked: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    database, backup_dir = args.database, args.backup_dir
    live = live_database(tools, database)
    old_replaced = []
    for name in leftovers(tools, database):
        if "_restore_" in name:
            drop_database(tools, name)
            say(f"dropped {name} (left by a restore that was killed)")
        else:
            old_replaced.append(name)
    file_stamp, db_stamp = utc_stamp()
    while os.path.exists(os.path.join(backup_dir, f"{SAFETY_PREFIX}{file_stamp}.dump")):
        time.sleep(1)  # a restore earlier in this same second
        file_stamp, db_stamp = utc_stamp()
    new, replaced = f"{database}_restore_{db_stamp}", f"{database}_replaced_{db_stamp}"

    swapped = False
    create_database(tools, new, args.app_role, live)
    try:
        say(f"restoring {checked['dump']} into {new}")
        result = tools.run(
            [
                "pg_restore",
                "--no-owner",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={new}",
                checked["dump"],
            ]
        )
        if result.returncode != 0:
            raise Failed(
                f"pg_restore into {new} failed, so it was dropped; {database} and the app "
                f"were not touched:\n{last_lines(result.stderr)}"
            )
        counts = row_counts(tools, new)
        # Only now that the restore worked: a failed one leaves everything as it was.
        for name in old_replaced:
            drop_database(tools, name)
            say(f"dropped {name} (replaced by an earlier restore; its safety dump has it)")
        untouched = f"{new} was dropped, {database} and the app were not touched"
        safety: str | None = None
        if live is None:
            say(f"{database} does not exist: nothing to save, the restore creates it")
        else:
            try:
                safety = safety_dump(tools, database, backup_dir, file_stamp)
            except Failed as exc:
                raise Failed(f"{exc}\n(no safety dump, so no swap: {untouched})") from None
            say(f"safety dump of {database} as it was: {safety}")
        with stopped(args.units):
            script = SWAP if live is not None else SWAP_NEW_ONLY
            try:
                tools.sql(script, live=database, new=new, replaced=replaced)
            except Interrupted:
                raise  # psql was killed: whether its COMMIT got through is not known here
            except Failed as exc:
                raise Failed(f"{exc}\n(the swap rolled back: {untouched})") from None
            swapped = True
    finally:
        if not swapped:
            with contextlib.suppress(Failed):
                drop_database(tools, new)
    if live is not None:
        say(
            f"kept {replaced} (the database as it was, until the next restore; to go back: "
            f"stop the app, rename {database} away and {replaced} to {database})"
        )
    return {
        "result": "restored",
        "database": database,
        "dump": checked["dump"],
        "revision": checked["revision"],
        "safety_dump": safety,
        "replaced_database": replaced if live is not None else None,
        "row_counts": counts,
        "duration_s": round(time.monotonic() - started, 1),
    }


@contextlib.contextmanager
def stopped(units: Sequence[str]) -> Iterator[None]:
    """The units stopped meanwhile; those that were running are started again whatever happens."""
    running = [unit for unit in units if systemctl("is-active", "--quiet", unit).returncode == 0]
    failures = []
    try:
        if units:
            say(f"stopping {' '.join(units)}")
            result = systemctl("stop", *units)
            if result.returncode != 0:
                raise Failed(f"systemctl stop {' '.join(units)}: {last_lines(result.stderr)}")
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, CAUGHT)  # nothing stops the restart
        for unit in running:
            result = systemctl("start", unit)
            if result.returncode != 0:
                failures.append(f"{unit}: {last_lines(result.stderr)}")
        if running:
            say(f"started {' '.join(running)}")
        signal.pthread_sigmask(signal.SIG_UNBLOCK, CAUGHT)
    if failures:
        raise Failed(
            "the database was swapped, but starting the app failed: " + "; ".join(failures)
        )


def on_signal(signum: int, frame: object) -> None:
    for caught in CAUGHT:
        signal.signal(caught, signal.SIG_IGN)  # one interruption is enough to clean up
    raise Interrupted(f"interrupted by {signal.Signals(signum).name}")


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tas-restore",
        description="Restore the app's database from a dump, into a new database swapped in "
        "by name (see the top of this file).",
    )
    parser.add_argument("dump", help="a dump in the backup folder: its name or full path")
    parser.add_argument("--expect-revision", help="refuse unless the dump is at this revision")
    parser.add_argument("--check", action="store_true", help="check the dump, change nothing")
    parser.add_argument("--database", default="tas", help="the live database (default tas)")
    parser.add_argument("--app-role", default="tas", help="the app's database role (owner)")
    parser.add_argument("--backup-dir", default="/srv/tas/backups")
    parser.add_argument(
        "--units",
        default="tas.socket,tas.service",
        help="systemd units to stop meanwhile, comma-separated, in stop order ('' = none)",
    )
    parser.add_argument(
        "--app-user", default="tas", help="OS user for the app role's tools ('' = this one)"
    )
    parser.add_argument(
        "--admin-user", default="postgres", help="OS user for the superuser's psql ('' = this one)"
    )
    args = parser.parse_args(argv)
    for option in ("database", "app_role"):
        if not NAME.match(getattr(args, option)):
            parser.error(f"--{option.replace('_', '-')} must match {NAME.pattern}")
    if len(f"{args.database}_replaced_20261127_101500") > 63:
        parser.error("--database is too long to add _replaced_<stamp> (63 characters at most)")
    args.units = [unit.strip() for unit in args.units.split(",") if unit.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    tools = Tools(args.app_role, args.app_user, args.admin_user)
    for caught in CAUGHT:
        signal.signal(caught, on_signal)
    try:
        checked = check_dump(tools, args.dump, args.backup_dir, args.expect_revision)
        say(f"{checked['dump']}: revision {checked['revision']}, {checked['entries']} entries")
        if args.check:
            say(json.dumps({"result": "checked", **checked}, sort_keys=True))
            return 0
        with restore_lock(args.backup_dir):
            outcome = restore(args, tools, checked)
    except Refused as exc:
        print(f"tas-restore: refused, nothing changed: {exc}", file=sys.stderr)
        return REFUSED
    except Failed as exc:
        with contextlib.suppress(OSError):
            print(f"tas-restore: FAILED: {exc}", file=sys.stderr)
        return FAILED
    say(json.dumps(outcome, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

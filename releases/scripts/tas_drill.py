#!/usr/bin/python3
"""The restore drill: prove the newest backup restores, with the rows it should have.

Installed by ``invoke provision`` as /usr/local/sbin/tas-drill and run as root by
``tas-drill.timer`` (daily, ``tas-drill auto``) or by hand:

    tas-drill local     the newest local dump (nightly or pre-deploy) that has counts
    tas-drill offsite   the newest off-site snapshot (restic), restored to a private folder
    tas-drill auto      local, then offsite when it is configured and its last drill is a
                        week old or more (or there is none)

One drill: create the scratch database (``tas_drill``, dropped first if a killed run left
it), ``pg_restore`` the dump into it as the app's role and time that, count the rows of
every table, compare them with ``<dump>.counts.json`` (taken by tas-dump in the dump's own
snapshot), drop the scratch database, and append one JSON line to the drill log:

    {"at", "source", "backup", "snapshot", "restore_seconds", "tables", "rows",
     "result": "ok" | "failed", "reason"}

The line is printed too. Exit status 1 when a drill failed (its unit then fails and
``OnFailure=`` raises the alert), 0 otherwise. Standard library only (the server's python3).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

ROW_COUNTS = """
SELECT format('SELECT %L, count(*) FROM %I.%I', table_name, table_schema, table_name)
FROM information_schema.tables
WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version'
ORDER BY table_name
\\gexec
"""
# Dumps with counts that a drill may pick: nightly and pre-deploy ones (stamp in the name).
DUMP_NAME = re.compile(r"^tas-(predeploy-)?(?P<stamp>\d{8}T\d{6}Z)[^/]*\.dump$")
WEEK_SECONDS = 7 * 24 * 3600 - 3600  # an hour's slack for the timer's randomized delay


class DrillFailed(Exception):
    """The drill could not prove the backup; the message is the reason logged."""


def run(
    argv: Sequence[str], *, user: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", user, "--"] if user else []
    return subprocess.run(
        [*prefix, *argv],
        capture_output=True,
        text=True,
        cwd="/",
        env=env,
        check=False,
    )


def last_lines(text: str, count: int = 4) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "(no message)"


def admin_sql(args: argparse.Namespace, script: str, database: str = "postgres") -> str:
    """A script as the database superuser, on stdin."""
    prefix = ["runuser", "-u", args.admin_user, "--"] if args.admin_user else []
    result = subprocess.run(
        [*prefix, "psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", database],
        input=script,
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    if result.returncode != 0:
        raise DrillFailed(f"psql on {database}: {last_lines(result.stderr)}")
    return result.stdout.strip()


def row_counts(args: argparse.Namespace) -> dict[str, int]:
    counts = {}
    for line in admin_sql(args, ROW_COUNTS, database=args.scratch).splitlines():
        name, sep, count = line.rpartition("|")
        if sep:
            counts[name] = int(count)
    return counts


def read_env(path: str) -> dict[str, str]:
    values = {}
    with contextlib.suppress(OSError), open(path) as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    return values


def newest_local_dump(backup_dir: str) -> str:
    found = []
    for name in os.listdir(backup_dir):
        match = DUMP_NAME.match(name)
        if match and os.path.isfile(os.path.join(backup_dir, name + ".counts.json")):
            found.append((match.group("stamp"), name))
    if not found:
        raise DrillFailed(f"no dump with recorded row counts in {backup_dir}")
    return os.path.join(backup_dir, max(found)[1])


def restic_env(args: argparse.Namespace) -> dict[str, str]:
    env = read_env(args.env_file)
    repository, password = env.get("RESTIC_REPOSITORY", ""), env.get("RESTIC_PASSWORD", "")
    if not repository:
        raise DrillFailed(
            f"no off-site repository configured (RESTIC_REPOSITORY in {args.env_file})"
        )
    if not password:
        raise DrillFailed(f"RESTIC_PASSWORD is missing from {args.env_file}")
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": args.app_home,
        "RESTIC_REPOSITORY": repository,
        "RESTIC_PASSWORD": password,
    }


@contextlib.contextmanager
def offsite_dump(args: argparse.Namespace, record: dict[str, Any]) -> Iterator[str]:
    """The newest off-site snapshot restored into a private folder; yields its dump's path."""
    env = restic_env(args)
    listing = run(
        [
            "restic",
            "--no-cache",
            "--no-lock",
            "snapshots",
            "--json",
            "--tag",
            "tas",
            "--latest",
            "1",
        ],
        user=args.app_user,
        env=env,
    )
    if listing.returncode != 0:
        raise DrillFailed(f"restic snapshots: {last_lines(listing.stderr)}")
    snapshots = json.loads(listing.stdout or "[]")
    if not snapshots:
        raise DrillFailed(f"no snapshot in the off-site repository {env['RESTIC_REPOSITORY']}")
    newest = max(snapshots, key=lambda s: s["time"])
    record["snapshot"] = newest["short_id"]
    folder = tempfile.mkdtemp(prefix="tas-drill-")
    try:
        if args.app_user:
            shutil.chown(folder, user=args.app_user, group=args.app_user)
        restored = run(
            ["restic", "--no-cache", "--no-lock", "restore", newest["id"], "--target", folder],
            user=args.app_user,
            env=env,
        )
        if restored.returncode != 0:
            raise DrillFailed(f"restic restore: {last_lines(restored.stderr)}")
        dumps = [
            path
            for path in glob.glob(f"{folder}/**/*.dump", recursive=True)
            if DUMP_NAME.match(os.path.basename(path))
        ]
        if len(dumps) != 1:
            raise DrillFailed(f"snapshot {newest['short_id']} holds {len(dumps)} dumps, not 1")
        yield dumps[0]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def drill_dump(args: argparse.Namespace, dump: str, record: dict[str, Any]) -> None:
    record["backup"] = os.path.basename(dump)
    try:
        with open(dump + ".counts.json") as handle:
            expected: dict[str, int] = json.load(handle)["tables"]
    except (OSError, ValueError, KeyError) as exc:
        raise DrillFailed(f"no row counts recorded for {record['backup']}: {exc}") from exc
    admin_sql(args, f'DROP DATABASE IF EXISTS "{args.scratch}" WITH (FORCE);')
    admin_sql(args, f'CREATE DATABASE "{args.scratch}" OWNER "{args.app_role}" TEMPLATE template0;')
    try:
        started = time.monotonic()
        restored = run(
            [
                "pg_restore",
                f"--username={args.app_role}",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={args.scratch}",
                dump,
            ],
            user=args.app_user,
        )
        record["restore_seconds"] = round(time.monotonic() - started, 2)
        if restored.returncode != 0:
            raise DrillFailed(f"pg_restore failed: {last_lines(restored.stderr)}")
        counts = row_counts(args)
    finally:
        admin_sql(args, f'DROP DATABASE IF EXISTS "{args.scratch}" WITH (FORCE);')
    record["tables"] = len(counts)
    record["rows"] = sum(counts.values())
    differences = [
        f"{table}: {expected.get(table, 'absent')} at dump time, {counts.get(table, 'absent')}"
        " restored"
        for table in sorted(set(expected) | set(counts))
        if expected.get(table) != counts.get(table)
    ]
    if differences:
        raise DrillFailed("row counts differ: " + "; ".join(differences))


def drill(args: argparse.Namespace, source: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source,
        "backup": None,
        "snapshot": None,
        "restore_seconds": None,
        "tables": 0,
        "rows": 0,
        "result": "ok",
        "reason": "",
    }
    try:
        if source == "offsite":
            with offsite_dump(args, record) as dump:
                drill_dump(args, dump, record)
        else:
            drill_dump(args, newest_local_dump(args.backup_dir), record)
    except DrillFailed as exc:
        record.update(result="failed", reason=str(exc))
    except (OSError, ValueError, KeyError) as exc:
        record.update(result="failed", reason=f"{type(exc).__name__}: {exc}")
    line = json.dumps(record, sort_keys=True)
    with open(args.log, "a") as handle:
        handle.write(line + "\n")
    print(line, flush=True)
    return record


def last_drill_time(log: str, source: str) -> float | None:
    newest = None
    with contextlib.suppress(OSError), open(log) as handle:
        for line in handle:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                if entry["source"] == source:
                    newest = time.mktime(time.strptime(entry["at"], "%Y-%m-%dT%H:%M:%SZ"))
    return None if newest is None else newest - time.timezone


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tas-drill", description=__doc__.split("\n")[0])
    parser.add_argument("source", choices=["local", "offsite", "auto"])
    parser.add_argument("--backup-dir", default="/srv/tas/backups")
    parser.add_argument("--log", default="/srv/tas/backups/drills.jsonl")
    parser.add_argument("--env-file", default="/srv/tas/shared/tas.env")
    parser.add_argument("--scratch", default="tas_drill")
    parser.add_argument("--app-role", default="tas")
    parser.add_argument("--app-user", default="tas")
    parser.add_argument("--app-home", default="/srv/tas")
    parser.add_argument("--admin-user", default="postgres")
    args = parser.parse_args(argv)
    if not re.match(r"^[a-z_][a-z0-9_]*$", args.scratch) or not re.match(
        r"^[a-z_][a-z0-9_]*$", args.app_role
    ):
        parser.error("--scratch and --app-role must be plain lower-case names")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    os.umask(0o077)
    sources = [args.source]
    if args.source == "auto":
        sources = ["local"]
        last = last_drill_time(args.log, "offsite")
        configured = bool(read_env(args.env_file).get("RESTIC_REPOSITORY"))
        if configured and (last is None or time.time() - last >= WEEK_SECONDS):
            sources.append("offsite")
    results = [drill(args, source) for source in sources]
    return 1 if any(r["result"] != "ok" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Dump the app's database and count its rows in the SAME snapshot (``tas-dump``).

Installed by ``invoke provision`` as /usr/local/sbin/tas-dump and run by the backup script
(tas-backup, as the app user):

    tas-dump DATABASE DUMP_FILE COUNTS_FILE

A ``psql`` session opens a REPEATABLE READ transaction and exports its snapshot;
``pg_dump --snapshot`` dumps exactly that snapshot; the same session then counts the rows
of every table and writes them as JSON (``{"database", "taken_at", "tables": {name: rows}}``)
to COUNTS_FILE. The restore drill (tas-drill) compares a restored copy with these counts:
they describe the live database at the instant of the dump, not the dump's own contents.

Standard library only, Python 3.10+ (the server's python3). Exit status 0 on success, 1
with the reason on stderr otherwise (nothing is left at COUNTS_FILE then).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence

# The same tables tas-restore counts: every base table of the app's schema.
ROW_COUNTS = """
SELECT format('SELECT %L, count(*) FROM %I.%I', table_name, table_schema, table_name)
FROM information_schema.tables
WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version'
ORDER BY table_name
\\gexec
"""


def parse_counts(output: str) -> dict[str, int]:
    """``name|count`` lines (psql -tA) into a mapping."""
    counts = {}
    for line in output.splitlines():
        name, sep, count = line.rpartition("|")
        if sep and count.strip().isdigit():
            counts[name] = int(count)
    return counts


def dump_with_counts(database: str, dump_file: str, counts_file: str) -> dict[str, int]:
    psql = subprocess.Popen(
        ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", database],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    assert psql.stdin is not None and psql.stdout is not None and psql.stderr is not None
    try:
        psql.stdin.write(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSELECT pg_export_snapshot();\n"
        )
        psql.stdin.flush()
        snapshot = psql.stdout.readline().strip()
        if not snapshot:
            psql.stdin.close()
            raise RuntimeError(f"psql exported no snapshot: {psql.stderr.read().strip()}")
        taken_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        dumped = subprocess.run(
            ["pg_dump", "--format=custom", f"--snapshot={snapshot}", f"--dbname={database}"]
            + [f"--file={dump_file}"],
            capture_output=True,
            text=True,
            cwd="/",
            check=False,
        )
        if dumped.returncode != 0:
            psql.stdin.close()
            raise RuntimeError(f"pg_dump failed: {dumped.stderr.strip()}")
        psql.stdin.write(ROW_COUNTS + "COMMIT;\n")
        psql.stdin.close()
        output = psql.stdout.read()
        if psql.wait() != 0:
            raise RuntimeError(f"counting the rows failed: {psql.stderr.read().strip()}")
    finally:
        if psql.poll() is None:
            psql.kill()
            psql.wait()
    counts = parse_counts(output)
    record = {"database": database, "taken_at": taken_at, "tables": counts}
    partial = f"{counts_file}.partial"
    with open(partial, "w") as handle:
        json.dump(record, handle, sort_keys=True)
        handle.write("\n")
    os.replace(partial, counts_file)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: tas-dump DATABASE DUMP_FILE COUNTS_FILE", file=sys.stderr)
        return 2
    try:
        counts = dump_with_counts(*args)
    except (RuntimeError, OSError) as exc:
        print(f"tas-dump: {exc}", file=sys.stderr)
        return 1
    print(f"tas-dump: {sum(counts.values())} rows in {len(counts)} tables", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

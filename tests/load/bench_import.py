"""Benchmark the legacy CSV import against a bare COPY of the same rows.

    .venv/bin/python tests/load/bench_import.py [--rows 1000000] [--server URL]

Generates ``tasks.csv`` and a v4 ``task_instances.csv`` of ``--rows`` attempts in a
temporary folder, creates a scratch database on the server (default 127.0.0.1:5432),
migrates it, and then runs, each in a subprocess of its own so that its peak RSS is
its own:

1. the real import (``db.legacy.import_legacy_folder``) for a fresh account;
2. a bare ``COPY attempts FROM STDIN`` of the same rows, already in the table's
   format, for a second account: the floor any importer of these rows stands on.

Not collected by pytest (tests/load is excluded). ``invoke bench-import`` runs it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from db import migrate  # noqa: E402
from db.legacy.export import INSTANCE_HEADER  # noqa: E402

TARGET_SECONDS = 60
TARGET_MB = 300
EMOTIONS = ["Dread", "Anxiety", "Tired", "Excitement", "bored"]
COPY_COLUMNS = (
    "user_id",
    "task_id",
    "task_version",
    "status",
    "initialized_at",
    "started_at",
    "completed_at",
    "minutes_spent",
    "expected_relief",
    "expected_cognitive_load",
    "expected_emotional_load",
    "time_estimate_minutes",
    "actual_relief",
    "actual_cognitive_load",
    "actual_emotional_load",
    "completion_percent",
    "notes",
    "legacy_id",
)


def _fmt(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def generate(folder: Path, rows: int, tasks: int) -> Path:
    """Write the legacy files, and the same attempts as COPY text for the baseline."""
    rng = random.Random(4)
    base = dt.datetime(2024, 1, 1, 8, 0)
    with open(folder / "tasks.csv", "w", encoding="utf-8", newline="") as out:
        out.write("task_id,name,description,type,version,created_at,is_recurring,")
        out.write("categories,default_estimate_minutes\n")
        for t in range(tasks):
            out.write(f't{1700000000 + t},Task {t},"A task, number {t}",routine,1,')
            out.write(f'{_fmt(base)},True,"[""Dread""]",{rng.choice((10, 20, 45))}.0\n')
    copy_path = folder.parent / "attempts.copy"
    header = ",".join(INSTANCE_HEADER)
    with (
        open(folder / "task_instances.csv", "w", encoding="utf-8", newline="") as out,
        open(copy_path, "w", encoding="utf-8") as copy,
    ):
        out.write(header + "\n")
        for i in range(rows):
            task = rng.randrange(tasks)
            start = base + dt.timedelta(minutes=i * 3)
            done = start + dt.timedelta(minutes=rng.randrange(5, 120))
            estimate = rng.choice((10, 20, 45))
            relief, cog, emo = rng.randrange(101), rng.randrange(101), rng.randrange(101)
            arel, acog, aemo = rng.randrange(101), rng.randrange(101), rng.randrange(101)
            spent = rng.randrange(0, 120)
            emotions = rng.sample(EMOTIONS, rng.randrange(3))
            predicted = json.dumps(
                {
                    "time_estimate_minutes": str(estimate),
                    "expected_relief": float(relief),
                    "expected_cognitive_load": float(cog),
                    "expected_emotional_load": float(emo),
                    "emotions": emotions,
                }
            ).replace('"', '""')
            notes = "line one\nline two" if i % 50 == 0 else "ok"
            actual = json.dumps(
                {
                    "actual_relief": arel,
                    "actual_cognitive": acog,
                    "actual_emotional": aemo,
                    "completion_percent": 100,
                    "time_actual_minutes": spent,
                    "notes": notes,
                }
            ).replace('"', '""')
            out.write(
                f"i{1700000000 + i},t{1700000000 + task},Task {task},1,{_fmt(start)},"
                f'{_fmt(start)},,{_fmt(done)},"{predicted}","{actual}",0.5,5.0,True,False,,'
                f"completed,{spent},{relief}.0,{cog}.0,{emo}.0,,,,,\n"
            )
            copy_notes = notes.replace("\n", "\\n")
            copy.write(
                f"{{user}}\t{{task{task}}}\t1\tcompleted\t{start}+00\t\\N\t{done}+00\t{spent}\t"
                f"{relief}\t{cog}\t{emo}\t{estimate}\t{arel}\t{acog}\t{aemo}\t100\t"
                f"{copy_notes}\ti{1700000000 + i}\n"
            )
    return copy_path


def _peak_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _backend_cpu(pid: int) -> float | None:
    """CPU seconds of a PostgreSQL backend, when the server runs on this machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_cpu(pid: int, before: float | None) -> float | None:
    after = _backend_cpu(pid)
    return None if after is None or before is None else after - before


def child_import(url: str, folder: str, user_id: int) -> None:
    from db.engine import make_engine
    from db.legacy import import_legacy_folder

    engine = make_engine(url, pool_size=1)
    # The import runs on the one pooled connection: its backend's CPU is the server's work.
    with engine.connect() as conn:
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    server_before = _backend_cpu(backend)
    started = time.perf_counter()
    report = import_legacy_folder(
        engine,
        Path(folder),
        user_id=user_id,
        timezone="UTC",
        backup_dir=Path(folder).parent / "backups",
        progress=False,
    )
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "seconds": seconds,
        "cpu": _cpu_seconds(),
        # The importer's worker process (parsing), if it started one.
        "worker_cpu": _cpu_seconds(resource.RUSAGE_CHILDREN),
        "worker_peak_mb": children.ru_maxrss / 1024,
        "server_cpu": _server_cpu(backend, server_before),
        "peak_mb": _peak_mb(),
        "files": report.as_dict()["files"],
    }
    print(json.dumps(result))


def child_copy(url: str, copy_path: str, user_id: int) -> None:
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq) as conn:
        task_ids = dict(
            conn.execute(
                "SELECT legacy_id, id FROM tasks WHERE user_id = %s", (user_id,)
            ).fetchall()
        )
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        server_before = _backend_cpu(backend)
        started = time.perf_counter()
        columns = ", ".join(COPY_COLUMNS)
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY attempts ({columns}) FROM STDIN") as copy,
            open(copy_path, encoding="utf-8") as source,
        ):
            for line in source:
                # The file names tasks by index; this account's ids are filled in here.
                head, rest = line.split("\t", 2)[1], line.split("\t", 2)[2]
                task = int(head[5:-1])
                copy.write(f"{user_id}\t{task_ids[f't{1700000000 + task}']}\t{rest}")
        conn.commit()
        seconds = time.perf_counter() - started
        server = _server_cpu(backend, server_before)
    print(
        json.dumps(
            {"seconds": seconds, "cpu": _cpu_seconds(), "server_cpu": server, "peak_mb": _peak_mb()}
        )
    )


def _load(figures: tuple[float, float, float] | None = None) -> str:
    return " ".join(f"{x:.2f}" for x in figures or os.getloadavg())


def _run_child(*args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{result.stderr}")
    outcome: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--child", choices=("import", "copy"))
    parser.add_argument("--url")
    parser.add_argument("--path")
    parser.add_argument("--user", type=int)
    args = parser.parse_args()
    if args.child == "import":
        child_import(args.url, args.path, args.user)
        return
    if args.child == "copy":
        child_copy(args.url, args.path, args.user)
        return

    name = f"tas_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = args.server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/"
    url += name
    try:
        migrate.upgrade(url)
        libpq = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(libpq) as conn:
            users = [
                conn.execute(
                    "INSERT INTO users (username, signin_key_hash) VALUES (%s, '') RETURNING id",
                    (username,),
                ).fetchone()[0]  # type: ignore[index]
                for username in ("importer", "baseline")
            ]
        with tempfile.TemporaryDirectory(prefix="tas-bench-") as tmp:
            folder = Path(tmp) / "legacy-data"
            folder.mkdir()
            started = time.perf_counter()
            copy_path = generate(folder, args.rows, args.tasks)
            size = (folder / "task_instances.csv").stat().st_size / 1024 / 1024
            print(
                f"generated {args.rows:,} attempts ({size:.0f} MB) in "
                f"{time.perf_counter() - started:.1f} s"
            )
            load_before = os.getloadavg()
            imported = _run_child("--child", "import", "--url", url, "--path", str(folder),
                                  "--user", str(users[0]))  # fmt: skip
            # The baseline account needs the same tasks; importing tasks.csv alone is quick.
            only_tasks = Path(tmp) / "tasks-only"
            only_tasks.mkdir()
            (only_tasks / "tasks.csv").write_bytes((folder / "tasks.csv").read_bytes())
            _run_child("--child", "import", "--url", url, "--path", str(only_tasks),
                       "--user", str(users[1]))  # fmt: skip
            baseline = _run_child("--child", "copy", "--url", url, "--path", str(copy_path),
                                  "--user", str(users[1]))  # fmt: skip
    finally:
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    for label, run in (("import:   ", imported), ("bare COPY:", baseline)):
        worker = ""
        if run.get("worker_cpu"):
            worker = (
                f" + {run['worker_cpu']:.1f} s in its worker process "
                f"(peak RSS {run['worker_peak_mb']:.0f} MB)"
            )
        server = run.get("server_cpu")
        server_text = f", {server:.1f} s CPU in the server backend" if server is not None else ""
        print(
            f"{label} {run['seconds']:.1f} s wall, {run['cpu']:.1f} s CPU in the client"
            f"{worker}{server_text}, peak RSS {run['peak_mb']:.0f} MB"
        )
    ratio = float(imported["seconds"]) / float(baseline["seconds"])  # type: ignore[arg-type]
    print(f"import / bare COPY (wall): {ratio:.2f}")
    print(f"load average before the import: {_load(load_before)}, after the COPY: {_load()}")
    print(f"counts:    {imported['files']}")
    peak = max(float(imported["peak_mb"]), float(imported.get("worker_peak_mb") or 0))  # type: ignore[arg-type]
    ok = float(imported["seconds"]) < TARGET_SECONDS and peak < TARGET_MB  # type: ignore[arg-type]
    print(f"target (< {TARGET_SECONDS} s, < {TARGET_MB} MB): {'met' if ok else 'MISSED'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

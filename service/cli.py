"""Server command lines: ``flask --app service.wsgi import-csv|export-csv|prune-sessions``.

The import and export are the same as the invoke tasks, but against the app's configured
database, for an operator logged in on the server.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext

from db.legacy.commands import run_export
from db.legacy.commands import run_import
from db.legacy.importer import LegacyImportError
from service import auth
from service import database


@click.command("import-csv")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(path_type=Path),
    help="The old app's data folder.",
)
@click.option("--username", required=True, help="The account to import into.")
@click.option("--timezone", default="", help="Zone of the legacy times (default: the account's).")
@click.option("--dry-run", is_flag=True, help="Report what would happen; change nothing.")
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows, set the rest aside.")
@click.option(
    "--backup-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to copy the files first (default: <data-dir>/../tas-import-backups).",
)
@with_appcontext
def import_csv_command(
    data_dir: Path,
    username: str,
    timezone: str,
    dry_run: bool,
    skip_invalid: bool,
    backup_dir: Path | None,
) -> None:
    """Import a legacy CSV data folder into an account."""
    try:
        output, code = run_import(
            database.engine(),
            data_dir,
            username,
            timezone=timezone,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
            backup_dir=backup_dir,
        )
    except LegacyImportError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(output)
    if code:
        raise SystemExit(code)


@click.command("export-csv")
@click.option("--username", required=True, help="The account to export.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write.")
@with_appcontext
def export_csv_command(username: str, out: Path) -> None:
    """Export an account's data in the legacy CSV layout."""
    try:
        click.echo(run_export(database.engine(), out, username))
    except LegacyImportError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("prune-sessions")
@with_appcontext
def prune_sessions_command() -> None:
    """Delete expired sign-in sessions and print how many.

    Expired sessions sign nobody in; they only take space. Safe while the app serves: it
    deletes in small batches, each its own short transaction.
    """
    count = auth.prune_expired_sessions(database.engine())
    click.echo(f"Deleted {count} expired session{'' if count == 1 else 's'}.")


def init_app(app: Flask) -> None:
    app.cli.add_command(import_csv_command)
    app.cli.add_command(export_csv_command)
    app.cli.add_command(prune_sessions_command)

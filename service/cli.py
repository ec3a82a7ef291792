"""Server command lines: ``flask --app service.wsgi <command>`` (import-csv, export-csv,
prune-sessions, load-accounts).

The import and export are the same as the invoke tasks, but against the app's configured
database, for an operator logged in on the server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext

from db import load_accounts
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


@click.group("load-accounts")
def load_accounts_group() -> None:
    """The accounts of a load test on this server (``invoke loadtest --host`` runs these)."""


@load_accounts_group.command("create")
@click.option("--run", "run", required=True, help="The run's name (4-32 of a-z, 0-9).")
@click.option("--count", "count", required=True, type=click.IntRange(1, 100_000))
@click.option("--history", default=40, type=click.IntRange(0, 1000), help="Attempts each.")
@click.option(
    "--ttl",
    "ttl_seconds",
    default=3600,
    type=click.IntRange(60, 7 * 86400),
    help="Seconds until the nightly clean-up may remove them (default 3600).",
)
@with_appcontext
def load_accounts_create(run: str, count: int, history: int, ttl_seconds: int) -> None:
    """Make COUNT accounts for RUN; their keys derive from the secret read on stdin.

    The secret comes on standard input, never on the command line (which others on the
    server can read). Prints one JSON line: {"run": ..., "created": N}.
    """
    secret = sys.stdin.readline().strip()
    try:
        created = load_accounts.seed(
            database.engine(),
            run=run,
            count=count,
            secret=secret,
            history=history,
            ttl_seconds=ttl_seconds,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"run": run, "created": created}))


@load_accounts_group.command("remove")
@click.option("--run", "run", default="", help="Remove this run's accounts.")
@click.option("--expired", is_flag=True, help="Remove every run's accounts past their expiry.")
@with_appcontext
def load_accounts_remove(run: str, expired: bool) -> None:
    """Delete a run's accounts (or the expired ones) and all they own.

    Only accounts the load test made are touched (they are listed in load_test_accounts).
    Prints one JSON line: {"removed": N, "left": M} (M: load accounts still there).
    """
    if bool(run) == expired:
        raise click.UsageError("say which: --run NAME or --expired")
    engine = database.engine()
    try:
        removed = (
            load_accounts.remove_run(engine, run) if run else load_accounts.remove_expired(engine)
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"removed": removed, "left": load_accounts.count(engine)}))


def init_app(app: Flask) -> None:
    app.cli.add_command(import_csv_command)
    app.cli.add_command(export_csv_command)
    app.cli.add_command(prune_sessions_command)
    app.cli.add_command(load_accounts_group)

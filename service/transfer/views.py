from __future__ import annotations

import datetime as dt
import logging
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Blueprint
from flask import current_app
from flask import flash
from flask import render_template
from flask import send_file
from flask import session
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from db.legacy.export import export_zip as write_export_zip
from db.legacy.importer import LegacyImportError
from db.legacy.report import ImportReport
from db.legacy.upload import MiB
from db.legacy.upload import UploadLimits
from db.legacy.upload import import_uploaded_zip
from service import auth
from service import database
from service.accounts.services import account_deleted
from service.accounts.services import time_zones
from service.security import limiter
from service.transfer import storage
from service.transfer.forms import ConfirmImportForm
from service.transfer.forms import ImportForm

log = logging.getLogger(__name__)

bp = Blueprint("transfer", __name__, url_prefix="/account")

# Uploads per person (each runs a dry run of the whole import): enough to fix a folder
# and try again, too few to keep a worker busy with imports.
UPLOAD_LIMITS = "5 per minute; 30 per hour"
BUSY = (
    "Another import of yours is still running (in another tab or window). "
    "Wait for it to finish, then try again."
)
UNWRITABLE = "The server cannot store uploads right now; nothing was imported. Try again later."


def _import_form() -> ImportForm:
    form = ImportForm(timezone=auth.user().timezone)
    form.timezone.choices = sorted(time_zones())
    return form


@bp.get("/export.zip")
@auth.login_required
def export_zip() -> ResponseReturnValue:
    user = auth.user()
    spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
    write_export_zip(database.engine(), spool, user_id=user.id)
    spool.seek(0)
    stamp = dt.date.today().isoformat()
    return send_file(
        spool,
        mimetype="application/zip",
        as_attachment=True,
        download_name=f"task-aversion-{user.username}-{stamp}.zip",
    )


@bp.get("/import")
@auth.login_required
def import_form() -> ResponseReturnValue:
    return render_template("transfer/import.html", form=_import_form())


def _person_key() -> str:
    """Rate-limit uploads per person (they are signed in), not per address."""
    return f"import:{auth.user().id}"


@bp.post("/import")
@auth.login_required
@limiter.limit(UPLOAD_LIMITS, key_func=_person_key)
def upload() -> ResponseReturnValue:
    """Keep the upload, run a dry run, and show what an import would do."""
    form = _import_form()
    if not form.validate_on_submit():
        return render_template("transfer/import.html", form=form), 400
    user_id = auth.user().id
    with import_slot(user_id) as free:
        if not free:
            return render_template("transfer/import.html", form=form, message=BUSY), 409
        token = secrets.token_hex(16)
        try:
            stashed = storage.stash_path(user_id, token)
            form.archive.data.save(stashed)
        except OSError:
            log.exception(
                "cannot store an upload in DATA_DIR %s", current_app.config.get("DATA_DIR")
            )
            return render_template("transfer/import.html", form=form, message=UNWRITABLE), 503
        options = (form.timezone.data, bool(form.skip_invalid.data))
        report = _import(stashed, *options, dry_run=True)
    if report is None:
        stashed.unlink(missing_ok=True)
        return render_template("transfer/import.html", form=form), 400
    session["import"] = {"token": token, "timezone": form.timezone.data}
    confirm = ConfirmImportForm(skip_invalid=form.skip_invalid.data)
    return render_template("transfer/report.html", report=report, confirm_form=confirm)


@bp.post("/import/confirm")
@auth.login_required
def confirm_import() -> ResponseReturnValue:
    form = ConfirmImportForm()
    pending = session.get("import") or {}
    user_id = auth.user().id
    with import_slot(user_id) as free:
        if not free:
            return render_template("transfer/import.html", form=_import_form(), message=BUSY), 409
        stashed = storage.stash_path(user_id, str(pending.get("token", "none")))
        if not form.validate_on_submit() or not stashed.exists():
            return render_template(
                "transfer/import.html",
                form=_import_form(),
                message="That upload has expired or was already imported. Please upload it again.",
            ), 400
        options = (pending["timezone"], bool(form.skip_invalid.data))
        report = _import(stashed, *options, dry_run=False)
        stashed.unlink(missing_ok=True)
        session.pop("import", None)
        if report is not None and report.backup_dir:
            storage.prune_backups(user_id, setting("IMPORT_BACKUPS_KEEP"))
    if report is None:
        return render_template("transfer/import.html", form=_import_form()), 400
    return render_template("transfer/report.html", report=report, confirm_form=None)


@contextmanager
def import_slot(user_id: int) -> Iterator[bool]:
    """Hold the person's import slot while the block runs; yield False if it is taken.

    A transaction-level advisory lock on a connection of its own: PostgreSQL frees it when
    the block ends, when the worker dies, or when the pool rolls the connection back.
    A second import does not wait (the worker would wait with it): it is told to come back.
    """
    with database.engine().connect() as conn:
        free = conn.execute(
            text("SELECT pg_try_advisory_xact_lock(hashtext('tas import'), CAST(:key AS integer))"),
            {"key": user_id % 2**31},
        ).scalar_one()
        try:
            yield bool(free)
        finally:
            conn.rollback()


def setting(name: str) -> int:
    """An import limit from the app's config (defaults: service/config.py)."""
    return int(current_app.config[name])


@bp.context_processor
def _limits() -> dict[str, object]:
    names = ("MAX_UPLOAD_MB", "MAX_IMPORT_MB", "IMPORT_BACKUPS_KEEP")
    return {"import_limits": {name: setting(name) for name in names}}


def upload_limits() -> UploadLimits:
    """How much an upload may inflate to (MAX_IMPORT_MB): an import at the limit must
    finish well within a worker's timeout (docs/benchmarks.md)."""
    expanded = setting("MAX_IMPORT_MB") * MiB
    return UploadLimits(max_member_bytes=expanded, max_total_bytes=expanded)


@account_deleted.connect
def _forget_imports(sender: object, user_id: int, **extra: object) -> None:
    storage.forget_person(user_id)


def _import(
    path: Path, timezone: str | None, skip_invalid: bool, *, dry_run: bool
) -> ImportReport | None:
    """Run the importer on a stashed upload; problems with the zip itself are flashed."""
    try:
        with path.open("rb") as archive:
            return import_uploaded_zip(
                database.engine(),
                archive,
                user_id=auth.user().id,
                backup_dir=storage.backup_dir(auth.user().id),
                timezone=timezone,
                dry_run=dry_run,
                skip_invalid=skip_invalid,
                limits=upload_limits(),
            )
    except LegacyImportError as exc:
        flash(f"The upload can't be imported: {exc}.", "error")
        return None

from __future__ import annotations

import datetime as dt
import secrets
import tempfile
import time
from pathlib import Path

from flask import Blueprint
from flask import current_app
from flask import flash
from flask import render_template
from flask import send_file
from flask import session
from flask.typing import ResponseReturnValue
from flask_wtf.file import FileAllowed
from flask_wtf.file import FileField
from flask_wtf.file import FileRequired
from wtforms import BooleanField
from wtforms import SelectField

from db.legacy.export import export_zip as write_export_zip
from db.legacy.importer import LegacyImportError
from db.legacy.report import ImportReport
from db.legacy.upload import import_uploaded_zip
from service import auth
from service import database
from service.accounts.services import time_zones
from service.forms import BaseForm

bp = Blueprint("transfer", __name__, url_prefix="/account")

# An upload waits this long for its confirmation before it is thrown away.
STASH_SECONDS = 3600


class ImportForm(BaseForm):
    archive = FileField(
        "Zip of your old app's data folder",
        validators=[
            FileRequired("Choose a zip file."),
            FileAllowed(["zip"], "Upload a .zip file."),
        ],
    )
    timezone = SelectField("Time zone the old app's times were written in")
    skip_invalid = BooleanField("Import the valid rows and skip the invalid ones")


class ConfirmImportForm(BaseForm):
    skip_invalid = BooleanField("Import the valid rows and skip the invalid ones")


def _data_dir(*parts: str) -> Path:
    base = current_app.config.get("DATA_DIR") or Path(tempfile.gettempdir()) / "tas"
    path = Path(base, *parts)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _stash_dir() -> Path:
    stash = _data_dir("uploads")
    for old in stash.glob("*.zip"):  # forget abandoned uploads
        if old.stat().st_mtime < time.time() - STASH_SECONDS:
            old.unlink(missing_ok=True)
    return stash


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


@bp.post("/import")
@auth.login_required
def upload() -> ResponseReturnValue:
    """Keep the upload, run a dry run, and show what an import would do."""
    form = _import_form()
    if not form.validate_on_submit():
        return render_template("transfer/import.html", form=form), 400
    token = secrets.token_hex(16)
    stashed = _stash_dir() / f"{token}.zip"
    form.archive.data.save(stashed)
    report = _import(stashed, form.timezone.data, bool(form.skip_invalid.data), dry_run=True)
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
    stashed = _stash_dir() / f"{pending.get('token', 'none')}.zip"
    if not form.validate_on_submit() or not stashed.exists():
        return render_template(
            "transfer/import.html",
            form=_import_form(),
            message="That upload has expired or was already imported. Please upload it again.",
        ), 400
    report = _import(stashed, pending["timezone"], bool(form.skip_invalid.data), dry_run=False)
    stashed.unlink(missing_ok=True)
    session.pop("import", None)
    if report is None:
        return render_template("transfer/import.html", form=_import_form()), 400
    return render_template("transfer/report.html", report=report, confirm_form=None)


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
                backup_dir=_data_dir("import-backups", str(auth.user().id)),
                timezone=timezone,
                dry_run=dry_run,
                skip_invalid=skip_invalid,
            )
    except LegacyImportError as exc:
        flash(f"The upload can't be imported: {exc}.", "error")
        return None

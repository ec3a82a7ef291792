"""The Notes page (``/notes``), and notes written on an attempt (from the dashboard's
Current task or the attempt's page).

Every form is a POST with its CSRF token. A note id that isn't the person's (another
person's, a deleted one, a made-up one) is a 404 and changes nothing; an empty or too long
note is refused with a message by the field.

No note is shown on the dashboard (only the form to write one): the dashboard is kept in
the page cache until the person's tasks or attempts change (``users.data_version``), and
notes are neither, so showing them there would need triggers of their own.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import abort
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from service import auth
from service import database
from service.attempts.services import get_attempt_and_task_or_404
from service.forms import ConfirmForm
from service.notes import queries
from service.notes.forms import AttemptNoteForm
from service.notes.forms import EditNoteForm
from service.notes.forms import NoteForm
from service.paging import Cursor

bp = Blueprint("notes", __name__)

CURSOR_MESSAGE = (
    "That link to a page of your notes isn't complete (it may have been cut short), "
    "so here are your newest notes."
)


def _index(form: NoteForm, status: int = 200) -> ResponseReturnValue:
    before, cursor_valid = None, True
    if "before" in request.args:
        before = Cursor.parse(request.args["before"])
        cursor_valid = before is not None
    page = queries.page(database.session(), auth.user().id, before)
    html = render_template(
        "notes/index.html",
        form=form,
        page=page,
        paged=before is not None,
        cursor_message=None if cursor_valid else CURSOR_MESSAGE,
    )
    return html, status if cursor_valid else 400


@bp.get("/notes")
@auth.login_required
def index() -> ResponseReturnValue:
    return _index(NoteForm())


@bp.post("/notes")
@auth.login_required
def add() -> ResponseReturnValue:
    form = NoteForm()
    if not form.validate_on_submit():
        return _index(form, 400)
    queries.add(database.session(), auth.user().id, form.body.data or "")
    database.commit()
    flash("Note saved.")
    return redirect(url_for("notes.index"))


def _own_note(note_id: int) -> Any:
    note = queries.note(database.session(), auth.user().id, note_id)
    if note is None:
        abort(404)
    return note


@bp.route("/notes/<int:note_id>/edit", methods=["GET", "POST"])
@auth.login_required
def edit(note_id: int) -> ResponseReturnValue:
    note = _own_note(note_id)
    form = EditNoteForm(data={"body": note.body})
    if form.validate_on_submit():
        if not queries.edit(database.session(), auth.user().id, note_id, form.body.data or ""):
            abort(404)  # deleted since the form was opened
        database.commit()
        flash("Note updated.")
        return redirect(url_for("notes.index"))
    status = 400 if form.is_submitted() else 200
    return render_template("notes/edit.html", form=form, note=note), status


@bp.route("/notes/<int:note_id>/delete", methods=["GET", "POST"])
@auth.login_required
def delete(note_id: int) -> ResponseReturnValue:
    """GET asks for a confirmation; the POST of that page deletes."""
    form = ConfirmForm()
    if form.validate_on_submit():
        if not queries.remove(database.session(), auth.user().id, note_id):
            abort(404)
        database.commit()
        flash("Note deleted.")
        return redirect(url_for("notes.index"))
    note = _own_note(note_id)
    status = 400 if form.is_submitted() else 200
    return render_template("notes/delete.html", form=form, note=note), status


@bp.post("/attempts/<int:attempt_id>/notes")
@auth.login_required
def add_to_attempt(attempt_id: int) -> ResponseReturnValue:
    db = database.session()
    attempt, task = get_attempt_and_task_or_404(db, auth.user().id, attempt_id)
    form = AttemptNoteForm()
    back = (
        url_for("attempts.show", attempt_id=attempt.id)
        if form.back.data == "attempt"
        else url_for("dashboard.index")
    )
    if not form.validate_on_submit():
        flash(" ".join(e for f in form for e in f.errors) or "Please try again.", "error")
        return redirect(back)
    queries.add(db, auth.user().id, form.body.data or "", attempt.id)
    database.commit()
    flash(f"Note saved on “{task.name}”.")
    return redirect(back)


@bp.app_template_global()
def attempt_notes(attempt_id: int) -> list[Any]:
    """For the attempt's page: the notes written on it, oldest first."""
    return queries.on_attempt(database.session(), auth.user().id, attempt_id)

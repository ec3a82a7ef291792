"""The notes' forms: a new note, an edited one, a note written on an attempt."""

from __future__ import annotations

from wtforms import HiddenField
from wtforms import TextAreaField
from wtforms.validators import DataRequired
from wtforms.validators import Length

from db.models import NOTES_MAX
from service.forms import BaseForm


def _body(label: str) -> TextAreaField:
    return TextAreaField(
        label,
        validators=[
            DataRequired("Write something first: an empty note isn't saved."),
            Length(max=NOTES_MAX, message=f"A note can be at most {NOTES_MAX:,} characters."),
        ],
        render_kw={"maxlength": NOTES_MAX, "rows": 4},
    )


class NoteForm(BaseForm):
    body = _body("New note")


class EditNoteForm(BaseForm):
    body = _body("Note")


class AttemptNoteForm(BaseForm):
    body = _body("Note on this task")
    # Where to go back to: the attempt's page if "attempt", else the dashboard.
    back = HiddenField()

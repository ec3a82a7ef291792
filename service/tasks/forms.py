from __future__ import annotations

from typing import Any

from wtforms import DecimalField
from wtforms import SelectField
from wtforms import StringField
from wtforms import TextAreaField
from wtforms.validators import DataRequired
from wtforms.validators import Length
from wtforms.validators import NumberRange
from wtforms.validators import Optional
from wtforms.validators import StopValidation

from db.models import DESCRIPTION_MAX
from db.models import TASK_KINDS
from db.models import TASK_NAME_MAX
from service.forms import BaseForm
from service.forms import CheckboxListField
from service.forms import emotion_checklist
from service.forms import new_emotions_field

MAX_MINUTES = 100_000


def minutes_field(label: str, required: bool = False) -> DecimalField:
    return DecimalField(
        label,
        places=None,
        validators=[
            DataRequired("Enter a number of minutes.") if required else Optional(),
            NumberRange(0, MAX_MINUTES, f"Enter minutes from 0 to {MAX_MINUTES:,}."),
        ],
        render_kw={"inputmode": "decimal"},
    )


class GroupChecklist(CheckboxListField):
    """The person's groups to tick; an id that isn't one of theirs gets a message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.type = "CheckboxListField"  # rendered as one (service/templates/_macros.html)

    def pre_validate(self, form: object) -> None:
        known = {value for value, _label in self.choices or []}
        if any(value not in known for value in self.data or []):
            raise StopValidation("Choose among your own groups (Groups page).")


class TaskForm(BaseForm):
    name = StringField(
        "Name",
        validators=[
            DataRequired("Give the task a name."),
            Length(max=TASK_NAME_MAX, message=f"At most {TASK_NAME_MAX} characters."),
        ],
    )
    description = TextAreaField(
        "Description",
        validators=[
            Length(max=DESCRIPTION_MAX, message=f"At most {DESCRIPTION_MAX:,} characters.")
        ],
    )
    kind = SelectField("Kind", choices=[(k, k.capitalize()) for k in TASK_KINDS])
    default_estimate_minutes = minutes_field("Default time estimate (minutes)")
    emotions = emotion_checklist("Emotions to track for this task")
    new_emotions = new_emotions_field()
    # Task groups: the person's own (choices set by the view).
    groups = GroupChecklist("Groups", coerce=int)

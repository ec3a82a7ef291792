from __future__ import annotations

import re
from typing import Any

from wtforms import RadioField
from wtforms import SelectField
from wtforms import StringField
from wtforms import TextAreaField
from wtforms.validators import DataRequired
from wtforms.validators import Length
from wtforms.validators import StopValidation
from wtforms.validators import ValidationError

from db.models import DESCRIPTION_MAX
from db.models import TASK_KINDS
from db.models import TASK_NAME_MAX
from service.forms import BaseForm
from service.forms import CheckboxListField
from service.forms import emotion_checklist
from service.forms import minutes_field
from service.forms import new_emotions_field

REPEAT_CHOICES = [
    ("none", "Does not repeat"),
    ("daily", "Every day"),
    ("weekdays", "On the weekdays chosen below"),
]
WEEKDAY_CHOICES = list(
    enumerate(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"))
)
TIME_OF_DAY = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
TIME_MESSAGE = "Enter the time of day as HH:MM (24 hours), for example 07:30."


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
    repeat = RadioField(
        "Repeat",
        choices=REPEAT_CHOICES,
        default="none",
        validate_choice=False,  # checked in validate_repeat, with a clearer message
    )
    repeat_days = CheckboxListField("Weekdays it repeats on", choices=WEEKDAY_CHOICES, coerce=int)
    repeat_time = StringField(
        "Time of day it falls due (HH:MM)",
        description="In your time zone. An attempt is ready on your dashboard from then on.",
        render_kw={"type": "time"},
    )

    def validate_repeat(self, field: Any) -> None:
        if field.data not in dict(REPEAT_CHOICES):
            raise ValidationError(
                "Choose how the task repeats: not, every day or on chosen weekdays."
            )

    def validate_repeat_days(self, field: Any) -> None:
        if self.repeat.data == "weekdays" and not field.data:
            raise ValidationError("Choose at least one weekday, or another way to repeat.")

    def validate_repeat_time(self, field: Any) -> None:
        if self.repeat.data in ("daily", "weekdays") and not TIME_OF_DAY.fullmatch(
            field.data or ""
        ):
            raise ValidationError(TIME_MESSAGE)

    # Task groups: the person's own (choices set by the view).
    groups = GroupChecklist("Groups", coerce=int)

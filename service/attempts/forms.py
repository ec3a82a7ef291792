from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from wtforms import DateField
from wtforms import RadioField
from wtforms import StringField
from wtforms import TextAreaField
from wtforms import TimeField
from wtforms.validators import AnyOf
from wtforms.validators import DataRequired
from wtforms.validators import InputRequired
from wtforms.validators import Length
from wtforms.validators import Optional
from wtforms.validators import StopValidation
from wtforms.validators import ValidationError

from db.models import CANCEL_CATEGORIES
from db.models import CONTEXT_MAX
from db.models import DESCRIPTION_MAX
from db.models import NOTES_MAX
from service.forms import BaseForm
from service.forms import IntensitiesField
from service.forms import emotion_checklist
from service.forms import minutes_field
from service.forms import new_emotions_field
from service.forms import scale_field

PHYSICAL_CONTEXTS = ("Home", "Work", "Gym", "Outdoors", "Errands")
REASON_MAX = 1000

PREDICTION_LABELS = {
    "expected_aversion": "Aversion: how much you don't want to do it",
    "expected_relief": "Expected relief afterwards",
    "expected_cognitive_load": "Expected mental load",
    "expected_emotional_load": "Expected emotional load",
    "expected_physical_load": "Expected physical load",
    "motivation": "Motivation",
}
OUTCOME_LABELS = {
    "actual_relief": "Relief",
    "actual_cognitive_load": "Mental load",
    "actual_emotional_load": "Emotional load",
    "actual_physical_load": "Physical load",
}


# Dates people can mean; near the ends of the calendar a time zone can't convert them.
FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(2999, 12, 31)
# A due date without a time: the end of that day (as the old app did).
END_OF_DAY = dt.time(23, 59)


class _Said:
    """A field whose unparsable value gets a sentence of ours instead of WTForms' own
    ("Not a valid date value."). WTForms 3.3 has ``invalid_value_message`` for this, but it
    needs Python 3.11, and the servers run 3.10 (Ubuntu 22.04)."""

    invalid_message = ""

    def process_formdata(self, valuelist: list[Any]) -> None:
        try:
            super().process_formdata(valuelist)  # type: ignore[misc]
        except ValueError:
            raise ValueError(self.invalid_message) from None


class _DayField(_Said, DateField):
    invalid_message = "Enter a real date, like 2026-03-31."


class _ClockField(_Said, TimeField):
    invalid_message = "Enter a time of day, like 17:30."


def day_field(label: str, description: str = "") -> DateField:
    """A date (``YYYY-MM-DD``, as date inputs send it), with a message people understand."""
    return _DayField(label, validators=[Optional(), _plausible_day], description=description)


def _plausible_day(_form: Any, field: DateField) -> None:
    if field.data is not None and not FIRST_DAY <= field.data <= LAST_DAY:
        raise ValidationError(f"Choose a date from {FIRST_DAY.year} to {LAST_DAY.year}.")


def clock_field(label: str) -> TimeField:
    """A time of day (``HH:MM``, or with seconds as some time inputs send it)."""
    return _ClockField(label, format=["%H:%M", "%H:%M:%S"], validators=[Optional()])


def _time_needs_a_day(day: DateField, time: TimeField, message: str) -> None:
    if time.data is not None and day.data is None and not day.errors:
        raise ValidationError(message)


def local_instant(
    day: dt.date | None, time: dt.time | None, timezone: str, default: dt.time
) -> dt.datetime | None:
    """The instant a person means by a day and time of day in their time zone, in UTC."""
    if day is None:
        return None
    local = dt.datetime.combine(day, time or default, ZoneInfo(timezone))
    return local.astimezone(dt.timezone.utc)


def local_day_and_time(
    at: dt.datetime | None, timezone: str
) -> tuple[dt.date | None, dt.time | None]:
    """The reverse of :func:`local_instant`, for a form's defaults."""
    if at is None:
        return None, None
    local = at.astimezone(ZoneInfo(timezone))
    return local.date(), local.time().replace(second=0, microsecond=0)


def _notes(label: str, limit: int = NOTES_MAX) -> TextAreaField:
    return TextAreaField(
        label, validators=[Length(max=limit, message=f"At most {limit:,} characters.")]
    )


class PredictionForm(BaseForm):
    expected_aversion = scale_field(PREDICTION_LABELS["expected_aversion"])
    expected_relief = scale_field(PREDICTION_LABELS["expected_relief"])
    expected_cognitive_load = scale_field(PREDICTION_LABELS["expected_cognitive_load"])
    expected_emotional_load = scale_field(PREDICTION_LABELS["expected_emotional_load"])
    expected_physical_load = scale_field(PREDICTION_LABELS["expected_physical_load"])
    motivation = scale_field(PREDICTION_LABELS["motivation"])
    time_estimate_minutes = minutes_field("Time estimate (minutes)")
    emotions = emotion_checklist("Emotions you feel now")
    intensities = IntensitiesField()
    new_emotions = new_emotions_field()
    physical_context = StringField(
        "Where (physical context)",
        validators=[Length(max=CONTEXT_MAX, message=f"At most {CONTEXT_MAX} characters.")],
        description="Home, Work, Gym, Outdoors, Errands, or your own words.",
        render_kw={"list": "physical-contexts"},
    )
    description = _notes("Notes for this attempt", DESCRIPTION_MAX)
    due_date = day_field(
        "Due date (optional)",
        "In your time zone. A date without a time means the end of that day (23:59).",
    )
    due_time = clock_field("Due time (optional)")

    def validate_due_time(self, field: TimeField) -> None:
        _time_needs_a_day(self.due_date, field, "Choose a due date for this time too.")


class OutcomeForm(BaseForm):
    actual_relief = scale_field(OUTCOME_LABELS["actual_relief"])
    actual_cognitive_load = scale_field(OUTCOME_LABELS["actual_cognitive_load"])
    actual_emotional_load = scale_field(OUTCOME_LABELS["actual_emotional_load"])
    actual_physical_load = scale_field(OUTCOME_LABELS["actual_physical_load"])
    completion_percent = scale_field("How much got done (%)", high=200)
    minutes_spent = minutes_field("Minutes spent", required=True)
    emotions = emotion_checklist("Emotions you feel now")
    intensities = IntensitiesField()
    new_emotions = new_emotions_field()
    notes = _notes("Notes")


class FixOutcomeForm(OutcomeForm):
    """A completed attempt's outcome, corrected afterwards: the same fields and checks as
    completing it, and when it was completed."""

    completed_date = _DayField(
        "Completed on",
        validators=[InputRequired("Say on which day it was completed."), _plausible_day],
        description="In your time zone.",
    )
    completed_time = _ClockField(
        "At",
        format=["%H:%M", "%H:%M:%S"],
        validators=[InputRequired("Say at what time it was completed.")],
    )


class CancelForm(BaseForm):
    category = RadioField(
        "What kind of reason?",
        choices=list(CANCEL_CATEGORIES.items()),
        validate_choice=False,
        validators=[
            Optional(),
            AnyOf(list(CANCEL_CATEGORIES), message="Choose one of the listed kinds."),
        ],
    )
    reason = StringField(
        "Why are you cancelling?",
        validators=[Length(max=REASON_MAX, message=f"At most {REASON_MAX:,} characters.")],
        description="Optional when you chose a kind of reason above, except “Other”.",
    )
    completion_percent = scale_field("Progress made (%)")
    minutes_spent = minutes_field("Minutes spent")
    notes = _notes("Notes")

    def validate_reason(self, field: StringField) -> None:
        """A kind of reason, or the reason in words (always for "Other")."""
        if field.data:
            return
        if not self.category.data:
            raise StopValidation("Say why, even briefly: it helps your analytics.")
        if self.category.data == "other":
            raise StopValidation("Say what the other reason is, even briefly.")


class PauseForm(BaseForm):
    reason = StringField(
        "Reason for pausing (optional)",
        validators=[Length(max=REASON_MAX, message=f"At most {REASON_MAX:,} characters.")],
    )


class PostponeForm(BaseForm):
    reason = StringField(
        "Why are you postponing it?",
        validators=[
            DataRequired("Say why, even briefly: it helps you later."),
            Length(max=REASON_MAX, message=f"At most {REASON_MAX:,} characters."),
        ],
    )
    until_date = day_field(
        "Postpone until (optional)",
        "In your time zone. A date without a time means the start of that day. "
        "Without a date it stays postponed until you bring it back.",
    )
    until_time = clock_field("Time (optional)")

    def validate_until_time(self, field: TimeField) -> None:
        _time_needs_a_day(self.until_date, field, "Choose a date for this time too.")

"""The history page's filters (a GET form)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from wtforms import DateField
from wtforms import SearchField
from wtforms import SelectField
from wtforms import ValidationError
from wtforms.validators import AnyOf
from wtforms.validators import Length
from wtforms.validators import Optional

from db.models import BIGINT_MAX
from service.forms import BaseForm
from service.forms import SelectRenderedOnce
from service.history import queries

STATUS_CHOICES = [
    ("", "Any"),
    ("open", "Open (not finished)"),
    ("paused", "Paused"),
    ("postponed", "Postponed"),
    ("completed", "Completed"),
    ("cancelled", "Cancelled"),
]
TASK_MESSAGE = "Choose one of your tasks."
GROUP_MESSAGE = "Choose one of your groups."


# Dates before this are no one's history, and near year 1 a time zone can't convert them.
FIRST_DAY = dt.date(1900, 1, 1)


class DayField(DateField):
    """A date (``YYYY-MM-DD``, as date inputs send it), with a message people understand."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError("Enter a real date, like 2026-03-31.") from None


def _plausible_day(_form: Any, field: DayField) -> None:
    if field.data is not None and field.data < FIRST_DAY:
        raise ValidationError(f"Choose a date from {FIRST_DAY.year} on.")


def _task_id(_form: Any, field: SelectField) -> None:
    if not (field.data.isdigit() and int(field.data) <= BIGINT_MAX):
        raise ValidationError(TASK_MESSAGE)


def _group_id(_form: Any, field: SelectField) -> None:
    if not (field.data.isdigit() and int(field.data) <= BIGINT_MAX):
        raise ValidationError(GROUP_MESSAGE)


class HistoryForm(BaseForm):
    """The filters; a GET form, so no CSRF token."""

    class Meta:
        csrf = False

    q = SearchField(
        "Search",
        validators=[Length(max=200, message="At most 200 characters.")],
        description="Words from task names and descriptions, notes and cancel reasons; "
        "the start of a word is enough.",
    )
    # Rendered once per distinct state and kept: a hundred tasks' options through WTForms
    # were a third of the page's time.
    task = SelectField(
        "Task",
        validate_choice=False,
        validators=[Optional(), _task_id],
        widget=SelectRenderedOnce(),
    )
    group = SelectField(
        "Group",
        validate_choice=False,
        validators=[Optional(), _group_id],
        widget=SelectRenderedOnce(),
    )
    status = SelectField(
        "Status",
        choices=STATUS_CHOICES,
        validate_choice=False,
        widget=SelectRenderedOnce(),
        validators=[
            Optional(),
            AnyOf([key for key, _ in STATUS_CHOICES], message="Choose one of the statuses."),
        ],
    )
    start = DayField("From", validators=[Optional(), _plausible_day])
    end = DayField("To (including)", validators=[Optional(), _plausible_day])

    def validate_end(self, field: DayField) -> None:
        if field.data and self.start.data and not self.start.errors:
            if field.data < self.start.data:
                raise ValidationError("The end date is before the start date.")

    def filters(self, timezone: str) -> queries.Filters:
        """The valid filters (each invalid one left out), dates as instants in ``timezone``."""

        def value(name: str) -> Any:
            field = self[name]
            return None if field.errors or field.data in (None, "") else field.data

        terms: tuple[str, ...] = ()
        if value("q") is not None:
            terms = queries.search_terms(value("q"))
            if not terms:
                self.q.errors = ["Type a word (letters or digits) to search for."]
        zone = ZoneInfo(timezone)
        start, end = value("start"), value("end")
        return queries.Filters(
            task_id=int(value("task")) if value("task") is not None else None,
            group_id=int(value("group")) if value("group") is not None else None,
            status=value("status"),
            start=dt.datetime.combine(start, dt.time(), zone) if start else None,
            # The whole end day: up to the next local midnight (none after the last day).
            end=(
                dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone)
                if end and end < dt.date.max
                else None
            ),
            terms=terms,
        )

    def kept(self) -> dict[str, str]:
        """The filters as query-string values, for the links to other pages."""
        names = ("q", "task", "group", "status", "start", "end")
        return {
            name: raw
            for name in names
            if not self[name].errors and (raw := (self[name].raw_data or [""])[0].strip())
        }

"""GET /history: every attempt of the person, newest first, filtered and searched.

The filters are a GET form (bookmarkable, no CSRF token). A value that can't be used (a
date like 2026-13-40, an unknown status, a task that isn't the person's, a page link cut
short) is left out with a message by its field, and the page answers 400; it never shows
anything but the person's own attempts.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from wtforms import DateField
from wtforms import SearchField
from wtforms import SelectField
from wtforms import ValidationError
from wtforms.validators import AnyOf
from wtforms.validators import Length
from wtforms.validators import Optional

from db.models import BIGINT_MAX
from db.models import utcnow
from service import auth
from service import database
from service.forms import BaseForm
from service.forms import SelectRenderedOnce
from service.history import queries
from service.paging import Cursor

bp = Blueprint("history", __name__)

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
CURSOR_MESSAGE = (
    "That link to a page of your history isn't complete (it may have been cut short), "
    "so here are your newest attempts."
)
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


def _cursor() -> tuple[Cursor | None, str, bool]:
    """The page asked for: its cursor, ``older``/``newer`` than it, and whether the link
    was usable."""
    for direction, name in (("older", "before"), ("newer", "after")):
        text = request.args.get(name)
        if text is not None:
            cursor = Cursor.parse(text)
            return cursor, direction if cursor else "first", cursor is not None
    return None, "first", True


@bp.get("/history")
@auth.login_required
def index() -> ResponseReturnValue:
    user = auth.user()
    form = HistoryForm(request.args)
    valid = form.validate()
    filters = form.filters(user.timezone)
    cursor, direction, cursor_valid = _cursor()
    page = queries.page(database.session(), user.id, filters, cursor, direction)
    form.task.choices = [("", "All tasks")] + [
        (str(t.id), f"{t.task_name} (archived)" if t.archived else t.task_name) for t in page.tasks
    ]
    if filters.task_id is not None and all(t.id != filters.task_id for t in page.tasks):
        form.task.errors = [TASK_MESSAGE]  # none of theirs (another person's, or deleted)
    form.group.choices = [("", "All groups")] + [(str(g.id), g.task_name) for g in page.groups]
    if filters.group_id is not None and all(g.id != filters.group_id for g in page.groups):
        form.group.errors = [GROUP_MESSAGE]  # none of theirs: the filter matched nothing
    kept: dict[str, Any] = form.kept()
    links = {}
    if page.attempts and page.has_older:
        last = page.attempts[-1]
        before = Cursor(last.initialized_at, last.id).text()
        links["older"] = url_for("history.index", **kept, before=before)
    if page.attempts and page.has_newer:
        first = page.attempts[0]
        after = Cursor(first.initialized_at, first.id).text()
        links["newer"] = url_for("history.index", **kept, after=after)
    if direction != "first":
        links["newest"] = url_for("history.index", **kept)
    html = render_template(
        "history/index.html",
        form=form,
        page=page,
        links=links,
        filtered=bool(kept),
        now=utcnow(),
        cursor_message=None if cursor_valid else CURSOR_MESSAGE,
    )
    fine = valid and cursor_valid and not (form.task.errors or form.group.errors or form.q.errors)
    return html, 200 if fine else 400

"""GET /analytics: one page, its chart choices in the query string (bookmarkable)."""

from __future__ import annotations

from dataclasses import astuple
from typing import Any

from flask import Blueprint
from flask import render_template
from flask import request
from flask.typing import ResponseReturnValue
from wtforms import SelectField
from wtforms.validators import AnyOf

from service import auth
from service import database
from service.accounts.forms import SelectRenderedOnce
from service.analytics import queries
from service.analytics import report
from service.dashboard import page_cache
from service.forms import BaseForm
from service.history.queries import BIGINT_MAX

bp = Blueprint("analytics", __name__)

DEFAULTS = report.Choices()
MEASURE_CHOICES = [(key, m.label) for key, m in queries.MEASURES.items()]
MEASURE_MESSAGE = "Choose one of the listed measures."


def _choice(label: str, choices: list[tuple[str, str]], default: str, message: str) -> SelectField:
    # validate_choice=False: AnyOf says what is wrong in words a person understands.
    return SelectField(
        label,
        choices=choices,
        default=default,
        validate_choice=False,
        validators=[AnyOf([key for key, _ in choices], message=message)],
        widget=SelectRenderedOnce(),  # six selects rendered per view: ~40 % of the template
    )


class ChartChoicesForm(BaseForm):
    """The trend and correlation choices; a GET form, so no CSRF token."""

    class Meta:
        csrf = False

    measure = _choice("Measure", MEASURE_CHOICES, DEFAULTS.measure, MEASURE_MESSAGE)
    window = _choice(
        "Period",
        [(str(days), f"Last {days} days") for days in report.WINDOWS],
        str(DEFAULTS.window),
        "Choose 30, 60 or 90 days.",
    )
    aggregation = _choice(
        "Per day",
        [("mean", "Mean"), ("sum", "Sum"), ("median", "Median")],
        DEFAULTS.aggregation,
        "Choose mean, sum or median.",
    )
    x = _choice("X (across)", MEASURE_CHOICES, DEFAULTS.x, MEASURE_MESSAGE)
    y = _choice("Y (up)", MEASURE_CHOICES, DEFAULTS.y, MEASURE_MESSAGE)
    method = _choice(
        "Method",
        [("pearson", "Pearson (linear)"), ("spearman", "Spearman (rank)")],
        DEFAULTS.method,
        "Choose Pearson or Spearman.",
    )

    def choices(self) -> report.Choices:
        """The valid choices, with the default in place of each invalid one."""

        def pick(name: str) -> str:
            field = self[name]
            return str(getattr(DEFAULTS, name)) if field.errors else str(field.data)

        return report.Choices(
            measure=pick("measure"),
            window=int(pick("window")),
            aggregation=pick("aggregation"),
            x=pick("x"),
            y=pick("y"),
            method=pick("method"),
        )


GROUP_MESSAGE = "Choose one of your groups."


def _is_theirs(page: dict[str, Any], group_id: int | None) -> bool:
    return group_id is None or any(pair[0] == group_id for pair in page["groups"])


def _figures(
    user: auth.CurrentUser, choices: report.Choices, group_id: int | None = None
) -> dict[str, Any]:
    """The page's figures: cached for the person's current history, else computed and kept.

    They read tasks and finished (completed or cancelled) attempts only, so a new attempt,
    a start or a pause leaves them current (``users.history_version``). ``group_id``: only
    that group's tasks (part of the key: the filtered figures are kept like the others).
    """
    today = report.local_today(user.timezone)
    key = page_cache.make_key(today, user.timezone, *astuple(choices), group_id)
    page: dict[str, Any] | None = page_cache.lookup(key)
    if page is None:
        db = database.session()
        page = report.build(db, user.id, user.timezone, choices, group_id)
        # An empty account is cheap to build (one statement); not worth a write. Nor
        # is a group that isn't the person's (the view shows every task instead).
        if not page["empty"] and _is_theirs(page, group_id):
            page_cache.store(db, user.id, key, page)
            database.commit()
    return page


@bp.get("/analytics")
@auth.login_required
def index() -> ResponseReturnValue:
    form = ChartChoicesForm(request.args)
    valid = form.validate()
    choices = form.choices()
    # Task groups: the group filter (only the tasks of one of the person's groups).
    asked = request.args.get("group", "")
    group_id = int(asked) if asked.isdigit() and int(asked) <= BIGINT_MAX else None
    page = _figures(auth.user(), choices, group_id)
    group_error = ""
    if asked and (group_id is None or not _is_theirs(page, group_id)):
        group_error = GROUP_MESSAGE  # another person's, a deleted one, not a number
        if group_id is not None:
            page = _figures(auth.user(), choices)
        group_id = None
    # A hand-edited URL gets the page with the defaults and a message by the field.
    html = render_template(
        "analytics/index.html",
        page=page,
        form=form,
        choices=choices,
        number=report.number,
        day_text=report.day_text,
        group_id=group_id,
        group_error=group_error,
    )
    return html, 200 if valid and not group_error else 400

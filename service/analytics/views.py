"""GET /analytics: one page, its chart choices in the query string (bookmarkable)."""

from __future__ import annotations

from dataclasses import astuple
from typing import Any

from flask import Blueprint
from flask import render_template
from flask import request
from flask.typing import ResponseReturnValue

from db.models import BIGINT_MAX
from service import auth
from service import database
from service import page_cache
from service.analytics import report
from service.analytics.forms import ChartChoicesForm

bp = Blueprint("analytics", __name__)

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

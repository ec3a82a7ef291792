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


def _render(
    page: dict[str, Any],
    form: ChartChoicesForm,
    choices: report.Choices,
    group_id: int | None,
    group_error: str,
    **extra: Any,
) -> str:
    return render_template(
        "analytics/index.html",
        page=page,
        form=form,
        choices=choices,
        number=report.number,
        day_text=report.day_text,
        group_id=group_id,
        group_error=group_error,
        **extra,
    )


@bp.get("/analytics")
@auth.login_required
def index() -> ResponseReturnValue:
    """The analytics page, kept whole in the page cache for the person's history.

    Its figures read tasks and finished (completed or cancelled) attempts only, so a new
    attempt, a start or a pause leaves a stored page current (``users.history_version``);
    a repeated view is the session lookup plus filling in the page's holes. The key holds
    the chart choices and the group shown (``group_id``: only that group's tasks). A page
    with a message by a field (a hand-edited URL) is rendered each time, never stored.
    """
    form = ChartChoicesForm(request.args)
    valid = form.validate()
    choices = form.choices()
    user = auth.user()
    # Task groups: the group filter (only the tasks of one of the person's groups).
    asked = request.args.get("group", "")
    group_id = int(asked) if asked.isdigit() and int(asked) <= BIGINT_MAX else None
    cacheable = valid and (group_id is not None or not asked)
    today = report.local_today(user.timezone)
    key = page_cache.make_key(today, user.timezone, user.username, *astuple(choices), group_id)
    if cacheable:
        stored = page_cache.stored_page(key)
        if stored is not None:  # current for the person's history: all the page reads
            return page_cache.fill(stored)
    db = database.session()
    page = report.build(db, user.id, user.timezone, choices, group_id)
    group_error = ""
    if asked and (group_id is None or not _is_theirs(page, group_id)):
        group_error = GROUP_MESSAGE  # another person's, a deleted one, not a number
        if group_id is not None:
            page = report.build(db, user.id, user.timezone, choices)
        group_id = None
    # An empty account is cheap to build (one statement); not worth a write.
    if cacheable and not group_error and not page["empty"]:
        html = page_cache.store_whole_page(
            db,
            user.id,
            key,
            lambda holes: _render(page, form, choices, group_id, group_error, **holes.context()),
        )
        database.commit()
        return html
    # A hand-edited URL gets the page with the defaults and a message by the field.
    html = _render(page, form, choices, group_id, group_error)
    return html, 200 if valid and not group_error else 400

"""GET /history: every attempt of the person, newest first, filtered and searched.

The filters are a GET form (bookmarkable, no CSRF token). A value that can't be used (a
date like 2026-13-40, an unknown status, a task that isn't the person's, a page link cut
short) is left out with a message by its field, and the page answers 400; it never shows
anything but the person's own attempts.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from db.models import utcnow
from service import auth
from service import database
from service.history import queries
from service.history.forms import GROUP_MESSAGE
from service.history.forms import TASK_MESSAGE
from service.history.forms import HistoryForm
from service.paging import Cursor

bp = Blueprint("history", __name__)

CURSOR_MESSAGE = (
    "That link to a page of your history isn't complete (it may have been cut short), "
    "so here are your newest attempts."
)


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

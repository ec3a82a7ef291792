from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint
from flask import flash
from flask import get_template_attribute
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from db.models import BIGINT_MAX
from db.models import utcnow
from service import auth
from service import database
from service import page_cache
from service import recommendations
from service import routines
from service.dashboard import queries
from service.dashboard.forms import RecommendationForm
from service.groups import services as group_services

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    """The dashboard, kept whole in the page cache until the person's data changes.

    A repeated view is the session lookup plus filling in the page's holes: rendering the
    page was most of a repeated view's cost, and the dashboard is most of what people load.
    After a change to open attempts only (a new attempt, a start, a pause), only the part
    showing them is computed again.
    """
    user = auth.current_user()
    if user is None:
        return render_template("dashboard/welcome.html")
    chosen = recommendations.Filter.from_preferences(user.preferences)
    today = queries.local_today(user.timezone)
    if request.args.get("group"):
        return _grouped(user, chosen, today, request.args["group"])
    # Everything the page shows besides the person's tasks and attempts (their data version).
    key = page_cache.make_key(today, user.timezone, user.username, chosen)
    stored = page_cache.stored_page(key)
    if stored is not None and stored.current:
        return page_cache.fill(stored)
    db = database.session()
    now = utcnow()
    if stored is not None:  # current but for its open attempts
        # Routines first: an occurrence that fell due gets its attempt, read just below.
        schedules = [routines.Schedule.from_json(r) for r in stored.routines]
        statuses, schedules = routines.materialise(db, user.id, user.timezone, schedules, now)
        arranged = queries.arrange_open(queries.open_attempts(db, user.id), now)
        page = page_cache.store_part(
            db,
            user.id,
            key,
            stored,
            _open_part(arranged, statuses),
            _timer(arranged.running),
            _expires(arranged, statuses),
            [s.as_json() for s in schedules],
        )
        database.commit()
        return page
    tasks = queries.active_tasks(db, user.id)
    schedules = [s for s in map(routines.Schedule.of, tasks) if s is not None]
    statuses, schedules = routines.materialise(db, user.id, user.timezone, schedules, now)
    attempts = queries.open_and_recent_attempts(db, user.id)
    days = queries.daily_totals(db, user.id, user.timezone, today)
    arranged = queries.arrange_open([a for a in attempts if a["section"] == "open"], now)
    render = _main_part(tasks, attempts, days, chosen, GroupFilter(queries.group_choices(tasks)))
    page = page_cache.store_page(
        db,
        user.id,
        key,
        render,
        _open_part(arranged, statuses),
        _timer(arranged.running),
        _expires(arranged, statuses),
        [s.as_json() for s in schedules],
    )
    database.commit()
    return page


@dataclass(frozen=True)
class GroupFilter:
    """The dashboard's group filter: the groups offered, the one chosen (if any: its id and
    name) and a message when the one asked for isn't the person's."""

    choices: list[tuple[int, str]]
    group_id: int | None = None
    name: str = ""
    error: str = ""


def _main_part(
    tasks: list[dict[str, Any]],
    attempts: list[dict[str, Any]],
    days: list[dict[str, Any]],
    chosen: recommendations.Filter,
    groups: GroupFilter,
) -> Callable[[page_cache.Holes, Markup], str]:
    """Renders the page around its open attempts."""

    def render(holes: page_cache.Holes, open_part: Markup) -> str:
        return render_template(
            "dashboard/index.html",
            open_part=open_part,
            recent=[a for a in attempts if a["section"] == "recent"],
            tasks=tasks,
            quick_start=queries.quick_start(tasks),
            week_minutes=queries.this_week(days, "minutes"),
            week_relief=queries.this_week(days, "relief_score"),
            days=days,
            recommended=recommendations.recommend(tasks, chosen),
            measures=recommendations.MEASURES,
            chosen=chosen,
            recommendation_fields=_recommendation_fields(chosen.measures, chosen.max_minutes),
            urls=_url_patterns(),
            groups=groups,
            **holes.context(),
        )

    return render


GROUP_MESSAGE = "Choose one of your groups."


def _grouped(
    user: auth.CurrentUser, chosen: recommendations.Filter, today: Any, asked: str
) -> ResponseReturnValue:
    """The dashboard showing one group's tasks and their attempts (never cached: the cache
    keeps the whole dashboard). A group that isn't the person's (another person's, a
    deleted one, not a number) gets a message by the filter, and the whole dashboard.

    The running task shows whatever its group; the week's figures are of all tasks.
    Routines fall due here as on the whole dashboard.
    """
    db = database.session()
    now = utcnow()
    group = None
    if asked.isdigit() and int(asked) <= BIGINT_MAX:
        group = group_services.group_tasks(db, user.id, int(asked))
    tasks = queries.active_tasks(db, user.id)
    schedules = [s for s in map(routines.Schedule.of, tasks) if s is not None]
    statuses, _schedules = routines.materialise(db, user.id, user.timezone, schedules, now)
    attempts = queries.open_and_recent_attempts(db, user.id)
    days = queries.daily_totals(db, user.id, user.timezone, today)
    choices = queries.group_choices(tasks)
    if group is None:
        groups = GroupFilter(choices, error=GROUP_MESSAGE)
    else:
        name, task_ids = group
        if int(asked) not in dict(choices):  # a group without active tasks
            choices = sorted([*choices, (int(asked), name)], key=lambda c: c[1].lower())
        groups = GroupFilter(choices, int(asked), name)
        tasks = [t for t in tasks if t["id"] in task_ids]
        attempts = [a for a in attempts if a["task_id"] in task_ids or a["status"] == "started"]
        statuses = [s for s in statuses if s.task_id in task_ids]
    arranged = queries.arrange_open([a for a in attempts if a["section"] == "open"], now)
    html = page_cache.render_page(
        _main_part(tasks, attempts, days, chosen, groups),
        _open_part(arranged, statuses),
        _timer(arranged.running),
    )
    database.commit()  # a routine's occurrence that fell due
    return html, 400 if groups.error else 200


def _expires(
    arranged: queries.OpenAttempts, statuses: list[routines.RoutineStatus]
) -> dt.datetime | None:
    """When the open attempts shown stop being right: one falls due, a postponement runs
    out, or a routine's next occurrence falls due (its attempt is made then)."""
    changes = [arranged.expires, routines.next_change(statuses)]
    return min((c for c in changes if c is not None), default=None)


def _timer(running: dict[str, Any] | None) -> tuple[str, Any, float] | None:
    if running is None:
        return None
    return running["status"], running["resumed_at"], running["minutes_spent"]


def _open_part(
    arranged: queries.OpenAttempts, statuses: list[routines.RoutineStatus]
) -> Callable[[page_cache.Holes], str]:
    """Renders Current task, Ready, Postponed and Routines, the part of the page that shows
    open attempts (and what changes with the clock)."""

    def render(holes: page_cache.Holes) -> str:
        return render_template(
            "dashboard/_open.html",
            running=arranged.running,
            ready=arranged.ready,
            postponed=arranged.postponed,
            routines=statuses,
            **holes.context(),
        )

    return render


# An id no row has, replaced by %d to turn one url_for into a pattern for every row.
_PLACEHOLDER = 987_654_321_987


def _url_pattern(endpoint: str, id_name: str) -> str:
    values: dict[str, Any] = {id_name: _PLACEHOLDER}
    url = url_for(endpoint, **values).replace("%", "%%")
    return url.replace(str(_PLACEHOLDER), "%d")


def _url_patterns() -> dict[str, str]:
    """The links repeated once per task or attempt, as ``pattern % id``: a url_for per
    link was about a quarter of the page's rendering time with 60 tasks."""
    return {
        "initialize": _url_pattern("attempts.initialize", "task_id"),
        "quick_initialize": _url_pattern("attempts.quick_initialize", "task_id"),
        "edit": _url_pattern("tasks.edit", "task_id"),
        "archive": _url_pattern("tasks.archive", "task_id"),
        "show": _url_pattern("attempts.show", "attempt_id"),
    }


@functools.lru_cache(maxsize=256)
def _recommendation_fields(measures: tuple[str, ...], max_minutes: float | None) -> Markup:
    """The filter's fields as HTML, rendered once per distinct filter (not per view):
    WTForms rendering them was about a tenth of the page's CPU. The CSRF token is
    rendered by the page, so nothing here depends on the person or the session."""
    form = RecommendationForm(
        data={"measures": list(measures), "max_minutes": max_minutes}, meta={"csrf": False}
    )
    field = get_template_attribute("_macros.html", "field")
    fields: Markup = field(form.measures) + field(form.max_minutes)  # macros give Markup
    return fields


@bp.post("/recommendations")
@auth.login_required
def save_recommendation_filter() -> ResponseReturnValue:
    form = RecommendationForm()
    if not form.validate_on_submit():
        flash(" ".join(e for f in form for e in f.errors) or "Please try again.", "error")
        return redirect(url_for("dashboard.index") + "#recommendations")
    user = auth.user_row()
    chosen = recommendations.Filter(
        tuple(form.measures.data or recommendations.DEFAULT_MEASURES),
        float(form.max_minutes.data) if form.max_minutes.data is not None else None,
    )
    user.preferences = {**user.preferences, "recommendations": chosen.as_preferences()}
    database.commit()
    flash("Recommendations updated.")
    return redirect(url_for("dashboard.index") + "#recommendations")

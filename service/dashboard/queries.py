"""The dashboard's reads: a fixed number of statements whatever the amount of data.

Besides loading the session, the page runs exactly three statements: active tasks with
their per-task means (tasks list, quick start, recommendations), open + recent attempts,
and the daily totals of the last 90 days. It runs them only when its cached page is out of
date (see :mod:`service.page_cache`), and then stores the new page; when only its
open attempts are out of date, it runs the one statement that reads them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger
from sqlalchemy import CompoundSelect
from sqlalchemy import Date
from sqlalchemy import DateTime
from sqlalchemy import Double
from sqlalchemy import Select
from sqlalchemy import String
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import cast
from sqlalchemy import func
from sqlalchemy import literal
from sqlalchemy import select
from sqlalchemy import union_all
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from db.models import Attempt
from db.models import Task
from db.models import TaskGroup
from db.models import TaskGroupTask
from service import database
from service import routines

RECENT = 20
QUICK_START = 5
HISTORY_DAYS = 90
WEEK_DAYS = 7
# Per-task means feeding the recommendations (measure key → attempt column).
MEANS = {
    "relief": Attempt.actual_relief,
    "cognitive_load": Attempt.actual_cognitive_load,
    "emotional_load": Attempt.actual_emotional_load,
    "physical_load": Attempt.actual_physical_load,
    "stress": Attempt.stress,
    "net_wellbeing": Attempt.net_wellbeing,
    "behavioral_score": Attempt.behavioral_score,
    "duration": Attempt.minutes_spent,
    "aversion": Attempt.expected_aversion,
}


# Statements are built once, with bound parameters for the person: building and cache-keying
# them on every request showed up in the dashboard's profile.
USER_ID = bindparam("user_id", type_=BigInteger)
TIMEZONE = bindparam("timezone", type_=String)
SINCE = bindparam("since", type_=DateTime(timezone=True))


def _task_groups_column() -> Any:
    """The task's groups as a JSON array of [id, name] pairs (none when in no group): the
    dashboard's group filter, read with the tasks (no statement of its own)."""
    pairs = func.json_agg(
        aggregate_order_by(
            func.json_build_array(TaskGroup.id, TaskGroup.name), func.lower(TaskGroup.name)
        )
    )
    return (
        select(pairs)
        .join(
            TaskGroupTask,
            and_(
                TaskGroupTask.group_id == TaskGroup.id,
                TaskGroupTask.user_id == TaskGroup.user_id,
            ),
        )
        .where(TaskGroupTask.task_id == Task.id, TaskGroupTask.user_id == Task.user_id)
        .correlate(Task)
        .scalar_subquery()
        .label("groups")
    )


def _active_tasks_statement() -> Select[Any]:
    completed = and_(
        Attempt.task_id == Task.id,
        Attempt.user_id == Task.user_id,
        Attempt.status == "completed",
    )
    return (
        select(
            Task.id,
            Task.name,
            Task.kind,
            Task.version,
            Task.default_estimate_minutes,
            Task.routine_frequency,
            Task.routine_weekdays,
            Task.routine_time,
            Task.routine_since,
            routines.MADE,
            func.count(Attempt.id).label("completed_count"),
            func.max(Attempt.completed_at).label("last_completed_at"),
            *(cast(func.avg(column), Double).label(f"avg_{key}") for key, column in MEANS.items()),
            _task_groups_column(),
        )
        .outerjoin(Attempt, completed)
        .where(Task.user_id == USER_ID, Task.archived_at.is_(None))
        .group_by(Task.id)
        .order_by(func.lower(Task.name))
    )


ACTIVE_TASKS = _active_tasks_statement()


def active_tasks(db: Session, user_id: int) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in database.run(db, ACTIVE_TASKS, {"user_id": user_id})]


def group_choices(tasks: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """The groups of the person's active tasks, by name: what the group filter offers."""
    names: dict[int, str] = {}
    for task in tasks:
        for group_id, name in task["groups"] or ():
            names[int(group_id)] = str(name)
    return sorted(names.items(), key=lambda pair: (pair[1].lower(), pair[0]))


def quick_start(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    done = [t for t in tasks if t["last_completed_at"] is not None]
    return sorted(done, key=lambda t: t["last_completed_at"], reverse=True)[:QUICK_START]


_COLUMNS = (
    Attempt.id,
    Attempt.status,
    Attempt.task_id,
    Task.name.label("task_name"),
    Attempt.initialized_at,
    Attempt.started_at,
    Attempt.resumed_at,
    Attempt.completed_at,
    Attempt.minutes_spent,
    Attempt.time_estimate_minutes,
    Attempt.expected_aversion,
    Attempt.expected_relief,
    Attempt.expected_cognitive_load,
    Attempt.expected_emotional_load,
    Attempt.expected_physical_load,
    Attempt.motivation,
    Attempt.actual_relief,
    Attempt.net_wellbeing,
    Attempt.due_at,
    Attempt.postponed_at,
    Attempt.postponed_until,
    # The latest postponement's reason (``extra`` keeps them all, oldest first).
    Attempt.extra["postponements"][-1]["reason"].astext.label("postpone_reason"),
    Attempt.routine_occurrence,
)
_JOINED = and_(Task.id == Attempt.task_id, Task.user_id == Attempt.user_id)
OPEN = (
    select(*_COLUMNS, literal("open").label("section"))
    .join(Task, _JOINED)
    .where(Attempt.user_id == USER_ID, Attempt.status.in_(("initialized", "started", "paused")))
    .order_by(Attempt.initialized_at)
)
_RECENT = (
    select(*_COLUMNS, literal("recent").label("section"))
    .join(Task, _JOINED)
    .where(Attempt.user_id == USER_ID, Attempt.status == "completed")
    .order_by(Attempt.completed_at.desc())
    .limit(RECENT)
)
OPEN_AND_RECENT: CompoundSelect = union_all(OPEN, _RECENT)


def open_and_recent_attempts(db: Session, user_id: int) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in database.run(db, OPEN_AND_RECENT, {"user_id": user_id})]


@dataclass(frozen=True)
class OpenAttempts:
    """The open attempts as the dashboard shows them at one moment."""

    running: dict[str, Any] | None
    ready: list[dict[str, Any]]  # overdue first (soonest due first), then by initialization
    postponed: list[dict[str, Any]]
    # When this view stops being right (an attempt falls due, a postponement runs out).
    expires: dt.datetime | None


def arrange_open(attempts: list[dict[str, Any]], now: dt.datetime) -> OpenAttempts:
    """Split and order the open attempts (``OPEN``'s rows) as of ``now``; each gets
    ``overdue`` and, if it was postponed until a time that has come, ``postponed_until``
    stays for the page to say so."""
    running = None
    ready: list[dict[str, Any]] = []
    postponed: list[dict[str, Any]] = []
    changes: list[dt.datetime] = []
    for attempt in attempts:
        due, until = attempt["due_at"], attempt["postponed_until"]
        attempt["overdue"] = due is not None and due <= now
        if due is not None and due > now:
            changes.append(due)
        if until is not None and until > now:
            changes.append(until)
        if attempt["status"] == "started":
            running = attempt
        elif attempt["postponed_at"] is not None and (until is None or until > now):
            postponed.append(attempt)
        else:
            ready.append(attempt)
    # Stable: among the overdue, the soonest due first; the rest keep their order.
    ready.sort(key=lambda a: (not a["overdue"], a["due_at"] if a["overdue"] else now))
    postponed.sort(key=lambda a: a["postponed_at"])
    return OpenAttempts(running, ready, postponed, min(changes, default=None))


def open_attempts(db: Session, user_id: int) -> list[dict[str, Any]]:
    """Only the open attempts: what a stored dashboard lacks when only they have changed."""
    return [dict(row._mapping) for row in database.run(db, OPEN, {"user_id": user_id})]


@dataclass(frozen=True)
class WeekFigure:
    value: float
    baseline: float | None  # the person's own average per 7 days before this week
    trend: str  # better | worse | steady | new


def _trend(value: float, baseline: float | None) -> str:
    if not baseline:
        return "new"
    change = (value - baseline) / baseline
    if change >= 0.10:
        return "better"
    if change <= -0.10:
        return "worse"
    return "steady"


def local_today(timezone: str) -> dt.date:
    return dt.datetime.now(ZoneInfo(timezone)).date()


def _daily_totals_statement() -> Select[Any]:
    local_day = cast(func.timezone(TIMEZONE, Attempt.completed_at), Date).label("day")
    return (
        select(
            local_day,
            func.coalesce(func.sum(Attempt.minutes_spent), 0).label("minutes"),
            func.coalesce(func.sum(Attempt.relief_duration_score), 0).label("relief_score"),
        )
        .where(
            Attempt.user_id == USER_ID,
            Attempt.status == "completed",
            Attempt.completed_at >= SINCE,
        )
        .group_by(local_day)
    )


DAILY_TOTALS = _daily_totals_statement()


def daily_totals(db: Session, user_id: int, timezone: str, today: dt.date) -> list[dict[str, Any]]:
    """Minutes and relief score per local day for the last 90 days (zero days included).

    ``today`` is the person's local date, in the time zone of the session (see
    :func:`local_today`).
    """
    first_day = today - dt.timedelta(days=HISTORY_DAYS - 1)
    params = {
        "user_id": user_id,
        "timezone": timezone,
        "since": dt.datetime.combine(first_day, dt.time(), ZoneInfo(timezone)),
    }
    by_day = {row.day: row for row in database.run(db, DAILY_TOTALS, params)}
    days = []
    for offset in range(HISTORY_DAYS):
        day = first_day + dt.timedelta(days=offset)
        row = by_day.get(day)
        days.append(
            {
                "day": day.isoformat(),
                "minutes": float(row.minutes) if row else 0.0,
                "relief_score": float(row.relief_score) if row else 0.0,
            }
        )
    return days


def this_week(days: list[dict[str, Any]], key: str) -> WeekFigure:
    week = days[-WEEK_DAYS:]
    before = days[:-WEEK_DAYS]
    value = sum(d[key] for d in week)
    # Average over the days since the person's first activity, not the whole window:
    # someone who joined ten days ago shouldn't be compared with 83 empty days.
    first = next((i for i, d in enumerate(before) if d[key]), None)
    if first is None:
        return WeekFigure(value, None, "new")
    span = before[first:]
    baseline = sum(d[key] for d in span) / len(span) * WEEK_DAYS
    return WeekFigure(value, baseline, _trend(value, baseline))

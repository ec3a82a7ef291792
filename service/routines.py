"""Routines: tasks that repeat every day or on chosen weekdays, at a local time of day.

An *occurrence* is a local date on which the routine repeats; it falls due at the routine's
time of day on that date, in the person's time zone (:func:`occurrence_instant`). A local
time that does not exist that day (clocks spring forward) falls due at the first instant
after the gap; one that exists twice (clocks fall back) at the first of the two.

When the dashboard is computed (:func:`materialise`), the attempt of each routine's most
recent due occurrence is created, unless one exists for it: the unique index on
``attempts (task_id, routine_occurrence)`` and ``INSERT ... ON CONFLICT DO NOTHING`` make
that true also for two requests at the same moment. Earlier occurrences that have no
attempt are *missed*: they are listed, never created in bulk. Every function takes the
moment it works at (``now``), so tests can travel in time without touching the clock.

A schedule carries the recent occurrences that have an attempt (``made``): the dashboard
reads them with its task list (:data:`MADE`) and keeps them with its cached page, so a
dashboard runs a statement for its routines only when an occurrence newly falls due (the
insert). Cancelling an occurrence's attempt keeps it made; deleting the attempt of the
latest occurrence makes it again once the dashboard reads its tasks afresh (an earlier
occurrence's then shows as missed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger
from sqlalchemy import bindparam
from sqlalchemy import case
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.orm import Session
from sqlalchemy.orm import aliased

from db.models import EVERY_DAY
from db.models import Attempt
from db.models import Task
from service import database

UTC = dt.timezone.utc
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# How far back missed occurrences are looked for and shown.
MISSED_DAYS = 28
# The most recent occurrences with an attempt read per routine: more than the window holds.
MADE_LIMIT = MISSED_DAYS + 7
# The longest a clock change skips (a day, when Samoa crossed the date line).
_LONGEST_GAP_MINUTES = 24 * 60


def weekday_mask(days: list[int]) -> int:
    """The bits of ``tasks.routine_weekdays`` for weekdays 0 (Monday) … 6 (Sunday)."""
    mask = 0
    for day in days:
        mask |= 1 << day
    return mask


def weekdays_of(mask: int) -> list[int]:
    return [day for day in range(7) if mask & (1 << day)]


def describe(frequency: str, mask: int, time: dt.time) -> str:
    """ "every day at 08:00", "Mon, Wed and Fri at 18:30"."""
    at = f"at {time:%H:%M}"
    if frequency == "daily" or mask == EVERY_DAY:
        return f"every day {at}"
    names = [WEEKDAY_NAMES[day][:3] for day in weekdays_of(mask)]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{listed} {at}"


def _exists(local: dt.datetime, zone: ZoneInfo) -> bool:
    """Whether this wall-clock time happens in ``zone`` (not skipped by a clock change)."""
    back = local.astimezone(UTC).astimezone(zone)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None)


def occurrence_instant(day: dt.date, time: dt.time, zone: ZoneInfo) -> dt.datetime:
    """When the occurrence of ``day`` falls due (UTC): ``time`` on ``day`` in ``zone``.

    Skipped by a clock change (spring forward): the first minute after the gap, the first
    valid instant from then on. Happening twice (fall back): the first time (``fold=0``).
    """
    wall = dt.datetime.combine(day, time.replace(second=0, microsecond=0))
    for minutes in range(_LONGEST_GAP_MINUTES + 1):
        local = (wall + dt.timedelta(minutes=minutes)).replace(tzinfo=zone)
        if _exists(local, zone):
            return local.astimezone(UTC)
    return wall.replace(tzinfo=zone).astimezone(UTC)  # pragma: no cover - no such zone


@dataclass(frozen=True)
class Schedule:
    """A routine as the dashboard needs it (kept with its cached page as JSON)."""

    task_id: int
    name: str
    frequency: str
    weekdays: int  # bits, Monday = 1
    time: dt.time
    since: dt.datetime  # aware
    made: frozenset[dt.date] = frozenset()  # recent occurrences that have an attempt

    def as_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "name": self.name,
            "frequency": self.frequency,
            "weekdays": self.weekdays,
            "time": self.time.strftime("%H:%M"),
            "since": self.since.isoformat(),
            "made": sorted(day.isoformat() for day in self.made),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schedule:
        return cls(
            int(data["task_id"]),
            str(data["name"]),
            str(data["frequency"]),
            int(data["weekdays"]),
            dt.time.fromisoformat(data["time"]),
            dt.datetime.fromisoformat(data["since"]),
            frozenset(dt.date.fromisoformat(day) for day in data.get("made", ())),
        )

    @classmethod
    def of(cls, task: dict[str, Any]) -> Schedule | None:
        """The schedule of a task (its ``routine_*`` columns), or none if it doesn't repeat."""
        if task["routine_frequency"] is None:
            return None
        return cls(
            task["id"],
            task["name"],
            task["routine_frequency"],
            task["routine_weekdays"],
            task["routine_time"],
            task["routine_since"],
            frozenset(task["routine_made"] or ()),
        )

    def repeats_on(self, day: dt.date) -> bool:
        return bool(self.weekdays & (1 << day.weekday()))

    def due_days(self, start: dt.date, now: dt.datetime, zone: ZoneInfo) -> list[dt.date]:
        """The occurrences from ``start`` (a local date) that have fallen due by ``now``,
        oldest first; none before the schedule was saved."""
        days = []
        day = start
        last = now.astimezone(zone).date()
        while day <= last:
            if self.repeats_on(day):
                instant = occurrence_instant(day, self.time, zone)
                if self.since <= instant <= now:
                    days.append(day)
            day += dt.timedelta(days=1)
        return days

    def next_instant(self, now: dt.datetime, zone: ZoneInfo) -> dt.datetime:
        """When the next occurrence after ``now`` falls due (UTC)."""
        day = now.astimezone(zone).date()
        while True:  # a schedule has at least one weekday: at most eight days ahead
            if self.repeats_on(day):
                instant = occurrence_instant(day, self.time, zone)
                if instant > now and instant >= self.since:
                    return instant
            day += dt.timedelta(days=1)


@dataclass(frozen=True)
class RoutineStatus:
    """What the dashboard says about one routine at one moment."""

    task_id: int
    name: str
    schedule: str  # "every day at 08:00"
    latest: dt.date | None  # the most recent due occurrence (its attempt exists)
    next_due: dt.datetime  # UTC
    missed: list[dt.date]  # earlier occurrences without an attempt, oldest first


# A routine task's most recent occurrences that have an attempt (none for other tasks): a
# column for a statement that reads tasks (the dashboard's task list, :func:`load`).
_MADE = aliased(Attempt, name="made")
MADE = case(
    (
        Task.routine_frequency.is_not(None),
        func.array(
            select(_MADE.routine_occurrence)
            .where(_MADE.task_id == Task.id, _MADE.routine_occurrence.is_not(None))
            .order_by(_MADE.routine_occurrence.desc())
            .limit(MADE_LIMIT)
            .correlate(Task)
            .scalar_subquery()
        ),
    )
).label("routine_made")
_SCHEDULES = select(
    Task.id,
    Task.name,
    Task.routine_frequency,
    Task.routine_weekdays,
    Task.routine_time,
    Task.routine_since,
    MADE,
).where(
    Task.user_id == bindparam("user_id", type_=BigInteger),
    Task.archived_at.is_(None),
    Task.routine_frequency.is_not(None),
)
# Creates the attempts of the given occurrences unless they exist, or the task is no longer
# the person's active routine.
_CREATE = text(
    """
INSERT INTO attempts (user_id, task_id, task_version, time_estimate_minutes, routine_occurrence)
SELECT t.user_id, t.id, t.version, t.default_estimate_minutes, due.occurrence
FROM unnest(CAST(:task_ids AS bigint[]), CAST(:days AS date[])) AS due(task_id, occurrence)
JOIN tasks t ON t.id = due.task_id
WHERE t.user_id = :user_id AND t.archived_at IS NULL AND t.routine_frequency IS NOT NULL
ON CONFLICT (task_id, routine_occurrence) WHERE routine_occurrence IS NOT NULL DO NOTHING
"""
)


def load(db: Session, user_id: int) -> list[Schedule]:
    """The person's active routines, with their recent occurrences that have an attempt."""
    rows = database.run(db, _SCHEDULES, {"user_id": user_id})
    return [s for s in (Schedule.of(dict(row._mapping)) for row in rows) if s is not None]


def materialise(
    db: Session, user_id: int, timezone: str, schedules: list[Schedule], now: dt.datetime
) -> tuple[list[RoutineStatus], list[Schedule]]:
    """Create the attempt of each routine's most recent due occurrence unless it has one
    (see the module), and say what is missed and what comes next, as of ``now``.

    Returns the statuses and the schedules with what they have made since (trimmed to the
    window of missed days). One statement if an occurrence newly fell due, else none; the
    caller commits. Read the open attempts after this to see the new ones.
    """
    if not schedules:
        return [], []
    zone = ZoneInfo(timezone)
    window = now.astimezone(zone).date() - dt.timedelta(days=MISSED_DAYS)
    due = {s.task_id: s.due_days(window, now, zone) for s in schedules}
    new = {
        s.task_id: due[s.task_id][-1]
        for s in schedules
        if due[s.task_id] and due[s.task_id][-1] not in s.made
    }
    if new:
        database.run(
            db,
            _CREATE,
            {"user_id": user_id, "task_ids": list(new), "days": list(new.values())},
        )
    statuses = []
    updated = []
    for schedule in schedules:
        days = due[schedule.task_id]
        made = {d for d in schedule.made if d >= window}
        if schedule.task_id in new:
            made.add(new[schedule.task_id])  # by this request, or by one at the same moment
        updated.append(replace(schedule, made=frozenset(made)))
        statuses.append(
            RoutineStatus(
                schedule.task_id,
                schedule.name,
                describe(schedule.frequency, schedule.weekdays, schedule.time),
                days[-1] if days else None,
                schedule.next_instant(now, zone),
                [d for d in days[:-1] if d not in made],
            )
        )
    return statuses, updated


def next_change(statuses: list[RoutineStatus]) -> dt.datetime | None:
    """When the next occurrence of any routine falls due: the dashboard's part showing them
    is out of date from then on."""
    return min((s.next_due for s in statuses), default=None)

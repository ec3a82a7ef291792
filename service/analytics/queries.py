"""The analytics page's reads: three statements whatever the amount of data.

1. :func:`summary` — one row: counts, medians and averages for the KPIs and the
   "do I dread things that turn out fine?" sentence, and (as one JSON array) per task
   with completed attempts, how it went on average (rankings).
2. :func:`per_day` — one row per local day with completions (relief over time, trends).
3. :func:`shapes` — small aggregated shapes (histogram buckets, prediction-vs-outcome
   grids) plus the (x, y) pairs of the correlation explorer, in one UNION ALL over the
   completed attempts read once (a CTE).

Three, not four, so that a page whose figures weren't cached stays within five statements
with the session lookup and the cache write (see :mod:`service.page_cache`).

Everything is aggregated in PostgreSQL except the correlation, whose pairs come back
raw (two floats per completed attempt) for :mod:`service.analytics.stats`.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

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
from sqlalchemy import literal_column
from sqlalchemy import null
from sqlalchemy import select
from sqlalchemy import true
from sqlalchemy import union_all
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import CTE

from db.models import Attempt
from db.models import AttemptEmotion
from db.models import Emotion
from db.models import Task
from db.models import TaskGroup
from db.models import TaskGroupTask
from service import database

# "Tasks you dreaded": an expected aversion at or above this.
DREAD_THRESHOLD = 70
# Prediction-vs-outcome grids use cells of 5 points (at most 20 × 20 bubbles per chart).
GRID_CELL = 5
# Histograms and bands use 10 buckets of 10 points on the 0–100 scales.
BUCKET = 10


@dataclass(frozen=True)
class Measure:
    label: str
    column: Any  # an Attempt column (InstrumentedAttribute)
    histogram: bool = False  # a 0–100 scale shown in the distributions


# Every measure a person can chart or correlate, by the key used in URLs.
MEASURES: dict[str, Measure] = {
    "relief": Measure("Relief", Attempt.actual_relief, histogram=True),
    "expected_relief": Measure("Expected relief", Attempt.expected_relief),
    "aversion": Measure("Aversion", Attempt.expected_aversion, histogram=True),
    "motivation": Measure("Motivation", Attempt.motivation),
    "cognitive_load": Measure("Mental load", Attempt.actual_cognitive_load, histogram=True),
    "emotional_load": Measure("Emotional load", Attempt.actual_emotional_load, histogram=True),
    "physical_load": Measure("Physical load", Attempt.actual_physical_load, histogram=True),
    "stress": Measure("Stress", Attempt.stress, histogram=True),
    "net_wellbeing": Measure("Net wellbeing", Attempt.net_wellbeing_normalized, histogram=True),
    "behavioral_score": Measure("Behavioural score", Attempt.behavioral_score, histogram=True),
    "stress_efficiency": Measure("Stress efficiency (relief ÷ stress)", Attempt.stress_efficiency),
    "relief_surprise": Measure("Relief surprise (actual − expected)", Attempt.relief_surprise),
    "completion_percent": Measure("Completion (%)", Attempt.completion_percent),
    "minutes_spent": Measure("Minutes spent", Attempt.minutes_spent),
    "time_accuracy": Measure("Time accuracy (actual ÷ estimate)", Attempt.time_accuracy),
    "delay_minutes": Measure("Delay to start (minutes)", Attempt.delay_minutes),
    "procrastination": Measure("Procrastination score", Attempt.procrastination_score),
    "proactive": Measure("Proactive score", Attempt.proactive_score),
    "relief_duration": Measure("Relief × duration", Attempt.relief_duration_score),
}
HISTOGRAM_MEASURES = tuple(key for key, m in MEASURES.items() if m.histogram)
AGGREGATIONS = ("mean", "sum", "median")


# Statements are built once per shape (the measure choices are a closed set) with bound
# parameters for the person, so a request neither rebuilds nor re-keys them: SQLAlchemy's
# expression building and cache-key generation showed up in the profile of this page.
USER_ID = bindparam("user_id", type_=BigInteger)
WEEK_START = bindparam("week_start", type_=DateTime(timezone=True))
TIMEZONE = bindparam("timezone", type_=String)
COMPLETED = and_(Attempt.user_id == USER_ID, Attempt.status == "completed")
GROUP_ID = bindparam("group_id", type_=BigInteger)


def _in_group(task_id: Any, grouped: bool) -> Any:
    """The task is in the chosen group of the person's (always true when not ``grouped``)."""
    if not grouped:
        return true()
    return task_id.in_(
        select(TaskGroupTask.task_id).where(
            TaskGroupTask.group_id == GROUP_ID, TaskGroupTask.user_id == USER_ID
        )
    )


def _completed(grouped: bool) -> Any:
    return and_(COMPLETED, _in_group(Attempt.task_id, grouped))


def _median(column: Any) -> Any:
    return func.percentile_cont(0.5).within_group(column)


def _mean(column: Any, condition: Any) -> Any:
    """A float mean (numeric for the SMALLINT scales otherwise): the page's figures are
    JSON, and floats are what the rest of the page computes with."""
    return cast(func.avg(column).filter(condition), Double)


@functools.cache
def _summary_statement(grouped: bool = False) -> Select[Any]:
    done = Attempt.status == "completed"
    dreaded = and_(done, Attempt.expected_aversion >= DREAD_THRESHOLD)
    undreaded = and_(done, Attempt.expected_aversion < DREAD_THRESHOLD)
    active_tasks = (
        select(func.count())
        .select_from(Task)
        .where(Task.user_id == USER_ID, Task.archived_at.is_(None), _in_group(Task.id, grouped))
        .scalar_subquery()
    )
    per_task = _per_task_statement(grouped).subquery("per_task")
    tasks = select(
        func.coalesce(func.json_agg(per_task.table_valued()), literal_column("'[]'::json"))
    ).scalar_subquery()
    by_category = (
        select(Attempt.cancel_category.label("category"), func.count().label("count"))
        .where(
            Attempt.user_id == USER_ID,
            Attempt.status == "cancelled",
            _in_group(Attempt.task_id, grouped),
        )
        .group_by(Attempt.cancel_category)
        .subquery("by_category")
    )
    cancellations = select(
        func.coalesce(func.json_agg(by_category.table_valued()), literal_column("'[]'::json"))
    ).scalar_subquery()
    return select(
        active_tasks.label("active_tasks"),
        func.count().filter(done).label("completed"),
        func.count().filter(Attempt.status == "cancelled").label("cancelled"),
        func.count().filter(done, Attempt.completed_at >= WEEK_START).label("completed_week"),
        _median(Attempt.time_accuracy).filter(done).label("time_accuracy_median"),
        func.count(Attempt.time_accuracy).filter(done).label("time_accuracy_n"),
        *(
            _mean(MEASURES[key].column, done).label(f"avg_{key}")
            for key in (
                "relief",
                "cognitive_load",
                "emotional_load",
                "physical_load",
                "stress",
                "net_wellbeing",
                "relief_surprise",
            )
        ),
        _mean(Attempt.actual_relief, dreaded).label("dreaded_relief"),
        func.count(Attempt.actual_relief).filter(dreaded).label("dreaded_n"),
        _mean(Attempt.actual_relief, undreaded).label("other_relief"),
        func.count(Attempt.actual_relief).filter(undreaded).label("other_n"),
        tasks.label("tasks"),
        cancellations.label("cancellations"),
        _emotions_column(grouped).label("emotions"),
        _groups_column().label("groups"),
    ).where(Attempt.user_id == USER_ID, _in_group(Attempt.task_id, grouped))


def _groups_column() -> Any:
    """The person's task groups as a JSON array of [id, name] pairs, by name: the page's
    group filter, read with the figures (no statement of its own)."""
    pairs = func.json_agg(
        aggregate_order_by(
            func.json_build_array(TaskGroup.id, TaskGroup.name), func.lower(TaskGroup.name)
        )
    )
    return (
        select(func.coalesce(pairs, literal_column("'[]'::json")))
        .where(TaskGroup.user_id == USER_ID)
        .scalar_subquery()
    )


def _emotions_column(grouped: bool) -> Any:
    """Per emotion felt around completed attempts: the mean intensity before and after
    (each with how many intensities it averages) and on how many attempts it was felt; a
    JSON array of objects (name, before, before_n, after, after_n, attempts)."""
    done = Attempt.__table__.alias("emotion_attempts")
    felt = AttemptEmotion.__table__.alias("felt")
    names = Emotion.__table__.alias("felt_names")
    before, after = felt.c.phase == "before", felt.c.phase == "after"
    by_emotion = (
        select(
            names.c.name,
            _mean(felt.c.intensity, before).label("before"),
            func.count(felt.c.intensity).filter(before).label("before_n"),
            _mean(felt.c.intensity, after).label("after"),
            func.count(felt.c.intensity).filter(after).label("after_n"),
            func.count(func.distinct(felt.c.attempt_id)).label("attempts"),
        )
        .join(done, and_(done.c.id == felt.c.attempt_id, done.c.user_id == felt.c.user_id))
        .join(names, and_(names.c.id == felt.c.emotion_id, names.c.user_id == felt.c.user_id))
        .where(
            felt.c.user_id == USER_ID,
            done.c.status == "completed",
            _in_group(done.c.task_id, grouped),
        )
        .group_by(names.c.id)
        .subquery("by_emotion")
    )
    return select(
        func.coalesce(func.json_agg(by_emotion.table_valued()), literal_column("'[]'::json"))
    ).scalar_subquery()


def summary(
    db: Session, user_id: int, week_start: dt.datetime, group_id: int | None = None
) -> dict[str, Any]:
    """Counts, medians and averages over all the person's attempts (one row).

    ``tasks``: per task with at least one completed attempt, how it went on average (a
    list of dicts: id, name, archived, completed, and relief, stress_efficiency, stress
    each with its ``_n``). ``cancellations``: how many cancelled attempts per category (a
    list of dicts: category, None for none, and count).
    """
    params = {"user_id": user_id, "week_start": week_start, "group_id": group_id}
    statement = _summary_statement(group_id is not None)
    return dict(database.run(db, statement, params).one()._mapping)


@functools.cache
def _per_task_statement(grouped: bool = False) -> Select[Any]:
    joined = and_(Task.id == Attempt.task_id, Task.user_id == Attempt.user_id)
    return (
        select(
            Task.id,
            Task.name,
            Task.archived_at.is_not(None).label("archived"),
            func.count().label("completed"),
            func.avg(Attempt.actual_relief).label("relief"),
            func.count(Attempt.actual_relief).label("relief_n"),
            func.avg(Attempt.stress_efficiency).label("stress_efficiency"),
            func.count(Attempt.stress_efficiency).label("stress_efficiency_n"),
            func.avg(Attempt.stress).label("stress"),
            func.count(Attempt.stress).label("stress_n"),
        )
        .join(Task, joined)
        .where(_completed(grouped))
        .group_by(Task.id)
    )


@functools.cache
def _per_day_statement(measure: str, aggregation: str, grouped: bool = False) -> Select[Any]:
    local_day = cast(func.timezone(TIMEZONE, Attempt.completed_at), Date).label("day")
    column = MEASURES[measure].column
    if aggregation == "median":
        trend = _median(column)
    elif aggregation == "sum":
        trend = func.sum(column)
    else:
        trend = func.avg(column)
    return (
        select(
            local_day,
            func.count().label("completed"),
            func.coalesce(func.sum(Attempt.actual_relief), 0).label("relief"),
            cast(trend, Double).label("trend"),
            func.count(column).label("trend_n"),
        )
        .where(_completed(grouped), Attempt.completed_at.is_not(None))
        .group_by(local_day)
        .order_by(local_day)
    )


def per_day(
    db: Session,
    user_id: int,
    timezone: str,
    measure: str,
    aggregation: str,
    group_id: int | None = None,
) -> list[dict[str, Any]]:
    """Per local day with completions: count, total relief and the trend's aggregate."""
    params = {"user_id": user_id, "timezone": timezone, "group_id": group_id}
    statement = _per_day_statement(measure, aggregation, group_id is not None)
    rows = database.run(db, statement, params).all()
    return [dict(row._mapping) for row in rows]


def _bucket(value: Any, size: int, last: int) -> Any:
    """floor(v / size) clamped to 0..last, so that 100 falls in the top bucket (v a float)."""
    return func.greatest(0, func.least(func.floor(value / literal(size, Double)), last))


def _row(
    kind: str, key: Any, x: Any, y: Any, n: Any, total: Any, xs: Any = None, ys: Any = None
) -> Select[Any]:
    """One part of the UNION ALL in :func:`shapes`, its columns named alike in every part."""
    no_array = cast(null(), postgresql.ARRAY(Double))
    return select(
        literal(kind, String).label("kind"),
        key.label("key"),
        x.label("x"),
        y.label("y"),
        n.label("n"),
        total.label("total"),
        (no_array if xs is None else xs).label("xs"),
        (no_array if ys is None else ys).label("ys"),
    )


@functools.cache
def _shapes_statement(x: str, y: str, grouped: bool = False) -> CompoundSelect:
    keys = {*HISTOGRAM_MEASURES, "expected_relief"}
    done: CTE = (
        select(
            *(cast(MEASURES[key].column, Double).label(key) for key in sorted(keys)),
            cast(MEASURES[x].column, Double).label("pair_x"),
            cast(MEASURES[y].column, Double).label("pair_y"),
        )
        .where(_completed(grouped))
        .cte("done")
    )
    c = done.c
    no_text = cast(null(), String)
    no_number = cast(null(), Double)
    parts: list[Select[Any]] = []
    # One small GROUP BY per measure over the CTE: cheaper in PostgreSQL than unpivoting
    # every attempt with unnest() into a single aggregate (measured: about half the time).
    for key in HISTOGRAM_MEASURES:
        bucket = _bucket(c[key], BUCKET, 9)
        parts.append(
            _row("hist", literal(key, String), bucket, no_number, func.count(), no_number)
            .where(c[key].is_not(None))
            .group_by(bucket)
        )
    grid_last = 100 // GRID_CELL - 1
    cell_y = _bucket(c.relief, GRID_CELL, grid_last)
    for key in ("expected_relief", "aversion"):
        cell_x = _bucket(c[key], GRID_CELL, grid_last)
        parts.append(
            _row("grid", literal(key, String), cell_x, cell_y, func.count(), func.sum(c.relief))
            .where(c[key].is_not(None), c.relief.is_not(None))
            .group_by(cell_x, cell_y)
        )
    # The pairs as two aligned arrays in one row (one aggregate pass sees the rows in one
    # order): thousands of rows become two lists without a Python object per row.
    xs, ys = func.array_agg(c.pair_x), func.array_agg(c.pair_y)
    parts.append(
        _row("pairs", no_text, no_number, no_number, func.count(), no_number, xs, ys).where(
            c.pair_x.is_not(None), c.pair_y.is_not(None)
        )
    )
    return union_all(*parts)


def shapes(db: Session, user_id: int, x: str, y: str, group_id: int | None = None) -> list[Any]:
    """Histogram buckets, prediction-vs-outcome grids, and the correlation pairs.

    Rows are (kind, key, x, y, n, total, xs, ys):
    ``hist``: key = measure, x = bucket 0..9 (10 points wide), n = attempts;
    ``grid``: key = ``expected_relief`` or ``aversion``; x, y = 5-point cells 0..19 of that
    prediction and of the actual relief; n = attempts; total = their summed actual relief
    (a 10-point band is two whole cells, so exact band means follow in Python);
    ``pairs``: xs, ys = the two chosen measures of every attempt where both are recorded
    (one row, n = how many; the arrays are null when there are none).
    """
    statement = _shapes_statement(x, y, group_id is not None)
    return list(database.run(db, statement, {"user_id": user_id, "group_id": group_id}).all())

"""The attempt lifecycle. Functions change objects; the view commits."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort
from sqlalchemy import BigInteger
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.measures import AttemptFacts
from db.measures import compute_measures
from db.models import OUTCOME_SCALES
from db.models import PREDICTION_SCALES
from db.models import Attempt
from db.models import AttemptEmotion
from db.models import Task
from db.models import utcnow
from service.database import choice_pairs
from service.elapsed import minutes_so_far
from service.emotions.services import choices_column

OPEN_STATUSES = ("initialized", "started", "paused")
PREDICTION_FIELDS = (
    *PREDICTION_SCALES,
    "time_estimate_minutes",
    "physical_context",
    "description",
    "due_at",
)


class AttemptStateError(Exception):
    """The attempt can't make that move from where it is; the message says why."""


# The form pages' statements, built once with bound parameters (building one per request,
# twelve averages and all, cost more than running it).
_USER_ID = bindparam("user_id", type_=BigInteger)
_AVERAGED = (*PREDICTION_SCALES, *OUTCOME_SCALES, "completion_percent")
_AVERAGE_COLUMNS = [func.avg(getattr(Attempt, c)).label(c) for c in _AVERAGED]
_AVERAGES = select(*_AVERAGE_COLUMNS).where(
    Attempt.user_id == _USER_ID, Attempt.task_id == bindparam("task_id", type_=BigInteger)
)
_RUNNING = select(Attempt).where(Attempt.user_id == _USER_ID, Attempt.status == "started")


_ATTEMPT_AND_TASK = (
    select(Attempt, Task)
    .join(Task, and_(Task.id == Attempt.task_id, Task.user_id == Attempt.user_id))
    .where(Attempt.id == bindparam("attempt_id", type_=BigInteger), Attempt.user_id == _USER_ID)
)


def get_attempt_and_task_or_404(db: Session, user_id: int, attempt_id: int) -> tuple[Attempt, Task]:
    """The person's own attempt and its task, in one statement (or 404)."""
    row = db.execute(_ATTEMPT_AND_TASK, {"attempt_id": attempt_id, "user_id": user_id}).first()
    if row is None:
        abort(404)
    return row[0], row[1]


def task_averages(db: Session, user_id: int, task_id: int) -> dict[str, float | None]:
    """The person's averages for this task: the defaults of the sliders."""
    row = db.execute(_AVERAGES, {"user_id": user_id, "task_id": task_id}).one()
    return _averages(row._mapping)


def _averages(values: Any) -> dict[str, float | None]:
    return {c: (float(values[c]) if values[c] is not None else None) for c in _AVERAGED}


# What a prediction or outcome form shows besides its task (and attempt): the person's
# averages for the task and their emotions, read with the task in the same statement.
_TASK_AVERAGES = (
    select(*_AVERAGE_COLUMNS)
    .where(Attempt.user_id == Task.user_id, Attempt.task_id == Task.id)
    .correlate(Task)  # not the attempt a form is about, when it is in the outer FROM too
    .lateral("averages")
)
_EMOTION_CHOICES = choices_column(Task.user_id, correlate=Task)
_TASK_FORM = (
    select(Task, _TASK_AVERAGES, _EMOTION_CHOICES)
    .join(_TASK_AVERAGES, true())
    .where(Task.id == bindparam("task_id", type_=BigInteger), Task.user_id == _USER_ID)
)
_ATTEMPT_FORM = (
    select(Attempt, Task, _TASK_AVERAGES, _EMOTION_CHOICES)
    .join(Task, and_(Task.id == Attempt.task_id, Task.user_id == Attempt.user_id))
    .join(_TASK_AVERAGES, true())
    .where(Attempt.id == bindparam("attempt_id", type_=BigInteger), Attempt.user_id == _USER_ID)
)


def task_form_or_404(
    db: Session, user_id: int, task_id: int
) -> tuple[Task, dict[str, float | None], list[tuple[int, str]]]:
    """The person's own task (or 404), their averages for it and their emotions to choose
    from: everything a new attempt's form needs, in one statement."""
    row = db.execute(_TASK_FORM, {"task_id": task_id, "user_id": user_id}).first()
    if row is None:
        abort(404)
    return row[0], _averages(row._mapping), choice_pairs(row.emotion_choices)


def attempt_form_or_404(
    db: Session, user_id: int, attempt_id: int
) -> tuple[Attempt, Task, dict[str, float | None], list[tuple[int, str]]]:
    """The person's own attempt and its task (or 404), their averages for the task and
    their emotions to choose from, in one statement."""
    row = db.execute(_ATTEMPT_FORM, {"attempt_id": attempt_id, "user_id": user_id}).first()
    if row is None:
        abort(404)
    return row[0], row[1], _averages(row._mapping), choice_pairs(row.emotion_choices)


def slider_defaults(averages: dict[str, float | None], fields: tuple[str, ...]) -> dict[str, int]:
    defaults = {}
    for name in fields:
        average = averages.get(name)
        defaults[name] = round(average) if average is not None else 50
    return defaults


def default_prediction(task: Task, averages: dict[str, float | None]) -> dict[str, Any]:
    """A new attempt's prediction: the person's averages for the task, else 50; its estimate."""
    prediction: dict[str, Any] = dict(slider_defaults(averages, PREDICTION_SCALES))
    prediction["time_estimate_minutes"] = task.default_estimate_minutes
    return prediction


def set_emotions(
    db: Session,
    attempt: Attempt,
    phase: str,
    emotion_ids: list[int],
    *,
    new: bool = False,
    intensities: dict[int, int | None] | None = None,
) -> None:
    """The attempt's emotions of ``phase``: these and no others (``new``: it has none yet),
    each with its intensity in ``intensities`` (none where it has none)."""
    intensities = intensities or {}
    if not new:
        db.execute(
            delete(AttemptEmotion).where(
                AttemptEmotion.attempt_id == attempt.id, AttemptEmotion.phase == phase
            )
        )
    db.add_all(
        AttemptEmotion(
            attempt_id=attempt.id,
            emotion_id=e,
            phase=phase,
            user_id=attempt.user_id,
            intensity=intensities.get(e),
        )
        for e in emotion_ids
    )


def emotion_ids(db: Session, attempt: Attempt, phase: str) -> list[int]:
    return list(emotion_intensities(db, attempt, phase))


def emotion_intensities(db: Session, attempt: Attempt, phase: str) -> dict[int, int | None]:
    """The attempt's emotions of ``phase`` and their intensities (none where not given)."""
    rows = db.execute(
        select(AttemptEmotion.emotion_id, AttemptEmotion.intensity).where(
            AttemptEmotion.attempt_id == attempt.id,
            AttemptEmotion.user_id == attempt.user_id,
            AttemptEmotion.phase == phase,
        )
    )
    return {emotion_id: intensity for emotion_id, intensity in rows}


def initialize_attempt(db: Session, task: Task, prediction: dict[str, Any]) -> Attempt:
    if task.archived_at is not None:
        raise AttemptStateError("That task is archived; restore it first.")
    attempt = Attempt(
        user_id=task.user_id,
        task_id=task.id,
        task_version=task.version,
        status="initialized",
        initialized_at=utcnow(),
        minutes_spent=0.0,
        extra={},
    )
    apply_prediction(attempt, prediction)
    db.add(attempt)
    db.flush()
    return attempt


def apply_prediction(attempt: Attempt, prediction: dict[str, Any]) -> None:
    """The prediction of an open attempt, or fixed afterwards on a finished one (its
    measures follow: they compare the outcome with the prediction)."""
    for name in PREDICTION_FIELDS:
        if name == "due_at" and attempt.status not in OPEN_STATUSES:
            continue  # a deadline means nothing once the attempt is over
        setattr(attempt, name, prediction.get(name))
    attempt.description = attempt.description or ""
    if attempt.status == "completed":
        _measure(attempt)


def is_overdue(status: str, due_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Open and past its due date."""
    return status in OPEN_STATUSES and due_at is not None and due_at <= now


def is_postponed(
    status: str,
    postponed_at: dt.datetime | None,
    postponed_until: dt.datetime | None,
    now: dt.datetime,
) -> bool:
    """Open, postponed, and not yet at the time it was postponed until (if any)."""
    return (
        status in OPEN_STATUSES
        and postponed_at is not None
        and (postponed_until is None or postponed_until > now)
    )


def postpone_attempt(
    attempt: Attempt, reason: str, until: dt.datetime | None, now: dt.datetime | None = None
) -> None:
    """Put an open attempt off, with a reason, optionally until a given time.

    A running attempt stops its clock (it is paused). Every postponement is kept in
    ``extra["postponements"]``, like pauses; postponing again replaces the current one.
    """
    if attempt.status not in OPEN_STATUSES:
        raise AttemptStateError(f"This attempt is already {attempt.status}.")
    now = now or utcnow()
    if until is not None and until <= now:
        raise AttemptStateError("Choose a time in the future to postpone until.")
    if attempt.status == "started":
        _close_interval(attempt)
        attempt.status = "paused"
    attempt.postponed_at = now
    attempt.postponed_until = until
    entry = {"at": now.isoformat(), "reason": reason}
    if until is not None:
        entry["until"] = until.isoformat()
    attempt.extra = {
        **attempt.extra,
        "postponements": [*attempt.extra.get("postponements", []), entry],
    }


def _end_postponement(attempt: Attempt) -> None:
    attempt.postponed_at = None
    attempt.postponed_until = None


def unpostpone_attempt(attempt: Attempt, now: dt.datetime | None = None) -> None:
    """A postponed attempt back among the ready ones."""
    if not is_postponed(
        attempt.status, attempt.postponed_at, attempt.postponed_until, now or utcnow()
    ):
        raise AttemptStateError("This attempt isn't postponed.")
    _end_postponement(attempt)


def running_attempt(db: Session, user_id: int) -> Attempt | None:
    return db.scalar(_RUNNING, {"user_id": user_id})


def start_attempt(db: Session, attempt: Attempt, task_name: str) -> None:
    """Start (or resume). Only one attempt per person runs at a time."""
    if attempt.status not in ("initialized", "paused"):
        raise AttemptStateError(f"“{task_name}” is already {attempt.status}.")
    other = running_attempt(db, attempt.user_id)
    if other is not None:
        raise AttemptStateError(
            "Another task is running: pause or finish it first (only one at a time)."
        )
    now = utcnow()
    attempt.status = "started"
    attempt.started_at = attempt.started_at or now
    _end_postponement(attempt)
    attempt.resumed_at = now
    try:
        db.flush()
    except IntegrityError as exc:  # a second tab started another one at the same moment
        db.rollback()
        raise AttemptStateError("Another task is running: pause or finish it first.") from exc


def elapsed_minutes(attempt: Attempt) -> float:
    return minutes_so_far(attempt.status, attempt.resumed_at, attempt.minutes_spent)


def _close_interval(attempt: Attempt) -> None:
    attempt.minutes_spent = elapsed_minutes(attempt)
    attempt.resumed_at = None


def pause_attempt(attempt: Attempt, reason: str) -> None:
    if attempt.status != "started":
        raise AttemptStateError("Only a running task can be paused.")
    _close_interval(attempt)
    attempt.status = "paused"
    _end_postponement(attempt)  # started by the previous release while postponed
    pauses = [*attempt.extra.get("pauses", []), {"at": utcnow().isoformat(), "reason": reason}]
    attempt.extra = {**attempt.extra, "pauses": pauses}


def _finishable(attempt: Attempt) -> None:
    if attempt.status not in OPEN_STATUSES:
        raise AttemptStateError(f"This attempt is already {attempt.status}.")
    _end_postponement(attempt)


def complete_attempt(attempt: Attempt, outcome: dict[str, Any]) -> None:
    _finishable(attempt)
    _close_interval(attempt)
    _set_outcome(attempt, outcome)
    attempt.status = "completed"
    attempt.completed_at = utcnow()
    _measure(attempt)


OUTCOME_FIELDS = (*OUTCOME_SCALES, "completion_percent", "minutes_spent", "notes")


def _set_outcome(attempt: Attempt, outcome: dict[str, Any]) -> None:
    for name in OUTCOME_FIELDS:
        setattr(attempt, name, outcome[name])


def fix_outcome(attempt: Attempt, outcome: dict[str, Any], completed_at: dt.datetime) -> None:
    """A completed attempt's outcome and times, corrected; its measures follow."""
    if attempt.status != "completed":
        raise AttemptStateError(
            f"Only a completed attempt has an outcome; this one is {attempt.status}."
        )
    if completed_at > utcnow():
        raise AttemptStateError("It can't have been completed in the future.")
    if attempt.initialized_at is not None and completed_at < attempt.initialized_at:
        raise AttemptStateError("It can't have been completed before it was initialized.")
    _set_outcome(attempt, outcome)
    attempt.completed_at = completed_at
    if attempt.started_at is not None and attempt.started_at > completed_at:
        attempt.started_at = completed_at
    _measure(attempt)


def delete_attempt(db: Session, attempt: Attempt) -> None:
    """Gone with its emotions (analytics forget it at once); notes written on it are kept,
    no longer linked to it."""
    db.delete(attempt)
    db.flush()


def _measure(attempt: Attempt) -> None:
    """The derived measures of a completed attempt, from its prediction and outcome."""
    facts = AttemptFacts(
        actual_relief=attempt.actual_relief,
        expected_relief=attempt.expected_relief,
        actual_cognitive_load=attempt.actual_cognitive_load,
        actual_emotional_load=attempt.actual_emotional_load,
        actual_physical_load=attempt.actual_physical_load,
        completion_percent=attempt.completion_percent,
        minutes_spent=attempt.minutes_spent,
        time_estimate_minutes=attempt.time_estimate_minutes,
        initialized_at=attempt.initialized_at,
        started_at=attempt.started_at,
    )
    for name, value in compute_measures(facts).items():
        setattr(attempt, name, value)


def cancel_attempt(attempt: Attempt, cancellation: dict[str, Any]) -> None:
    _finishable(attempt)
    _close_interval(attempt)
    attempt.cancel_category = cancellation.get("category")
    attempt.cancel_reason = cancellation["reason"]
    attempt.completion_percent = cancellation["completion_percent"]
    if cancellation.get("minutes_spent") is not None:
        attempt.minutes_spent = cancellation["minutes_spent"]
    attempt.notes = cancellation.get("notes") or ""
    attempt.status = "cancelled"
    attempt.cancelled_at = utcnow()

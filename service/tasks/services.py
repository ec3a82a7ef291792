from __future__ import annotations

from typing import Any
from typing import NamedTuple

from flask import abort
from sqlalchemy import BigInteger
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Task
from db.models import TaskEmotion
from db.models import TaskGroupTask
from db.models import User
from db.models import utcnow
from service import database
from service.database import choice_pairs
from service.emotions import services as emotions
from service.groups import services as groups

EDITABLE = ("name", "description", "kind", "default_estimate_minutes")
# The schedule of a routine (see service.routines); a change starts it afresh.
ROUTINE = ("routine_frequency", "routine_weekdays", "routine_time")
# Built once: nearly every task and attempt page loads its task this way.
_TASK = select(Task).where(
    Task.id == bindparam("task_id", type_=BigInteger),
    Task.user_id == bindparam("user_id", type_=BigInteger),
)


def get_task_or_404(db: Session, user_id: int, task_id: int) -> Task:
    """The person's own task, or 404 (also for someone else's id: no hint it exists)."""
    task = db.scalar(_TASK, {"task_id": task_id, "user_id": user_id})
    if task is None:
        abort(404)
    return task


def _ids_of_task(column: Any, label: str) -> Any:
    """The ids in ``column`` of the rows linked to the statement's task, as an array."""
    link = column.class_
    return func.array(
        select(column)
        .where(link.task_id == Task.id, link.user_id == Task.user_id)
        .correlate(Task)
        .scalar_subquery()
    ).label(label)


# What the task form shows besides the task, read with it in one statement: the emotions it
# tracks and the groups it is in, and the person's emotions and groups to choose from.
_TASK_FORM = select(
    Task,
    _ids_of_task(TaskEmotion.emotion_id, "tracked_ids"),
    _ids_of_task(TaskGroupTask.group_id, "group_ids"),
    emotions.choices_column(Task.user_id, Task),
    groups.choices_column(Task.user_id, Task),
).where(
    Task.id == bindparam("task_id", type_=BigInteger),
    Task.user_id == bindparam("user_id", type_=BigInteger),
)
_NEW_TASK_FORM = select(
    emotions.choices_column(User.id, User), groups.choices_column(User.id, User)
).where(User.id == bindparam("user_id", type_=BigInteger))


class TaskChoices(NamedTuple):
    """The person's emotions and groups, as a task form offers them."""

    emotions: list[tuple[int, str]]
    groups: list[tuple[int, str]]


class TaskFormData(NamedTuple):
    task: Task
    tracked_ids: list[int]
    group_ids: list[int]
    choices: TaskChoices


def task_form_or_404(db: Session, user_id: int, task_id: int) -> TaskFormData:
    """The person's own task (or 404) and what its form shows with it, in one statement."""
    row = db.execute(_TASK_FORM, {"task_id": task_id, "user_id": user_id}).first()
    if row is None:
        abort(404)
    choices = TaskChoices(choice_pairs(row.emotion_choices), choice_pairs(row.group_choices))
    return TaskFormData(row[0], list(row.tracked_ids), list(row.group_ids), choices)


def new_task_choices(db: Session, user_id: int) -> TaskChoices:
    """What a new task's form offers: the person's emotions and groups, in one statement."""
    row = database.run(db, _NEW_TASK_FORM, {"user_id": user_id}).one()
    return TaskChoices(choice_pairs(row.emotion_choices), choice_pairs(row.group_choices))


def tracked_emotion_ids(db: Session, task: Task) -> list[int]:
    return list(
        db.scalars(
            select(TaskEmotion.emotion_id).where(
                TaskEmotion.task_id == task.id, TaskEmotion.user_id == task.user_id
            )
        )
    )


def set_tracked_emotions(db: Session, task: Task, emotion_ids: list[int]) -> None:
    db.execute(delete(TaskEmotion).where(TaskEmotion.task_id == task.id))
    db.add_all(
        TaskEmotion(task_id=task.id, emotion_id=emotion_id, user_id=task.user_id)
        for emotion_id in emotion_ids
    )


def create_task(db: Session, user_id: int, values: dict[str, Any]) -> Task:
    task = Task(user_id=user_id, **{k: values[k] for k in EDITABLE})
    _set_routine(task, values)
    db.add(task)
    db.flush()
    return task


def _set_routine(task: Task, values: dict[str, Any]) -> None:
    """Take the schedule from ``values`` (none when ``routine_frequency`` is none); a saved
    schedule counts from now: earlier occurrences neither fall due nor count as missed."""
    for key in ROUTINE:
        setattr(task, key, values.get(key))
    task.routine_since = utcnow() if task.routine_frequency is not None else None


def update_task(
    db: Session,
    task: Task,
    values: dict[str, Any],
    emotion_ids: list[int],
    tracked_ids: list[int] | None = None,
) -> bool:
    """Apply an edit; a real change bumps the version (past attempts keep theirs).
    ``tracked_ids``: the emotions the task tracks, if already read."""
    changed = any(getattr(task, k) != values[k] for k in EDITABLE)
    routine_changed = any(getattr(task, k) != values.get(k) for k in ROUTINE)
    changed = changed or routine_changed
    if tracked_ids is None:
        tracked_ids = tracked_emotion_ids(db, task)
    changed = changed or sorted(tracked_ids) != sorted(emotion_ids)
    if changed:
        for key in EDITABLE:
            setattr(task, key, values[key])
        if routine_changed:
            _set_routine(task, values)
        task.version += 1
        task.updated_at = utcnow()
        set_tracked_emotions(db, task, emotion_ids)
    return changed


def archive_task(task: Task) -> None:
    task.archived_at = task.archived_at or utcnow()


def restore_task(task: Task) -> None:
    task.archived_at = None

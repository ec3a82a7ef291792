"""Reads and writes of a person's task groups. Every statement is limited to the person's
own rows; a group id that isn't theirs is a 404 (no hint that it exists)."""

from __future__ import annotations

from typing import Any

from flask import abort
from sqlalchemy import BigInteger
from sqlalchemy import Label
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import Task
from db.models import TaskGroup
from db.models import TaskGroupTask
from service import database

_USER_ID = bindparam("user_id", type_=BigInteger)
_CHOICES = (
    select(TaskGroup.id, TaskGroup.name)
    .where(TaskGroup.user_id == _USER_ID)
    .order_by(func.lower(TaskGroup.name), TaskGroup.id)
)
_GROUP = select(TaskGroup).where(
    TaskGroup.id == bindparam("group_id", type_=BigInteger), TaskGroup.user_id == _USER_ID
)
# A group of the person's and the ids of its tasks, in one statement (the filters' check).
_GROUP_TASKS = select(
    TaskGroup.id,
    TaskGroup.name,
    func.array(
        select(TaskGroupTask.task_id)
        .where(TaskGroupTask.group_id == TaskGroup.id, TaskGroupTask.user_id == TaskGroup.user_id)
        .scalar_subquery()
    ).label("task_ids"),
).where(TaskGroup.id == bindparam("group_id", type_=BigInteger), TaskGroup.user_id == _USER_ID)


def choices_column(owner: Any, correlate: Any) -> Label[Any]:
    """The groups of the person whose id is ``owner`` (a column of ``correlate``) as
    :func:`service.database.choices_column` gives them, in the order of
    :func:`group_choices`."""
    order = (func.lower(TaskGroup.name), TaskGroup.id)
    owned = TaskGroup.user_id == owner
    return database.choices_column(
        TaskGroup.id, TaskGroup.name, owned, order, correlate, "group_choices"
    )


def group_choices(db: Session, user_id: int) -> list[tuple[int, str]]:
    """The person's groups as (id, name), in name order."""
    return [(row.id, row.name) for row in database.run(db, _CHOICES, {"user_id": user_id})]


def groups_with_counts(db: Session, user_id: int) -> list[dict[str, Any]]:
    """The person's groups with how many tasks (active ones, and all) each holds."""
    members = (
        select(
            TaskGroupTask.group_id,
            func.count().label("tasks"),
            func.count().filter(Task.archived_at.is_(None)).label("active"),
        )
        .join(Task, (Task.id == TaskGroupTask.task_id) & (Task.user_id == TaskGroupTask.user_id))
        .where(TaskGroupTask.user_id == user_id)
        .group_by(TaskGroupTask.group_id)
        .subquery()
    )
    rows = db.execute(
        select(
            TaskGroup.id,
            TaskGroup.name,
            func.coalesce(members.c.tasks, 0).label("tasks"),
            func.coalesce(members.c.active, 0).label("active"),
        )
        .outerjoin(members, members.c.group_id == TaskGroup.id)
        .where(TaskGroup.user_id == user_id)
        .order_by(func.lower(TaskGroup.name), TaskGroup.id)
    )
    return [dict(row._mapping) for row in rows]


def get_group_or_404(db: Session, user_id: int, group_id: int) -> TaskGroup:
    group = db.scalar(_GROUP, {"group_id": group_id, "user_id": user_id})
    if group is None:
        abort(404)
    return group


def group_tasks(db: Session, user_id: int, group_id: int) -> tuple[str, set[int]] | None:
    """The name of the person's own group and the ids of its tasks (none if not theirs)."""
    row = db.execute(_GROUP_TASKS, {"group_id": group_id, "user_id": user_id}).first()
    if row is None:
        return None
    return row.name, set(row.task_ids or ())


def name_taken(db: Session, user_id: int, name: str, but: int | None = None) -> bool:
    """Whether the person has another group of this name (whatever the capitals)."""
    query = select(TaskGroup.id).where(
        TaskGroup.user_id == user_id, func.lower(TaskGroup.name) == name.lower()
    )
    if but is not None:
        query = query.where(TaskGroup.id != but)
    return db.scalar(query.limit(1)) is not None


def create_group(db: Session, user_id: int, name: str) -> TaskGroup | None:
    """A new group, or None when the person already has one of that name (a race)."""
    row = db.execute(
        insert(TaskGroup)
        .values(user_id=user_id, name=name)
        .on_conflict_do_nothing()
        .returning(TaskGroup.id)
    ).first()
    return None if row is None else db.get(TaskGroup, row.id)


def task_group_ids(db: Session, task: Task) -> list[int]:
    return list(
        db.scalars(
            select(TaskGroupTask.group_id).where(
                TaskGroupTask.task_id == task.id, TaskGroupTask.user_id == task.user_id
            )
        )
    )


def set_task_groups(
    db: Session, task: Task, group_ids: list[int], current: list[int] | None = None
) -> bool:
    """The task's groups: these and no others (ids already checked to be the person's).
    Whether that changed anything. ``current``: the groups it is in, if already read."""
    wanted = set(group_ids)
    if set(task_group_ids(db, task) if current is None else current) == wanted:
        return False
    db.execute(
        delete(TaskGroupTask).where(
            TaskGroupTask.task_id == task.id, TaskGroupTask.user_id == task.user_id
        )
    )
    db.add_all(
        TaskGroupTask(group_id=group_id, task_id=task.id, user_id=task.user_id)
        for group_id in sorted(wanted)
    )
    return True

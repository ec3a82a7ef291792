"""The history page's read: one statement, a page of attempts and the person's tasks.

Attempts come newest first by ``(initialized_at, id)`` — when the attempt was begun, which
never changes, and its id for ties — a page at a time without OFFSET: the next page starts
after the last row seen (keyset pagination on ``ix_attempts_user_id_initialized_at_id``),
so page 500 costs what page 1 does.

The search looks for every word typed, each as the start of a word (``tax`` finds "taxes"),
in the attempt's description, notes and cancel reason or in its task's name and
description (one word may be in the task's, another in the attempt's): full-text search
with the ``simple`` configuration (any language, no stemming) on the GIN indexes
``ix_attempts_search`` and ``ix_tasks_search``.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy import Boolean
from sqlalchemy import CompoundSelect
from sqlalchemy import DateTime
from sqlalchemy import Double
from sqlalchemy import SmallInteger
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import and_
from sqlalchemy import any_
from sqlalchemy import bindparam
from sqlalchemy import cast
from sqlalchemy import func
from sqlalchemy import literal
from sqlalchemy import null
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import tuple_
from sqlalchemy import union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from db.models import ATTEMPT_WORDS
from db.models import SEARCH_CONFIG
from db.models import TASK_WORDS
from db.models import Attempt
from db.models import Task
from db.models import TaskGroup
from db.models import TaskGroupTask
from service.paging import Cursor

PAGE_SIZE = 50
# What the status filter offers, and the attempt statuses each stands for.
STATUS_GROUPS = {
    "open": ("initialized", "started", "paused"),
    "paused": ("paused",),
    "postponed": ("initialized", "started", "paused"),
    "completed": ("completed",),
    "cancelled": ("cancelled",),
}
# A search first tests this many attempts in page order (see _searched).
WINDOW = 500
# Enough for any real search; more words only make the query longer.
MAX_WORDS = 8
# Letters and digits of any script: nothing else reaches the query syntax of to_tsquery.
_WORD = re.compile(r"[^\W_]+")


def search_terms(text: str) -> tuple[str, ...]:
    """The ``to_tsquery`` terms for ``text``: each word as the start of a word (``tax:*``).

    Only letters and digits are kept, so nothing a person types is read as query syntax.
    """
    return tuple(f"{word}:*" for word in _WORD.findall(text.lower())[:MAX_WORDS])


@dataclass(frozen=True)
class Filters:
    """What the person asked for, already validated (None: not filtered)."""

    task_id: int | None = None
    group_id: int | None = None  # attempts of the tasks in this group of the person's
    status: str | None = None
    start: dt.datetime | None = None  # from this instant on
    end: dt.datetime | None = None  # up to, not including, this instant
    terms: tuple[str, ...] = ()  # from search_terms(): every one must be found


_USER_ID = bindparam("user_id", type_=BigInteger)
_PARAMS: dict[str, Any] = {
    "task_id": bindparam("task_id", type_=BigInteger),
    "group_id": bindparam("group_id", type_=BigInteger),
    "start": bindparam("start", type_=DateTime(timezone=True)),
    "end": bindparam("end", type_=DateTime(timezone=True)),
    "at": bindparam("at", type_=DateTime(timezone=True)),
    "id": bindparam("id", type_=BigInteger),
}


def _column(value: Any, type_: Any, name: str) -> Any:
    return (cast(null(), type_) if value is None else value).label(name)


def _row(kind: str, *values: Any) -> Any:
    """The columns shared by the task rows and the attempt rows of the UNION ALL."""
    names = (
        ("id", BigInteger),
        ("task_id", BigInteger),
        ("task_name", Text),
        ("archived", Boolean),
        ("status", Text),
        ("initialized_at", DateTime(timezone=True)),
        ("completed_at", DateTime(timezone=True)),
        ("cancelled_at", DateTime(timezone=True)),
        ("minutes_spent", Double),
        ("actual_relief", SmallInteger),
        ("cancel_category", Text),
        ("cancel_reason", Text),
        ("due_at", DateTime(timezone=True)),
        ("postponed_at", DateTime(timezone=True)),
        ("postponed_until", DateTime(timezone=True)),
    )
    padded = [*values, *([None] * (len(names) - len(values)))]
    columns = [_column(v, t, n) for v, (n, t) in zip(padded, names, strict=True)]
    return select(literal(kind, String).label("kind"), *columns)


def _word_matches(number: int) -> Any:
    """The attempt has the ``number``-th search word, or its task has (the words of one
    search may be some in the task's, some in the attempt's)."""
    query = func.to_tsquery(SEARCH_CONFIG, bindparam(f"term_{number}", type_=Text))
    # The matching tasks' ids as one array: an index condition on attempts.task_id that
    # PostgreSQL can OR with the search index's (a hashed subplan can't be).
    task_ids = cast(
        select(func.array_agg(Task.id))
        .where(Task.user_id == _USER_ID, TASK_WORDS.op("@@")(query))
        .scalar_subquery(),
        ARRAY(BigInteger),
    )
    return or_(ATTEMPT_WORDS.op("@@")(query), Attempt.task_id == any_(task_ids))


def _searched(conditions: list[Any], match: Any, newer: bool) -> Any:
    """The (id, initialized_at) of the page's attempts that match, in two parts.

    Walking the attempts in page order and testing each (computing its words) is quick
    when many match and slow when few do; collecting the matches from the search indexes
    and sorting them is the reverse. PostgreSQL can't tell which case it is in (it can't
    estimate a prefix search well), so: first the matches among the next ``WINDOW``
    attempts in page order (a bounded walk); only if they don't fill the page, the
    matches beyond them, collected from the indexes (a materialized CTE, never read when
    the window filled the page).
    """
    key = (Attempt.initialized_at, Attempt.id)
    order = [c.asc() if newer else c.desc() for c in key]
    recent = select(*key).where(*conditions).order_by(*order).limit(WINDOW).cte("recent")
    found = (
        select(recent.c.id, recent.c.initialized_at)
        .join(Attempt, Attempt.id == recent.c.id)
        .where(match)
        .cte("found")
    )
    last = select(recent.c.initialized_at, recent.c.id).order_by(
        *(c.desc() if newer else c.asc() for c in recent.c)
    )
    boundary = tuple_(
        last.with_only_columns(recent.c.initialized_at).limit(1).scalar_subquery(),
        last.with_only_columns(recent.c.id).limit(1).scalar_subquery(),
    )
    beyond = tuple_(*key) > boundary if newer else tuple_(*key) < boundary
    rest = select(*key).where(*conditions, match, beyond).cte("rest").prefix_with("MATERIALIZED")
    filled = select(func.count()).select_from(found).scalar_subquery() > PAGE_SIZE
    both = union_all(
        select(found.c.id, found.c.initialized_at),
        select(rest.c.id, rest.c.initialized_at).where(~filled),
    ).subquery("both")
    both_order = [c.asc() if newer else c.desc() for c in (both.c.initialized_at, both.c.id)]
    return select(both.c.id).order_by(*both_order).limit(PAGE_SIZE + 1).subquery("page_ids")


@functools.cache
def _statement(
    task: bool,
    status: str | None,
    start: bool,
    end: bool,
    words: int,
    direction: str,
    group: bool = False,
) -> CompoundSelect:
    """The statement for one combination of filters (a closed set, each built once)."""
    p = _PARAMS
    conditions = [Attempt.user_id == _USER_ID]
    if task:
        conditions.append(Attempt.task_id == p["task_id"])
    if group:
        conditions.append(
            Attempt.task_id.in_(
                select(TaskGroupTask.task_id).where(
                    TaskGroupTask.group_id == p["group_id"], TaskGroupTask.user_id == _USER_ID
                )
            )
        )
    if status is not None:
        conditions.append(Attempt.status.in_(STATUS_GROUPS[status]))
    if status == "postponed":
        # Postponed now: not yet at the time it was postponed until. The first condition
        # is the partial index's (ix_attempts_user_id_postponed), word for word.
        conditions.append(Attempt.postponed_at.is_not(None))
        conditions.append(
            or_(Attempt.postponed_until.is_(None), Attempt.postponed_until > func.now())
        )
    if start:
        conditions.append(Attempt.initialized_at >= p["start"])
    if end:
        conditions.append(Attempt.initialized_at < p["end"])
    key = tuple_(Attempt.initialized_at, Attempt.id)
    newer = direction == "newer"
    if newer:
        conditions.append(key > tuple_(p["at"], p["id"]))
    elif direction == "older":
        conditions.append(key < tuple_(p["at"], p["id"]))
    if words:
        match = and_(*(_word_matches(number) for number in range(words)))
        ids = _searched(conditions, match, newer)
    else:
        order = [c.asc() if newer else c.desc() for c in (Attempt.initialized_at, Attempt.id)]
        ids = (
            select(Attempt.id)
            .where(*conditions)
            .order_by(*order)
            .limit(PAGE_SIZE + 1)
            .subquery("page_ids")
        )
    attempts = (
        _row(
            "attempt",
            Attempt.id,
            Attempt.task_id,
            Task.name,
            Task.archived_at.is_not(None),
            Attempt.status,
            Attempt.initialized_at,
            Attempt.completed_at,
            Attempt.cancelled_at,
            Attempt.minutes_spent,
            Attempt.actual_relief,
            Attempt.cancel_category,
            Attempt.cancel_reason,
            Attempt.due_at,
            Attempt.postponed_at,
            Attempt.postponed_until,
        )
        .select_from(ids)
        .join(Attempt, Attempt.id == ids.c.id)
        .join(Task, and_(Task.id == Attempt.task_id, Task.user_id == Attempt.user_id))
    )
    tasks = _row("task", Task.id, Task.id, Task.name, Task.archived_at.is_not(None)).where(
        Task.user_id == _USER_ID
    )
    # The person's task groups, for the group filter (task_name holds the group's name).
    groups = _row("group", TaskGroup.id, None, TaskGroup.name).where(TaskGroup.user_id == _USER_ID)
    return union_all(tasks, groups, attempts)


@dataclass
class Page:
    tasks: list[Any]  # (id, name, archived) of every task of the person, by name
    groups: list[Any]  # (id, task_name: the group's name) of the person's groups, by name
    attempts: list[Any]  # newest first, at most PAGE_SIZE
    has_newer: bool
    has_older: bool


def page(
    db: Session, user_id: int, filters: Filters, cursor: Cursor | None, direction: str
) -> Page:
    """A page of the person's attempts (``direction``: ``first``, ``older`` or ``newer``
    than ``cursor``), and their tasks for the filter."""
    if cursor is None:
        direction = "first"
    statement = _statement(
        filters.task_id is not None,
        filters.status,
        filters.start is not None,
        filters.end is not None,
        len(filters.terms),
        direction,
        filters.group_id is not None,
    )
    params: dict[str, Any] = {
        "user_id": user_id,
        "task_id": filters.task_id,
        "group_id": filters.group_id,
        "start": filters.start,
        "end": filters.end,
        **{f"term_{number}": term for number, term in enumerate(filters.terms)},
    }
    if cursor is not None:
        params.update(at=cursor.initialized_at, id=cursor.id)
    rows = db.execute(statement, params).all()
    tasks = sorted(
        (r for r in rows if r.kind == "task"), key=lambda r: (r.archived, r.task_name.lower())
    )
    groups = sorted((r for r in rows if r.kind == "group"), key=lambda r: r.task_name.lower())
    attempts = [r for r in rows if r.kind == "attempt"]
    attempts.sort(key=lambda r: (r.initialized_at, r.id), reverse=True)
    more = len(attempts) > PAGE_SIZE
    if direction == "newer":
        attempts = attempts[-PAGE_SIZE:]  # the page just newer than the cursor
        return Page(tasks, groups, attempts, has_newer=more, has_older=True)
    return Page(tasks, groups, attempts[:PAGE_SIZE], has_newer=direction == "older", has_older=more)

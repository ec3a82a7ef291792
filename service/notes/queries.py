"""The notes' reads and writes, each one statement, always limited to the person's own.

The Notes page lists notes newest first by ``(created_at, id)`` a page at a time without
OFFSET: the next page starts after the last note seen (keyset pagination on
``ix_notes_user_id_created_at_id``), so the hundredth page costs what the first does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy import DateTime
from sqlalchemy import Executable
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import tuple_
from sqlalchemy import update
from sqlalchemy.orm import Session

from db.models import Attempt
from db.models import Note
from db.models import Task
from service.paging import Cursor

PAGE_SIZE = 50

# Not "user_id": an UPDATE keeps bind names of its columns for itself.
_USER_ID = bindparam("owner_id", type_=BigInteger)
_NOTE_ID = bindparam("note_id", type_=BigInteger)
_OWN_NOTE = and_(Note.id == _NOTE_ID, Note.user_id == _USER_ID)

# A note, and the name of the task of the attempt it was written on (if any).
_NOTES = (
    select(
        Note.id,
        Note.body,
        Note.created_at,
        Note.updated_at,
        Note.attempt_id,
        Task.name.label("task_name"),
    )
    .select_from(Note)
    .outerjoin(Attempt, and_(Attempt.id == Note.attempt_id, Attempt.user_id == Note.user_id))
    .outerjoin(Task, and_(Task.id == Attempt.task_id, Task.user_id == Attempt.user_id))
)


@functools.cache
def _page_statement(older: bool) -> Executable:
    statement = _NOTES.where(Note.user_id == _USER_ID)
    if older:
        at = bindparam("at", type_=DateTime(timezone=True))
        cursor = tuple_(at, bindparam("id", type_=BigInteger))
        statement = statement.where(tuple_(Note.created_at, Note.id) < cursor)
    return statement.order_by(Note.created_at.desc(), Note.id.desc()).limit(PAGE_SIZE + 1)


@dataclass
class Page:
    notes: list[Any]  # newest first, at most PAGE_SIZE
    older: Cursor | None  # where the next (older) page starts, if there is one


def page(db: Session, user_id: int, before: Cursor | None) -> Page:
    """A page of the person's notes: the newest, or those just older than ``before``."""
    params: dict[str, Any] = {"owner_id": user_id}
    if before is not None:
        # The history's cursor: a (timestamp, id) pair, here a note's (created_at, id).
        params.update(at=before.initialized_at, id=before.id)
    rows = db.execute(_page_statement(before is not None), params).all()
    notes = list(rows[:PAGE_SIZE])
    older = Cursor(notes[-1].created_at, notes[-1].id) if len(rows) > PAGE_SIZE else None
    return Page(notes, older)


_ONE = _NOTES.where(_OWN_NOTE)
_ON_ATTEMPT = _NOTES.where(
    Note.user_id == _USER_ID, Note.attempt_id == bindparam("attempt_id", type_=BigInteger)
).order_by(Note.created_at, Note.id)


def note(db: Session, user_id: int, note_id: int) -> Any | None:
    """The person's note with this id, or None (another person's, or deleted)."""
    return db.execute(_ONE, {"owner_id": user_id, "note_id": note_id}).first()


def on_attempt(db: Session, user_id: int, attempt_id: int) -> list[Any]:
    """The person's notes written on this attempt, oldest first (as they were written)."""
    return list(db.execute(_ON_ATTEMPT, {"owner_id": user_id, "attempt_id": attempt_id}))


def add(db: Session, user_id: int, body: str, attempt_id: int | None = None) -> None:
    """A new note; ``attempt_id`` must be one of the person's attempts (checked by the caller)."""
    db.execute(insert(Note).values(user_id=user_id, body=body, attempt_id=attempt_id))


def edit(db: Session, user_id: int, note_id: int, body: str) -> bool:
    """Change the person's note; False if there is no such note of theirs."""
    result = db.execute(
        update(Note).where(_OWN_NOTE).values(body=body, updated_at=func.now()),
        {"owner_id": user_id, "note_id": note_id},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def remove(db: Session, user_id: int, note_id: int) -> bool:
    """Delete the person's note; False if there is no such note of theirs."""
    result = db.execute(delete(Note).where(_OWN_NOTE), {"owner_id": user_id, "note_id": note_id})
    return bool(result.rowcount)  # type: ignore[attr-defined]

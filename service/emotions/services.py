from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy import Label
from sqlalchemy import bindparam
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.models import Emotion
from service import database

# Offered to a new account so the lists aren't empty on the first visit.
STARTER_EMOTIONS = ("Anxious", "Bored", "Calm", "Excited", "Frustrated", "Motivated", "Tired")


# Every form with emotions lists them, in this order: built once.
_ORDER = func.lower(Emotion.name)
_CHOICES = (
    select(Emotion.id, Emotion.name)
    .where(Emotion.user_id == bindparam("user_id", type_=BigInteger))
    .order_by(_ORDER)
)


def choices_column(owner: Any, correlate: Any) -> Label[Any]:
    """The emotions of the person whose id is ``owner`` (a column of ``correlate``) as
    :func:`service.database.choices_column` gives them, in the order of
    :func:`emotion_choices`."""
    return database.choices_column(
        Emotion.id, Emotion.name, Emotion.user_id == owner, (_ORDER,), correlate, "emotion_choices"
    )


def emotion_choices(db: Session, user_id: int) -> list[tuple[int, str]]:
    return [(row.id, row.name) for row in database.run(db, _CHOICES, {"user_id": user_id})]


# One statement whatever the number of names, which SQLAlchemy keeps compiled (a VALUES
# list is a new statement for every length, and its ON CONFLICT has no cache key).
_ADD_EMOTIONS = text(
    "INSERT INTO emotions (user_id, name)"
    " SELECT :user_id, name FROM unnest(CAST(:names AS text[])) AS name"
    " ON CONFLICT DO NOTHING"
)


def ensure_emotions(db: Session, user_id: int, names: Iterable[str]) -> list[int]:
    """Ids for these names, creating the missing ones (matched case-insensitively)."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    db.execute(_ADD_EMOTIONS, {"user_id": user_id, "names": wanted})
    rows = db.execute(
        select(Emotion.id, func.lower(Emotion.name)).where(
            Emotion.user_id == user_id,
            func.lower(Emotion.name).in_([n.lower() for n in wanted]),
        )
    )
    by_name = {name: emotion_id for emotion_id, name in rows}
    return [by_name[n.lower()] for n in wanted if n.lower() in by_name]


def chosen_emotion_ids(
    db: Session, user_id: int, selected: Iterable[int] | None, new_names: list[str]
) -> list[int]:
    """The checked emotions plus any new words typed in, without duplicates."""
    ids = list(selected or [])
    ids += ensure_emotions(db, user_id, new_names)
    return list(dict.fromkeys(ids))

"""A per-person cache of the figures a page computed, shared by every worker (in PostgreSQL).

Correctness rests on ``users.data_version``: triggers bump it in the same transaction as
any change to the person's tasks or attempts (the app's forms, an import's COPY, a
hand-written UPDATE alike). The version is read *before* the page's own reads, in the
statement that loads the signed-in person (:mod:`service.auth`), and the figures are
stored under that version. A change that commits in between can only make the stored
figures newer than their version says, and a stored version older than the person's
current one is never shown: a write can never be followed by stale figures.

The key holds everything else the figures depend on: the person's local day and time
zone, the page's choices, and the release (a new release may compute differently).

Costs: a hit is no extra statement (the row comes with the person); a miss is one more
(the upsert), which the view commits.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import current_app
from flask import g
from flask import request
from sqlalchemy import BigInteger
from sqlalchemy import Text
from sqlalchemy import bindparam
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import PageCache

# Bump when the shape of what a page stores changes within one release.
FORMAT = 1

_STORE = (
    insert(PageCache)
    .values(
        user_id=bindparam("user_id", type_=BigInteger),
        page=bindparam("page", type_=Text),
        data_version=bindparam("data_version", type_=BigInteger),
        key=bindparam("key", type_=Text),
        body=bindparam("body", type_=Text),
    )
    .on_conflict_do_update(
        index_elements=[PageCache.user_id, PageCache.page],
        set_={
            "data_version": insert(PageCache).excluded.data_version,
            "key": insert(PageCache).excluded.key,
            "body": insert(PageCache).excluded.body,
            "updated_at": func.now(),
        },
        # A slow request that read an older version must not replace newer figures.
        where=PageCache.data_version <= insert(PageCache).excluded.data_version,
    )
)


def make_key(*parts: object) -> str:
    return "|".join(str(part) for part in (FORMAT, current_app.config["VERSION"], *parts))


def lookup(key: str) -> Any | None:
    """The figures stored for this request's page and person under ``key``, if current.

    :mod:`service.auth` put the row there (``g.page_cache``) only if it was computed at the
    person's current data version.
    """
    entry: tuple[str, str] | None = g.get("page_cache")
    if entry is None or entry[0] != key:
        return None
    return json.loads(entry[1])


def _iso(value: object) -> str:
    """Dates and timestamps as ISO text; the page turns them back as it needs."""
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def store(db: Session, user_id: int, key: str, figures: Any) -> None:
    """Keep ``figures`` (JSON-able) for this page's next view; the caller commits."""
    version = g.get("page_cache_version")
    if version is None:  # the person wasn't loaded by service.auth (signed in just now)
        return
    body = json.dumps(figures, separators=(",", ":"), default=_iso)
    db.execute(
        _STORE,
        {
            "user_id": user_id,
            "page": request.endpoint,
            "data_version": version,
            "key": key,
            "body": body,
        },
    )

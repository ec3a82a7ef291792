"""A per-person cache of what a page computed, shared by every worker (in PostgreSQL).

A page keeps itself whole as rendered (:func:`stored_page`, :func:`store_page`,
:func:`store_whole_page`), with holes for what differs from one request to the next (the
CSRF token, flashed messages, a running timer).

Correctness rests on ``users.data_version``: triggers bump it in the same transaction as
any change to the person's tasks or attempts (the app's forms, an import's COPY, a
hand-written UPDATE alike): :data:`INVALIDATED_BY` declares which tables' changes do, and
tests/integration/test_page_cache.py checks it against the triggers in the database and
against what the cached pages read. The version is read *before* the page's own reads, in
the statement that loads the signed-in person (:mod:`service.auth`, with
:data:`LOOKUP_COLUMNS` and :data:`LOOKUP_JOIN`), and the figures are
stored under that version. A change that commits in between can only make the stored
figures newer than their version says, and a stored version older than the person's
current one is never shown: a write can never be followed by stale figures.

A dashboard stored at the person's current *history* version (``users.history_version``,
bumped by every change except one to open attempts only: a new attempt, a start, a pause)
is still right except for its open attempts: the view recomputes that part alone and puts
it in place of the old one (:func:`stored_page`, :func:`store_part`). The same happens,
without any change of data, once the time stored with the page as ``expires`` has come:
an open attempt fell due (it is marked overdue and moves up) or a postponement ran out.

The key holds everything else the figures depend on: the person's local day and time
zone, the page's choices, and the release (a new release may compute differently).

Costs: a hit is no extra statement (the row comes with the person); a miss is one more
(the upsert), which the view commits; a dashboard whose history is current adds one more (its
open attempts) instead of three.
The table is unlogged (migration 0012): the upsert writes nothing to PostgreSQL's
write-ahead log and its commit waits for no disk flush; a crash of the database empties
the table, which only means misses.

This module imports no feature package: the dashboard and analytics use it, not the
other way round.

A stored page is signed with the app's secret key: a row altered in the database (by hand,
by a restore, by an attacker with SQL access) fails the check and the page is computed
afresh, so the cache can never put markup into a page that the templates did not write.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

from flask import current_app
from flask import g
from flask import get_template_attribute
from flask import render_template
from flask import request
from flask import session
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.models import utcnow
from service import database
from service.elapsed import minutes_so_far

# Bump when the shape of what a page stores changes within one release.
FORMAT = 8

# --- what invalidates a stored page ------------------------------------------------------

_ALL = ("insert", "update", "delete")

# Every change to these tables (the statements listed) bumps the person's
# ``users.data_version``, and their ``history_version`` unless it touches open attempts
# only (an attempt initialized, started or paused, or emotions on such an attempt): the
# statement-level triggers calling ``bump_data_version()`` (migrations 0002, 0004, 0010).
# A table a cached page reads must be here or in READ_WITHOUT_INVALIDATING.
INVALIDATED_BY: Mapping[str, tuple[str, ...]] = {
    "tasks": _ALL,
    "attempts": _ALL,
    "attempt_emotions": _ALL,
    "task_groups": _ALL,
    "task_group_tasks": _ALL,
    # A new emotion is on no attempt yet: only renaming or deleting one changes a page.
    "emotions": ("update", "delete"),
}

# Tables a cached page reads although their changes don't invalidate it, and why.
READ_WITHOUT_INVALIDATING: Mapping[str, str] = {
    "users": "the person's row comes with the page's row; what a page uses of it (the time"
    " zone, the username, the chosen recommendations) is part of the page's key",
    "page_cache": "the cache itself, read with the person",
    "user_sessions": "the session that brings the person and the page's row along",
}

# --- reading: the page's row comes with the signed-in person ------------------------------

# What service.auth selects after the person's own columns (``users`` is ``u``), and joins
# after ``users``: this page's row, if it was computed at the person's current data
# version, or at their current history version (a dashboard whose open attempts alone are
# out of date). The page is the parameter ``page`` (:func:`lookup_parameters`).
LOOKUP_COLUMNS = "u.data_version, u.history_version, p.key, p.body, p.data_version = u.data_version"
LOOKUP_JOIN = """LEFT JOIN page_cache p
  ON p.user_id = u.id AND p.page = %(page)s
  AND (p.data_version = u.data_version OR p.history_version = u.history_version)"""


class Versions(NamedTuple):
    """The person's versions as the request read them, before the page's own reads."""

    data: int
    history: int


class Entry(NamedTuple):
    """This page's row, as the lookup found it."""

    key: str
    body: str
    current: bool  # computed at the person's data version (else at their history version)


def lookup_parameters() -> dict[str, Any]:
    """The parameters :data:`LOOKUP_JOIN` needs."""
    return {"page": request.endpoint}


def found(columns: Sequence[Any]) -> Versions:
    """Keep for this request what :data:`LOOKUP_COLUMNS` read (``columns``, in that order):
    the person's versions, which :func:`_store` stores with the page, and the page's row, if
    any, which :func:`stored_page` reads."""
    data_version, history_version, key, body, current = columns
    versions = Versions(data_version, history_version)
    g.page_cache_version = versions
    g.page_cache = Entry(key, body, current) if key is not None else None
    return versions


# --- storing ------------------------------------------------------------------------------

# Plain SQL: SQLAlchemy gives an ON CONFLICT ... DO UPDATE ... WHERE statement no cache key,
# so it compiled this upsert afresh on every page stored (tests/integration/test_dashboard.py
# checks that no statement of the pages goes uncached).
_STORE = text(
    """
    INSERT INTO page_cache (user_id, page, data_version, history_version, key, body)
    VALUES (:user_id, :page, :data_version, :history_version, :key, :body)
    ON CONFLICT (user_id, page) DO UPDATE SET
        data_version = excluded.data_version,
        history_version = excluded.history_version,
        key = excluded.key,
        body = excluded.body,
        updated_at = now()
    -- A slow request that read an older version must not replace newer figures.
    WHERE page_cache.data_version <= excluded.data_version
    """
)


def make_key(*parts: object) -> str:
    return "|".join(str(part) for part in (FORMAT, current_app.config["VERSION"], *parts))


def _entry(key: str) -> tuple[str, bool] | None:
    """The row stored for this request's page and person under ``key``: its body, and
    whether it is current (else it is current for the person's history only).

    :func:`found` put the row there (``g.page_cache``) only if it was computed at the
    person's current data version or history version.
    """
    entry: Entry | None = g.get("page_cache")
    if entry is None or entry.key != key:
        return None
    return entry.body, entry.current


def _store(db: Session, user_id: int, key: str, body: str) -> None:
    """Upsert the row, good for the person's current data and history versions."""
    versions: Versions | None = g.get("page_cache_version")
    if versions is None:  # the person wasn't loaded by service.auth (signed in just now)
        return
    database.run(
        db,
        _STORE,
        {
            "user_id": user_id,
            "page": request.endpoint,
            "data_version": versions.data,
            "history_version": versions.history,
            "key": key,
            "body": body,
        },
    )


# --- whole pages -------------------------------------------------------------------------


class Holes:
    """Markers for the parts of a stored page that are filled in per request.

    A marker is random for every render, so text a person typed (a task name, say) can never
    be taken for one; it is stored with the page.
    """

    def __init__(self, nonce: str | None = None) -> None:
        self.nonce = nonce or secrets.token_hex(12)

    def marker(self, name: str) -> Markup:
        return Markup(f"hole{self.nonce}{name}")

    def context(self) -> dict[str, Any]:
        """Template variables that render the holes instead of the per-request parts."""
        token = self.marker("csrf")
        return {
            "csrf_token": lambda: token,  # shadows Flask-WTF's global for this render
            "flashes_hole": self.marker("flashes"),
            "timer_hole": self.marker("timer"),
        }


def _signature(text: str) -> str:
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def _fill(holes: Holes, html: str, timer: Callable[[], str] | None) -> str:
    html = html.replace(holes.marker("csrf"), generate_csrf())
    flashes = render_template("_flashes.html") if session.get("_flashes") else ""
    html = html.replace(holes.marker("flashes"), flashes)
    marker = holes.marker("timer")
    if timer is not None and marker in html:
        html = html.replace(marker, timer())
    return html


def _running(running: tuple[str, dt.datetime | None, float] | None) -> list[Any] | None:
    """The running attempt's (status, resumed_at, minutes_spent) as kept with a page (JSON)."""
    if running is None:
        return None
    status, resumed_at, minutes_spent = running
    return [status, resumed_at.isoformat() if resumed_at else None, minutes_spent]


def _timer(running: list[Any] | None) -> Callable[[], str] | None:
    """The running attempt's elapsed-time element, as of this request."""
    if not running:
        return None
    status, resumed_at, minutes_spent = running
    resumed = dt.datetime.fromisoformat(resumed_at) if resumed_at else None

    def render() -> str:
        element = get_template_attribute("_macros.html", "elapsed_timer")
        return str(element(minutes_so_far(status, resumed, minutes_spent)))

    return render


class Stored(NamedTuple):
    """A whole page as stored, its signature checked."""

    holes: Holes
    html: str
    running: list[Any] | None  # the timer's (status, resumed_at, minutes_spent)
    part: tuple[int, int]  # where in ``html`` the part recomputed on its own sits
    current: bool  # else only its part is out of date
    routines: list[Any]  # the person's routines (JSON), which the part needs to be computed


def stored_page(key: str) -> Stored | None:
    """This page as stored under ``key``, if current, or current but for its part."""
    entry = _entry(key)
    if entry is None:
        return None
    body, current = entry
    signature, _, signed = body.partition("\n")
    if not hmac.compare_digest(signature, _signature(signed)):
        return None  # altered outside the app: never shown
    header, _, html = signed.partition("\n")
    meta = json.loads(header)
    start, end = meta["part"]
    expires = meta.get("expires")
    if expires is not None and dt.datetime.fromisoformat(expires) <= utcnow():
        current = False  # an attempt fell due, or a postponement ran out, since
    return Stored(
        Holes(meta["holes"]),
        html,
        meta.get("running"),
        (start, end),
        current,
        meta.get("routines", []),
    )


def fill(page: Stored) -> str:
    """The stored page with this request's parts filled in."""
    return _fill(page.holes, page.html, _timer(page.running))


def _keep(
    db: Session,
    user_id: int,
    key: str,
    holes: Holes,
    html: str,
    part: tuple[int, int],
    running: tuple[str, dt.datetime | None, float] | None,
    expires: dt.datetime | None,
    routines: list[Any],
) -> str:
    timer = _running(running)
    meta: dict[str, Any] = {"holes": holes.nonce, "running": timer, "part": part}
    if expires is not None:
        meta["expires"] = expires.isoformat()
    if routines:
        meta["routines"] = routines
    signed = f"{json.dumps(meta)}\n{html}"
    _store(db, user_id, key, f"{_signature(signed)}\n{signed}")
    return _fill(holes, html, _timer(timer))


def store_page(
    db: Session,
    user_id: int,
    key: str,
    render: Callable[[Holes, Markup], str],
    render_part: Callable[[Holes], str],
    running: tuple[str, dt.datetime | None, float] | None = None,
    expires: dt.datetime | None = None,
    routines: list[Any] | None = None,
) -> str:
    """Render the page with holes, keep it for the next view, return it filled in.

    ``render_part`` renders the part that depends on more than the person's history (the
    dashboard's open attempts); ``render`` renders the page around it. ``running`` is the
    (status, resumed_at, minutes_spent) of the attempt whose timer the page shows, if any.
    ``expires``: from then on the part is out of date although no data changed (an
    attempt falls due): a later view renders it afresh. ``routines``: what the part needs
    besides the open attempts to be computed again (JSON, kept with the page: the schedules
    change only with the person's tasks, so with their history; the occurrences they have
    made are updated by each view that makes one). The caller commits.
    """
    holes = Holes()
    start, end = holes.marker("part-start"), holes.marker("part-end")
    html = render(holes, start + Markup(render_part(holes)) + end)
    first = html.index(start)
    html = html.replace(start, "", 1)
    last = html.index(end)
    html = html.replace(end, "", 1)
    return _keep(db, user_id, key, holes, html, (first, last), running, expires, routines or [])


def store_whole_page(db: Session, user_id: int, key: str, render: Callable[[Holes], str]) -> str:
    """Render a page that has no part of its own (all it shows changes with the person's
    history: analytics), keep it for the next view, return it filled in. It is shown again
    while the person's history version stays; the caller commits.
    """
    holes = Holes()
    return _keep(db, user_id, key, holes, render(holes), (0, 0), None, None, [])


def render_page(
    render: Callable[[Holes, Markup], str],
    render_part: Callable[[Holes], str],
    running: tuple[str, dt.datetime | None, float] | None = None,
) -> str:
    """Render a page as :func:`store_page` does, without keeping it (a view that isn't
    cached, such as the dashboard filtered by a group)."""
    holes = Holes()
    html = render(holes, Markup(render_part(holes)))
    return _fill(holes, html, _timer(_running(running)))


def store_part(
    db: Session,
    user_id: int,
    key: str,
    page: Stored,
    render_part: Callable[[Holes], str],
    running: tuple[str, dt.datetime | None, float] | None = None,
    expires: dt.datetime | None = None,
    routines: list[Any] | None = None,
) -> str:
    """``page`` with its part rendered afresh: kept for the next view and returned filled in.

    Only for a page current for the person's history (:func:`stored_page`); the caller
    commits. ``routines``: as for :func:`store_page` (none: the page's own are kept).
    """
    part = render_part(page.holes)
    first, last = page.part
    html = page.html[:first] + part + page.html[last:]
    span = (first, first + len(part))
    kept = page.routines if routines is None else routines
    return _keep(db, user_id, key, page.holes, html, span, running, expires, kept)

"""A per-person cache of what a page computed, shared by every worker (in PostgreSQL).

A page keeps either the figures it computed (JSON: :func:`lookup`, :func:`store`) or the
whole page as rendered (:func:`cached_page`, :func:`store_page`), with holes for what differs
from one request to the next (the CSRF token, flashed messages, a running timer).

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
from typing import Any

from flask import current_app
from flask import g
from flask import get_template_attribute
from flask import render_template
from flask import request
from flask import session
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy import BigInteger
from sqlalchemy import Text
from sqlalchemy import bindparam
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import PageCache
from service.attempts.services import minutes_so_far

# Bump when the shape of what a page stores changes within one release.
FORMAT = 2

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


def _current(key: str) -> str | None:
    """What is stored for this request's page and person under ``key``, if current.

    :mod:`service.auth` put the row there (``g.page_cache``) only if it was computed at the
    person's current data version.
    """
    entry: tuple[str, str] | None = g.get("page_cache")
    if entry is None or entry[0] != key:
        return None
    return entry[1]


def lookup(key: str) -> Any | None:
    """The figures stored for this request's page and person under ``key``, if current."""
    body = _current(key)
    return None if body is None else json.loads(body)


def _iso(value: object) -> str:
    """Dates and timestamps as ISO text; the page turns them back as it needs."""
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def store(db: Session, user_id: int, key: str, figures: Any) -> None:
    """Keep ``figures`` (JSON-able) for this page's next view; the caller commits."""
    _store(db, user_id, key, json.dumps(figures, separators=(",", ":"), default=_iso))


def _store(db: Session, user_id: int, key: str, body: str) -> None:
    version = g.get("page_cache_version")
    if version is None:  # the person wasn't loaded by service.auth (signed in just now)
        return
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


def cached_page(key: str) -> str | None:
    """This page as stored under ``key`` with this request's parts filled in, if current."""
    body = _current(key)
    if body is None:
        return None
    signature, _, signed = body.partition("\n")
    if not hmac.compare_digest(signature, _signature(signed)):
        return None  # altered outside the app: never shown
    header, _, html = signed.partition("\n")
    meta = json.loads(header)
    return _fill(Holes(meta["holes"]), html, _timer(meta.get("running")))


def store_page(
    db: Session,
    user_id: int,
    key: str,
    render: Callable[[Holes], str],
    running: tuple[str, dt.datetime | None, float] | None = None,
) -> str:
    """Render the page with holes, keep it for the next view, return it filled in.

    ``running`` is the (status, resumed_at, minutes_spent) of the attempt whose timer the page
    shows, if any. The caller commits.
    """
    holes = Holes()
    html = render(holes)
    timer = None
    if running is not None:
        status, resumed_at, minutes_spent = running
        timer = [status, resumed_at.isoformat() if resumed_at else None, minutes_spent]
    signed = f"{json.dumps({'holes': holes.nonce, 'running': timer})}\n{html}"
    _store(db, user_id, key, f"{_signature(signed)}\n{signed}")
    return _fill(holes, html, _timer(timer))

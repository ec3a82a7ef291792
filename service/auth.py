"""Who is signed in: server-side sessions behind a signed cookie.

The cookie holds a random token; the database keeps only its SHA-256 in
``user_sessions``. Sign-in creates a new token (the session id changes), sign-out and
account deletion delete the row, so a stolen old cookie is worthless. A new sign-in key and
"sign out everywhere" delete every row of the person; expired rows are deleted by
``flask prune-sessions`` (:func:`prune_expired_sessions`).

Every request but static files looks the person up, so the lookup is one SQL statement
sent as written through the request's connection (no statement to compile, no ORM object to
build and track), giving a plain :class:`CurrentUser`. A view that changes the person's
row loads it with :func:`user_row`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import TypeVar
from typing import cast

from flask import Flask
from flask import abort
from flask import g
from flask import redirect
from flask import request
from flask import session
from flask import url_for
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import Engine
from sqlalchemy import delete
from sqlalchemy import text

from db.models import User
from db.models import UserSession
from db.models import utcnow
from service import database
from service import page_cache

SESSION_LIFETIME = dt.timedelta(days=365)
F = TypeVar("F", bound=Callable[..., Any])


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in person, as pages and views read them."""

    id: int
    username: str
    timezone: str
    preferences: dict[str, Any]
    data_version: int

    @classmethod
    def of(cls, row: User) -> CurrentUser:
        return cls(row.id, row.username, row.timezone, row.preferences, row.data_version)


def current_user() -> CurrentUser | None:
    return cast(CurrentUser | None, g.get("user"))


def user() -> CurrentUser:
    """The signed-in user (only call from views behind ``login_required``)."""
    found = current_user()
    if found is None:
        abort(401)
    return found


def user_row() -> User:
    """The signed-in person's row, for a view that changes it (the view commits)."""
    row = database.session().get(User, user().id)
    if row is None:  # deleted by another request since this one looked them up
        abort(401)
    return row


def start_session(user_id: int) -> None:
    """Sign in: a fresh token every time, so the session id changes at sign-in."""
    db = database.session()
    old = session.get("sid")
    if old:
        db.execute(delete(UserSession).where(UserSession.token_hash == token_hash(old)))
    token = secrets.token_urlsafe(32)
    db.add(
        UserSession(
            token_hash=token_hash(token),
            user_id=user_id,
            expires_at=utcnow() + SESSION_LIFETIME,
        )
    )
    session.clear()
    session.permanent = True
    session["sid"] = token
    # The page rendered by this same request (the sign-in key page) sees the new person.
    row = db.get(User, user_id)
    g.user = CurrentUser.of(row) if row is not None else None


def end_session() -> None:
    token = session.get("sid")
    if token:
        database.session().execute(
            delete(UserSession).where(UserSession.token_hash == token_hash(token))
        )
    session.clear()


def end_all_sessions(user_id: int) -> None:
    """Sign the person out on every device, this one included (the view commits)."""
    database.session().execute(delete(UserSession).where(UserSession.user_id == user_id))
    session.clear()


# Expired rows, a batch at a time: each batch is a short transaction that locks only rows
# nobody can use any more, and skips any a sign-out is deleting at the same moment.
_PRUNE_BATCH = """
DELETE FROM user_sessions WHERE token_hash IN (
    SELECT token_hash FROM user_sessions WHERE expires_at <= now()
    LIMIT :batch FOR UPDATE SKIP LOCKED
)
"""


def prune_expired_sessions(engine: Engine, batch: int = 1000) -> int:
    """Delete expired sessions (they can no longer sign anyone in); return how many."""
    deleted = 0
    while True:
        with engine.begin() as conn:
            count = conn.execute(text(_PRUNE_BATCH), {"batch": batch}).rowcount
        deleted += count
        if count < batch:
            return deleted


# The person, and in the same statement this page's cached row (see service.page_cache).
_LOAD_USER = f"""
SELECT u.id, u.username, u.timezone, u.preferences, {page_cache.LOOKUP_COLUMNS}
FROM user_sessions s
JOIN users u ON u.id = s.user_id
{page_cache.LOOKUP_JOIN}
WHERE s.token_hash = %(token_hash)s AND s.expires_at > now()
"""


def _load_user() -> None:
    g.user = None
    token = session.get("sid")
    if not token or request.endpoint in (None, "static", "health.healthz", "health.live"):
        return
    parameters = {**page_cache.lookup_parameters(), "token_hash": token_hash(token)}
    row = database.fetch_one(_LOAD_USER, parameters)
    if row is None:
        return
    versions = page_cache.found(row[4:])
    g.user = CurrentUser(row[0], row[1], row[2], row[3], versions.data)


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed session cookie, with its serializer made once per set of keys.

    Flask makes a new one for every request, and making one serializes a test value to
    learn whether it writes text: 0.03-0.06 ms of a cached page's 1.5 (docs/benchmarks.md).
    """

    def __init__(self) -> None:
        self._serializers: dict[tuple[Any, ...], URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        if keys not in self._serializers:
            self._serializers = {keys: super().get_signing_serializer(app)}
        return self._serializers[keys]


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return redirect(url_for("accounts.signin", next=request.full_path))
        return view(*args, **kwargs)

    return cast(F, wrapped)


def init_app(app: Flask) -> None:
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", SESSION_LIFETIME)
    app.session_interface = SessionCookies()
    app.before_request(_load_user)

    @app.context_processor
    def _inject_user() -> dict[str, Any]:
        return {"current_user": current_user()}

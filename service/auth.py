"""Who is signed in: server-side sessions behind a signed cookie.

The cookie holds a random token; the database keeps only its SHA-256 in
``user_sessions``. Sign-in creates a new token (the session id changes), sign-out and
account deletion delete the row, so a stolen old cookie is worthless.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from collections.abc import Callable
from types import SimpleNamespace
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
from sqlalchemy import DateTime
from sqlalchemy import Text
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import inspect
from sqlalchemy import select

from db.models import PageCache
from db.models import User
from db.models import UserSession
from db.models import utcnow
from service import database

SESSION_LIFETIME = dt.timedelta(days=365)
F = TypeVar("F", bound=Callable[..., Any])


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def current_user() -> User | None:
    return cast(User | None, g.get("user"))


def user() -> User:
    """The signed-in user (only call from views behind ``login_required``)."""
    found = current_user()
    if found is None:
        abort(401)
    return found


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
    g.user = db.get(User, user_id)


def end_session() -> None:
    token = session.get("sid")
    if token:
        database.session().execute(
            delete(UserSession).where(UserSession.token_hash == token_hash(token))
        )
    session.clear()


# The person, and in the same statement this page's cached figures if they were computed
# at the person's current data version (see service.dashboard.page_cache). Built once.
_LOAD_USER = (
    select(User, PageCache.key, PageCache.body)
    .join(UserSession, UserSession.user_id == User.id)
    .outerjoin(
        PageCache,
        and_(
            PageCache.user_id == User.id,
            PageCache.page == bindparam("page", type_=Text),
            PageCache.data_version == User.data_version,
        ),
    )
    .where(
        UserSession.token_hash == bindparam("token_hash", type_=Text),
        UserSession.expires_at > bindparam("now", type_=DateTime(timezone=True)),
    )
)


def _load_user() -> None:
    g.user = None
    token = session.get("sid")
    if not token or request.endpoint in (None, "static", "health.healthz"):
        return
    row = (
        database.session()
        .execute(
            _LOAD_USER,
            {"page": request.endpoint, "token_hash": token_hash(token), "now": utcnow()},
        )
        .first()
    )
    if row is None:
        return
    g.user = row[0]
    g.page_cache_version = row[0].data_version
    g.page_cache = (row[1], row[2]) if row[1] is not None else None


def keep_user_for_error_page() -> None:
    """Swap the signed-in user for a plain copy of the fields pages show.

    Error handlers roll the session back, which expires every loaded object; reading the
    user's name afterwards would go back to the database — the very thing that may have
    just failed. A copy made from the already-loaded state needs no database at all.
    """
    user = g.get("user")
    if isinstance(user, User):
        loaded = inspect(user).dict
        g.user = SimpleNamespace(
            id=loaded.get("id"),
            username=loaded.get("username", ""),
            timezone=loaded.get("timezone", "UTC"),
        )


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return redirect(url_for("accounts.signin", next=request.full_path))
        return view(*args, **kwargs)

    return cast(F, wrapped)


def init_app(app: Flask) -> None:
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", SESSION_LIFETIME)
    app.before_request(_load_user)

    @app.context_processor
    def _inject_user() -> dict[str, Any]:
        return {"current_user": current_user()}

"""CSRF, rate limits, proxy headers and the security headers every response carries."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import request
from flask import session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from db.models import BIGINT_MAX

# Checks the token of every POST before any view runs, so one-button views need no form.
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)


# Sign-up, sign-in and sign-in-key attempts: enough for a person, too few for guessing.
AUTH_LIMITS = "10 per minute; 60 per hour"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


# Every response's, unless a view set its own.
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
# Pages show a person's own data: never keep them in shared caches.
PAGE_HEADERS = (*SECURITY_HEADERS, ("Cache-Control", "no-store"))


def _security_headers(response: Response) -> Response:
    """The headers a view did not set, added in one go: one pass over the response's
    headers rather than one per header (``setdefault`` looks through them all each time)."""
    headers = response.headers
    present = {key.lower() for key in headers.keys()}
    wanted = PAGE_HEADERS if response.mimetype == "text/html" else SECURITY_HEADERS
    headers.extend([(key, value) for key, value in wanted if key.lower() not in present])
    return response


class RowIdConverter(IntegerConverter):
    """``<int:...>`` in URLs, capped at PostgreSQL's bigint: a larger id is a 404.

    Without the cap, /tasks/99999999999999999999/edit reached the database and failed
    with "bigint out of range" (a 500).
    """

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", BIGINT_MAX)
        super().__init__(map, *args, **kwargs)


def _app_wide_limits(app: Flask) -> bool:
    """Whether any limit is not a route's own: default, application, meta or blueprint
    limits, which Flask-Limiter checks before every request. Where this cannot be told
    (a Flask-Limiter that keeps them elsewhere), the answer is yes."""
    manager = limiter.limit_manager
    configured = any(
        app.config.get(name) for name in ("RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION")
    )
    blueprints = getattr(manager, "_blueprint_limits", None)
    meta = getattr(limiter, "_meta_limits", None)
    if blueprints is None or meta is None:
        return True
    return bool(
        configured
        or manager.default_limits
        or manager.application_limits
        or any(blueprints.values())
        or meta
        or app.config.get("RATELIMIT_META")
    )


def limit_in_routes_only(app: Flask) -> None:
    """Drop Flask-Limiter's check before every request while every limit is a route's own.

    Each limited route checks its limits in its decorator. The check before every request
    looks for app-wide limits, finds none, and took 0.15 ms of a cached dashboard's 1.6
    (docs/benchmarks.md). Called once the blueprints are registered; with any app-wide
    limit it stays.
    """
    hooks = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in hooks and not _app_wide_limits(app):
        hooks.remove(limiter._check_request_limit)


# Flask-WTF keeps a random token in the session and puts it in forms signed (with a
# timestamp, which nothing checks while tokens have no time limit). Signing it anew for
# every page took a twentieth of a cached page's CPU, so each worker keeps the signed form
# of the tokens it has seen (up to this many, then starts again) and Flask-WTF finds it made.
CSRF_TOKENS_KEPT = 10_000
_CSRF_FIELD = "csrf_token"


def _signed_tokens() -> dict[str, str] | None:
    """This app's signed tokens by raw token, or none while tokens expire."""
    if current_app.config.get("WTF_CSRF_TIME_LIMIT") is not None:
        return None
    kept: dict[str, str] = current_app.extensions.setdefault("csrf_signed_tokens", {})
    return kept


def _reuse_signed_csrf_token() -> None:
    """Only for reads: a post may clear the session (sign-in, sign-out) and with it the
    raw token, after which Flask-WTF must make a new one rather than find the old one."""
    if request.method not in ("GET", "HEAD"):
        return
    raw = session.get(_CSRF_FIELD)
    kept = _signed_tokens() if isinstance(raw, str) else None
    if kept is not None and raw in kept:
        setattr(g, _CSRF_FIELD, kept[raw])


def _keep_signed_csrf_token(response: Response) -> Response:
    signed, raw = g.get(_CSRF_FIELD), session.get(_CSRF_FIELD)
    if not (isinstance(signed, str) and isinstance(raw, str)):
        return response
    kept = _signed_tokens()
    if kept is not None and raw not in kept:
        if len(kept) >= CSRF_TOKENS_KEPT:
            kept.clear()
        kept[raw] = signed
    return response


def init_app(app: Flask) -> None:
    # Before the blueprints are registered: their rules pick the converter up then.
    app.url_map.converters["int"] = RowIdConverter
    proxies = app.config.get("PROXY_COUNT", 0)
    if proxies:
        # Behind nginx: trust its X-Forwarded-* headers (client address, https).
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # tied to the session instead
    app.before_request(_reuse_signed_csrf_token)
    app.after_request(_keep_signed_csrf_token)
    csrf.init_app(app)
    limiter.init_app(app)
    app.after_request(_security_headers)

"""CSRF, rate limits, proxy headers and the security headers every response carries."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask import Response
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


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if response.mimetype == "text/html":
        # Pages show a person's own data: never keep them in shared caches.
        headers.setdefault("Cache-Control", "no-store")
    return response


class RowIdConverter(IntegerConverter):
    """``<int:...>`` in URLs, capped at PostgreSQL's bigint: a larger id is a 404.

    Without the cap, /tasks/99999999999999999999/edit reached the database and failed
    with "bigint out of range" (a 500).
    """

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", BIGINT_MAX)
        super().__init__(map, *args, **kwargs)


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
    csrf.init_app(app)
    limiter.init_app(app)
    app.after_request(_security_headers)

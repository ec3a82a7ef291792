"""Friendly error pages: no stack traces, no paths; a database outage is a 503."""

from __future__ import annotations

from flask import Flask
from flask import current_app
from flask import render_template
from flask import request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from service import database

MESSAGES = {
    400: ("Something in that request wasn't right", "Please reload the page and try again."),
    403: ("Not allowed", "You can't do that here."),
    404: ("Not found", "There is nothing here, or it isn't yours."),
    405: ("Not allowed", "That page can't be used that way."),
    413: ("Too large", "That upload is larger than the server accepts."),
    429: ("Slow down", "Too many attempts in a short time. Please wait a little and try again."),
    500: ("Something went wrong", "The error was logged. Please try again in a moment."),
    503: (
        "Temporarily unavailable",
        "The service can't reach its database right now. Please try again in a minute.",
    ),
}


def _wants_json() -> bool:
    return request.path == "/healthz" or request.accept_mimetypes.best == "application/json"


def render_error(status: int, detail: str | None = None) -> ResponseReturnValue:
    title, message = MESSAGES.get(status, MESSAGES[500])
    if _wants_json():
        return {"status": "error", "error": title, "detail": detail or message}, status
    page = render_template("error.html", status=status, title=title, message=detail or message)
    return page, status


def _forget_request_work() -> None:
    database.rollback()


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    _forget_request_work()
    status = exc.code or 500
    # Only 400s carry a message written for people (e.g. "The CSRF token is missing.").
    detail = exc.description if status == 400 else None
    return render_error(status, detail)


def _database_unavailable(exc: Exception) -> ResponseReturnValue:
    _forget_request_work()
    current_app.logger.warning("database unavailable: %s", exc)
    return render_error(503)


def _unexpected(exc: Exception) -> ResponseReturnValue:
    _forget_request_work()
    current_app.logger.exception("unhandled error", exc_info=exc)
    return render_error(500)


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(PoolTimeoutError, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)

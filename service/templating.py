"""Jinja: its environment, and filters for times in the person's own time zone, minutes for
people and trends."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from flask import has_request_context
from flask import redirect
from flask import request
from flask import templating
from flask import url_for
from flask.typing import ResponseReturnValue

from db.models import CANCEL_CATEGORIES
from service import auth

# What ``a.b`` finds as an attribute on a plain dict: its methods and the like.
_DICT_ATTRIBUTES = frozenset(dir(dict))


class Environment(templating.Environment):
    """Flask's Jinja environment, quicker at ``row.name`` on the dicts views pass it.

    Jinja looks ``a.b`` up as an attribute first and then as an item. On a dict (the rows
    the queries return) the attribute lookup fails each time, raising and catching an
    AttributeError: a quarter of the dashboard's rendering. For a plain dict and a name
    that is no attribute of dicts the answer is the item either way, so the item is looked
    up first; everything else goes Jinja's way.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass  # Jinja's way: undefined
        return super().getattr(obj, attribute)


def localtime(value: dt.datetime | None, fmt: str = "%a %d %b %Y, %H:%M") -> str:
    """Stored in UTC, shown in the signed-in person's time zone."""
    if value is None:
        return "—"
    user = auth.current_user()
    zone = ZoneInfo(user.timezone if user else "UTC")
    return value.astimezone(zone).strftime(fmt)


def minutes(value: float | None) -> str:
    if value is None:
        return "—"
    total = round(float(value))
    if total < 60:
        return f"{total} min"
    hours, rest = divmod(total, 60)
    return f"{hours} h {rest:02d} min"


def trend_text(figure: Any, minutes: bool = False) -> str:
    if figure.trend == "new":
        return "No earlier weeks to compare with yet."
    baseline = _format_minutes(figure.baseline) if minutes else f"{figure.baseline:.0f}"
    words = {
        "better": "Better than",
        "worse": "Below",
        "steady": "Steady around",
    }[figure.trend]
    return f"{words} your 7-day average ({baseline})."


def _format_minutes(value: float) -> str:
    return minutes(value)


def category_label(key: str | None) -> str:
    """A cancellation category for people: its label, else the key in words (a category of
    the old app's own, imported), or "No category" for cancellations made without one."""
    if not key:
        return "No category"
    return CANCEL_CATEGORIES.get(key) or key.replace("_", " ").strip().capitalize()


def _static_fingerprint(app: Flask, filename: str) -> str:
    """A short hash of a static file's content, computed once per process.

    Static URLs carry it as ``?v=``, so nginx can let browsers cache them for a year
    and a deploy that changes a file changes its URL.
    """
    cache: dict[str, str] = app.extensions.setdefault("static_fingerprints", {})
    if filename not in cache:
        path = Path(app.static_folder or "", filename)
        try:
            cache[filename] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        except OSError:
            cache[filename] = app.config["VERSION"]
    return cache[filename]


def _remembered_url_for(app: Flask) -> Callable[..., str]:
    """``url_for`` for templates, remembering the URLs that never change in a process.

    Every page builds a dozen links that take no arguments (the navigation) or name a
    static file; building each through Werkzeug's router again was about a tenth of a small
    page's CPU. Those are remembered per script root (the path the app is mounted at);
    anything else (arguments, ``_external`` and the like, a blueprint-relative ``.name``)
    is built as usual.
    """
    remembered: dict[tuple[str, str, str | None], str] = {}

    def build(endpoint: str, **values: Any) -> str:
        if endpoint.startswith(".") or not has_request_context() or values.keys() - {"filename"}:
            return url_for(endpoint, **values)
        key = (request.script_root, endpoint, values.get("filename"))
        url = remembered.get(key)
        if url is None:
            url = remembered[key] = url_for(endpoint, **values)
        return url

    return build


def favicon() -> ResponseReturnValue:
    """``/favicon.ico``, asked for by clients that don't read the page's icon link."""
    return redirect(url_for("static", filename="favicon.svg"))


def init_app(app: Flask) -> None:
    app.add_url_rule("/favicon.ico", "favicon", favicon)

    @app.url_defaults
    def _version_static_urls(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and "filename" in values:
            values.setdefault("v", _static_fingerprint(app, values["filename"]))

    app.jinja_env.globals["url_for"] = _remembered_url_for(app)
    app.add_template_filter(localtime, "localtime")
    app.add_template_filter(minutes, "minutes")
    app.add_template_filter(trend_text, "trend_text")
    app.add_template_filter(category_label, "cancel_category")

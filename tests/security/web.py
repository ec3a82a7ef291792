"""Helpers for the attack suite: find the app's pages and forms the way a crawler would.

Pages come from the app's URL map (filled in with the signed-in person's own ids) and
forms from the HTML those pages serve, so a new route or form is attacked by default.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from html.parser import HTMLParser
from typing import Any
from typing import cast

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import text
from werkzeug.routing import Rule

from db.models import Base

# Route parameter → the table whose id it names. A route with another parameter fails
# loudly until it is taught here (the same rule as tests/integration/test_isolation...).
ID_PARAMETERS = {
    "task_id": "tasks",
    "attempt_id": "attempts",
    "emotion_id": "emotions",
    "note_id": "notes",
    "group_id": "task_groups",
}

# What must never reach a person: stack traces, source paths, driver and SQL messages.
LEAK_PATTERNS = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\.py\"|/work/|site-packages|"
    r"sqlalchemy|psycopg|werkzeug\.|jinja2\.|Internal Server Error|syntax error at or near|"
    r"ProgrammingError|DataError|IntegrityError|OperationalError|Background on this error|"
    r"\w+Error: ",
    re.IGNORECASE,
)


def leaks(body: str) -> list[str]:
    return [m.group(0) for m in LEAK_PATTERNS.finditer(body)]


@dataclass
class Field:
    name: str
    kind: str  # input type, "select", "select-multiple" or "textarea"
    value: str = ""
    checked: bool = False
    required: bool = False
    maxlength: int | None = None
    options: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)

    @property
    def free_text(self) -> bool:
        """A field where a person types any text (what must round-trip exactly)."""
        return self.kind in ("text", "textarea", "search")


@dataclass
class Form:
    page: str
    action: str
    method: str
    enctype: str
    fields: list[Field] = field(default_factory=list)

    @property
    def attackable(self) -> list[Field]:
        """One field per name (a checklist is one field), the CSRF token aside."""
        named = {f.name: f for f in reversed(self.fields)}
        return [
            f
            for f in self.fields
            if named[f.name] is f and f.name != "csrf_token" and f.kind != "submit"
        ]

    def field_names(self) -> set[str]:
        return {f.name for f in self.fields}


class FormParser(HTMLParser):
    """Every <form> on a page with its inputs, selects and textareas (html.parser only)."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: Field | None = None
        self._option: str | None = None
        self._textarea: Field | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = Form(
                page=self.page,
                action=a.get("action") or self.page,
                method=(a.get("method") or "get").lower(),
                enctype=a.get("enctype", ""),
            )
            self.forms.append(self._form)
            return
        form = self._form
        if form is None:
            return
        if tag == "input" and a.get("name"):
            length = a.get("maxlength")
            form.fields.append(
                Field(
                    name=a["name"],
                    kind=(a.get("type") or "text").lower(),
                    value=a.get("value", ""),
                    checked="checked" in a,
                    required="required" in a,
                    maxlength=int(length) if length else None,
                )
            )
        elif tag == "textarea" and a.get("name"):
            length = a.get("maxlength")
            self._textarea = Field(
                name=a["name"],
                kind="textarea",
                required="required" in a,
                maxlength=int(length) if length else None,
            )
            form.fields.append(self._textarea)
        elif tag == "select" and a.get("name"):
            kind = "select-multiple" if "multiple" in a else "select"
            self._select = Field(name=a["name"], kind=kind)
            form.fields.append(self._select)
        elif tag == "option" and self._select is not None:
            self._option = a.get("value")
            value = self._option if self._option is not None else ""
            self._select.options.append(value)
            if "selected" in a:
                self._select.selected.append(value)

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea.value += data
        if self._select is not None and self._option is None and data.strip():
            # <option>Label</option> without a value attribute submits its text.
            self._select.options[-1] = data.strip()

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None
        elif tag == "option":
            self._option = None


def parse_forms(page: str, html: str) -> list[Form]:
    parser = FormParser(page)
    parser.feed(html)
    return parser.forms


def valid_data(form: Form, filler: str) -> dict[str, Any]:
    """What a person would submit: the page's values, ``filler`` in required empty boxes."""
    data: dict[str, Any] = {}
    for f in form.fields:
        if f.kind in ("checkbox", "radio"):
            if f.checked:
                data.setdefault(f.name, []).append(f.value or "on")
        elif f.kind in ("select", "select-multiple"):
            chosen = f.selected or f.options[:1]
            data[f.name] = chosen if f.kind == "select-multiple" else chosen[0]
        elif f.kind in ("submit", "button", "file", "image", "reset"):
            continue
        elif f.kind in ("number", "range"):
            data[f.name] = f.value or "1"
        else:
            data[f.name] = f.value or (filler if f.required else "")
    return data


def owned_ids(app: Flask, username: str) -> dict[str, int]:
    ids: dict[str, int] = {}
    with app.extensions["db_engine"].connect() as conn:
        for parameter, table in ID_PARAMETERS.items():
            found = conn.execute(
                text(
                    f"SELECT max(t.id) FROM {table} t JOIN users u ON u.id = t.user_id "
                    "WHERE lower(u.username) = lower(:name)"
                ),
                {"name": username},
            ).scalar_one()
            if found is not None:
                ids[parameter] = int(found)
    return ids


def get_rules(app: Flask) -> Iterator[Rule]:
    """Every GET route except static files."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or "GET" not in (rule.methods or ()):
            continue
        unknown = set(rule.arguments) - set(ID_PARAMETERS)
        assert not unknown, f"{rule.rule}: teach tests/security/web.py about {unknown}"
        yield rule


def post_rules(app: Flask) -> Iterator[Rule]:
    for rule in app.url_map.iter_rules():
        if {"POST", "PUT", "PATCH", "DELETE"} & set(rule.methods or ()):
            unknown = set(rule.arguments) - set(ID_PARAMETERS)
            assert not unknown, f"{rule.rule}: teach tests/security/web.py about {unknown}"
            yield rule


def path_of(rule: Rule, values: dict[str, Any]) -> str:
    built = rule.build(values)
    assert built is not None, rule.rule
    return built[1]


def build(rule: Rule, ids: dict[str, int]) -> str | None:
    """The rule's path with the person's own ids, or None when they own no such row."""
    if not set(rule.arguments) <= set(ids):
        return None
    return path_of(rule, {a: ids[a] for a in rule.arguments})


def get_pages(app: Flask, ids: dict[str, int]) -> list[str]:
    pages = []
    for rule in get_rules(app):
        path = build(rule, ids)
        if path is not None:
            pages.append(path)
    return sorted(set(pages))


def endpoint_of(app: Flask, path: str, method: str) -> str:
    adapter = app.url_map.bind("localhost")
    endpoint, _ = cast(tuple[str, Any], adapter.match(path.split("?")[0], method=method.upper()))
    return str(endpoint)


def discover_forms(app: Flask, client: FlaskClient, pages: list[str]) -> list[Form]:
    """One form per (endpoint, method) among those the pages serve."""
    found: dict[tuple[str, str], Form] = {}
    for page in pages:
        response = client.get(page)
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        for form in parse_forms(page, response.get_data(as_text=True)):
            key = (endpoint_of(app, form.action, form.method), form.method)
            found.setdefault(key, form)
    return list(found.values())


def snapshot(app: Flask) -> str:
    """A digest of every table: equal digests mean nothing was written.

    Caches (figures recomputed from the rest, written by page views) are left out.
    """
    tables = sorted(t for t in Base.metadata.tables if not t.endswith("_cache"))
    parts = " UNION ALL ".join(
        f"SELECT '{t}', md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} x"
        for t in tables
    )
    with app.extensions["db_engine"].connect() as conn:
        rows = conn.execute(text(parts)).all()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _text_columns() -> list[tuple[str, str]]:
    columns = []
    for table in Base.metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, String | Text):
                columns.append((table.name, column.name))
    return columns


def stored_anywhere(app: Flask, value: str) -> bool:
    """Whether ``value`` is stored, byte for byte, in some text column."""
    selects = " UNION ALL ".join(f"SELECT 1 FROM {t} WHERE {c} = :v" for t, c in _text_columns())
    with app.extensions["db_engine"].connect() as conn:
        return conn.execute(text(f"SELECT EXISTS ({selects})"), {"v": value}).scalar_one()

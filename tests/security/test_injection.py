"""SQL injection and XSS strings in every form field and query parameter, over HTTP.

Forms are discovered, not listed: every GET page of the URL map is fetched (as a visitor
and as a signed-in person, with their own ids), every <form> on it is parsed, and each
field gets each payload while the other fields keep valid values. A new form is attacked
without touching this file.

What a person would notice, checked for every request:
- never a 500, never a stack trace, source path or SQL text in the answer;
- a payload is never reflected unescaped;
- a refused submission changes nothing in the database;
- an accepted text is stored exactly as typed and shown HTML-escaped exactly once.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import text

from service.forms import parse_new_emotions
from tests.conftest import Browser
from tests.conftest import csrf_token
from tests.security import web

SQL_PAYLOADS = {
    "quote": "' OR '1'='1",
    "stacked": "1'); SELECT pg_sleep(5); DROP TABLE users; --",
    "union": '" UNION SELECT username, signin_key_hash FROM users --',
    "comment": "admin'/* comment */ -- ",
    "nul": "nul\x00byte",
    "long": "<'\"&>" * 200,  # 1,000 characters, every one of them special in HTML
}
XSS_PAYLOADS = {
    "script": '"><script>alert(1)</script>',
    "onerror": "<img src=x onerror=alert(1)>",
    "js_url": "javascript:alert(1)",
    "svg": "<svg onload=alert(1)><script>alert(2)</script></svg>",
    "iframe": '<iframe src="javascript:alert(1)"></iframe>',
    "template": "{{ 7*7 }}{% if 1 %}x{% endif %}",
}
# Strings that break naive number parsing (non-finite decimals, huge and non-ASCII digits).
NUMBER_PAYLOADS = {
    "nan": "NaN",
    "snan": "sNaN",
    "inf": "-Infinity",
    "huge": "9" * 400,
    "exp": "1e999999",
    "arabic": "\u0661\u0662",
    "negative": "-1",
}
TEXT_PAYLOADS = {**SQL_PAYLOADS, **XSS_PAYLOADS}
# Fields that are not free text get a smaller, sharper set (one request each).
NUMBER_FIELD_PAYLOADS = {
    "quote": SQL_PAYLOADS["quote"],
    "nul": SQL_PAYLOADS["nul"],
    "script": XSS_PAYLOADS["script"],
    **NUMBER_PAYLOADS,
}
CHOICE_PAYLOADS = {
    k: {**SQL_PAYLOADS, **XSS_PAYLOADS}[k] for k in ("quote", "union", "nul", "long", "script")
}


@dataclass
class Submission:
    endpoint: str
    field: str
    payload: str
    status: int
    changed: bool
    body: str


@dataclass
class Matrix:
    submissions: list[Submission]
    accepted_text: dict[tuple[str, str], list[str]]  # (endpoint, field) → stored values
    forms: dict[str, web.Form]
    pages: str  # every page of the attacked person, after the attack
    person: Browser


def _expected_stored(field: web.Field, payload: str) -> list[list[str]]:
    """What an accepted value may be stored as: a list of alternatives per stored value.

    Text is stripped of surrounding spaces; emotion names also have inner runs of spaces
    collapsed, and the comma-separated "new emotions" box becomes one emotion per part.
    """
    if "new_emotions" in field.name:
        return [[name] for name in parse_new_emotions(payload)]
    return [[payload.strip(), " ".join(payload.split())]]


def _payloads_for(field: web.Field) -> dict[str, str]:
    if field.free_text:
        payloads = dict(TEXT_PAYLOADS)
        if field.maxlength:
            # One character over the limit the page announces must be refused by the server.
            payloads["at_limit"] = "x" * field.maxlength
            payloads["over_limit"] = "y" * (field.maxlength + 1)
        return payloads
    return NUMBER_FIELD_PAYLOADS if field.kind in ("number", "range") else CHOICE_PAYLOADS


def _with_payload(data: dict[str, Any], field: web.Field, payload: str) -> dict[str, Any]:
    attacked = dict(data)
    if field.kind in ("checkbox", "select-multiple"):
        attacked[field.name] = [payload]
    else:
        attacked[field.name] = payload
    return attacked


def _setup_person(app: Flask) -> Browser:
    person = Browser(app.test_client())
    assert person.signup("alice").status_code == 200
    task_id = person.create_task("Base task", new_emotions="Hopeful")
    archived = person.create_task("Old task")
    person.post(f"/tasks/{archived}/archive")
    person.post(f"/tasks/{task_id}/quick-initialize")
    running = person.latest_id("attempts")
    assert person.post(f"/attempts/{running}/start").status_code == 302
    person.post(f"/tasks/{task_id}/quick-initialize")
    person.create_task("Spare task")  # fresh attempts are made from this one
    assert person.post("/notes", {"body": "Base note"}).status_code == 302
    assert person.post("/groups", {"name": "Base group"}).status_code == 302
    return person


class Attacker:
    """Submits payloads and keeps the targets usable (fresh attempts, fresh visitors)."""

    def __init__(self, app: Flask, person: Browser) -> None:
        self.app = app
        self.person = person
        self.visitor = app.test_client()
        self.counter = itertools.count()
        self.spare_task = person.latest_id("tasks")
        self.person_token = csrf_token(person.client, "/")
        self.digest = web.snapshot(app)

    def submit(self, form: web.Form, field: web.Field, payload: str) -> Submission:
        endpoint = web.endpoint_of(self.app, form.action, form.method)
        self._ready(form)
        visitor = form.page in VISITOR_PAGES
        client = self.visitor if visitor else self.person.client
        data = web.valid_data(form, filler=f"ok{next(self.counter)}")
        data = _with_payload(data, field, payload)
        before = self.digest
        if form.method == "post":
            data["csrf_token"] = csrf_token(client, "/signin") if visitor else self.person_token
            response = client.post(form.action, data=data)
        else:
            response = client.get(form.action, query_string=data)
        self.digest = web.snapshot(self.app)
        changed = self.digest != before
        if changed and visitor:
            self.visitor = self.app.test_client()  # the visitor is now signed in
        return Submission(
            endpoint, field.name, payload, response.status_code, changed, response.get_data(True)
        )

    def _post(self, path: str) -> None:
        response = self.person.client.post(path, data={"csrf_token": self.person_token})
        assert response.status_code == 302, path

    def _ready(self, form: web.Form) -> None:
        """Put an attempt form's target back in a state where a valid submission lands."""
        parts = form.action.split("/")
        if len(parts) < 4 or parts[1] != "attempts":
            return
        attempt_id = int(parts[2])
        status = self._status(attempt_id)
        if status == "paused":
            self._post(f"/attempts/{attempt_id}/start")
        elif status in ("completed", "cancelled"):
            self._post(f"/tasks/{self.spare_task}/quick-initialize")
            fresh = self.person.latest_id("attempts")
            form.action = form.action.replace(f"/attempts/{attempt_id}/", f"/attempts/{fresh}/")
        else:
            return
        self.digest = web.snapshot(self.app)

    def _status(self, attempt_id: int) -> str:
        with self.app.extensions["db_engine"].connect() as conn:
            return str(
                conn.execute(
                    text("SELECT status FROM attempts WHERE id = :id"), {"id": attempt_id}
                ).scalar_one()
            )


VISITOR_PAGES = ("/", "/signin", "/signup")


def _discover(app: Flask, person: Browser) -> dict[str, web.Form]:
    visitor = app.test_client()
    visitor_forms = web.discover_forms(app, visitor, list(VISITOR_PAGES))
    person_pages = web.get_pages(app, web.owned_ids(app, person.username))
    person_forms = web.discover_forms(app, person.client, person_pages)
    forms: dict[str, web.Form] = {}
    for form in [*visitor_forms, *person_forms]:
        key = web.endpoint_of(app, form.action, form.method)
        if form.attackable and key not in forms:
            forms[key] = form
    return forms


READ_ONLY = {"GET", "HEAD", "OPTIONS"}


def _crawl(app: Flask, client: FlaskClient, username: str) -> str:
    """Every GET page for every row the person owns (where accepted values show up)."""
    with app.extensions["db_engine"].connect() as conn:
        owned = {
            parameter: [
                row[0]
                for row in conn.execute(
                    text(
                        f"SELECT t.id FROM {table} t JOIN users u ON u.id = t.user_id "
                        "WHERE u.username = :name ORDER BY t.id"
                    ),
                    {"name": username},
                )
            ]
            for parameter, table in web.ID_PARAMETERS.items()
        }
    # A row with a page of its own (GET only, like an attempt's) is checked there; its
    # form pages only for the newest row. Rows without one are checked on every form page.
    shown = {
        a for r in web.get_rules(app) if (r.methods or set()) <= READ_ONLY for a in r.arguments
    }
    bodies = []
    for rule in web.get_rules(app):
        choices = [
            owned[a] if a not in shown or (rule.methods or set()) <= READ_ONLY else owned[a][-1:]
            for a in sorted(rule.arguments)
        ]
        for combination in itertools.product(*choices):
            ids = dict(zip(sorted(rule.arguments), combination, strict=True))
            response = client.get(web.path_of(rule, ids))
            assert response.status_code < 500, rule.rule
            if (response.mimetype or "").startswith("text/"):
                bodies.append(response.get_data(as_text=True))
    return "\n".join(bodies)


@pytest.fixture(scope="module")
def matrix(module_app: Flask) -> Matrix:
    person = _setup_person(module_app)
    forms = _discover(module_app, person)
    attacker = Attacker(module_app, person)
    submissions = []
    accepted: dict[tuple[str, str], list[str]] = {}
    for endpoint, form in sorted(forms.items()):
        for field in form.attackable:
            for payload in _payloads_for(field).values():
                result = attacker.submit(form, field, payload)
                submissions.append(result)
                if result.changed and field.free_text and form.page not in VISITOR_PAGES:
                    for alternatives in _expected_stored(field, payload):
                        stored = [v for v in alternatives if web.stored_anywhere(module_app, v)]
                        accepted.setdefault((endpoint, field.name), []).extend(stored[:1] or [])
                        if not stored:
                            accepted[(endpoint, field.name)].append(f"NOT STORED: {payload!r}")
    pages = _crawl(module_app, person.client, person.username)
    return Matrix(submissions, accepted, forms, pages, person)


def test_every_form_and_field_was_attacked(matrix: Matrix) -> None:
    expected = {
        "accounts.signup",
        "accounts.signin",
        "accounts.change_timezone",
        "accounts.delete_account",
        "tasks.new",
        "tasks.edit",
        "attempts.initialize",
        "attempts.prediction",
        "attempts.complete",
        "attempts.cancel",
        "attempts.pause",
        "emotions.add",
        "dashboard.save_recommendation_filter",
        "notes.add",
        "notes.edit",
        "notes.add_to_attempt",
        "groups.add",
        "groups.edit",
    }
    assert expected <= set(matrix.forms), sorted(expected - set(matrix.forms))
    attacked = {(s.endpoint, s.field) for s in matrix.submissions}
    for endpoint, form in matrix.forms.items():
        for field in form.attackable:
            assert (endpoint, field.name) in attacked
    assert len(matrix.submissions) > 300


def test_every_text_field_announces_a_length_limit(matrix: Matrix) -> None:
    unlimited = [
        f"{endpoint} {field.name}"
        for endpoint, form in matrix.forms.items()
        for field in form.attackable
        if field.free_text and field.maxlength is None
    ]
    assert unlimited == []
    over = [s for s in matrix.submissions if s.payload.startswith("yy")]
    assert len(over) >= 10


def _failures(matrix: Matrix, check: Callable[[Submission], str | None]) -> list[str]:
    found = []
    for s in matrix.submissions:
        problem = check(s)
        if problem:
            found.append(f"{s.endpoint} {s.field}={s.payload[:40]!r}: {problem}")
    return found


def test_no_payload_causes_a_server_error_or_leaks_internals(matrix: Matrix) -> None:
    def check(s: Submission) -> str | None:
        if s.status >= 500:
            return f"status {s.status}"
        if web.leaks(s.body):
            return f"leaks {web.leaks(s.body)[:3]}"
        return None

    failures = _failures(matrix, check)
    assert not failures, "\n".join(failures)


def test_no_payload_is_reflected_unescaped(matrix: Matrix) -> None:
    def check(s: Submission) -> str | None:
        if str(escape(s.payload)) != s.payload and s.payload.strip() in s.body:
            return "reflected raw"
        return None

    failures = _failures(matrix, check)
    assert not failures, "\n".join(failures)


def test_refused_input_changes_nothing(matrix: Matrix) -> None:
    def check(s: Submission) -> str | None:
        if s.status == 400 and s.changed:
            return "refused (400) but the database changed"
        if s.payload == SQL_PAYLOADS["nul"] and s.changed:
            return "a NUL byte got in"  # PostgreSQL text can't hold it: always refused
        if s.payload.startswith("yy") and s.changed:
            return "text over the field's maxlength got in"
        return None

    failures = _failures(matrix, check)
    assert not failures, "\n".join(failures)


def test_accepted_text_is_stored_exactly_as_typed(matrix: Matrix) -> None:
    not_stored = [
        (key, value)
        for key, values in matrix.accepted_text.items()
        for value in values
        if value.startswith("NOT STORED")
    ]
    assert not not_stored, not_stored
    # The suite really did get hostile text in (otherwise the next test proves nothing).
    stored = {v for values in matrix.accepted_text.values() for v in values}
    assert XSS_PAYLOADS["script"] in stored and SQL_PAYLOADS["stacked"] in stored


# Accepted text that no page shows back (nothing to escape there).
NOT_DISPLAYED: set[tuple[str, str]] = set()


def test_accepted_text_is_shown_escaped_exactly_once(matrix: Matrix) -> None:
    problems = []
    for key, values in matrix.accepted_text.items():
        for value in values:
            once, twice = str(escape(value)), str(escape(escape(value)))
            if key not in NOT_DISPLAYED and once not in matrix.pages:
                problems.append(f"{key}: {value[:40]!r} not shown escaped")
            if twice != once and twice in matrix.pages:
                problems.append(f"{key}: {value[:40]!r} escaped twice")
            if once != value and value in matrix.pages:
                problems.append(f"{key}: {value[:40]!r} shown raw")
    assert not problems, "\n".join(problems)
    assert 'href="javascript:' not in matrix.pages and 'src="javascript:' not in matrix.pages


def test_the_tables_survived_and_no_key_hash_was_read_out(matrix: Matrix, module_app: Flask):
    with module_app.extensions["db_engine"].connect() as conn:
        hashes = list(conn.execute(text("SELECT signin_key_hash FROM users")).scalars())
    assert len(hashes) >= 2  # "DROP TABLE users" did not run
    assert not any(h in matrix.pages for h in hashes)
    assert not any(h in s.body for s in matrix.submissions for h in hashes)


# Query parameters the app reads (sign-in's "next", the analytics choices) and a few it
# doesn't; GET forms found on the pages add theirs.
QUERY_NAMES = ("next", "measure", "window", "aggregation", "x", "y", "method", "q", "page")
QUERY_PAYLOADS = {
    k: {**TEXT_PAYLOADS, **NUMBER_PAYLOADS}[k]
    for k in ("quote", "stacked", "union", "nul", "long", "script", "svg", "snan", "huge")
}


def test_query_parameters_never_break_a_page_or_get_reflected(
    matrix: Matrix, module_app: Flask
) -> None:
    names = set(QUERY_NAMES)
    for form in matrix.forms.values():
        if form.method == "get":
            names |= {f.name for f in form.attackable}
    pages = web.get_pages(module_app, web.owned_ids(module_app, matrix.person.username))
    visitor = module_app.test_client()
    problems = []
    for page in pages:
        for payload in QUERY_PAYLOADS.values():
            query: dict[str, str] = dict.fromkeys(sorted(names), payload)
            query[payload] = "1"
            for client in (matrix.person.client, visitor):
                response = client.get(page, query_string=query)
                body = (
                    response.get_data(as_text=True)
                    if (response.mimetype or "").startswith("text/")
                    else ""
                )
                raw = str(escape(payload)) != payload and payload.strip() in body
                if response.status_code >= 500 or web.leaks(body) or raw:
                    problems.append(f"{page}?…={payload[:30]!r}: {response.status_code}")
    assert not problems, "\n".join(problems)


BAD_IDS = (
    "99999999999999999999",
    "9223372036854775808",
    "-1",
    "0",
    "1.5",
    "1%27%20OR%201=1",
    "1%00",
    "1;DROP%20TABLE%20tasks",
    "%3Cscript%3E",
)


def test_hostile_ids_in_paths_are_not_found(matrix: Matrix, module_app: Flask) -> None:
    token = csrf_token(matrix.person.client, "/")
    problems = []
    checked = 0
    for rule in module_app.url_map.iter_rules():
        if not rule.arguments or rule.endpoint == "static":
            continue
        for bad in BAD_IDS:
            path = re.sub(
                r"/7(?=/|$)", f"/{bad}", web.path_of(rule, dict.fromkeys(rule.arguments, 7))
            )
            checked += 1
            for method in sorted((rule.methods or set()) & {"GET", "POST"}):
                response = matrix.person.client.open(
                    path, method=method, data={"csrf_token": token}
                )
                if response.status_code != 404:
                    problems.append(f"{method} {path}: {response.status_code}")
    assert not problems, "\n".join(problems)
    assert checked >= 10 * len(BAD_IDS)

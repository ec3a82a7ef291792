"""Every id-taking route refuses other people's ids; every state change needs a CSRF token.

Routes are found by walking the app's URL map, so a new route is covered by default; a
route with an id parameter these tests don't know fails loudly until it is added here.
"""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import text

from tests.conftest import Browser
from tests.conftest import csrf_token

# Route parameter → the table whose id it names.
ID_PARAMETERS = {
    "task_id": "tasks",
    "attempt_id": "attempts",
    "emotion_id": "emotions",
    "note_id": "notes",
    "group_id": "task_groups",
}
TABLES = (
    "users",
    "tasks",
    "attempts",
    "emotions",
    "attempt_emotions",
    "task_emotions",
    "notes",
    "task_groups",
    "task_group_tasks",
)


def _snapshot(app) -> str:
    digest = hashlib.sha256()
    with app.extensions["db_engine"].connect() as conn:
        for table in TABLES:
            rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")).all()
            digest.update(repr(rows).encode())
    return digest.hexdigest()


def _owned_ids(app, username: str) -> dict[str, int]:
    ids = {}
    with app.extensions["db_engine"].connect() as conn:
        for parameter, table in ID_PARAMETERS.items():
            ids[parameter] = conn.execute(
                text(
                    f"SELECT max(t.id) FROM {table} t JOIN users u ON u.id = t.user_id "
                    "WHERE u.username = :name"
                ),
                {"name": username},
            ).scalar_one()
    return ids


def _routes_with_ids(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or not rule.arguments:
            continue
        unknown = set(rule.arguments) - set(ID_PARAMETERS)
        assert not unknown, f"{rule.rule}: teach this test about {unknown}"
        yield rule


def _state_changing_routes(app):
    for rule in app.url_map.iter_rules():
        if "POST" in (rule.methods or ()):
            yield rule


def _give_data(person: Browser) -> None:
    person.post("/groups", {"name": f"{person.username} group"})
    group_id = person.latest_id("task_groups")
    task_id = person.create_task(
        f"{person.username} task", new_emotions="Secretive", groups=str(group_id)
    )
    person.post(f"/tasks/{task_id}/quick-initialize")
    person.post("/notes", {"body": f"{person.username}'s note"})


@pytest.fixture
def two_people(browser, other_browser):
    _give_data(browser)
    _give_data(other_browser)
    return browser, other_browser


def test_every_id_route_answers_404_for_someone_elses_id_and_changes_nothing(two_people, app):
    victim, attacker = two_people
    victim_ids = _owned_ids(app, victim.username)
    before = _snapshot(app)
    checked = 0
    for rule in _routes_with_ids(app):
        path = rule.build({a: victim_ids[a] for a in rule.arguments})[1]
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            if method == "GET":
                response = attacker.client.get(path)
            else:
                response = attacker.post(path, {"reason": "x", "name": "x", "confirm": "x"})
            assert response.status_code == 404, f"{method} {path} → {response.status_code}"
            assert victim.username not in response.get_data(as_text=True)
            checked += 1
    assert checked >= 12
    assert _snapshot(app) == before


# Routes only a completed attempt has (its outcome): the owner reaches them with one.
FOR_COMPLETED = {"attempts.fix_outcome"}


def test_the_owner_reaches_the_same_routes(two_people, app):
    owner = two_people[0]
    ids = _owned_ids(app, owner.username)
    done = owner.create_task("Done task")
    owner.post(f"/tasks/{done}/quick-initialize")
    completed = owner.latest_id("attempts")
    outcome = {"actual_relief": "50", "actual_cognitive_load": "50", "actual_emotional_load": "50"}
    outcome |= {"actual_physical_load": "50", "completion_percent": "100", "minutes_spent": "5"}
    assert owner.post(f"/attempts/{completed}/complete", outcome).status_code == 302
    for rule in _routes_with_ids(app):
        if "GET" in (rule.methods or ()):
            own = {**ids, "attempt_id": completed} if rule.endpoint in FOR_COMPLETED else ids
            path = rule.build({a: own[a] for a in rule.arguments})[1]
            assert owner.client.get(path).status_code == 200, path


def test_every_state_changing_request_without_csrf_token_is_refused(two_people, app):
    person = two_people[0]
    ids = _owned_ids(app, person.username)
    before = _snapshot(app)
    for rule in _state_changing_routes(app):
        path = rule.build({a: ids[a] for a in rule.arguments})[1]
        response = person.client.post(
            path, data={"name": "x", "reason": "x", "confirm": person.username}
        )
        assert response.status_code == 400, f"POST {path} → {response.status_code}"
        assert "CSRF" in response.get_data(as_text=True)
    assert _snapshot(app) == before


def test_pages_carry_the_security_headers(browser):
    for path in ("/", "/account", "/emotions", "/tasks/new", "/signin", "/healthz"):
        headers = browser.client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"


def test_a_sessions_form_token_works_on_every_page_and_a_new_session_gets_a_new_one(client):
    """Each worker signs a session's token once and shows it again on every page
    (service.security): it must keep working, and sign-up, which starts a new session,
    must still give the person a new token and leave the old one refused."""
    before = csrf_token(client, "/signin")
    assert csrf_token(client, "/signup") == before
    response = client.post(
        "/signup", data={"csrf_token": before, "username": "tok.person", "timezone": "UTC"}
    )
    assert response.status_code == 200 and "signin-key" in response.get_data(as_text=True)

    after = csrf_token(client, "/")
    assert after != before
    assert csrf_token(client, "/") == after
    refused = client.post("/tasks/new", data={"csrf_token": before, "name": "Old token"})
    assert refused.status_code == 400
    created = client.post(
        "/tasks/new",
        data={
            "csrf_token": after,
            "name": "New token",
            "kind": "one-time",
            "default_estimate_minutes": "30",
        },
    )
    assert created.status_code == 302
    assert "New token" in client.get("/").get_data(as_text=True)

"""Every state-changing request needs this session's CSRF token; GET never changes a thing.

tests/integration/test_isolation_and_csrf.py checks a missing token; this walks the same
URL map with the tokens an attacker could get hold of: none, a made-up one, a tampered
one, a real one from another session and one from before the victim signed in.
"""

from __future__ import annotations

import secrets

import pytest
from flask import Flask

from tests.conftest import Browser
from tests.conftest import csrf_token
from tests.security import web


def _give_data(person: Browser) -> None:
    person.post("/groups", {"name": f"{person.username} group"})
    task_id = person.create_task(f"{person.username} task", new_emotions="Secretive")
    person.post(f"/tasks/{task_id}/quick-initialize")
    person.post(f"/tasks/{task_id}/quick-initialize")
    person.post(f"/attempts/{person.latest_id('attempts')}/start")
    person.post("/notes", {"body": f"{person.username}'s note"})


@pytest.fixture(scope="module")
def people(module_app: Flask) -> tuple[Browser, Browser]:
    victim, attacker = Browser(module_app.test_client()), Browser(module_app.test_client())
    victim.signup("victim")
    attacker.signup("attacker")
    _give_data(victim)
    _give_data(attacker)
    return victim, attacker


def _tampered(token: str) -> str:
    # The signature's first character: every one of its six bits counts. (The last
    # character of a base64 HMAC carries padding bits, so changing it can decode to
    # the same bytes and the "tampered" token would still be valid.)
    head, _, signature = token.rpartition(".")
    first = "A" if signature[0] != "A" else "B"
    return f"{head}.{first}{signature[1:]}"


# Fields that would make each form valid if the token were accepted.
VALID_FIELDS = {
    "name": "Injected",
    "reason": "Injected",
    "confirm": "victim",
    "username": "victim",
    "timezone": "Asia/Tokyo",
    "kind": "one-time",
    "minutes_spent": "5",
}


def test_state_changes_with_a_missing_made_up_tampered_or_foreign_token_are_refused(
    people: tuple[Browser, Browser], module_app: Flask
) -> None:
    victim, attacker = people
    own = csrf_token(victim.client, "/")
    tokens = {
        "missing": None,
        "made-up": secrets.token_hex(20),
        "tampered": _tampered(own),
        "another session's": csrf_token(attacker.client, "/"),
        "a visitor's": csrf_token(module_app.test_client(), "/signin"),
    }
    ids = web.owned_ids(module_app, victim.username)
    before = web.snapshot(module_app)
    checked = 0
    for rule in web.post_rules(module_app):
        path = web.build(rule, ids)
        assert path is not None, rule.rule
        for label, token in tokens.items():
            data = dict(VALID_FIELDS)
            if token is not None:
                data["csrf_token"] = token
            response = victim.client.post(path, data=data)
            assert response.status_code == 400, f"{label} token: POST {path}"
            assert "CSRF" in response.get_data(as_text=True)
            checked += 1
    assert checked >= 5 * 15
    assert web.snapshot(module_app) == before
    # The victim is still signed in and their own token still works.
    assert victim.client.get("/account").status_code == 200
    assert victim.post("/emotions", {"name": "Relieved"}).status_code == 302


def test_a_token_from_before_sign_in_no_longer_works_after_it(
    people: tuple[Browser, Browser], module_app: Flask
) -> None:
    victim = people[0]
    device = Browser(module_app.test_client())
    old_token = csrf_token(device.client, "/signin")
    assert device.post("/signin", {"username": "victim", "key": victim.key}).status_code == 302
    before = web.snapshot(module_app)
    response = device.client.post(
        "/tasks/new", data={"csrf_token": old_token, "name": "Planted", "kind": "one-time"}
    )
    assert response.status_code == 400
    assert web.snapshot(module_app) == before


def test_no_get_request_changes_anything(
    people: tuple[Browser, Browser], module_app: Flask
) -> None:
    """State changes only through POST (where the token is checked); GET is safe to follow."""
    victim = people[0]
    pages = web.get_pages(module_app, web.owned_ids(module_app, victim.username))
    before = web.snapshot(module_app)
    for page in pages:
        assert victim.client.get(page).status_code < 500, page
    assert web.snapshot(module_app) == before
    assert len(pages) >= 10

"""No page repeats an element id: a label, a skip link or a screen reader would find the
wrong element (and axe's `duplicate-id` rules, on by default in older versions, fail it)."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser

import pytest

from tests.conftest import Browser
from tests.integration.test_dashboard import OUTCOME
from tests.integration.test_dashboard import PREDICTION

pytestmark = pytest.mark.integration


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids[value] += 1


def _repeated(html: str) -> list[str]:
    parser = _Ids()
    parser.feed(html)
    return sorted(name for name, count in parser.ids.items() if count > 1)


def test_no_page_repeats_an_id_with_several_of_everything(browser: Browser) -> None:
    tasks = [browser.create_task(name, new_emotions="Calm, Uneasy") for name in "ABCD"]
    for task in tasks[:2]:
        browser.post(f"/tasks/{task}/initialize", PREDICTION)
        attempt = browser.latest_id("attempts")
        browser.post(f"/attempts/{attempt}/complete", OUTCOME)
    for task in tasks[2:]:
        browser.post(f"/tasks/{task}/quick-initialize")
        browser.post(f"/tasks/{task}/archive")
    for body in ("first", "second"):
        browser.post("/notes", {"body": body})
    attempt = browser.latest_id("attempts")
    pages = [
        "/",
        "/analytics",
        "/history",
        "/notes",
        "/account",
        "/emotions",
        "/tasks/archived",
        "/tasks/new",
        f"/tasks/{tasks[0]}/edit",
        f"/tasks/{tasks[0]}/initialize",
        f"/attempts/{attempt}",
    ]
    repeated = {}
    for path in pages:
        response = browser.client.get(path)
        assert response.status_code == 200, path
        found = _repeated(response.get_data(as_text=True))
        if found:
            repeated[path] = found
    assert repeated == {}


def test_the_dashboard_repeats_no_id_with_open_attempts_of_every_kind(browser: Browser) -> None:
    """Each open attempt has its own buttons (start, pause, finish), each a form with a CSRF
    token: none of them, nor the recommendations' form, gives its token an id of its own
    twice; cached, filtered by a group, or computed afresh alike."""
    assert browser.post("/groups", {"name": "Home"}).status_code == 302
    group = browser.latest_id("task_groups")
    tasks = [browser.create_task(name, groups=[str(group)]) for name in "ABCD"]
    browser.post(f"/tasks/{tasks[0]}/initialize", PREDICTION)
    browser.post(f"/attempts/{browser.latest_id('attempts')}/complete", OUTCOME)
    browser.post(f"/tasks/{tasks[1]}/initialize", PREDICTION)  # waiting
    browser.post(f"/tasks/{tasks[2]}/quick-initialize")
    paused = browser.latest_id("attempts")
    browser.post(f"/attempts/{paused}/start")
    browser.post(f"/attempts/{paused}/pause", {"reason": "Phone call"})
    browser.post(f"/tasks/{tasks[3]}/quick-initialize")
    browser.post(f"/attempts/{browser.latest_id('attempts')}/start")  # running
    repeated = {}
    for path in ("/", "/", f"/?group={group}"):
        response = browser.client.get(path)
        assert response.status_code == 200, path
        page = response.get_data(as_text=True)
        assert "Phone call" in page or "Paused" in page or "paused" in page
        repeated[path] = _repeated(page)
    assert repeated == {"/": [], f"/?group={group}": []}

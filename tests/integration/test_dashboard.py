"""The dashboard: what it shows, and that its cost doesn't grow with the data."""

from __future__ import annotations

import re

from sqlalchemy import text

from tests.conftest import Browser
from tests.conftest import count_statements
from tests.conftest import uncached_statements
from tests.integration.test_attempts import OUTCOME
from tests.integration.test_attempts import PREDICTION

GENERATE_HISTORY = """
INSERT INTO tasks (user_id, name, default_estimate_minutes)
SELECT u.id, 'Task ' || n, 30 FROM users u, generate_series(1, :tasks) n;
INSERT INTO attempts (user_id, task_id, task_version, status, initialized_at, started_at,
                      completed_at, minutes_spent, actual_relief, actual_cognitive_load,
                      actual_emotional_load, actual_physical_load, stress, net_wellbeing,
                      behavioral_score, relief_duration_score, expected_aversion)
SELECT t.user_id, t.id, 1, 'completed', now() - (n || ' hours')::interval,
       now() - (n || ' hours')::interval, now() - (n || ' hours')::interval + interval '20 min',
       20, 60, 40, 40, 40, 40, 20, 50, 1200, 50
FROM tasks t, generate_series(1, :per_task) n;
"""


def _count_statements(app, client, path: str) -> int:
    status, count = count_statements(app, client, path)
    assert status == 200
    return count


def _generate(app, tasks: int, per_task: int) -> None:
    with app.extensions["db_engine"].begin() as conn:
        for statement in GENERATE_HISTORY.strip().split(";\n"):
            conn.execute(text(statement), {"tasks": tasks, "per_task": per_task})


def test_dashboard_runs_at_most_5_statements_whatever_the_data_size(browser, app):
    small = _count_statements(app, browser.client, "/")
    _generate(app, tasks=30, per_task=40)
    large = _count_statements(app, browser.client, "/")
    assert large <= 5
    assert large == small


def test_no_statement_of_what_people_do_most_is_compiled_afresh_each_time(app):
    """Signing up, making a task with new emotions, an attempt from start to end, a note,
    and the pages (after a change: recomputed and stored; again: read back) run only
    statements SQLAlchemy keeps compiled: an uncached one costs CPU on every request."""
    with uncached_statements(app) as found:
        person = Browser(app.test_client())
        person.signup("steady")
        task = person.create_task("Write report", new_emotions="Calm, Uneasy")
        person.post(f"/tasks/{task}/initialize", PREDICTION)
        attempt = person.latest_id("attempts")
        person.post(f"/attempts/{attempt}/start")
        person.post(f"/attempts/{attempt}/complete", OUTCOME)
        person.post("/notes", {"body": "a note"})
        paths = ["/", "/analytics", "/history", "/history?q=rep", "/notes", "/account"]
        for path in [*paths, f"/tasks/{task}/edit", *paths]:
            assert person.client.get(path).status_code == 200, path
        person.create_task("Dishes")  # a change: the dashboard is recomputed and stored again
        assert person.client.get("/").status_code == 200
    assert found == []


def test_dashboard_shows_running_ready_recent_and_this_week(browser):
    running_task = browser.create_task("Write report")
    browser.post(f"/tasks/{running_task}/initialize", PREDICTION)
    running = browser.latest_id("attempts")
    browser.post(f"/attempts/{running}/start")
    done_task = browser.create_task("Dishes")
    browser.post(f"/tasks/{done_task}/initialize", PREDICTION)
    done = browser.latest_id("attempts")
    browser.post(f"/attempts/{done}/complete", OUTCOME)
    browser.post(f"/tasks/{done_task}/quick-initialize")

    page = browser.client.get("/").get_data(as_text=True)
    current = page[page.index('id="current-heading"') : page.index('id="ready-heading"')]
    assert "Write report" in current and "Elapsed" in current
    ready = page[page.index('id="ready-heading"') : page.index('id="week-heading"')]
    assert "Dishes" in ready and "Write report" not in ready
    week = page[page.index('id="week-heading"') : page.index('id="rec-heading"')]
    assert "25 min" in week  # minutes of the completed attempt
    assert ">2250<" in week  # relief 90 × 25 minutes
    recent = page[page.index('id="recent-heading"') :]
    assert "Dishes" in recent
    quick = page[page.index('id="quick-heading"') : page.index('id="tasks-heading"')]
    assert "Dishes" in quick and "Write report" not in quick


def test_this_week_is_compared_with_the_persons_own_average(browser, app):
    _generate(app, tasks=1, per_task=1)
    # Move the one attempt three weeks back: this week is empty, worse than usual.
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(text("UPDATE attempts SET completed_at = now() - interval '21 days'"))
    page = browser.client.get("/").get_data(as_text=True)
    assert 'class="kpi trend-worse"' in page
    assert "Below your 7-day average" in page


def test_recommendations_follow_each_persons_own_filter(browser, other_browser, app):
    browser.create_task("Short", default_estimate_minutes="5")
    browser.create_task("Long", default_estimate_minutes="500")
    other_browser.create_task("Theirs", default_estimate_minutes="5")
    browser.post("/recommendations", {"measures": ["relief", "duration"], "max_minutes": "60"})
    page = browser.client.get("/").get_data(as_text=True)
    recs = page[page.index('id="rec-heading"') : page.index('id="quick-heading"')]
    assert "<strong>Short</strong>" in recs
    assert "<strong>Long</strong>" not in recs and "Theirs" not in recs
    # The other person's filter is untouched (the old app shared it between visitors).
    other = other_browser.client.get("/").get_data(as_text=True)
    other_recs = other[other.index('id="rec-heading"') : other.index('id="quick-heading"')]
    assert re.search(r'value="stress"[^>]*checked|checked[^>]*value="stress"', other_recs)


def test_a_bad_recommendation_filter_is_explained_and_not_saved(browser, app):
    response = browser.post(
        "/recommendations", {"measures": ["relief", "bogus"]}, follow_redirects=True
    )
    assert "not a valid choice" in response.get_data(as_text=True)
    with app.extensions["db_engine"].connect() as conn:
        assert conn.execute(text("SELECT preferences FROM users")).scalar_one() == {}


def test_every_id_on_the_dashboard_is_unique_with_a_running_attempt(browser, app):
    from tests.integration.test_attempts import _initialize

    task_id = browser.create_task("Write report")
    attempt_id = _initialize(browser, task_id)
    assert browser.post(f"/attempts/{attempt_id}/start").status_code == 302
    for _ in range(2):  # computed, then from the page cache
        page = browser.client.get("/").get_data(as_text=True)
        assert "Pause" in page
        ids = re.findall(r'\bid="([^"]+)"', page)
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        assert repeated == [], f"ids used more than once: {repeated}"

"""Fixing mistakes (issue 17): a finished attempt's prediction, outcome, emotions and times
can be corrected with the same checks as the forms that made them, and any attempt can be
deleted after a confirmation; analytics and the dashboard follow at once."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from tests.conftest import Browser
from tests.integration.test_analytics import _kpi
from tests.integration.test_analytics import _page
from tests.integration.test_attempts import OUTCOME
from tests.integration.test_attempts import PREDICTION

pytestmark = pytest.mark.integration


def _done(browser: Browser, name: str = "Write report", **outcome: str) -> int:
    task = browser.create_task(name)
    browser.post(f"/tasks/{task}/initialize", PREDICTION)
    attempt = browser.latest_id("attempts")
    browser.post(f"/attempts/{attempt}/complete", {**OUTCOME, **outcome})
    with browser.client.application.extensions["db_engine"].begin() as conn:
        # Made three days ago: a fix may say it was completed yesterday.
        conn.execute(
            text(
                "UPDATE attempts SET initialized_at = initialized_at - interval '3 days'"
                " WHERE id = :id"
            ),
            {"id": attempt},
        )
    return attempt


def _fix(**changes: str) -> dict[str, str]:
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    return {**OUTCOME, "completed_date": yesterday, "completed_time": "18:30", **changes}


def _row(app, attempt: int) -> dict:
    with app.extensions["db_engine"].connect() as conn:
        row = (
            conn.execute(
                text(
                    "SELECT actual_relief, minutes_spent, completed_at, net_wellbeing,"
                    " expected_relief, status FROM attempts WHERE id = :id"
                ),
                {"id": attempt},
            )
            .mappings()
            .one_or_none()
        )
    return dict(row) if row else {}


def test_a_finished_attempts_outcome_and_times_are_fixed_and_analytics_follow(browser, app):
    attempt = _done(browser, actual_relief="10")
    assert _kpi(_page(browser.client), "Relief") == "10"
    show = browser.client.get(f"/attempts/{attempt}").get_data(as_text=True)
    assert f'href="/attempts/{attempt}/outcome"' in show and "Fix the outcome" in show

    form = browser.client.get(f"/attempts/{attempt}/outcome").get_data(as_text=True)
    assert 'value="10"' in form and 'name="completed_date"' in form  # what was recorded
    fixed = browser.post(
        f"/attempts/{attempt}/outcome",
        _fix(actual_relief="90", minutes_spent="45", new_emotions="Proud"),
    )
    assert fixed.status_code == 302, fixed.get_data(as_text=True)
    assert fixed.headers["Location"] == f"/attempts/{attempt}"
    row = _row(app, attempt)
    assert row["actual_relief"] == 90 and row["minutes_spent"] == 45
    berlin = row["completed_at"].astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert berlin.hour in (18, 19) and berlin.date() == dt.date.today() - dt.timedelta(days=1)
    assert _kpi(_page(browser.client), "Relief") == "90"
    page = browser.client.get(f"/attempts/{attempt}").get_data(as_text=True)
    assert "Proud" in page


def test_a_fixed_prediction_moves_the_measures_that_compare_it_with_the_outcome(browser, app):
    attempt = _done(browser)
    before = _row(app, attempt)
    fixed = browser.post(f"/attempts/{attempt}/prediction", {**PREDICTION, "expected_relief": "95"})
    assert fixed.status_code == 302 and fixed.headers["Location"] == f"/attempts/{attempt}"
    after = _row(app, attempt)
    assert after["expected_relief"] == 95 and after["status"] == "completed"
    assert before["net_wellbeing"] == after["net_wellbeing"]  # outcome-only measure kept
    form = browser.client.get(f"/attempts/{attempt}/prediction").get_data(as_text=True)
    assert "Fix the prediction" in form and 'name="due_date"' not in form


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"actual_relief": "101"}, "Choose a value from 0 to 100."),
        ({"minutes_spent": "-5"}, ""),
        ({"completed_date": ""}, "Say on which day it was completed."),
        ({"completed_time": "25:99"}, "Enter a time of day"),
        ({"completed_date": "2999-12-31"}, "can&#39;t have been completed in the future"),
        ({"completed_date": "2001-01-01"}, "before it was initialized"),
    ],
)
def test_a_bad_fix_gets_a_message_and_changes_nothing(browser, app, changes, message):
    attempt = _done(browser)
    before = _row(app, attempt)
    response = browser.post(
        f"/attempts/{attempt}/outcome", _fix(**{"actual_relief": "70", **changes})
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert _row(app, attempt) == before


def test_only_a_completed_attempt_has_an_outcome_to_fix(browser, app):
    task = browser.create_task("Write report")
    browser.post(f"/tasks/{task}/initialize", PREDICTION)
    attempt = browser.latest_id("attempts")
    response = browser.post(f"/attempts/{attempt}/outcome", _fix())
    assert response.status_code == 302
    assert "Only a completed attempt" in browser.client.get("/").get_data(as_text=True)
    assert _row(app, attempt)["status"] == "initialized"


def test_an_attempt_is_deleted_only_after_its_confirmation(browser, app):
    kept = _done(browser, "Dishes", actual_relief="20")
    task = browser.create_task("Write report")
    browser.post(f"/tasks/{task}/initialize", PREDICTION)
    attempt = browser.latest_id("attempts")
    browser.post(f"/attempts/{attempt}/start")
    browser.post(f"/attempts/{attempt}/notes", {"body": "Written on it while it ran"})
    browser.post(f"/attempts/{attempt}/complete", {**OUTCOME, "actual_relief": "80"})
    assert _kpi(_page(browser.client), "Relief") == "50"
    confirm = browser.client.get(f"/attempts/{attempt}/delete").get_data(as_text=True)
    assert "Delete this attempt at “Write report”?" in confirm and "Delete the attempt" in confirm
    assert _row(app, attempt)  # asking deletes nothing

    gone = browser.post(f"/attempts/{attempt}/delete", {})
    assert gone.status_code == 302 and gone.headers["Location"] == "/history"
    history = browser.client.get("/history").get_data(as_text=True)
    assert "Deleted the attempt at “Write report”." in history
    assert "Dishes" in history
    assert _row(app, attempt) == {} and _row(app, kept)
    assert _kpi(_page(browser.client), "Relief") == "20"
    assert browser.client.get(f"/attempts/{attempt}").status_code == 404
    # The note written on it stays, on the Notes page.
    assert "Written on it while it ran" in browser.client.get("/notes").get_data(as_text=True)


def test_nobody_fixes_or_deletes_another_persons_attempt(browser, other_browser, app):
    attempt = _done(browser)
    before = _row(app, attempt)
    for path, data in (
        (f"/attempts/{attempt}/outcome", _fix(actual_relief="0")),
        (f"/attempts/{attempt}/prediction", PREDICTION),
        (f"/attempts/{attempt}/delete", {}),
    ):
        assert other_browser.client.get(path).status_code == 404
        assert other_browser.post(path, data).status_code == 404
    assert _row(app, attempt) == before

"""Tasks and the attempt lifecycle through the real forms."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import text

from tests.conftest import count_statements

PREDICTION = {
    "expected_aversion": "80",
    "expected_relief": "30",
    "expected_cognitive_load": "60",
    "expected_emotional_load": "70",
    "expected_physical_load": "10",
    "motivation": "40",
    "time_estimate_minutes": "20",
    "physical_context": "Home",
    "new_emotions": "Dread, calm",
}
OUTCOME = {
    "actual_relief": "90",
    "actual_cognitive_load": "30",
    "actual_emotional_load": "20",
    "actual_physical_load": "10",
    "completion_percent": "100",
    "minutes_spent": "25",
    "notes": "Easier than feared",
}


def _row(app, sql: str, **params):
    with app.extensions["db_engine"].connect() as conn:
        return conn.execute(text(sql), params).mappings().one()


def _initialize(browser, task_id: int, **overrides) -> int:
    response = browser.post(f"/tasks/{task_id}/initialize", {**PREDICTION, **overrides})
    assert response.status_code == 302, response.get_data(as_text=True)
    return browser.latest_id("attempts")


def test_editing_a_task_bumps_its_version_and_past_attempts_keep_theirs(browser, app):
    task_id = browser.create_task("Tax return")
    attempt_id = _initialize(browser, task_id)
    browser.post(
        f"/tasks/{task_id}/edit",
        {"name": "Tax return 2026", "kind": "project", "default_estimate_minutes": "90"},
    )
    task = _row(app, "SELECT name, version, kind FROM tasks WHERE id = :i", i=task_id)
    assert (task["name"], task["version"], task["kind"]) == ("Tax return 2026", 2, "project")
    attempt = _row(app, "SELECT task_version FROM attempts WHERE id = :i", i=attempt_id)
    assert attempt["task_version"] == 1


def test_a_tasks_tracked_emotions_show_on_its_form_and_only_a_change_bumps_its_version(
    browser, app
):
    """The edit form reads the task, the emotions it tracks, its groups and everything the
    person can choose from in one statement; tracking other emotions is a new version of
    the task, saving it unchanged is not."""
    task_id = browser.create_task("Call the bank", new_emotions="Uneasy")
    uneasy = _row(app, "SELECT id FROM emotions WHERE name = 'Uneasy'")["id"]
    calm = _row(app, "SELECT id FROM emotions WHERE name = 'Calm'")["id"]
    status, statements = count_statements(app, browser.client, f"/tasks/{task_id}/edit")
    assert status == 200 and statements == 2  # the person's lookup, then the form's own
    page = browser.client.get(f"/tasks/{task_id}/edit").get_data(as_text=True)
    assert re.search(
        rf'checked id="emotions-\d+" name="emotions" type="checkbox" value="{uneasy}"', page
    )
    assert not re.search(
        rf'checked id="emotions-\d+" name="emotions" type="checkbox" value="{calm}"', page
    )
    same = {"name": "Call the bank", "kind": "one-time", "default_estimate_minutes": "30"}
    unchanged = browser.post(f"/tasks/{task_id}/edit", {**same, "emotions": [str(uneasy)]})
    assert unchanged.status_code == 302
    assert "Nothing changed." in browser.client.get("/").get_data(as_text=True)
    assert _row(app, "SELECT version FROM tasks WHERE id = :i", i=task_id)["version"] == 1
    browser.post(f"/tasks/{task_id}/edit", {**same, "emotions": [str(calm)]})
    assert _row(app, "SELECT version FROM tasks WHERE id = :i", i=task_id)["version"] == 2
    tracked = _row(
        app, "SELECT array_agg(emotion_id) AS ids FROM task_emotions WHERE task_id = :i", i=task_id
    )
    assert tracked["ids"] == [calm]


def test_task_form_keeps_input_and_explains_limits(browser, app):
    response = browser.post(
        "/tasks/new", {"name": "x" * 201, "description": "kept", "kind": "one-time"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "At most 200 characters." in page
    assert "kept</textarea>" in page
    bad_estimate = browser.post("/tasks/new", {"name": "ok", "default_estimate_minutes": "-5"})
    assert "Enter minutes from 0" in bad_estimate.get_data(as_text=True)
    assert _row(app, "SELECT count(*) AS n FROM tasks")["n"] == 0


def test_archived_tasks_leave_the_dashboard_and_can_be_restored(browser):
    task_id = browser.create_task("Old chore")
    browser.post(f"/tasks/{task_id}/archive")
    dashboard = browser.client.get("/").get_data(as_text=True)
    assert '<span class="task-name">Old chore' not in dashboard
    assert "Old chore" in browser.client.get("/tasks/archived").get_data(as_text=True)
    browser.post(f"/tasks/{task_id}/restore")
    assert '<span class="task-name">Old chore' in browser.client.get("/").get_data(as_text=True)


def test_the_whole_lifecycle_stores_prediction_outcome_emotions_and_measures(browser, app):
    task_id = browser.create_task("Tax return")
    attempt_id = _initialize(browser, task_id)
    assert browser.post(f"/attempts/{attempt_id}/start").status_code == 302
    browser.post(f"/attempts/{attempt_id}/pause", {"reason": "phone call"})
    paused = _row(app, "SELECT status, extra FROM attempts WHERE id = :i", i=attempt_id)
    assert paused["status"] == "paused"
    assert paused["extra"]["pauses"][0]["reason"] == "phone call"
    browser.post(f"/attempts/{attempt_id}/start")
    response = browser.post(
        f"/attempts/{attempt_id}/complete", {**OUTCOME, "new_emotions": "Proud"}
    )
    assert response.status_code == 302
    row = _row(app, "SELECT * FROM attempts WHERE id = :i", i=attempt_id)
    assert row["status"] == "completed"
    assert (row["expected_aversion"], row["expected_relief"], row["physical_context"]) == (
        80,
        30,
        "Home",
    )
    assert (row["actual_relief"], row["minutes_spent"], row["notes"]) == (
        90,
        25,
        "Easier than feared",
    )
    assert row["stress"] == pytest.approx(20)
    assert row["net_wellbeing"] == pytest.approx(70)
    assert row["relief_surprise"] == pytest.approx(60)
    assert row["relief_duration_score"] == pytest.approx(2250)
    emotions = _row(
        app,
        "SELECT string_agg(e.name || ':' || ae.phase, ',' ORDER BY e.name) AS names "
        "FROM attempt_emotions ae JOIN emotions e ON e.id = ae.emotion_id",
    )["names"]
    # "calm" matched the starter emotion "Calm": names are one whatever the capitals.
    assert emotions == "Calm:before,Dread:before,Proud:after"


def test_time_spent_is_the_sum_of_the_started_intervals(browser, app):
    task_id = browser.create_task("Reading")
    attempt_id = _initialize(browser, task_id)
    browser.post(f"/attempts/{attempt_id}/start")
    # Pretend the first interval began 10 minutes ago.
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(
            text("UPDATE attempts SET resumed_at = now() - interval '10 minutes' WHERE id = :i"),
            {"i": attempt_id},
        )
    browser.post(f"/attempts/{attempt_id}/pause")
    # Paused time does not count: wait "an hour" by moving nothing, then resume for 5 min.
    browser.post(f"/attempts/{attempt_id}/start")
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(
            text("UPDATE attempts SET resumed_at = now() - interval '5 minutes' WHERE id = :i"),
            {"i": attempt_id},
        )
    page = browser.client.get(f"/attempts/{attempt_id}/complete").get_data(as_text=True)
    assert "Tracked time: 15 min" in page
    assert 'value="15.0"' in page  # minutes default to the tracked time


def test_only_one_attempt_can_run_at_a_time(browser, app):
    first = _initialize(browser, browser.create_task("One"))
    second = _initialize(browser, browser.create_task("Two"))
    browser.post(f"/attempts/{first}/start")
    response = browser.post(f"/attempts/{second}/start", follow_redirects=True)
    assert "Another task is running" in response.get_data(as_text=True)
    status = _row(app, "SELECT status FROM attempts WHERE id = :i", i=second)["status"]
    assert status == "initialized"


def test_cancel_needs_a_reason_and_keeps_what_was_typed(browser, app):
    attempt_id = _initialize(browser, browser.create_task("Gym"))
    response = browser.post(f"/attempts/{attempt_id}/cancel", {"reason": "", "notes": "tired"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Say why" in page and "tired</textarea>" in page
    browser.post(f"/attempts/{attempt_id}/cancel", {"reason": "Rain", "completion_percent": "20"})
    row = _row(app, "SELECT status, cancel_reason, completion_percent FROM attempts")
    assert (row["status"], row["cancel_reason"], row["completion_percent"]) == (
        "cancelled",
        "Rain",
        20,
    )
    again = browser.post(f"/attempts/{attempt_id}/start", follow_redirects=True)
    assert "already cancelled" in again.get_data(as_text=True)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("expected_relief", "101", "Choose a value from 0 to 100."),
        ("motivation", "-1", "Choose a value from 0 to 100."),
        ("expected_aversion", "lots", "Not a valid integer value."),
        ("time_estimate_minutes", "-3", "Enter minutes from 0"),
        ("description", "x" * 5001, "At most 5,000 characters."),
        ("physical_context", "bad\x00byte", "NUL"),
    ],
)
def test_prediction_values_out_of_range_are_refused_next_to_the_field(
    browser, app, field, value, message
):
    task_id = browser.create_task("Taxes")
    response = browser.post(f"/tasks/{task_id}/initialize", {**PREDICTION, field: value})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert _row(app, "SELECT count(*) AS n FROM attempts")["n"] == 0


def test_completion_may_go_to_200_but_not_beyond(browser, app):
    attempt_id = _initialize(browser, browser.create_task("Run"))
    refused = browser.post(
        f"/attempts/{attempt_id}/complete", {**OUTCOME, "completion_percent": "201"}
    )
    assert refused.status_code == 400
    browser.post(f"/attempts/{attempt_id}/complete", {**OUTCOME, "completion_percent": "200"})
    assert _row(app, "SELECT completion_percent FROM attempts")["completion_percent"] == 200


def test_sliders_default_to_the_persons_average_for_the_task(browser):
    task_id = browser.create_task("Dishes")
    for relief in ("20", "40"):
        _initialize(browser, task_id, expected_relief=relief)
    page = browser.client.get(f"/tasks/{task_id}/initialize").get_data(as_text=True)
    assert "your average: 30" in page
    slider = re.search(r'<input[^>]*id="expected_relief"[^>]*>', page).group(0)
    assert 'type="range"' in slider and 'value="30"' in slider


def test_times_are_shown_in_the_persons_time_zone(browser, app):
    attempt_id = _initialize(browser, browser.create_task("Call"))
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(
            text("UPDATE attempts SET initialized_at = :t WHERE id = :i"),
            {"t": dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.timezone.utc), "i": attempt_id},
        )
    # The browser fixture signed up in Europe/Berlin: 12:00 UTC is 14:00 there in July.
    assert "Wed 01 Jul 2026, 14:00" in browser.client.get(f"/attempts/{attempt_id}").get_data(
        as_text=True
    )


def test_the_estimate_defaults_to_the_tasks_estimate_written_plainly(browser):
    task_id = browser.create_task("Laundry", default_estimate_minutes="100")
    page = browser.client.get(f"/tasks/{task_id}/initialize").get_data(as_text=True)
    estimate = re.search(r'<input[^>]*id="time_estimate_minutes"[^>]*>', page).group(0)
    assert 'value="100"' in estimate


def _slider(page: str, name: str) -> str:
    found = re.search(rf'<input[^>]*id="{name}"[^>]*>', page)
    assert found, name
    return found.group(0)


def test_the_outcome_form_defaults_to_the_persons_average_and_lists_their_emotions(
    browser, other_browser
):
    task_id = browser.create_task("Dishes")
    for relief in ("20", "60"):
        attempt_id = _initialize(browser, task_id)
        browser.post(f"/attempts/{attempt_id}/start")
        browser.post(f"/attempts/{attempt_id}/complete", {**OUTCOME, "actual_relief": relief})
    other = browser.create_task("Taxes")  # no history: the middle of the scale
    assert other_browser.post("/emotions", {"name": "Someone else's word"}).status_code == 302
    attempt_id = _initialize(browser, task_id)
    page = browser.client.get(f"/attempts/{attempt_id}/complete").get_data(as_text=True)
    assert 'value="40"' in _slider(page, "actual_relief")  # (20 + 60) / 2, this task only
    labels = re.findall(r'<label for="emotions-\d+">([^<]+)</label>', page)
    assert labels == sorted(labels, key=str.lower) and "Calm" in labels and "Dread" in labels
    assert "Someone else" not in page
    fresh = _initialize(browser, other)
    browser.post(f"/attempts/{attempt_id}/cancel", {"reason": "Later", "completion_percent": "0"})
    page = browser.client.get(f"/attempts/{fresh}/complete").get_data(as_text=True)
    assert 'value="50"' in _slider(page, "actual_relief")


def test_a_form_page_reads_its_task_averages_and_emotions_in_one_statement(
    browser, other_browser, app
):
    task_id = browser.create_task("Dishes")
    attempt_id = _initialize(browser, task_id)
    for path in (f"/tasks/{task_id}/initialize", f"/attempts/{attempt_id}/complete"):
        status, count = count_statements(app, browser.client, path)
        assert (status, count) == (200, 2), path  # the session lookup and the form's data
        # Someone else's task or attempt is a 404, as before.
        assert other_browser.client.get(path).status_code == 404, path


def test_editing_a_prediction_shows_and_keeps_what_was_predicted(browser, other_browser, app):
    attempt_id = _initialize(browser, browser.create_task("Dishes"))  # relief 30, Dread + calm
    page = browser.client.get(f"/attempts/{attempt_id}/prediction").get_data(as_text=True)
    assert 'value="30"' in _slider(page, "expected_relief")  # the attempt's, not an average
    checked = re.findall(r'<input checked id="emotions-\d+"[^>]*>\s*<label[^>]*>([^<]+)<', page)
    assert sorted(checked) == ["Calm", "Dread"]  # "calm" is the starter emotion "Calm"
    assert other_browser.client.get(f"/attempts/{attempt_id}/prediction").status_code == 404
    response = browser.post(
        f"/attempts/{attempt_id}/prediction", {**PREDICTION, "expected_relief": "55"}
    )
    assert response.status_code == 302
    row = _row(app, "SELECT expected_relief FROM attempts WHERE id = :i", i=attempt_id)
    assert row["expected_relief"] == 55

"""Due dates and postponing, through the real forms: stored in the person's time zone,
overdue attempts marked and first on the dashboard (also when they fall due while the page
is cached), postponements kept as the attempt's history, the history's paused and
postponed filters, bad input refused with a message and nothing changed, other people's
attempts a 404."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from db.models import utcnow
from service import page_cache
from service.dashboard import views as dashboard_views
from tests.conftest import count_statements
from tests.integration.test_attempts import OUTCOME
from tests.integration.test_attempts import PREDICTION

BERLIN = ZoneInfo("Europe/Berlin")  # the browser fixture signs up in Berlin
UTC = dt.timezone.utc


def _sql(app, statement: str, **params) -> Any:
    with app.extensions["db_engine"].begin() as conn:
        return conn.execute(text(statement), params)


def _attempt(app, attempt_id: int) -> dict[str, Any]:
    return dict(
        _sql(
            app,
            "SELECT status, due_at, postponed_at, postponed_until, resumed_at, extra"
            " FROM attempts WHERE id = :i",
            i=attempt_id,
        )
        .mappings()
        .one()
    )


def _initialize(browser, name: str, **fields: str) -> int:
    task_id = browser.create_task(name)
    response = browser.post(f"/tasks/{task_id}/initialize", {**PREDICTION, **fields})
    assert response.status_code == 302, response.get_data(as_text=True)
    return browser.latest_id("attempts")


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _dashboard(browser) -> str:
    response = browser.client.get("/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _section(page: str, heading_id: str) -> str:
    """A dashboard card's text, from its heading to the next card's."""
    start = page.index(f'id="{heading_id}"')
    end = page.find("<section", start)
    return _text(page[start : end if end != -1 else None])


def _ready_names(page: str) -> list[str]:
    start = page.index('id="ready-heading"')
    ready = page[start : page.index("</section>", start)]
    return re.findall(r'<div class="row-head"><strong>([^<]+)</strong>', ready)


def _local_day(days_from_now: int) -> str:
    return (dt.datetime.now(BERLIN).date() + dt.timedelta(days=days_from_now)).isoformat()


class Clock:
    """The dashboard's clock, moved forward as if time had passed (no data changes)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def move(self, delta: dt.timedelta) -> None:
        later = utcnow() + delta
        for module in (dashboard_views, page_cache):
            self.monkeypatch.setattr(module, "utcnow", lambda: later)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


# --- due dates ---------------------------------------------------------------------------


def test_a_due_date_is_kept_in_the_persons_time_zone_and_can_be_changed_or_removed(browser, app):
    with_time = _initialize(browser, "Tax return", due_date="2026-03-10", due_time="09:30")
    # Berlin is UTC+1 in March before the clocks change.
    assert _attempt(app, with_time)["due_at"] == dt.datetime(2026, 3, 10, 8, 30, tzinfo=UTC)
    day_only = _initialize(browser, "Dentist", due_date="2026-07-01")
    # A date alone: the end of that day (23:59 in Berlin, UTC+2 in summer).
    assert _attempt(app, day_only)["due_at"] == dt.datetime(2026, 7, 1, 21, 59, tzinfo=UTC)

    form = browser.client.get(f"/attempts/{with_time}/prediction").get_data(as_text=True)
    assert 'value="2026-03-10"' in form and 'value="09:30"' in form
    moved = {**PREDICTION, "new_emotions": "", "due_date": "2026-03-12", "due_time": "18:00"}
    assert browser.post(f"/attempts/{with_time}/prediction", moved).status_code == 302
    assert _attempt(app, with_time)["due_at"] == dt.datetime(2026, 3, 12, 17, 0, tzinfo=UTC)
    removed = {**moved, "due_date": "", "due_time": ""}
    assert browser.post(f"/attempts/{with_time}/prediction", removed).status_code == 302
    assert _attempt(app, with_time)["due_at"] is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"due_date": "2026-13-40"}, "Enter a real date, like 2026-03-31."),
        ({"due_date": "tomorrow"}, "Enter a real date, like 2026-03-31."),
        ({"due_date": "0001-01-01"}, "Choose a date from 1900 to 2999."),
        ({"due_date": "9999-12-31"}, "Choose a date from 1900 to 2999."),
        ({"due_date": "2026-03-10", "due_time": "25:00"}, "Enter a time of day, like 17:30."),
        ({"due_date": "", "due_time": "09:30"}, "Choose a due date for this time too."),
    ],
)
def test_a_bad_due_date_is_refused_with_a_message_and_changes_nothing(
    browser, app, fields, message
):
    attempt_id = _initialize(browser, "Tax return", due_date="2026-03-10")
    before = _attempt(app, attempt_id)
    data = {**PREDICTION, "new_emotions": "", **fields}
    response = browser.post(f"/attempts/{attempt_id}/prediction", data)
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))
    assert _attempt(app, attempt_id) == before
    # Initializing with it creates nothing either.
    task_id = browser.create_task("Other")
    attempts = browser.latest_id("attempts")
    response = browser.post(f"/tasks/{task_id}/initialize", {**PREDICTION, **fields})
    assert response.status_code == 400
    assert browser.latest_id("attempts") == attempts


def test_overdue_attempts_are_marked_and_listed_first_in_ready(browser):
    plain = _initialize(browser, "No deadline")
    later = _initialize(browser, "Due next week", due_date=_local_day(7))
    overdue_late = _initialize(browser, "Overdue since yesterday", due_date=_local_day(-1))
    overdue_early = _initialize(browser, "Overdue for a week", due_date=_local_day(-7))
    assert plain < later < overdue_late < overdue_early  # initialized in this order

    page = _dashboard(browser)
    assert _ready_names(page) == [
        "Overdue for a week",
        "Overdue since yesterday",
        "No deadline",
        "Due next week",
    ]
    ready = _section(page, "ready-heading")
    assert ready.count("overdue") == 2  # in words, not only in colour
    assert "Overdue for a week overdue was due" in ready
    assert "Due next week due " in ready and "Due next week overdue" not in ready


def test_an_attempt_that_falls_due_while_the_dashboard_is_cached_is_marked_overdue(
    browser, app, clock
):
    _initialize(browser, "First")
    _initialize(browser, "Report", due_date=_local_day(1), due_time="12:00")
    page = _dashboard(browser)
    assert _ready_names(page) == ["First", "Report"] and "overdue" not in page
    status, statements = count_statements(app, browser.client, "/")
    assert (status, statements) == (200, 1)  # served from the cache: only the session

    clock.move(dt.timedelta(days=3))  # no data changed; the due time has passed
    status, statements = count_statements(app, browser.client, "/")
    assert status == 200
    assert statements == 3  # the session, the open attempts, the cache's upsert
    page = _dashboard(browser)
    assert _ready_names(page) == ["Report", "First"]
    assert "overdue" in _section(page, "ready-heading")
    # The rest of the page was kept: it still shows what it showed.
    assert _section(page, "tasks-heading").count("Initialize") == 2


# --- postponing --------------------------------------------------------------------------


def test_postponing_keeps_the_reason_as_history_and_back_to_ready_undoes_it(browser, app):
    attempt_id = _initialize(browser, "Clean the garage")
    response = browser.post(f"/attempts/{attempt_id}/postpone", {"reason": "Raining all day"})
    assert response.status_code == 302
    page = _dashboard(browser)
    postponed = _section(page, "postponed-heading")
    assert "Clean the garage" in postponed and "Because: Raining all day" in postponed
    assert "Clean the garage" not in _ready_names(page)
    row = _attempt(app, attempt_id)
    assert row["status"] == "initialized" and row["postponed_at"] is not None
    assert [p["reason"] for p in row["extra"]["postponements"]] == ["Raining all day"]

    assert browser.post(f"/attempts/{attempt_id}/unpostpone").status_code == 302
    page = _dashboard(browser)
    assert "postponed-heading" not in page
    assert _ready_names(page) == ["Clean the garage"]
    assert _attempt(app, attempt_id)["postponed_at"] is None

    browser.post(f"/attempts/{attempt_id}/postpone", {"reason": "Neighbour borrowed the broom"})
    reasons = [p["reason"] for p in _attempt(app, attempt_id)["extra"]["postponements"]]
    assert reasons == ["Raining all day", "Neighbour borrowed the broom"]
    shown = _text(browser.client.get(f"/attempts/{attempt_id}").get_data(as_text=True))
    assert "Postponed 2×: Raining all day; Neighbour borrowed the broom" in shown
    assert "postponed since" in shown

    # Finishing a postponed attempt ends the postponement; the reasons stay.
    assert browser.post(f"/attempts/{attempt_id}/complete", OUTCOME).status_code == 302
    row = _attempt(app, attempt_id)
    assert row["status"] == "completed" and row["postponed_at"] is None
    assert len(row["extra"]["postponements"]) == 2


def test_postponing_the_running_attempt_stops_its_clock(browser, app):
    attempt_id = _initialize(browser, "Write the report")
    browser.post(f"/attempts/{attempt_id}/start")
    browser.post(f"/attempts/{attempt_id}/postpone", {"reason": "Meeting moved up"})
    row = _attempt(app, attempt_id)
    assert (row["status"], row["resumed_at"]) == ("paused", None)
    page = _dashboard(browser)
    assert "Nothing running" in _section(page, "current-heading")
    assert "Write the report" in _section(page, "postponed-heading")
    # Starting it again brings it back from postponed.
    browser.post(f"/attempts/{attempt_id}/start")
    assert _attempt(app, attempt_id)["postponed_at"] is None
    assert "postponed-heading" not in _dashboard(browser)


def test_postponed_until_a_time_is_ready_again_once_that_time_has_come(browser, app, clock):
    attempt_id = _initialize(browser, "Call the bank")
    response = browser.post(
        f"/attempts/{attempt_id}/postpone",
        {"reason": "Closed today", "until_date": _local_day(2), "until_time": "09:00"},
    )
    assert response.status_code == 302
    until = dt.datetime.combine(dt.date.fromisoformat(_local_day(2)), dt.time(9), BERLIN)
    assert _attempt(app, attempt_id)["postponed_until"] == until
    page = _dashboard(browser)
    assert "until" in _section(page, "postponed-heading") and _ready_names(page) == []

    clock.move(dt.timedelta(days=3))
    page = _dashboard(browser)
    assert _ready_names(page) == ["Call the bank"]
    assert "was postponed until" in _section(page, "ready-heading")
    assert "postponed-heading" not in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reason": ""}, "Say why, even briefly: it helps you later."),
        ({"reason": "   "}, "Say why, even briefly: it helps you later."),
        ({"reason": "x" * 1001}, "At most 1,000 characters."),
        ({"reason": "Later", "until_date": "2026-02-30"}, "Enter a real date, like 2026-03-31."),
        ({"reason": "Later", "until_date": "2020-01-01"}, "Choose a time in the future"),
        ({"reason": "Later", "until_date": "1800-01-01"}, "Choose a date from 1900 to 2999."),
        ({"reason": "Later", "until_time": "10:00"}, "Choose a date for this time too."),
        ({"reason": "Later", "until_date": "2099-01-01", "until_time": "x"}, "Enter a time"),
        ({"reason": "Later\x00"}, "NUL"),
    ],
)
def test_a_bad_postponement_is_refused_with_a_message_and_changes_nothing(
    browser, app, fields, message
):
    attempt_id = _initialize(browser, "Clean the garage")
    before = _attempt(app, attempt_id)
    response = browser.post(f"/attempts/{attempt_id}/postpone", fields)
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))
    assert _attempt(app, attempt_id) == before


def test_a_finished_attempt_cannot_be_postponed_and_a_ready_one_not_brought_back(browser, app):
    done = _initialize(browser, "Dishes")
    browser.post(f"/attempts/{done}/complete", OUTCOME)
    for method in ("get", "post"):
        if method == "get":
            response = browser.client.get(f"/attempts/{done}/postpone", follow_redirects=True)
        else:
            response = browser.post(
                f"/attempts/{done}/postpone", {"reason": "x"}, follow_redirects=True
            )
        assert response.status_code == 200
        assert "This attempt is already completed." in response.get_data(as_text=True)
    assert _attempt(app, done)["postponed_at"] is None
    ready = _initialize(browser, "Laundry")
    response = browser.post(f"/attempts/{ready}/unpostpone", follow_redirects=True)
    assert "This attempt isn't postponed." in html.unescape(response.get_data(as_text=True))


def test_another_persons_attempt_is_a_404_on_every_new_route_and_nothing_changes(
    browser, other_browser, app
):
    victim = _initialize(browser, "Private task", due_date=_local_day(-1))
    browser.post(f"/attempts/{victim}/postpone", {"reason": "Secret reason"})
    before = _attempt(app, victim)
    attempts = [
        ("get", f"/attempts/{victim}/postpone", None),
        ("post", f"/attempts/{victim}/postpone", {"reason": "Mine", "until_date": "2099-01-01"}),
        ("post", f"/attempts/{victim}/unpostpone", {}),
        ("get", f"/attempts/{victim}/prediction", None),
        ("post", f"/attempts/{victim}/prediction", {**PREDICTION, "due_date": "2099-01-01"}),
    ]
    for method, path, data in attempts:
        if method == "get":
            response = other_browser.client.get(path)
        else:
            response = other_browser.post(path, data)
        assert response.status_code == 404, f"{method} {path}"
        body = response.get_data(as_text=True)
        assert "Private task" not in body and "Secret reason" not in body
    assert _attempt(app, victim) == before
    # Nor does the other person's dashboard or history show it.
    assert "Private task" not in other_browser.client.get("/").get_data(as_text=True)
    history = other_browser.client.get("/history?status=postponed").get_data(as_text=True)
    assert "Private task" not in history


# --- history filters ---------------------------------------------------------------------


def _history_names(browser, query: str) -> list[str]:
    response = browser.client.get(f"/history?{query}")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    return re.findall(r'<a href="/attempts/\d+">([^<]+)</a>', body)


def test_history_filters_paused_and_postponed_attempts(browser, app):
    paused = _initialize(browser, "Paused one")
    browser.post(f"/attempts/{paused}/start")
    browser.post(f"/attempts/{paused}/pause", {"reason": "Lunch"})
    postponed = _initialize(browser, "Postponed one")
    browser.post(f"/attempts/{postponed}/postpone", {"reason": "Waiting for the parts"})
    _initialize(browser, "Plain one")
    done = _initialize(browser, "Postponed then done")
    browser.post(f"/attempts/{done}/postpone", {"reason": "Later"})
    browser.post(f"/attempts/{done}/complete", OUTCOME)
    back = _initialize(browser, "Postponed then back")
    browser.post(f"/attempts/{back}/postpone", {"reason": "Later"})
    browser.post(f"/attempts/{back}/unpostpone")

    assert _history_names(browser, "status=paused") == ["Paused one"]
    assert _history_names(browser, "status=postponed") == ["Postponed one"]
    page = browser.client.get("/history?status=postponed").get_data(as_text=True)
    assert 'class="badge status-postponed">postponed<' in page
    assert '<option selected value="postponed">Postponed</option>' in page or (
        'value="postponed" selected' in page
    )
    assert len(_history_names(browser, "")) == 5
    status, statements = count_statements(app, browser.client, "/history?status=postponed")
    assert status == 200 and statements <= 5


def test_a_postponement_until_a_past_time_no_longer_counts_as_postponed(browser, app):
    attempt_id = _initialize(browser, "Call the bank")
    browser.post(
        f"/attempts/{attempt_id}/postpone",
        {"reason": "Closed today", "until_date": _local_day(2)},
    )
    assert _history_names(browser, "status=postponed") == ["Call the bank"]
    # Its time has come (written straight into the database, as time passing would).
    _sql(app, "UPDATE attempts SET postponed_until = now() - interval '1 minute'")
    assert _history_names(browser, "status=postponed") == []


def test_the_dashboard_runs_as_few_statements_with_postponed_and_overdue_attempts(browser, app):
    _initialize(browser, "Warm-up")
    _sql(app, "DELETE FROM page_cache")  # computed afresh, as after a change of history
    status, few = count_statements(app, browser.client, "/")
    assert status == 200
    for number in range(6):
        attempt_id = _initialize(browser, f"Task {number}", due_date=_local_day(-number))
        if number % 2:
            browser.post(f"/attempts/{attempt_id}/postpone", {"reason": f"Reason {number}"})
    _sql(app, "DELETE FROM page_cache")
    status, many = count_statements(app, browser.client, "/")
    assert status == 200
    assert many == few <= 5
    page = _dashboard(browser)
    assert len(_ready_names(page)) == 4
    assert _section(page, "postponed-heading").count("Because") == 3

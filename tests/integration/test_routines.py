"""Routines, through the real task form and dashboard: a repeating task's due occurrence
gets one attempt on the dashboard (once, also on repeated and concurrent loads), earlier
occurrences nobody came for are shown as missed and never created in bulk, weekday
schedules skip the other days, and clock changes (Europe/Berlin, America/New_York) neither
skip nor double an occurrence. Time travel goes through the service's ``now``; the database
is always the real one."""

from __future__ import annotations

import datetime as dt
import html
import re
import threading
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.models import utcnow
from service import page_cache
from service import routines
from service.dashboard import views as dashboard_views
from tests.conftest import count_statements
from tests.conftest import uncached_statements

UTC = dt.timezone.utc


def _sql(app, statement: str, **params) -> Any:
    with app.extensions["db_engine"].begin() as conn:
        return conn.execute(text(statement), params)


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _dashboard(browser) -> str:
    response = browser.client.get("/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _ready(page: str) -> str:
    start = page.index('id="ready-heading"')
    ends = [page.find(f'id="{h}-heading"', start) for h in ("postponed", "routines", "week")]
    return _text(page[start : min(e for e in ends if e > 0)])


def _routines_card(page: str) -> str:
    return _text(page[page.index('id="routines-heading"') : page.index('id="week-heading"')])


def _routine(browser, name: str = "Stretch", **fields: Any) -> int:
    return browser.create_task(name, **{"repeat": "daily", "repeat_time": "08:00", **fields})


def _attempts(app, task_id: int) -> list[dt.date]:
    rows = _sql(
        app,
        "SELECT routine_occurrence FROM attempts WHERE task_id = :t ORDER BY routine_occurrence",
        t=task_id,
    )
    return [row[0] for row in rows]


def _set_timezone(app, browser, zone: str) -> None:
    _sql(app, "UPDATE users SET timezone = :z WHERE username = :u", z=zone, u=browser.username)


def _schedule(app, task_id: int, **columns: Any) -> None:
    sets = ", ".join(f"{name} = :{name}" for name in columns)
    _sql(app, f"UPDATE tasks SET {sets} WHERE id = :task_id", task_id=task_id, **columns)  # noqa: S608 - the test's own column names


def _materialise(app, browser, now: dt.datetime) -> list[routines.RoutineStatus]:
    """The dashboard's routine step for the person as of ``now``, committed."""
    with Session(app.extensions["db_engine"]) as db:
        user_id, zone = db.execute(
            text("SELECT id, timezone FROM users WHERE username = :u"), {"u": browser.username}
        ).one()
        schedules = routines.load(db, user_id)
        statuses, _ = routines.materialise(db, user_id, zone, schedules, now)
        db.commit()
        return statuses


def _at(zone: str, *parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=ZoneInfo(zone)).astimezone(UTC)


# --- through the dashboard, on the real clock ------------------------------------------


def _due_ten_minutes_ago(app, browser, task_id: int, since: dt.timedelta) -> dt.datetime:
    """Make the routine fall due (in UTC) ten minutes ago, saved ``since`` ago."""
    _set_timezone(app, browser, "UTC")
    now = utcnow()
    due = now - dt.timedelta(minutes=10)
    _schedule(app, task_id, routine_time=due.time().replace(second=0, microsecond=0))
    _schedule(app, task_id, routine_since=now - since)
    return due


def test_a_due_routine_is_ready_once_on_the_dashboard_however_often_it_loads(browser, app):
    task = _routine(browser, "Stretch")
    # Saved just now: today's 08:00 (or whatever has passed) is not due for a new schedule.
    assert "Stretch" not in _ready(_dashboard(browser))
    assert _attempts(app, task) == []

    due = _due_ten_minutes_ago(app, browser, task, since=dt.timedelta(hours=23))
    for _ in range(3):
        page = _dashboard(browser)
        assert _ready(page).count("Stretch") == 1
    assert _attempts(app, task) == [due.date()]
    assert "routine · " + due.strftime("%a %d %b") in _ready(page)
    card = _routines_card(page)
    assert "Stretch every day at" in card and "missed" not in card


def test_a_week_without_visits_makes_one_attempt_and_shows_six_missed(browser, app):
    task = _routine(browser, "Journal")
    due = _due_ten_minutes_ago(app, browser, task, since=dt.timedelta(days=7, hours=23))
    week_ago = due.date() - dt.timedelta(days=7)
    # The last visit, a week ago, made that day's attempt (and it was done).
    _sql(
        app,
        "INSERT INTO attempts (user_id, task_id, task_version, status, completed_at,"
        " routine_occurrence) SELECT user_id, id, 1, 'completed', now(), :d"
        " FROM tasks WHERE id = :t",
        d=week_ago,
        t=task,
    )
    page = _dashboard(browser)
    assert _ready(page).count("Journal") == 1
    assert _attempts(app, task) == [week_ago, due.date()]  # not six more
    card = _routines_card(page)
    first_missed = week_ago + dt.timedelta(days=1)
    assert f"missed 6× since {first_missed:%a %d %b}" in card
    for offset in range(1, 7):
        assert f"{week_ago + dt.timedelta(days=offset):%a %d %b %Y}" in card
    assert f"{week_ago:%a %d %b %Y}" not in card and f"{due:%a %d %b %Y}" not in card


def test_routines_cost_a_statement_only_when_an_occurrence_falls_due(browser, app):
    task = _routine(browser, "Stretch")

    def statements() -> int:
        status, count = count_statements(app, browser.client, "/")
        assert status == 200
        return count

    # Nothing due: the routine comes with the task list, within the dashboard's five.
    assert statements() == 5
    _due_ten_minutes_ago(app, browser, task, since=dt.timedelta(hours=23))
    assert statements() == 6  # and the new attempt's insert
    # The insert changed the open attempts only: those are read again, the routines' made
    # occurrences were kept with the page.
    assert statements() == 3
    assert statements() == 1  # the session, which brings the cached page along
    assert len(_attempts(app, task)) == 1
    # Every one of those statements is kept compiled by SQLAlchemy (none built per view).
    # Made again once the tasks are read afresh (after a change to them).
    _sql(app, "DELETE FROM attempts WHERE task_id = :t", t=task)
    _schedule(app, task, routine_since=utcnow() - dt.timedelta(hours=22))
    with uncached_statements(app) as found:
        for _ in range(3):  # the full page and the insert, the open part, the stored page
            assert browser.client.get("/").status_code == 200
    assert found == []
    assert len(_attempts(app, task)) == 1
    assert _ready(_dashboard(browser)).count("Stretch") == 1


def test_an_archived_routine_stops_repeating(browser, app):
    task = _routine(browser, "Stretch")
    _due_ten_minutes_ago(app, browser, task, since=dt.timedelta(hours=23))
    browser.post(f"/tasks/{task}/archive")
    page = _dashboard(browser)
    assert "Stretch" not in _ready(page) and 'id="routines-heading"' not in page
    assert _attempts(app, task) == []


def test_a_routine_falling_due_while_the_dashboard_is_cached_shows_at_once(
    browser, app, monkeypatch
):
    task = _routine(browser, "Stretch")
    _set_timezone(app, browser, "UTC")
    now = utcnow()
    soon = (now + dt.timedelta(hours=1)).replace(second=0, microsecond=0)
    _schedule(app, task, routine_time=soon.time(), routine_since=now - dt.timedelta(minutes=1))
    page = _dashboard(browser)
    assert "Stretch" not in _ready(page)
    assert f"next {soon:%a %d %b %Y, %H:%M}" in _routines_card(page)
    assert count_statements(app, browser.client, "/")[1] == 1  # cached until then

    # Two hours later, nothing changed in the data: the cached page has run out.
    later = now + dt.timedelta(hours=2)
    for module in (dashboard_views, page_cache):
        monkeypatch.setattr(module, "utcnow", lambda: later)
    status, statements = count_statements(app, browser.client, "/")
    # The session, the routines' step (which makes the attempt), the open attempts, the
    # cache's upsert: the rest of the page is kept.
    assert (status, statements) == (200, 4)
    page = _dashboard(browser)
    assert _ready(page).count("Stretch") == 1
    assert _attempts(app, task) == [soon.date()]


# --- the task form ------------------------------------------------------------------------


def test_the_form_saves_a_weekday_schedule_and_shows_it_again(browser, app):
    task = _routine(browser, "Gym", repeat="weekdays", repeat_days=["0", "2", "4"])
    row = _sql(
        app,
        "SELECT routine_frequency, routine_weekdays, routine_time, routine_since"
        " FROM tasks WHERE id = :t",
        t=task,
    ).one()
    assert row[:3] == ("weekdays", 0b10101, dt.time(8, 0))
    assert abs(row[3] - utcnow()) < dt.timedelta(minutes=5)
    form = browser.client.get(f"/tasks/{task}/edit").get_data(as_text=True)
    assert re.search(
        r'<input checked id="repeat-2" name="repeat" type="radio" value="weekdays"', form
    )
    checked = re.findall(
        r'<input checked id="repeat_days-\d" name="repeat_days" type="checkbox" value="(\d)"', form
    )
    assert checked == ["0", "2", "4"]
    assert 'value="08:00"' in form
    page = _dashboard(browser)
    assert "Gym Mon, Wed and Fri at 08:00" in _routines_card(page)

    # No longer repeating: the schedule is gone, the task stays.
    response = browser.post(
        f"/tasks/{task}/edit",
        {"name": "Gym", "kind": "one-time", "default_estimate_minutes": "30", "repeat": "none"},
    )
    assert response.status_code == 302
    row = _sql(
        app,
        "SELECT routine_frequency, routine_weekdays, routine_time FROM tasks WHERE id = :t",
        t=task,
    ).one()
    assert tuple(row) == (None, None, None)
    assert 'id="routines-heading"' not in _dashboard(browser)


def test_changing_a_schedule_starts_it_afresh(browser, app):
    task = _routine(browser, "Stretch")
    _schedule(app, task, routine_since=dt.datetime(2026, 1, 1, tzinfo=UTC))
    response = browser.post(
        f"/tasks/{task}/edit",
        {
            "name": "Stretch",
            "kind": "one-time",
            "default_estimate_minutes": "30",
            "repeat": "daily",
            "repeat_time": "09:15",
        },
    )
    assert response.status_code == 302
    since, time, version = _sql(
        app, "SELECT routine_since, routine_time, version FROM tasks WHERE id = :t", t=task
    ).one()
    assert time == dt.time(9, 15) and version == 2
    assert abs(since - utcnow()) < dt.timedelta(minutes=5)


BASE = {"name": "Stretch", "kind": "one-time", "default_estimate_minutes": "30"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"repeat": "weekdays", "repeat_time": "08:00"}, "Choose at least one weekday"),
        ({"repeat": "daily", "repeat_time": ""}, "Enter the time of day as HH:MM"),
        ({"repeat": "daily", "repeat_time": "25:00"}, "Enter the time of day as HH:MM"),
        ({"repeat": "daily", "repeat_time": "8 o'clock"}, "Enter the time of day as HH:MM"),
        ({"repeat": "hourly", "repeat_time": "08:00"}, "Choose how the task repeats"),
        (
            {"repeat": "weekdays", "repeat_days": ["7"], "repeat_time": "08:00"},
            "is not a valid choice",
        ),
        (
            {"repeat": "weekdays", "repeat_days": ["x"], "repeat_time": "08:00"},
            "could not be coerced",
        ),
    ],
)
def test_a_bad_schedule_is_refused_with_a_message_and_changes_nothing(
    browser, app, fields, message
):
    task = browser.create_task("Stretch")
    for path in ("/tasks/new", f"/tasks/{task}/edit"):
        response = browser.post(path, {**BASE, **fields})
        assert response.status_code == 400
        page = html.unescape(response.get_data(as_text=True))
        assert message in page
    assert _sql(app, "SELECT count(*) FROM tasks").scalar_one() == 1
    row = _sql(app, "SELECT routine_frequency, version FROM tasks WHERE id = :t", t=task).one()
    assert tuple(row) == (None, 1)


def test_a_task_that_does_not_repeat_ignores_the_schedule_fields(browser, app):
    task = browser.create_task("Once", repeat="none", repeat_time="99:99")
    assert (
        _sql(app, "SELECT routine_frequency FROM tasks WHERE id = :t", t=task).scalar_one() is None
    )


def test_another_persons_routine_task_gives_404_on_edit(browser, other_browser, app):
    task = _routine(browser, "Stretch")
    assert other_browser.client.get(f"/tasks/{task}/edit").status_code == 404
    response = other_browser.post(f"/tasks/{task}/edit", {**BASE, "repeat": "none"})
    assert response.status_code == 404
    assert _sql(app, "SELECT routine_frequency FROM tasks WHERE id = :t", t=task).scalar_one()


# --- the schedule through time (the service's clock) -----------------------------------


def test_a_week_of_absence_through_the_service(browser, app):
    task = _routine(browser, "Journal")
    _set_timezone(app, browser, "UTC")
    _schedule(app, task, routine_since=_at("UTC", 2026, 1, 5, 7, 0))  # a Monday
    before = _materialise(app, browser, _at("UTC", 2026, 1, 5, 7, 59))
    assert before[0].latest is None and before[0].next_due == _at("UTC", 2026, 1, 5, 8, 0)
    assert _attempts(app, task) == []

    monday = _materialise(app, browser, _at("UTC", 2026, 1, 5, 8, 0))
    assert monday[0].latest == dt.date(2026, 1, 5) and monday[0].missed == []
    assert _attempts(app, task) == [dt.date(2026, 1, 5)]

    week_later = _materialise(app, browser, _at("UTC", 2026, 1, 12, 9, 0))
    assert _attempts(app, task) == [dt.date(2026, 1, 5), dt.date(2026, 1, 12)]
    assert week_later[0].missed == [dt.date(2026, 1, d) for d in range(6, 12)]
    again = _materialise(app, browser, _at("UTC", 2026, 1, 12, 23, 59))
    assert len(_attempts(app, task)) == 2 and again[0].missed == week_later[0].missed


def test_a_weekday_schedule_skips_the_other_days(browser, app):
    task = _routine(browser, "Gym", repeat="weekdays", repeat_days=["0", "2", "4"])
    _set_timezone(app, browser, "UTC")
    _schedule(app, task, routine_since=_at("UTC", 2026, 1, 4, 12, 0))  # a Sunday
    for day in range(5, 12):  # Monday 5 … Sunday 11, every day at noon
        status = _materialise(app, browser, _at("UTC", 2026, 1, day, 12, 0))
        assert status[0].missed == []
    assert _attempts(app, task) == [dt.date(2026, 1, 5), dt.date(2026, 1, 7), dt.date(2026, 1, 9)]
    assert status[0].next_due == _at("UTC", 2026, 1, 12, 8, 0)


def test_two_dashboards_loading_at_the_same_moment_make_one_attempt(browser, app):
    task = _routine(browser, "Stretch")
    _set_timezone(app, browser, "UTC")
    _schedule(app, task, routine_since=_at("UTC", 2026, 1, 5, 7, 0))
    now = _at("UTC", 2026, 1, 5, 8, 30)
    engine = app.extensions["db_engine"]
    user_id = _sql(app, "SELECT id FROM users WHERE username = :u", u=browser.username).scalar()
    schedule = routines.Schedule(
        task, "Stretch", "daily", 127, dt.time(8), now - dt.timedelta(hours=2)
    )
    first = Session(engine)
    # The first request has made the attempt but not committed yet.
    routines.materialise(first, user_id, "UTC", [schedule], now)
    results: list[list[routines.RoutineStatus]] = []

    def second_request() -> None:
        with Session(engine) as db:
            results.append(routines.materialise(db, user_id, "UTC", [schedule], now)[0])
            db.commit()

    thread = threading.Thread(target=second_request)
    thread.start()  # waits on the unique index for the first request's outcome
    first.commit()
    first.close()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert _attempts(app, task) == [dt.date(2026, 1, 5)]
    assert results[0][0].latest == dt.date(2026, 1, 5) and results[0][0].missed == []


DST_CASES = [
    # zone, local time, the day the clocks jump, just before, the instant it falls due
    # Spring forward, 02:30 does not exist: due at 03:00 summer time, the gap's end.
    ("Europe/Berlin", dt.time(2, 30), dt.date(2026, 3, 29), dt.datetime(2026, 3, 29, 1, 0)),
    ("America/New_York", dt.time(2, 15), dt.date(2026, 3, 8), dt.datetime(2026, 3, 8, 7, 0)),
    # Fall back, the time happens twice: due the first time (summer time).
    ("Europe/Berlin", dt.time(2, 30), dt.date(2026, 10, 25), dt.datetime(2026, 10, 25, 0, 30)),
    ("America/New_York", dt.time(1, 30), dt.date(2026, 11, 1), dt.datetime(2026, 11, 1, 5, 30)),
]


@pytest.mark.parametrize(("zone", "time", "day", "due"), DST_CASES, ids=lambda v: str(v))
def test_an_occurrence_in_a_clock_change_falls_due_once(browser, app, zone, time, day, due):
    due = due.replace(tzinfo=UTC)
    task = _routine(browser, "Stretch", repeat_time=f"{time:%H:%M}")
    _set_timezone(app, browser, zone)
    _schedule(app, task, routine_since=due - dt.timedelta(hours=36))
    before = _materialise(app, browser, due - dt.timedelta(seconds=1))
    assert before[0].latest == day - dt.timedelta(days=1)
    assert before[0].next_due == due
    _materialise(app, browser, due)
    # Through the rest of the day (the second pass of a repeated hour included): once.
    for hours in (1, 2, 3, 12):
        status = _materialise(app, browser, due + dt.timedelta(hours=hours))
        assert status[0].missed == []
    assert _attempts(app, task) == [day - dt.timedelta(days=1), day]
    assert status[0].next_due == routines.occurrence_instant(
        day + dt.timedelta(days=1), time, ZoneInfo(zone)
    )


@pytest.mark.parametrize(
    ("zone", "day_after", "due"),
    [
        # 08:00 the day after the change: an hour earlier or later in UTC than before it.
        ("Europe/Berlin", dt.date(2026, 3, 30), dt.datetime(2026, 3, 30, 6, 0)),
        ("Europe/Berlin", dt.date(2026, 10, 26), dt.datetime(2026, 10, 26, 7, 0)),
        ("America/New_York", dt.date(2026, 3, 9), dt.datetime(2026, 3, 9, 12, 0)),
        ("America/New_York", dt.date(2026, 11, 2), dt.datetime(2026, 11, 2, 13, 0)),
    ],
)
def test_a_routine_keeps_its_local_time_across_a_clock_change(browser, app, zone, day_after, due):
    due = due.replace(tzinfo=UTC)
    task = _routine(browser, "Stretch")  # every day at 08:00
    _set_timezone(app, browser, zone)
    _schedule(app, task, routine_since=due - dt.timedelta(hours=36))
    _materialise(app, browser, due - dt.timedelta(minutes=1))
    assert _attempts(app, task) == [day_after - dt.timedelta(days=1)]
    status = _materialise(app, browser, due)
    assert _attempts(app, task) == [day_after - dt.timedelta(days=1), day_after]
    assert status[0].missed == []

"""The dashboard and analytics figures are cached per person, and never shown stale.

Whatever changes a person's tasks or attempts (the app's forms, a legacy import's COPY, a
hand-written UPDATE) shows on the very next view; one person's cached figures never
reach another; a repeated view without a change costs one statement. Both are kept as whole
pages: what differs per request (the CSRF token, flashed messages, the running timer) is
still this request's, and an altered row is never shown.
"""

from __future__ import annotations

import html
import re
import shutil
import time

import pytest
from sqlalchemy import text

import db.legacy
from db.legacy import import_legacy_folder
from releases.loadtest import CSRF
from service import page_cache
from tests.conftest import count_statements
from tests.integration.test_analytics import _attempt
from tests.integration.test_analytics import _kpi
from tests.integration.test_analytics import _page
from tests.integration.test_attempts import OUTCOME
from tests.integration.test_attempts import PREDICTION

EXAMPLES = db.legacy.__file__.rsplit("/", 1)[0] + "/examples"
SIMPLE = (40, 50, 60, (20, 20, 20), 10, 10)  # aversion, expected, relief, loads, minutes, est.


def _statements(app, client, path: str) -> int:
    status, count = count_statements(app, client, path)
    assert status == 200
    return count


def _dashboard(client) -> str:
    response = client.get("/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _between(page: str, start: str, end: str) -> str:
    return html.unescape(page[page.index(start) : page.index(end)])


def _done_counts(page: str) -> dict[str, int]:
    """Task name → "done N×" from the dashboard's task list."""
    tasks = _between(page, 'id="tasks-heading"', 'id="recent-heading"')
    rows = re.findall(
        r'<span class="task-name">([^<]*)</span>\s*<span class="muted">[^<]*done (\d+)×', tasks
    )
    return {name: int(count) for name, count in rows}


def _sql(app, statement: str, **params):
    with app.extensions["db_engine"].begin() as conn:
        return conn.execute(text(statement), params)


def test_a_repeated_view_is_served_from_the_cache_with_one_statement(browser, app):
    task = browser.create_task("Dishes")
    _attempt(browser, task, SIMPLE)
    for path in ("/", "/analytics"):
        first = _statements(app, browser.client, path)
        again = _statements(app, browser.client, path)
        assert first <= 5
        assert again == 1  # the session lookup, which brings the cached figures along
        assert browser.client.get(path).get_data(as_text=True).count("Dishes") >= 1


def test_completing_an_attempt_shows_at_once_on_dashboard_and_analytics(browser, app):
    task = browser.create_task("Dishes")
    _attempt(browser, task, SIMPLE)
    assert _done_counts(_dashboard(browser.client)) == {"Dishes": 1}
    assert _kpi(_page(browser.client), "Relief") == "60"

    browser.post(f"/tasks/{task}/initialize", PREDICTION)
    attempt = browser.latest_id("attempts")
    ready = _between(_dashboard(browser.client), 'id="ready-heading"', 'id="week-heading"')
    assert "Dishes" in ready  # the new open attempt, not the cached list without it
    browser.post(f"/attempts/{attempt}/complete", OUTCOME)  # relief 90, 25 minutes

    page = _dashboard(browser.client)
    assert _done_counts(page) == {"Dishes": 2}
    assert "Dishes" not in _between(page, 'id="ready-heading"', 'id="week-heading"')
    assert "35 min" in _between(page, 'id="week-heading"', 'id="rec-heading"')  # 10 + 25
    analytics = _page(browser.client)
    assert _kpi(analytics, "Relief") == "75"  # (60 + 90) / 2
    assert "2 completed of 2 finished" in analytics


def test_editing_archiving_and_cancelling_show_at_once(browser, app):
    task = browser.create_task("Dishes")
    _attempt(browser, task, SIMPLE)
    _dashboard(browser.client)
    _page(browser.client)
    response = browser.post(
        f"/tasks/{task}/edit",
        {"name": "Washing up", "kind": "one-time", "default_estimate_minutes": "30"},
    )
    assert response.status_code == 302
    assert _done_counts(_dashboard(browser.client)) == {"Washing up": 1}
    ranked = html.unescape(_page(browser.client))
    assert "Washing up" in ranked and "Dishes" not in ranked

    other = browser.create_task("Taxes")
    browser.post(f"/tasks/{other}/initialize", PREDICTION)
    attempt = browser.latest_id("attempts")
    _page(browser.client)
    browser.post(f"/attempts/{attempt}/cancel", {"reason": "Later", "completion_percent": "0"})
    assert "1 completed of 2 finished" in _page(browser.client)

    browser.post(f"/tasks/{other}/archive")
    assert "Taxes" not in _done_counts(_dashboard(browser.client))
    assert _kpi(_page(browser.client), "Active tasks") == "1"


def test_a_change_made_directly_in_the_database_shows_at_once(browser, app):
    task = browser.create_task("Dishes")
    _attempt(browser, task, SIMPLE)
    assert _kpi(_page(browser.client), "Relief") == "60"
    _dashboard(browser.client)
    _sql(app, "UPDATE attempts SET actual_relief = 20")
    assert _kpi(_page(browser.client), "Relief") == "20"
    _sql(app, "DELETE FROM attempts")
    assert "Nothing to chart yet" in _page(browser.client)
    assert _done_counts(_dashboard(browser.client)) == {"Dishes": 0}


def test_two_people_never_see_each_others_cached_figures(browser, other_browser, app):
    mine = browser.create_task("Dishes")
    _attempt(browser, mine, SIMPLE)
    theirs = other_browser.create_task("Secret plan")
    _attempt(other_browser, theirs, (90, 10, 5, (90, 90, 90), 300, 10))
    for _ in range(2):  # the second round is served from the cache
        my_page, their_page = _dashboard(browser.client), _dashboard(other_browser.client)
        assert _done_counts(my_page) == {"Dishes": 1} and "Secret plan" not in my_page
        assert _done_counts(their_page) == {"Secret plan": 1} and "Dishes" not in their_page
        my_analytics, their_analytics = _page(browser.client), _page(other_browser.client)
        assert _kpi(my_analytics, "Relief") == "60" and "Secret plan" not in my_analytics
        assert _kpi(their_analytics, "Relief") == "5" and "Dishes" not in their_analytics


def test_chart_choices_and_time_zone_are_part_of_what_is_cached(browser, app):
    task = browser.create_task("Dishes")
    _attempt(browser, task, SIMPLE)
    # Completed at 01:00 UTC today: the same day in Tokyo, the day before in Los Angeles.
    today = "(now() AT TIME ZONE 'UTC')::date"
    _sql(app, f"UPDATE attempts SET completed_at = ({today} + time '01:00') AT TIME ZONE 'UTC'")
    utc_day = _sql(app, f"SELECT to_char({today}, 'Dy DD Mon YYYY')").scalar()
    la_day = _sql(app, f"SELECT to_char({today} - 1, 'Dy DD Mon YYYY')").scalar()

    def latest_day() -> str:
        page = html.unescape(_page(browser.client))
        return re.search(r"<tbody><tr><td>([^<]+)</td><td>1</td>", page).group(1)

    browser.post("/account/timezone", {"timezone": "Asia/Tokyo"})
    assert latest_day() == utc_day
    browser.post("/account/timezone", {"timezone": "America/Los_Angeles"})
    assert latest_day() == la_day

    median = html.unescape(_page(browser.client, "?measure=relief&aggregation=median"))
    total = html.unescape(_page(browser.client, "?measure=minutes_spent&aggregation=sum"))
    assert "Median relief per day" in median and "Sum minutes spent per day" in total
    assert "Sum minutes spent per day" in html.unescape(
        _page(browser.client, "?measure=minutes_spent&aggregation=sum")
    )


def test_a_legacy_import_shows_on_dashboard_and_analytics_at_once(browser, app, tmp_path):
    assert "No tasks yet" in _dashboard(browser.client)
    assert "Nothing to chart yet" in _page(browser.client)
    user_id = _sql(app, "SELECT id FROM users WHERE username = 'alice'").scalar()
    folder = tmp_path / "v4-basic"
    shutil.copytree(f"{EXAMPLES}/v4-basic", folder)
    report = import_legacy_folder(app.extensions["db_engine"], folder, user_id=user_id)
    assert report.status == "imported", report.render_text()

    # What the database holds, counted independently of the pages' queries.
    expected = dict(
        _sql(
            app,
            "SELECT t.name, count(a.id) FILTER (WHERE a.status = 'completed')"
            " FROM tasks t LEFT JOIN attempts a ON a.task_id = t.id"
            " WHERE t.archived_at IS NULL GROUP BY t.name",
        ).all()
    )
    completed, finished, relief = _sql(
        app,
        "SELECT count(*) FILTER (WHERE status = 'completed'),"
        " count(*) FILTER (WHERE status IN ('completed', 'cancelled')),"
        " round(avg(actual_relief) FILTER (WHERE status = 'completed'))"
        " FROM attempts",
    ).one()
    assert completed > 0
    assert _done_counts(_dashboard(browser.client)) == expected
    page = _page(browser.client)
    assert f"{completed} completed of {finished} finished" in page
    assert _kpi(page, "Active tasks") == str(len(expected))
    assert _kpi(page, "Relief") == str(relief)


def test_deleting_an_account_deletes_its_cached_figures(browser, app):
    task = browser.create_task("Dishes")
    _attempt(browser, task, SIMPLE)
    _dashboard(browser.client)
    _page(browser.client)
    assert _sql(app, "SELECT count(*) FROM page_cache").scalar() == 2
    _sql(app, "DELETE FROM users")
    assert _sql(app, "SELECT count(*) FROM page_cache").scalar() == 0


def _timer_minutes(page: str) -> float:
    found = re.search(r'class="elapsed" data-base-minutes="([0-9.]+)"', page)
    assert found, "no running timer on the dashboard"
    return float(found.group(1))


def test_a_cached_dashboard_carries_the_current_sessions_csrf_token(browser, app):
    task = browser.create_task("Dishes")
    _dashboard(browser.client)  # computed and kept
    assert browser.post("/signout").status_code == 302
    signin = browser.post("/signin", {"username": browser.username, "key": browser.key})
    assert signin.status_code == 302
    assert _statements(app, browser.client, "/") == 1  # from the cache, in a new session
    token = CSRF.search(_dashboard(browser.client))
    assert token
    # A one-button form of the cached page works with the token it carries.
    response = browser.client.post(
        f"/tasks/{task}/quick-initialize", data={"csrf_token": token.group(1)}
    )
    assert response.status_code == 302
    assert "is ready to start" in _dashboard(browser.client)


def test_a_flashed_message_shows_once_on_a_cached_dashboard(browser, app):
    browser.create_task("Dishes")
    _dashboard(browser.client)
    response = browser.post("/recommendations", {"measures": "relief", "max_minutes": "-5"})
    assert response.status_code == 302
    assert _statements(app, browser.client, "/") == 1  # the message did not cost a render
    browser.post("/recommendations", {"measures": "relief", "max_minutes": "-5"})
    shown = _dashboard(browser.client)
    assert "Enter minutes from 0 to 100,000." in shown
    assert "Enter minutes from 0 to 100,000." not in _dashboard(browser.client)


def test_the_running_timer_of_a_cached_dashboard_is_as_of_each_view(browser, app):
    task = browser.create_task("Dishes")
    browser.post(f"/tasks/{task}/quick-initialize")
    browser.post(f"/attempts/{browser.latest_id('attempts')}/start")
    first = _timer_minutes(_dashboard(browser.client))
    time.sleep(0.2)
    assert _statements(app, browser.client, "/") == 1
    later = _timer_minutes(_dashboard(browser.client))
    assert later > first


@pytest.mark.parametrize("page", ["dashboard.index", "analytics.index"])
def test_an_altered_cached_page_is_never_shown(browser, app, page):
    task = browser.create_task("Dishes")
    _attempt(browser, task, SIMPLE)  # analytics stores nothing for an empty account
    path = "/" if page == "dashboard.index" else "/analytics"
    assert _statements(app, browser.client, path) > 1  # computed, and kept
    changed = _sql(
        app,
        "UPDATE page_cache SET body = replace(body, 'Dishes',"
        " '<script>alert(1)</script>') WHERE page = :page",
        page=page,
    )
    assert changed.rowcount == 1
    shown = browser.client.get(path).get_data(as_text=True)
    assert "<script>alert(1)" not in shown
    assert "Dishes" in shown


def _versions(app, username: str) -> tuple[int, int]:
    row = _sql(
        app, "SELECT data_version, history_version FROM users WHERE username = :u", u=username
    ).one()
    return row[0], row[1]


def test_changes_to_open_attempts_only_leave_the_history_version_alone(browser, app):
    task = browser.create_task("Dishes")
    before = _versions(app, browser.username)
    steps = [
        (f"/tasks/{task}/initialize", PREDICTION, False),
        ("/attempts/{a}/start", {}, False),
        ("/attempts/{a}/pause", {"reason": "Phone call"}, False),
        ("/attempts/{a}/start", {}, False),
        ("/attempts/{a}/complete", OUTCOME, True),
        (f"/tasks/{task}/initialize", PREDICTION, False),
        ("/attempts/{a}/cancel", {"reason": "Later", "completion_percent": "0"}, True),
        (f"/tasks/{task}/edit", {"name": "Washing up", "kind": "routine"}, True),
    ]
    for path, data, history in steps:
        attempt = browser.latest_id("attempts") if "{a}" in path else None
        assert browser.post(path.format(a=attempt), data).status_code == 302, path
        after = _versions(app, browser.username)
        # Every change makes cached pages stale (once per statement that wrote: an attempt
        # and its emotions are two).
        assert after[0] > before[0], path
        assert (after[1] > before[1]) == history, path
        before = after


def test_a_bulk_write_bumps_each_persons_history_by_what_it_touched(browser, other_browser, app):
    mine = browser.create_task("Dishes")
    theirs = other_browser.create_task("Taxes")
    me, them = _versions(app, browser.username), _versions(app, other_browser.username)
    # One statement for two people: only open attempts for one, a completed one for the other.
    _sql(
        app,
        "INSERT INTO attempts (user_id, task_id, task_version, status, completed_at,"
        " minutes_spent) SELECT user_id, id, version,"
        " CASE WHEN id = :theirs THEN 'completed' ELSE 'initialized' END,"
        " CASE WHEN id = :theirs THEN now() END, 10 FROM tasks WHERE id IN (:mine, :theirs)",
        mine=mine,
        theirs=theirs,
    )
    assert _versions(app, browser.username) == (me[0] + 1, me[1])
    assert _versions(app, other_browser.username) == (them[0] + 1, them[1] + 1)
    _sql(app, "DELETE FROM attempts WHERE task_id = :mine", mine=mine)
    assert _versions(app, browser.username) == (me[0] + 2, me[1])


def test_after_starting_an_attempt_only_the_open_attempts_are_read_again(browser, app):
    task = browser.create_task("Dishes")
    _attempt(browser, task, SIMPLE)
    other = browser.create_task("Taxes")
    full = _statements(app, browser.client, "/")
    browser.post(f"/tasks/{other}/initialize", PREDICTION)
    # The session lookup, the open attempts and the cache write; not the history's reads.
    assert _statements(app, browser.client, "/") == 3 < full
    page = _dashboard(browser.client)
    ready = _between(page, 'id="ready-heading"', 'id="week-heading"')
    assert "Taxes" in ready and "Dishes" not in ready
    assert _done_counts(page) == {"Dishes": 1, "Taxes": 0}
    assert "10 min" in _between(page, 'id="week-heading"', 'id="rec-heading"')

    # The new part's Start button carries this session's token and works.
    attempt = browser.latest_id("attempts")
    token = CSRF.search(ready)
    assert token
    response = browser.client.post(
        f"/attempts/{attempt}/start", data={"csrf_token": token.group(1)}
    )
    assert response.status_code == 302
    assert _statements(app, browser.client, "/") == 3
    page = _dashboard(browser.client)
    assert "Taxes" in _between(page, 'id="current-heading"', 'id="ready-heading"')
    assert _timer_minutes(page) >= 0
    assert _statements(app, browser.client, "/") == 1  # and kept whole again

    browser.post(f"/attempts/{attempt}/complete", OUTCOME)  # 25 minutes: history changed
    assert _statements(app, browser.client, "/") == full
    page = _dashboard(browser.client)
    assert "Taxes" not in _between(page, 'id="current-heading"', 'id="week-heading"')
    assert _done_counts(page) == {"Dishes": 1, "Taxes": 1}
    assert "35 min" in _between(page, 'id="week-heading"', 'id="rec-heading"')


def test_analytics_stay_cached_until_an_attempt_is_finished(browser, app):
    task = browser.create_task("Dishes")
    _attempt(browser, task, SIMPLE)
    assert "1 completed of 1 finished" in _page(browser.client)
    browser.post(f"/tasks/{task}/initialize", PREDICTION)
    attempt = browser.latest_id("attempts")
    assert _statements(app, browser.client, "/analytics") == 1
    browser.post(f"/attempts/{attempt}/start")
    assert _statements(app, browser.client, "/analytics") == 1
    browser.post(f"/attempts/{attempt}/cancel", {"reason": "Later", "completion_percent": "0"})
    assert _statements(app, browser.client, "/analytics") > 1
    assert "1 completed of 2 finished" in _page(browser.client)


def _bumping_triggers(app) -> dict[str, set[str]]:
    """Table → the statements (insert, update, delete) after which a trigger in the
    database calls ``bump_data_version()``, the function that bumps the person's versions."""
    rows = _sql(
        app,
        "SELECT event_object_table, lower(event_manipulation) FROM information_schema.triggers"
        " WHERE trigger_schema = 'public' AND action_timing = 'AFTER'"
        " AND action_statement = 'EXECUTE FUNCTION bump_data_version()'",
    )
    found: dict[str, set[str]] = {}
    for table, event in rows:
        found.setdefault(table, set()).add(event)
    return found


def _rule_broken(app) -> dict[str, set[str]]:
    """What :data:`page_cache.INVALIDATED_BY` declares that no trigger does."""
    triggers = _bumping_triggers(app)
    declared = page_cache.INVALIDATED_BY
    return {
        table: missing
        for table, events in declared.items()
        if (missing := set(events) - triggers.get(table, set()))
    }


def test_the_triggers_in_the_database_are_the_page_caches_declared_rule(app):
    """After ``alembic upgrade head`` (the test database is made so), every table and
    statement in INVALIDATED_BY has its trigger, no other table has one, and the function
    they call bumps both versions."""
    assert _rule_broken(app) == {}
    triggers = _bumping_triggers(app)
    assert {t: set(e) for t, e in page_cache.INVALIDATED_BY.items()} == triggers
    body = _sql(app, "SELECT prosrc FROM pg_proc WHERE proname = 'bump_data_version'").scalar()
    assert "data_version = u.data_version +" in body
    assert "history_version = u.history_version +" in body


def test_a_dropped_trigger_breaks_the_rule_and_leaves_a_page_stale(browser, app):
    """What the check above guards against, in this test's scratch database: without the
    trigger, a renamed task stays under its old name on the cached dashboard."""
    task = browser.create_task("Dishes")
    _attempt(browser, task, SIMPLE)
    _sql(app, "DROP TRIGGER tasks_bump_data_version_update ON tasks")
    assert _rule_broken(app) == {"tasks": {"update"}}
    assert _done_counts(_dashboard(browser.client)) == {"Dishes": 1}
    _sql(app, "UPDATE tasks SET name = 'Laundry' WHERE id = :id", id=task)
    assert _done_counts(_dashboard(browser.client)) == {"Dishes": 1}  # stale
    _sql(
        app,
        "UPDATE users SET data_version = data_version + 1, history_version = history_version + 1",
    )
    assert _done_counts(_dashboard(browser.client)) == {"Laundry": 1}


def test_every_table_a_cached_page_reads_invalidates_it_when_it_changes(browser, app):
    """What the dashboard and analytics read when they compute their figures afresh (the
    SQL they send, its FROM and JOIN tables): each is in the page cache's rule
    INVALIDATED_BY, whose triggers the test above checks, or is declared in
    READ_WITHOUT_INVALIDATING with its reason: no change can leave a cached page stale."""
    from sqlalchemy import event

    response = browser.post("/groups", {"name": "Home"})
    assert response.status_code == 302
    group = browser.latest_id("task_groups")
    task = browser.create_task("Write report", new_emotions="Calm", groups=[str(group)])
    browser.post(f"/tasks/{task}/initialize", PREDICTION)
    browser.post(f"/attempts/{browser.latest_id('attempts')}/complete", OUTCOME)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    engine = app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        for path in ("/", "/analytics", f"/analytics?group={group}"):
            _sql(app, "UPDATE users SET data_version = data_version + 1")  # recompute
            assert browser.client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert _sql(app, "SELECT count(*) FROM page_cache").scalar() == 2  # both pages stored
    read = set()
    for statement in statements:
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "(")):
            read |= set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)\b", statement, re.IGNORECASE))
    tables = {
        row[0] for row in _sql(app, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    read = {name.lower() for name in read} & tables  # not set-returning functions or CTEs
    assert {"tasks", "attempts", "attempt_emotions", "emotions", "task_group_tasks"} <= read
    declared = set(page_cache.INVALIDATED_BY) | set(page_cache.READ_WITHOUT_INVALIDATING)
    assert read - declared == set()
    assert set(page_cache.READ_WITHOUT_INVALIDATING) <= tables
    assert not set(page_cache.INVALIDATED_BY) & set(page_cache.READ_WITHOUT_INVALIDATING)


def test_a_stored_analytics_page_is_filled_in_and_never_stands_in_for_a_message(browser, app):
    task = browser.create_task("Dishes")
    _attempt(browser, task, SIMPLE)
    computed = _page(browser.client)  # computed, and kept whole
    assert _statements(app, browser.client, "/analytics") == 1  # the stored page
    stored = _page(browser.client)
    assert _kpi(stored, "Relief") == _kpi(computed, "Relief") == "60"
    token = CSRF.search(stored)
    assert token and "hole" not in stored  # every hole filled in for this request
    # A hand-edited URL gets its message, not the page kept for the defaults.
    response = browser.client.get("/analytics?window=7")
    assert response.status_code == 400
    assert "Choose 30, 60 or 90 days." in response.get_data(as_text=True)
    response = browser.client.get("/analytics?group=abc")
    assert response.status_code == 400
    assert "Choose one of your groups." in response.get_data(as_text=True)
    # The stored page's sign-out form carries this session's token: it signs out.
    response = browser.client.post("/signout", data={"csrf_token": token.group(1)})
    assert response.status_code == 302
    assert browser.client.get("/analytics").status_code == 302  # to the sign-in page

"""The history page: every attempt, newest first, a page at a time; filters, search, isolation.

And cancelling with a kind of reason (category): shown in history and counted by analytics.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text

from db.models import SEARCH_CONFIG
from db.models import TASK_WORDS
from db.models import Task
from service.history import queries
from service.paging import Cursor
from tests.conftest import count_statements
from tests.integration.test_attempts import OUTCOME
from tests.integration.test_attempts import PREDICTION

UTC = dt.timezone.utc
ROW_LINK = re.compile(r'<tr><td><a href="/attempts/(\d+)">')


def _sql(app, statement: str, **params) -> list[Any]:
    with app.extensions["db_engine"].begin() as conn:
        result = conn.execute(text(statement), params)
        return list(result) if result.returns_rows else []


def _initialize(browser, task_id: int, **fields: str) -> int:
    response = browser.post(f"/tasks/{task_id}/initialize", {**PREDICTION, **fields})
    assert response.status_code == 302, response.get_data(as_text=True)
    return browser.latest_id("attempts")


def _complete(browser, attempt_id: int, **fields: str) -> None:
    response = browser.post(f"/attempts/{attempt_id}/complete", {**OUTCOME, **fields})
    assert response.status_code == 302, response.get_data(as_text=True)


def _cancel(browser, attempt_id: int, category: str = "", reason: str = "") -> Any:
    data = {"category": category, "reason": reason, "completion_percent": "0"}
    return browser.post(f"/attempts/{attempt_id}/cancel", data)


def _begun_at(app, attempt_id: int, at: dt.datetime) -> None:
    _sql(app, "UPDATE attempts SET initialized_at = :at WHERE id = :id", at=at, id=attempt_id)


def _get(client, query: str = "", status: int = 200) -> str:
    response = client.get(f"/history{query}")
    page = response.get_data(as_text=True)
    assert response.status_code == status, page
    return page


def _listed(page: str) -> list[int]:
    """The attempts the page lists, in order (each row starts with a link to its attempt)."""
    return [int(i) for i in ROW_LINK.findall(page)]


def _link(page: str, label: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)"(?: rel="\w+")?>{label}</a>', page)
    return html.unescape(match.group(1)) if match else None


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _seed_attempts(app, user: str, task_name: str, stamps: list[dt.datetime]) -> list[int]:
    """Attempts of ``user``'s task of that name (made if need be) begun at ``stamps``,
    straight into the database (a hundred through the forms would only make the test
    slow); returns their ids."""
    rows = _sql(
        app,
        "SELECT t.id, t.user_id FROM tasks t JOIN users u ON u.id = t.user_id"
        " WHERE u.username = :user AND t.name = :name",
        name=task_name,
        user=user,
    ) or _sql(
        app,
        "INSERT INTO tasks (user_id, name) SELECT id, :name FROM users WHERE username = :user"
        " RETURNING id, user_id",
        name=task_name,
        user=user,
    )
    task_id, user_id = rows[0]
    ids = []
    for at in stamps:
        inserted = _sql(
            app,
            "INSERT INTO attempts (user_id, task_id, task_version, status, initialized_at)"
            " VALUES (:u, :t, 1, 'initialized', :at) RETURNING id",
            u=user_id,
            t=task_id,
            at=at,
        )
        ids.append(inserted[0][0])
    return ids


def _newest_first(app, user: str) -> list[int]:
    rows = _sql(
        app,
        "SELECT a.id FROM attempts a JOIN users u ON u.id = a.user_id WHERE u.username = :user"
        " ORDER BY a.initialized_at DESC, a.id DESC",
        user=user,
    )
    return [r[0] for r in rows]


# --- what the page shows ---------------------------------------------------------------


def test_history_needs_a_signed_in_person(client):
    response = client.get("/history")
    assert response.status_code == 302
    assert "/signin" in response.headers["Location"]


def test_every_attempt_newest_first_with_its_status_and_a_link_to_it(browser, app):
    taxes = browser.create_task("Taxes")
    dishes = browser.create_task("Dishes")
    done = _initialize(browser, taxes)
    _complete(browser, done, actual_relief="77")
    dropped = _initialize(browser, dishes)
    assert _cancel(browser, dropped, "deferred_to_plan", "Dishwasher first").status_code == 302
    waiting = _initialize(browser, dishes)
    base = dt.datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    for hours, attempt in ((1, done), (3, dropped), (2, waiting)):
        _begun_at(app, attempt, base + dt.timedelta(hours=hours))

    page = _get(browser.client)

    assert _listed(page) == [dropped, waiting, done]
    text_ = _text(page)
    assert "Put off to a later plan: Dishwasher first" in text_
    assert "Relief 77" in text_
    assert re.findall(r'badge status-(\w+)">', page) == [
        "cancelled",
        "initialized",
        "completed",
    ]
    opened = browser.client.get(f"/attempts/{dropped}")
    assert opened.status_code == 200
    assert "Put off to a later plan: Dishwasher first" in _text(opened.get_data(as_text=True))


def test_history_is_in_the_navigation_and_under_recently_completed(browser):
    page = browser.client.get("/").get_data(as_text=True)
    nav = page[page.index('<nav aria-label="Main">') : page.index("</nav>")]
    assert '<a href="/history">History</a>' in nav
    recent = page[page.index('id="recent-heading"') :]
    recent = recent[: recent.index("</section>")]
    assert '<a href="/history">All history</a>' in recent


def test_a_new_person_is_told_how_history_fills(browser):
    page = _get(browser.client)
    assert "No attempts yet" in _text(page)
    assert _link(page, "Older") is None and _link(page, "Newer") is None


# --- keyset pagination ---------------------------------------------------------------


def test_older_and_newer_walk_every_attempt_exactly_once_even_with_equal_times(browser, app):
    # 123 attempts begun at only 7 distinct moments: the id has to break the ties.
    base = dt.datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    stamps = [base + dt.timedelta(minutes=15 * (n % 7)) for n in range(123)]
    _seed_attempts(app, "alice", "Stretch", stamps)
    expected = _newest_first(app, "alice")
    statements: list[str] = []
    engine = app.extensions["db_engine"]
    record = lambda *args: statements.append(args[2])  # noqa: E731

    event.listen(engine, "before_cursor_execute", record)
    try:
        pages, page = [], _get(browser.client)
        while True:
            pages.append(_listed(page))
            older = _link(page, "Older")
            if older is None:
                break
            page = browser.client.get(older).get_data(as_text=True)
        # And back again, from the oldest page.
        back = [pages[-1]]
        while (newer := _link(page, "Newer")) is not None:
            page = browser.client.get(newer).get_data(as_text=True)
            back.append(_listed(page))
    finally:
        event.remove(engine, "before_cursor_execute", record)

    walked = [attempt for listed in pages for attempt in listed]
    assert walked == expected  # every one, once, newest first
    assert [len(p) for p in pages] == [50, 50, 23]
    assert back == pages[::-1]
    assert _link(page, "Newest") is not None and _link(page, "Newer") is None
    assert statements and not any("OFFSET" in s.upper() for s in statements)


def test_pages_keep_the_filters(browser, app):
    base = dt.datetime(2026, 2, 1, tzinfo=UTC)
    stretch = _seed_attempts(app, "alice", "Stretch", [base] * 60)
    _seed_attempts(app, "alice", "Swim", [base + dt.timedelta(days=1)] * 10)
    task_id = _sql(app, "SELECT id FROM tasks WHERE name = 'Stretch'")[0][0]

    first = _get(browser.client, f"?task={task_id}&status=open")
    second = browser.client.get(_link(first, "Older")).get_data(as_text=True)

    assert sorted(_listed(first) + _listed(second)) == sorted(stretch)
    assert _link(second, "Older") is None


# --- filters --------------------------------------------------------------------------


def test_filters_by_task_status_and_days_in_the_persons_time_zone(browser, app):
    gym, taxes = browser.create_task("Gym"), browser.create_task("Taxes")
    finished = _initialize(browser, gym)
    _complete(browser, finished)
    dropped = _initialize(browser, gym)
    _cancel(browser, dropped, "other", "Knee hurts")
    running = _initialize(browser, taxes)
    browser.post(f"/attempts/{running}/start")
    ready = _initialize(browser, taxes)
    # alice lives in Berlin (UTC+1 in March): 23:30 UTC on 1 March is 2 March for her.
    _begun_at(app, finished, dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    _begun_at(app, dropped, dt.datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    _begun_at(app, running, dt.datetime(2026, 3, 3, 8, 0, tzinfo=UTC))
    _begun_at(app, ready, dt.datetime(2026, 3, 4, 22, 59, tzinfo=UTC))

    def listed(query: str) -> set[int]:
        return set(_listed(_get(browser.client, query)))

    assert listed(f"?task={gym}") == {finished, dropped}
    assert listed("?status=open") == {running, ready}
    assert listed("?status=completed") == {finished}
    assert listed("?status=cancelled") == {dropped}
    assert listed("?start=2026-03-02") == {dropped, running, ready}
    assert listed("?end=2026-03-01") == {finished}
    assert listed("?start=2026-03-02&end=2026-03-03") == {dropped, running}
    assert listed("?start=2026-03-04&end=2026-03-04") == {ready}  # 23:59 local on the 4th
    assert listed(f"?task={taxes}&status=open&start=2026-03-04") == {ready}
    assert "No attempts match these filters." in _text(_get(browser.client, "?start=2027-01-01"))


def test_search_finds_words_by_their_start_in_names_descriptions_notes_and_reasons(browser, app):
    taxes = browser.create_task("Quarterly taxes", description="Bring the receipts folder")
    call = browser.create_task("Call grandma")
    by_name = _initialize(browser, taxes)
    by_notes = _initialize(browser, call)
    _complete(browser, by_notes, notes="She talked about the allotment")
    by_reason = _initialize(browser, call)
    _cancel(browser, by_reason, "failed_to_complete", "Phone battery died")
    by_description = _initialize(
        browser, call, description="Ask about the Überraschung <draft plan>"
    )

    def found(words: str) -> set[int]:
        return set(_listed(_get(browser.client, f"?q={words}")))

    assert found("quart") == {by_name}  # the task's name
    assert found("RECEI") == {by_name}  # the task's description, any case
    assert found("allot") == {by_notes}  # the attempt's notes
    assert found("batt") == {by_reason}  # the cancel reason
    assert found("überr") == {by_description}  # the attempt's description, not ASCII
    assert found("draft") == {by_description}  # between angle brackets too
    assert found("grandma") == {by_notes, by_reason, by_description}
    assert found("grand phone") == {by_reason}  # every word must be found
    assert found("taxes receipts") == {by_name}
    assert found("xylophone") == set()
    # Query syntax typed in the box is just punctuation between words.
    assert found("batt%27%3A*%20%26%20!(") == {by_reason}


# --- isolation and bad input ----------------------------------------------------------


def test_another_persons_attempts_never_show_even_when_asked_for(browser, other_browser, app):
    mine = browser.create_task("My plants")
    _complete(browser, _initialize(browser, mine))
    theirs = other_browser.create_task("Secret diary", description="hidden words")
    their_attempt = _initialize(other_browser, theirs, description="private plans")
    _cancel(other_browser, their_attempt, "other", "confidential reason")

    everything = _get(browser.client)
    assert "Secret diary" not in everything
    assert their_attempt not in _listed(everything)
    for words in ("secret", "hidden", "private", "confid"):
        assert _listed(_get(browser.client, f"?q={words}")) == []
    asked = _get(browser.client, f"?task={theirs}", status=400)
    assert "Choose one of your tasks." in asked
    assert _listed(asked) == [] and "Secret diary" not in asked
    # Their attempt's cursor as a page link shows alice's own attempts only.
    at = _sql(app, "SELECT initialized_at FROM attempts WHERE id = :i", i=their_attempt)[0][0]
    cursor = Cursor(at + dt.timedelta(hours=1), their_attempt).text()
    assert "Secret diary" not in _get(browser.client, f"?before={cursor}")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?start=2026-13-40", "Enter a real date, like 2026-03-31."),
        ("?end=yesterday", "Enter a real date, like 2026-03-31."),
        ("?start=0001-01-01", "Choose a date from 1900 on."),
        ("?start=2026-03-05&end=2026-03-01", "The end date is before the start date."),
        ("?status=sleeping", "Choose one of the statuses."),
        ("?task=abc", "Choose one of your tasks."),
        ("?task=99999999999999999999999", "Choose one of your tasks."),
        ("?task=-1", "Choose one of your tasks."),
        ("?task=999999999", "Choose one of your tasks."),
        ("?q=%21%21%21", "Type a word (letters or digits) to search for."),
        ("?q=" + "a" * 201, "At most 200 characters."),
        ("?q=%00tax", "NUL"),
        ("?before=not-a-cursor", "here are your newest attempts"),
        ("?after=1_2_3", "here are your newest attempts"),
        ("?before=999999999999999999_1", "here are your newest attempts"),
        ("?before=1_99999999999999999999", "here are your newest attempts"),
    ],
)
def test_unusable_filters_get_a_message_and_the_rest_of_the_page(browser, query, message):
    _complete(browser, _initialize(browser, browser.create_task("Walk the dog")))

    page = _get(browser.client, query, status=400)

    assert message in html.unescape(page)
    if "task=" not in query:  # the unusable filter is left out: the attempt still shows
        assert len(_listed(page)) == 1


def test_far_dates_and_repeated_parameters_are_fine(browser):
    attempt = _initialize(browser, browser.create_task("Walk the dog"))
    assert _listed(_get(browser.client, "?start=1900-01-01&end=9999-12-31")) == [attempt]
    assert _listed(_get(browser.client, "?status=open&status=cancelled")) == [attempt]


# --- cost -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["", "?q=stretch", "?status=open&start=2026-01-01&end=2026-12-31", "?task={task}&q=str"],
)
def test_a_page_is_two_statements_whatever_the_filters_and_the_data(browser, app, query):
    base = dt.datetime(2026, 1, 5, tzinfo=UTC)
    _seed_attempts(app, "alice", "Stretch", [base] * 3)
    task = _sql(app, "SELECT id FROM tasks WHERE name = 'Stretch'")[0][0]
    path = f"/history{query.format(task=task)}"
    status, small = count_statements(app, browser.client, path)
    assert status == 200
    _seed_attempts(app, "alice", "Stretch", [base + dt.timedelta(minutes=n) for n in range(300)])
    older = _link(browser.client.get(path).get_data(as_text=True), "Older")
    assert older is not None

    status, large = count_statements(app, browser.client, path)
    status_older, paged = count_statements(app, browser.client, older)

    assert (status, status_older) == (200, 200)
    # The person (with the session) and the page with the person's tasks.
    assert small == large == paged == 2


SEED_MANY = """
INSERT INTO tasks (user_id, name, description)
SELECT u.id, 'Chore ' || n, 'Plain words ' || n FROM users u, generate_series(1, 50) n;
INSERT INTO attempts (user_id, task_id, task_version, status, initialized_at, notes)
SELECT t.user_id, t.id, 1, 'initialized', now() - (n || ' minutes')::interval,
       CASE WHEN n = 100 THEN 'saw a zebra' ELSE 'nothing special' END
FROM tasks t, generate_series(1, 100) n;
ANALYZE attempts;
ANALYZE tasks
"""


def _plan(app, statement: Any, params: dict[str, Any], setting: str = "") -> str:
    with app.extensions["db_engine"].connect() as conn:
        if setting:
            conn.exec_driver_sql(setting)
        compiled = statement.compile(conn)
        plan = conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, COSTS OFF) " + str(compiled), compiled.construct_params(params)
        ).scalars()
        return "\n".join(plan)


def test_the_page_statement_uses_the_indexes(browser, app):
    """The indexes' expressions are the queries' (a mismatch loses an index silently), and
    PostgreSQL uses them for a person with thousands of attempts."""
    for statement in SEED_MANY.strip().split(";\n"):
        _sql(app, statement)
    user_id = _sql(app, "SELECT id FROM users WHERE username = 'alice'")[0][0]
    first_page = queries._statement(False, None, False, False, 0, "first")
    # A rare word, only in attempts older than the first ones tested in page order.
    rare = queries._statement(False, None, False, False, 1, "first")

    plain = _plan(app, first_page, {"user_id": user_id})
    searched = _plan(app, rare, {"user_id": user_id, "term_0": "zebr:*"})

    assert "Index Only Scan Backward using ix_attempts_user_id_initialized_at_id" in plain
    assert "Bitmap Index Scan on ix_attempts_search" in searched
    assert "rows=50 loops=1" in searched.split("CTE rest")[1]  # the 50 with a zebra
    # A person's tasks are few: PostgreSQL rightly scans them, unless told not to.
    task_words = select(Task.id).where(TASK_WORDS.op("@@")(func.to_tsquery(SEARCH_CONFIG, "x")))
    assert "ix_tasks_search" in _plan(app, task_words, {}, "SET enable_seqscan = off")


# --- cancelling with a kind of reason -------------------------------------------------


def test_cancel_offers_the_old_apps_kinds_of_reason(browser):
    attempt = _initialize(browser, browser.create_task("Gym"))
    page = browser.client.get(f"/attempts/{attempt}/cancel").get_data(as_text=True)
    assert "<legend>What kind of reason?</legend>" in page
    offered = re.findall(r'type="radio" value="(\w+)"', page) or re.findall(
        r'value="(\w+)"[^>]*type="radio"', page
    )
    assert offered == [
        "failed_to_complete",
        "deferred_to_plan",
        "did_while_another_active",
        "accidental_initialization",
        "development_test",
        "other",
    ]


@pytest.mark.parametrize(
    ("category", "reason", "message"),
    [
        ("", "", "Say why, even briefly: it helps your analytics."),
        ("other", "", "Say what the other reason is, even briefly."),
        ("bored", "Meh", "Choose one of the listed kinds."),
    ],
)
def test_cancel_needs_a_kind_or_a_reason_and_changes_nothing_without(
    browser, app, category, reason, message
):
    attempt = _initialize(browser, browser.create_task("Gym"))
    response = _cancel(browser, attempt, category, reason)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    row = _sql(app, "SELECT status, cancel_category FROM attempts WHERE id = :i", i=attempt)
    assert tuple(row[0]) == ("initialized", None)


def test_a_kind_of_reason_alone_is_enough_and_is_kept(browser, app):
    attempt = _initialize(browser, browser.create_task("Gym"))
    assert _cancel(browser, attempt, "accidental_initialization").status_code == 302
    row = _sql(
        app, "SELECT status, cancel_category, cancel_reason FROM attempts WHERE id = :i", i=attempt
    )
    assert tuple(row[0]) == ("cancelled", "accidental_initialization", "")
    assert "Started by mistake" in _text(_get(browser.client, "?status=cancelled"))


def _cancellations(page: str) -> dict[str, int]:
    start = page.index('id="cancel-heading"')
    section = page[start : page.index("</section>", start)]
    rows = re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td></tr>", section)
    return {html.unescape(label): int(count) for label, count in rows}


def test_analytics_counts_cancellations_by_kind_and_sees_a_new_one_at_once(browser, app):
    gym = browser.create_task("Gym")
    _complete(browser, _initialize(browser, gym))
    _cancel(browser, _initialize(browser, gym), "failed_to_complete", "Knee")
    _cancel(browser, _initialize(browser, gym), "failed_to_complete")
    _cancel(browser, _initialize(browser, gym), "", "Rain")  # no kind: a reason only
    # One cancelled by the old app, with a category of its own.
    _cancel(browser, _initialize(browser, gym), "other", "Tired")
    _sql(app, "UPDATE attempts SET cancel_category = 'too_tired' WHERE cancel_reason = 'Tired'")

    page = browser.client.get("/analytics").get_data(as_text=True)
    assert _cancellations(page) == {"Couldn't finish it": 2, "No category": 1, "Too tired": 1}
    assert "You cancelled 4 attempts; most often: Couldn't finish it (2)." in _text(page)

    # The figures are kept for the person's history; a cancellation is history.
    _cancel(browser, _initialize(browser, gym), "deferred_to_plan", "Tomorrow")
    page = browser.client.get("/analytics").get_data(as_text=True)
    assert _cancellations(page)["Put off to a later plan"] == 1
    assert "You cancelled 5 attempts" in _text(page)


def test_analytics_shows_cancellations_before_anything_was_completed(browser):
    _cancel(browser, _initialize(browser, browser.create_task("Gym")), "other", "Rain")
    page = browser.client.get("/analytics").get_data(as_text=True)
    assert "Nothing to chart yet" in page
    assert _cancellations(page) == {"Other": 1}

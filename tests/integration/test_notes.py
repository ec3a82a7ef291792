"""Notes: the Notes page (add, edit, delete after a confirmation, newest first, a page at a
time), notes on the running attempt, isolation, CSRF, and notes leaving with the account."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
import zipfile
from typing import Any

import pytest
from sqlalchemy import text

from db.models import NOTES_MAX
from releases.loadtest import CSRF
from tests.conftest import count_statements

NOTE_ITEM = re.compile(r'<li id="note-(\d+)">')


def _sql(app, statement: str, **params) -> Any:
    with app.extensions["db_engine"].begin() as conn:
        return conn.execute(text(statement), params)


def _page(client, path: str = "/notes", status: int = 200) -> str:
    response = client.get(path)
    page = response.get_data(as_text=True)
    assert response.status_code == status, page
    return page


def _listed(page: str) -> list[int]:
    """The notes the page lists, in order."""
    return [int(i) for i in NOTE_ITEM.findall(page)]


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _older_link(page: str) -> str | None:
    match = re.search(r'<a href="([^"]+)" rel="next">Older</a>', page)
    return html.unescape(match.group(1)) if match else None


def _add(browser, body: str) -> int:
    response = browser.post("/notes", {"body": body})
    assert response.status_code == 302, response.get_data(as_text=True)
    return browser.latest_id("notes")


def _bodies(app, username: str) -> list[str]:
    rows = _sql(
        app,
        "SELECT n.body FROM notes n JOIN users u ON u.id = n.user_id"
        " WHERE u.username = :u ORDER BY n.id",
        u=username,
    )
    return [row[0] for row in rows]


def _running_attempt(browser, name: str = "Tax return") -> int:
    task = browser.create_task(name)
    assert browser.post(f"/tasks/{task}/quick-initialize").status_code == 302
    attempt = browser.latest_id("attempts")
    assert browser.post(f"/attempts/{attempt}/start").status_code == 302
    return attempt


def _seed(app, username: str, count: int, same_time_every: int = 3) -> list[int]:
    """``count`` notes straight into the database, several sharing a timestamp (so the
    page order needs the id as well); their ids, newest first."""
    base = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)
    rows = _sql(
        app,
        "INSERT INTO notes (user_id, body, created_at, updated_at)"
        " SELECT u.id, 'Seeded note ' || g, :base + (g / :same) * interval '1 minute',"
        "        :base + (g / :same) * interval '1 minute'"
        " FROM users u, generate_series(1, :count) g WHERE u.username = :u RETURNING id",
        u=username,
        count=count,
        base=base,
        same=same_time_every,
    )
    ids = [row[0] for row in rows]
    order = _sql(
        app,
        "SELECT id FROM notes WHERE id = ANY(:ids) ORDER BY created_at DESC, id DESC",
        ids=ids,
    )
    return [row[0] for row in order]


def test_a_note_is_added_edited_and_deleted_after_a_confirmation(browser, app):
    first = _add(browser, "Felt <b>better</b> after the walk\nSecond line")
    page = _page(browser.client)
    assert _listed(page) == [first]
    assert "Felt &lt;b&gt;better&lt;/b&gt; after the walk\nSecond line" in page
    assert "Note saved." in page

    edit_form = _page(browser.client, f"/notes/{first}/edit")
    assert "Felt &lt;b&gt;better&lt;/b&gt; after the walk" in edit_form  # the text to change
    response = browser.post(f"/notes/{first}/edit", {"body": "Felt much better"})
    assert response.status_code == 302
    page = _page(browser.client)
    assert "Felt much better" in page and "Note updated." in page
    assert "edited" in _text(page)
    assert _bodies(app, "alice") == ["Felt much better"]

    # Delete asks first; only the confirmation's POST deletes.
    confirm = _page(browser.client, f"/notes/{first}/delete")
    assert "Delete this note?" in confirm and "Felt much better" in confirm
    assert _bodies(app, "alice") == ["Felt much better"]
    response = browser.post(f"/notes/{first}/delete")
    assert response.status_code == 302
    page = _page(browser.client)
    assert "Note deleted." in page and _listed(page) == []
    assert _bodies(app, "alice") == []


def test_notes_are_listed_newest_first(browser, app):
    ids = [_add(browser, f"Note number {n}") for n in range(3)]
    # The same instant for two of them: the later id counts as the newer.
    _sql(app, "UPDATE notes SET created_at = '2026-01-01T10:00Z' WHERE id = ANY(:ids)", ids=ids[:2])
    _sql(app, "UPDATE notes SET created_at = '2026-01-02T10:00Z' WHERE id = :id", id=ids[2])
    _sql(app, "UPDATE notes SET updated_at = created_at")
    assert _listed(_page(browser.client)) == [ids[2], ids[1], ids[0]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "Write something first"),
        ("   \n  ", "Write something first"),
        ("x" * (NOTES_MAX + 1), f"at most {NOTES_MAX:,} characters"),
        ("nul \x00 inside", "NUL"),
    ],
)
def test_an_empty_or_too_long_note_is_refused_with_a_message_and_changes_nothing(
    browser, app, body, message
):
    kept = _add(browser, "Already here")
    response = browser.post("/notes", {"body": body})
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))
    response = browser.post(f"/notes/{kept}/edit", {"body": body})
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))
    assert _bodies(app, "alice") == ["Already here"]


def test_the_longest_note_allowed_is_kept_whole(browser, app):
    body = "y" * NOTES_MAX
    _add(browser, body)
    assert _bodies(app, "alice") == [body]


def test_older_pages_walk_every_note_once_in_order(browser, app):
    expected = _seed(app, "alice", 123)
    seen: list[int] = []
    path: str | None = "/notes"
    pages = 0
    while path is not None:
        page = _page(browser.client, path)
        listed = _listed(page)
        assert 0 < len(listed) <= 50
        seen += listed
        path = _older_link(page)
        pages += 1
        if path is not None:
            assert "Newest" in page or pages == 1
    assert pages == 3
    assert seen == expected  # every note once, newest first across the pages


def test_a_cut_short_page_link_shows_the_newest_notes_with_a_message(browser, app):
    expected = _seed(app, "alice", 5)
    for broken in ("123", "abc_1", "1_99999999999999999999", ""):
        page = _page(browser.client, f"/notes?before={broken}", status=400)
        assert "isn't complete" in html.unescape(page)
        assert _listed(page) == expected


def test_the_notes_page_runs_the_same_few_statements_however_many_notes(browser, app):
    _seed(app, "alice", 3)
    status, few = count_statements(app, browser.client, "/notes")
    assert status == 200
    _seed(app, "alice", 200)
    status, many = count_statements(app, browser.client, "/notes")
    assert status == 200
    older = _older_link(_page(browser.client))
    assert older is not None
    status, later_page = count_statements(app, browser.client, older)
    assert status == 200
    assert few == many == later_page <= 3  # the person, then one statement for the page


def test_another_persons_notes_are_never_shown_and_their_ids_are_404(browser, other_browser, app):
    mine = _add(browser, "Alice's private thought")
    theirs = _add(other_browser, "Mallory's own note")
    attempt = _running_attempt(browser)

    page = _page(other_browser.client)
    assert "Alice's private thought" not in html.unescape(page)
    assert _listed(page) == [theirs]
    assert _listed(_page(browser.client)) == [mine]

    for path in (f"/notes/{mine}/edit", f"/notes/{mine}/delete"):
        assert other_browser.client.get(path).status_code == 404
    assert other_browser.post(f"/notes/{mine}/edit", {"body": "hijacked"}).status_code == 404
    assert other_browser.post(f"/notes/{mine}/delete").status_code == 404
    on_theirs = other_browser.post(
        f"/attempts/{attempt}/notes", {"body": "on alice's attempt", "back": "dashboard"}
    )
    assert on_theirs.status_code == 404
    assert _bodies(app, "alice") == ["Alice's private thought"]
    assert _bodies(app, "mallory") == ["Mallory's own note"]
    assert "on alice" not in html.unescape(_page(browser.client, f"/attempts/{attempt}"))


def test_a_deleted_or_unknown_note_is_404_and_changes_nothing(browser, app):
    gone = _add(browser, "Soon gone")
    kept = _add(browser, "Stays")
    assert browser.post(f"/notes/{gone}/delete").status_code == 302
    for note in (gone, 999_999_999, 2**63 + 5):
        assert browser.client.get(f"/notes/{note}/edit").status_code == 404
        assert browser.client.get(f"/notes/{note}/delete").status_code == 404
        assert browser.post(f"/notes/{note}/edit", {"body": "again"}).status_code == 404
        assert browser.post(f"/notes/{note}/delete").status_code == 404
    assert browser.post("/attempts/999999999/notes", {"body": "x"}).status_code == 404
    assert _bodies(app, "alice") == ["Stays"]
    assert _listed(_page(browser.client)) == [kept]


def test_every_note_form_needs_the_csrf_token(browser, app):
    note = _add(browser, "Original")
    attempt = _running_attempt(browser)
    client = browser.client
    for path, data in (
        ("/notes", {"body": "forged"}),
        (f"/notes/{note}/edit", {"body": "forged"}),
        (f"/notes/{note}/delete", {}),
        (f"/attempts/{attempt}/notes", {"body": "forged", "back": "dashboard"}),
    ):
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert "CSRF" in response.get_data(as_text=True)
    assert _bodies(app, "alice") == ["Original"]


def _versions(app) -> tuple[int, int]:
    row = _sql(app, "SELECT data_version, history_version FROM users WHERE username = 'alice'")
    return tuple(row.one())


def test_a_note_on_the_running_attempt_shows_on_its_page_and_on_the_notes_page(browser, app):
    attempt = _running_attempt(browser, "Tax return")
    dashboard = _page(browser.client, "/")
    form = re.search(
        rf'<form method="post" action="/attempts/{attempt}/notes".*?</form>', dashboard, re.S
    )
    assert form is not None, "no note form under Current task"
    token = CSRF.search(form.group(0))
    assert token is not None
    versions = _versions(app)

    # The form as the cached dashboard carries it, token and all.
    response = browser.client.post(
        f"/attempts/{attempt}/notes",
        data={"csrf_token": token.group(1), "back": "dashboard", "body": "Stuck on form 7"},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"
    # Notes are not on the dashboard: its cached page stays valid, and shows the message.
    assert _versions(app) == versions
    status, statements = count_statements(app, browser.client, "/")
    assert status == 200 and statements == 1
    after = _page(browser.client, "/")
    assert "Stuck on form 7" not in after

    shown = _page(browser.client, f"/attempts/{attempt}")
    assert "Stuck on form 7" in shown
    notes_page = _page(browser.client)
    assert "Stuck on form 7" in notes_page
    assert f'href="/attempts/{attempt}">Tax return</a>' in notes_page
    # From the attempt's own page, back to it.
    response = browser.post(
        f"/attempts/{attempt}/notes", {"body": "Found the receipt", "back": "attempt"}
    )
    assert response.headers["Location"] == f"/attempts/{attempt}"
    shown = _page(browser.client, f"/attempts/{attempt}")
    assert shown.index("Stuck on form 7") < shown.index("Found the receipt")  # as written
    assert "Note saved on “Tax return”." in shown


def test_the_flash_after_a_note_shows_on_the_cached_dashboard(browser, app):
    _running_attempt(browser)
    _page(browser.client, "/")  # computed and kept
    attempt = browser.latest_id("attempts")
    browser.post(f"/attempts/{attempt}/notes", {"body": "A thought", "back": "dashboard"})
    assert "Note saved on “Tax return”." in html.unescape(_page(browser.client, "/"))


def test_an_empty_note_on_the_attempt_is_refused_and_changes_nothing(browser, app):
    attempt = _running_attempt(browser)
    for body, message in (("  ", "Write something first"), ("x" * (NOTES_MAX + 1), "at most")):
        response = browser.post(f"/attempts/{attempt}/notes", {"body": body, "back": "dashboard"})
        assert response.status_code == 302
        assert response.headers["Location"] == "/"
        assert message in html.unescape(_page(browser.client, "/"))
    assert _bodies(app, "alice") == []


def test_a_deleted_attempt_leaves_its_notes_unlinked(browser, app):
    attempt = _running_attempt(browser)
    browser.post(f"/attempts/{attempt}/notes", {"body": "Kept anyway", "back": "dashboard"})
    _sql(app, "DELETE FROM attempts WHERE id = :id", id=attempt)
    page = _page(browser.client)
    assert "Kept anyway" in page and f"/attempts/{attempt}" not in page


def test_deleting_the_account_deletes_its_notes_only(browser, other_browser, app):
    _add(browser, "Mine")
    attempt = _running_attempt(browser)
    browser.post(f"/attempts/{attempt}/notes", {"body": "On the attempt", "back": "dashboard"})
    _add(other_browser, "Theirs")
    response = browser.post("/account/delete", {"confirm": "alice"})
    assert response.status_code == 302
    assert _sql(app, "SELECT count(*) FROM notes").scalar() == 1
    assert _bodies(app, "mallory") == ["Theirs"]


def test_the_notes_page_is_in_the_navigation(browser):
    assert '<a href="/notes">Notes</a>' in _page(browser.client, "/")


def test_the_data_export_holds_the_notes_in_the_later_layout(browser, other_browser, app):
    _add(browser, "=1+1 looks like a formula\nand has a second line")
    attempt = _running_attempt(browser)
    browser.post(f"/attempts/{attempt}/notes", {"body": "On the attempt", "back": "dashboard"})
    _add(other_browser, "Mallory's")
    written = _sql(app, "SELECT created_at FROM notes ORDER BY id LIMIT 1").scalar_one()

    response = browser.client.get("/account/export.zip")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        content = archive.read("notes.csv").decode("utf-8")
    header, *rows = list(csv.reader(io.StringIO(content)))
    assert header == ["note_id", "content", "timestamp", "user_id", "instance_id"]
    assert [row[1] for row in rows] == [
        "'=1+1 looks like a formula\nand has a second line",  # a spreadsheet won't run it
        "On the attempt",
    ]
    # UTC, in the ISO form of the old app's later export.
    utc = written.astimezone(dt.timezone.utc).replace(tzinfo=None)
    assert dt.datetime.fromisoformat(rows[0][2]) == utc
    assert [row[4] for row in rows] == ["", f"tas-attempt-{attempt}"]
    assert len({row[0] for row in rows}) == 2

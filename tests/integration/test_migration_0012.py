"""Migration 0012: stored pages live in an unlogged table, so writing one no longer puts
the page into PostgreSQL's write-ahead log; the previous release goes on reading and
writing it, and the downgrade makes the table logged again."""

from __future__ import annotations

import psycopg
import pytest

from db import migrate
from tests.schema import run_sql

PAGES = 40
# A page as big as a dashboard that compression cannot shrink (random hex), in SQL.
PAGE = "(SELECT string_agg(md5(random()::text || n), '') FROM generate_series(1, 700) n)"
PAGE_LENGTH = 700 * 32


def _persistence(url: str) -> dict[str, str]:
    """'p' (logged) or 'u' (unlogged), for the table and each of its indexes."""
    rows = run_sql(
        url,
        "SELECT c.relname, c.relpersistence FROM pg_class c"
        " WHERE c.oid = 'page_cache'::regclass OR c.oid IN"
        " (SELECT indexrelid FROM pg_index WHERE indrelid = 'page_cache'::regclass)",
    )
    return dict(rows)


def _store_pages(url: str) -> int:
    """Upsert PAGES pages as every release writes them (service.page_cache._STORE's
    columns), each in its own transaction as a request does; the WAL bytes written."""
    start = run_sql(url, "SELECT pg_current_wal_insert_lsn()")[0][0]
    for number in range(PAGES):
        run_sql(
            url,
            "INSERT INTO page_cache (user_id, page, data_version, history_version, key, body)"
            f" SELECT id, 'page-{number}', 1, 1, 'k', {PAGE} FROM users"
            " ON CONFLICT (user_id, page) DO UPDATE SET body = excluded.body",
        )
    return int(run_sql(url, f"SELECT pg_current_wal_insert_lsn() - '{start}'::pg_lsn")[0][0])


def _pages(url: str) -> int:
    rows = run_sql(url, "SELECT length(body) FROM page_cache")
    assert all(length == PAGE_LENGTH for (length,) in rows)  # every page reads back whole
    return len(rows)


def test_0012_keeps_pages_out_of_the_wal_and_comes_down_again(empty_database_url):
    url = empty_database_url
    migrate.upgrade(url, "0011")
    run_sql(url, "INSERT INTO users (username, signin_key_hash) VALUES ('someone', 'x')")
    logged_wal = _store_pages(url)  # the previous release's table
    assert logged_wal > PAGES * PAGE_LENGTH  # every page went through the log
    assert set(_persistence(url).values()) == {"p"}

    migrate.upgrade(url, "0012")
    assert set(_persistence(url).values()) == {"u"}  # its indexes too
    assert _pages(url) == 0  # emptied: pages are computed again on their next view
    unlogged_wal = _store_pages(url)  # the previous release (and this one) writing on
    assert _pages(url) == PAGES
    assert unlogged_wal < logged_wal / 20, (unlogged_wal, logged_wal)

    migrate.downgrade(url, "0011")
    assert set(_persistence(url).values()) == {"p"}
    assert _pages(url) == 0
    assert _store_pages(url) > PAGES * PAGE_LENGTH
    assert _pages(url) == PAGES
    migrate.upgrade(url, "0012")  # and up again, as a failed rollback's retry would
    assert set(_persistence(url).values()) == {"u"}
    assert _pages(url) == 0


def test_0012_stopped_halfway_leaves_the_pages_and_the_logged_table(empty_database_url):
    """A request in flight holds page_cache: the migration, which empties the table before
    changing it, gives up at its lock timeout, and its transaction takes everything back
    (as when the connection drops or the process is killed between its two statements)."""
    url = empty_database_url
    migrate.upgrade(url, "0011")
    run_sql(url, "INSERT INTO users (username, signin_key_hash) VALUES ('someone', 'x')")
    _store_pages(url)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as request:
        request.execute("SELECT count(*) FROM page_cache")  # its transaction stays open
        with pytest.raises(Exception, match="lock timeout"):
            migrate.upgrade(url, "0012")
        request.commit()
    assert set(_persistence(url).values()) == {"p"}
    assert _pages(url) == PAGES  # nothing emptied
    migrate.upgrade(url, "0012")  # once the request is done, it goes through
    assert set(_persistence(url).values()) == {"u"}

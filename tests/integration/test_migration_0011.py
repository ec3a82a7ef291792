"""Migration 0011: stored pages are written with lz4 (the cheaper compression on the
database server) while rows stored before stay readable, the previous release's writes
keep working, and the downgrade brings back the server's default."""

from __future__ import annotations

from db import migrate
from tests.schema import run_sql

# A page as big as a dashboard (PostgreSQL compresses values over about 2 kB), in SQL.
PAGE = (
    "(SELECT string_agg(format('<a href=\"/tasks/%s/edit\">Task %s</a>', n, n), '')"
    " FROM generate_series(1, 3000) n)"
)
PAGE_LENGTH = sum(len(f'<a href="/tasks/{n}/edit">Task {n}</a>') for n in range(1, 3001))


def _setting(url: str) -> str:
    """The column's own compression: 'l' (lz4), 'p' (pglz) or '' (the server's default)."""
    return run_sql(
        url,
        "SELECT attcompression FROM pg_attribute"
        " WHERE attrelid = 'page_cache'::regclass AND attname = 'body'",
    )[0][0]


def _store(url: str, page: str) -> None:
    """An upsert as every release writes a page (service.page_cache._STORE's columns)."""
    run_sql(
        url,
        "INSERT INTO page_cache (user_id, page, data_version, history_version, key, body)"
        f" SELECT id, '{page}', 1, 1, 'k', {PAGE} FROM users"
        " ON CONFLICT (user_id, page) DO UPDATE SET body = excluded.body || ' '",
    )


def _methods(url: str) -> dict[str, str]:
    rows = run_sql(url, "SELECT page, pg_column_compression(body), length(body) FROM page_cache")
    assert all(length >= PAGE_LENGTH for _, _, length in rows)  # every page reads back whole
    return {page: method for page, method, _ in rows}


def test_0011_writes_pages_with_lz4_keeps_old_rows_and_comes_down_again(empty_database_url):
    url = empty_database_url
    lz4 = run_sql(
        url,
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'",
    )[0][0]
    assert lz4, "the servers' PostgreSQL (and this one) are built with lz4"
    migrate.upgrade(url, "0010")
    run_sql(url, "INSERT INTO users (username, signin_key_hash) VALUES ('old', 'x')")
    _store(url, "dashboard.index")  # stored by the previous release
    assert _setting(url) == ""

    migrate.upgrade(url, "0011")
    assert _setting(url) == "l"
    assert _methods(url) == {"dashboard.index": "pglz"}  # no rewrite: the old row as it was
    _store(url, "analytics.index")  # the previous release goes on writing, as does the new
    _store(url, "dashboard.index")
    assert _methods(url) == {"dashboard.index": "lz4", "analytics.index": "lz4"}

    migrate.downgrade(url, "0010")
    assert _setting(url) == ""
    assert _methods(url) == {"dashboard.index": "lz4", "analytics.index": "lz4"}  # readable
    _store(url, "dashboard.index")
    assert _methods(url)["dashboard.index"] == "pglz"
    migrate.upgrade(url, "0011")  # and up again, as a failed rollback's retry would
    assert _setting(url) == "l"

"""Reading a test database's schema and running SQL in it (the migration tests)."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy import text


def run_sql(url: str, sql: str) -> list[tuple]:
    """``sql`` in its own transaction; the rows it returns, if any."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def columns(url: str, table: str) -> set[str]:
    rows = run_sql(
        url,
        f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'",  # noqa: S608 - a test's own table name
    )
    return {row[0] for row in rows}


def valid_indexes(url: str) -> set[str]:
    """Indexes PostgreSQL may use (a failed CONCURRENTLY build leaves an invalid one)."""
    rows = run_sql(
        url,
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indisvalid",
    )
    return {row[0] for row in rows}


def constraint_validated(url: str, name: str) -> bool:
    """Whether PostgreSQL has proved the constraint for every row (False: added NOT VALID)."""
    rows = run_sql(url, f"SELECT convalidated FROM pg_constraint WHERE conname = '{name}'")  # noqa: S608 - a test's own constraint name
    assert len(rows) == 1, (name, rows)
    return bool(rows[0][0])

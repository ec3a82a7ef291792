"""An embedded PostgreSQL for development and tests (the ``pgserver`` package).

``pgserver`` ships PostgreSQL binaries in a wheel and, unlike ``pg_ctl``, runs as root.
It is a development dependency only: production always names its database in
DATABASE_URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_servers: dict[Path, Any] = {}


def embedded_server_url(data_dir: Path) -> str:
    """Start (or reuse) an embedded server keeping its files in ``data_dir``.

    Returns a libpq URL over the server's unix socket. The data stays in ``data_dir``
    across runs; the server stops when this process exits.
    """
    import pgserver  # noqa: PLC0415 - development dependency, imported only when used

    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if data_dir not in _servers:
        _servers[data_dir] = pgserver.get_server(data_dir, cleanup_mode="stop")
    uri: str = _servers[data_dir].get_uri()
    return uri


def ensure_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server if missing; return its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)

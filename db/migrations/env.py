"""Alembic environment: the URL comes from the Config (set by db.migrate) or DATABASE_URL."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection
from sqlalchemy import pool
from sqlalchemy import text

from db.engine import database_url_from_env
from db.engine import normalize_url
from db.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata

# Migrations run while the previous release is still serving: never wait long for a lock
# that a running request holds; fail and let the deploy report it instead.
LOCK_TIMEOUT = config.attributes.get("lock_timeout", "5s")
# A migration that runs longer than this is not "short-locking": stop it.
STATEMENT_TIMEOUT = config.attributes.get("statement_timeout", "60s")


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    return normalize_url(url) if url else database_url_from_env()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        # The generated SQL script carries the same guards as an online run.
        context.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        context.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        context.run_migrations()


def _run_with_connection(connection: Connection) -> None:
    for setting, value in (
        ("lock_timeout", LOCK_TIMEOUT),
        ("statement_timeout", STATEMENT_TIMEOUT),
    ):
        connection.execute(text("SELECT set_config(:s, :v, false)"), {"s": setting, "v": value})
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with_connection(connection)
        return
    from sqlalchemy import create_engine

    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run_with_connection(connection)
        connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

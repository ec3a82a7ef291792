"""Alembic environment: the URL comes from the Config (set by db.migrate) or DATABASE_URL.

Each migration runs in a transaction of its own (``transaction_per_migration``): a lock one
takes is released when it ends, a failure undoes only the migration that failed, and
``op.get_context().autocommit_block()`` can run what no transaction may hold (CREATE INDEX
CONCURRENTLY). So nothing may open a transaction before ``context.configure()``: the
timeouts are set for the session and committed first, and hold in every migration,
inside autocommit blocks too.

A downgrade through an irreversible revision (``irreversible = True``, such as 0001's,
which would drop every table) is refused before any step runs: nothing is changed.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext
from alembic.runtime.migration import RevisionStep
from alembic.util import CommandError
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


def _refuse_irreversible_downgrades(migration_context: MigrationContext) -> None:
    """Check the whole list of steps Alembic is about to run before the first one runs."""
    # Alembic has no public hook between planning the steps and running them.
    plan: Callable[..., Iterable[Any]] | None = migration_context._migrations_fn
    if plan is None:
        return

    def checked(heads: Any, ctx: MigrationContext) -> list[Any]:
        assert plan is not None
        steps = list(plan(heads, ctx))
        blocked = [
            step.revision.revision
            for step in steps
            if isinstance(step, RevisionStep)
            and step.is_downgrade
            and getattr(step.revision.module, "irreversible", False)
        ]
        if blocked:
            raise CommandError(
                f"refusing to downgrade through {', '.join(blocked)}: irreversible "
                "(its downgrade would destroy data); nothing was changed. Downgrade no "
                f"further than {blocked[0]}, or restore a backup taken before it."
            )
        return steps

    migration_context._migrations_fn = checked


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        transaction_per_migration=True,
    )
    _refuse_irreversible_downgrades(context.get_context())
    with context.begin_transaction():
        # The generated SQL script carries the same guards as an online run, set for the
        # session before the first migration's BEGIN.
        context.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        context.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        context.run_migrations()


def _run_with_connection(connection: Connection) -> None:
    # A connection handed over inside a transaction of its caller stays in it (Alembic
    # then runs every migration in that one transaction). Otherwise the session settings
    # are committed here, so that Alembic begins and commits one transaction per migration.
    own_transaction = not connection.in_transaction()
    for setting, value in (
        ("lock_timeout", LOCK_TIMEOUT),
        ("statement_timeout", STATEMENT_TIMEOUT),
    ):
        connection.execute(text("SELECT set_config(:s, :v, false)"), {"s": setting, "v": value})
    if own_transaction:
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        transaction_per_migration=True,
    )
    _refuse_irreversible_downgrades(context.get_context())
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

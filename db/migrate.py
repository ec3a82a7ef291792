"""Programmatic Alembic: the same migrations whatever runs them (invoke, tests, deploys)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from db.engine import normalize_url

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def alembic_config(
    url: str | None = None,
    *,
    configure_logging: bool = True,
    script_location: Path | None = None,
) -> Config:
    """The project's Alembic config; ``script_location`` swaps in another migrations folder
    (tests stack revisions of their own on a copy of db/migrations)."""
    config = Config(str(ALEMBIC_INI))
    config.attributes["configure_logging"] = configure_logging
    if script_location is not None:
        config.set_main_option("script_location", str(script_location))
    if url:
        # ConfigParser treats % specially; URLs may contain percent-encoded passwords.
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision shipped with this code (there is exactly one head)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, target: str = "head") -> None:
    command.upgrade(alembic_config(url, configure_logging=False), target)


def downgrade(url: str, target: str) -> None:
    command.downgrade(alembic_config(url, configure_logging=False), target)

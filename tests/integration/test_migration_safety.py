"""Every migration's SQL is linted by squawk for locking hazards.

Migrations run while the previous release still serves, so a statement that takes an
ACCESS EXCLUSIVE lock for long, or waits without a lock timeout, would stall the site.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from db import migrate

ROOT = Path(__file__).resolve().parents[2]
# Alembic's own bookkeeping table isn't ours to design.
ALEMBIC_VERSION_DDL = re.compile(r"CREATE TABLE alembic_version \(.*?\);\n", re.S)
REVISIONS = list(ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions())


def _offline_sql(revision_range: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            "db/alembic.ini",
            "upgrade",
            revision_range,
            "--sql",
        ],
        cwd=ROOT,
        env={"DATABASE_URL": "postgresql://offline@localhost/offline", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    return ALEMBIC_VERSION_DDL.sub("", result.stdout)


@pytest.mark.parametrize("revision", REVISIONS, ids=[r.revision for r in REVISIONS])
def test_squawk_finds_no_locking_hazard_in_the_migration(revision, tmp_path):
    start = revision.down_revision or "base"
    sql = _offline_sql(f"{start}:{revision.revision}")
    assert "SET lock_timeout" in sql
    script = tmp_path / f"{revision.revision}.sql"
    script.write_text(sql)
    squawk = Path(sys.executable).with_name("squawk")
    result = subprocess.run(
        [str(squawk), "--config", str(ROOT / ".squawk.toml"), str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_migration_is_reversible_or_says_it_is_not():
    for revision in REVISIONS:
        module = revision.module
        irreversible = getattr(module, "irreversible", None)
        assert irreversible in (True, False), f"{revision.revision}: set irreversible"
        source = Path(revision.path).read_text()
        if not irreversible:
            assert "def downgrade" in source
        else:
            # Should the environment's guard ever be bypassed, the downgrade still refuses.
            with pytest.raises(CommandError, match="irreversible"):
                module.downgrade()

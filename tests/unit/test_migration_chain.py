"""`invoke release` pins each migration to the release whose code it was declared to serve.

A release history is replayed in a temporary copy of the project: the real migrations
arrive a few per release, and each release's manifest entries come from
``migration_chain`` as `invoke release` writes them; the rollback planner reads them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from releases.release import migration_chain
from releases.rollback import CODE_ONLY
from releases.rollback import DOWNGRADE
from releases.rollback import plan_rollback

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = sorted((ROOT / "db" / "migrations" / "versions").glob("*.py"))
CONTRACT = '''"""a contract step (test only)"""
revision = "t5"
down_revision = "0004"
branch_labels = None
depends_on = None
irreversible = False
compatible_with_previous = False


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''


class History:
    """A project copy in which releases are cut, each shipping the migrations added since."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "db" / "migrations" / "versions").mkdir(parents=True)
        (root / "releases" / "manifests").mkdir(parents=True)

    def add(self, *names: str) -> None:
        for name in names:
            source = next(path for path in VERSIONS if f"_{name}_" in path.name)
            shutil.copy(source, self.root / "db" / "migrations" / "versions" / source.name)

    def cut(self, version: str, *, old_format: bool = False) -> dict[str, Any]:
        chain = migration_chain(self.root)
        if old_format:  # as manifests were written before the pin existed
            for entry in chain:
                del entry["compatible_with_release"]
        manifest = {
            "version": version,
            "commit": f"c{version}",
            "alembic_head": chain[0]["revision"],
            "migrations": chain,
        }
        path = self.root / "releases" / "manifests" / f"{version}.json"
        path.write_text(json.dumps(manifest))
        return manifest


def pins(manifest: dict[str, Any]) -> dict[str, str | None]:
    return {m["revision"]: m["compatible_with_release"] for m in manifest["migrations"]}


def test_each_migration_serves_the_release_cut_before_the_one_that_shipped_it(tmp_path):
    history = History(tmp_path)
    history.add("0001", "0002")
    v1 = history.cut("1.0.0")
    history.add("0003")
    v2 = history.cut("1.1.0")
    history.add("0004")
    (tmp_path / "db" / "migrations" / "versions" / "t5_contract.py").write_text(CONTRACT)
    v3 = history.cut("1.2.0")

    # Nothing came before 1.0.0; a contract step serves no older release at all.
    assert pins(v1) == {"0002": None, "0001": None}
    assert pins(v2) == {"0003": "1.0.0", "0002": None, "0001": None}
    assert pins(v3) == {"t5": None, "0004": "1.1.0", "0003": "1.0.0", "0002": None, "0001": None}

    assert plan_rollback(v2, v1, "0003").mode == CODE_ONLY
    # 0004 was written for 1.1.0's code: back to 1.0.0 the schema goes down first.
    plan = plan_rollback(v3, v1, "0004")
    assert plan.mode == DOWNGRADE
    assert "0004 is compatible with 1.1.0's code only" in plan.reason
    assert plan_rollback(v3, v2, "0004").mode == CODE_ONLY
    assert plan_rollback(v3, v2, "t5").mode == DOWNGRADE


def test_releases_cut_before_the_pin_existed_still_date_the_migrations_they_shipped(tmp_path):
    history = History(tmp_path)
    history.add("0001", "0002")
    history.cut("1.0.0", old_format=True)
    history.add("0003")
    history.cut("1.1.0", old_format=True)
    history.add("0004")
    v3 = history.cut("1.2.0")
    # The old manifests are read as they are: they say which release shipped what.
    assert pins(v3) == {"0004": "1.1.0", "0003": "1.0.0", "0002": None, "0001": None}


def test_the_first_release_pins_nothing(tmp_path):
    history = History(tmp_path)
    history.add("0001", "0002", "0003", "0004")
    assert set(pins(history.cut("0.1.0")).values()) == {None}

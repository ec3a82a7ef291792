"""The rollback planner: code only, downgrade from the newer release, restore, or refuse."""

from __future__ import annotations

from typing import Any

import pytest

from releases.rollback import CODE_ONLY
from releases.rollback import DOWNGRADE
from releases.rollback import REFUSED
from releases.rollback import RESTORE_BACKUP
from releases.rollback import backup_for
from releases.rollback import migrations_between
from releases.rollback import plan_rollback


def migration(
    revision: str,
    down: str | list[str] | None,
    *,
    irreversible: bool = False,
    compatible: bool | None = True,
    serves: str | None = "1.0.0",
) -> dict[str, Any]:
    """A manifest entry; ``serves``: the release it is declared compatible with (None: the
    entry of a manifest cut before `invoke release` recorded it)."""
    entry: dict[str, Any] = {
        "revision": revision,
        "down_revision": down,
        "irreversible": irreversible,
    }
    if compatible is not None:
        entry["compatible_with_previous"] = compatible
    if serves is not None:
        entry["compatible_with_release"] = serves if compatible else None
    return entry


def manifest(version: str, *migrations: dict[str, Any]) -> dict[str, Any]:
    """A release manifest as `invoke release` writes it: migrations newest first."""
    return {
        "version": version,
        "commit": f"c{version}",
        "alembic_head": migrations[0]["revision"] if migrations else None,
        "migrations": list(migrations),
    }


BASE = migration("0001", None)
V1 = manifest("1.0.0", BASE)


def test_same_schema_is_a_code_only_rollback():
    v2 = manifest("1.1.0", BASE)
    plan = plan_rollback(v2, V1, "0001")
    assert plan.mode == CODE_ONLY
    assert plan.path == ()
    assert "the database is at 0001" in plan.reason


def test_expand_only_migrations_roll_back_code_only_and_keep_the_schema():
    v2 = manifest(
        "1.1.0", migration("0003", "0002"), migration("0002", "0001", irreversible=True), BASE
    )
    plan = plan_rollback(v2, V1, "0003")
    # Irreversible does not matter when nothing has to be undone.
    assert plan.mode == CODE_ONLY
    assert [m.revision for m in plan.path] == ["0003", "0002"]
    assert "the database stays at 0003" in plan.steps[-1]
    assert "ahead" in plan.reason


def test_a_contract_migration_is_downgraded_from_the_newer_release_first():
    v2 = manifest("1.1.0", migration("0003", "0002", compatible=False), migration("0002", "0001"))
    v2["migrations"].append(BASE)
    plan = plan_rollback(v2, V1, "0003")
    assert plan.mode == DOWNGRADE
    assert [m.revision for m in plan.path] == ["0003", "0002"]
    assert plan.steps[0].startswith("alembic downgrade 0001 from 1.1.0's venv")
    assert plan.steps[1].startswith("switch current to 1.0.0")
    assert "0003 changed the schema" in plan.reason


def test_a_migration_without_the_flag_counts_as_a_contract_step():
    v2 = manifest("1.1.0", migration("0002", "0001", compatible=None), BASE)
    assert plan_rollback(v2, V1, "0002").mode == DOWNGRADE


def test_an_irreversible_contract_step_is_refused_and_offers_the_backup():
    v2 = manifest("1.1.0", migration("0002", "0001", irreversible=True, compatible=False), BASE)
    plan = plan_rollback(v2, V1, "0002", backup="/srv/tas/backups/tas-1.dump")
    assert plan.mode == REFUSED and plan.refused
    assert "irreversible migration(s) 0002" in plan.reason
    assert "--restore-backup would restore the pre-deploy dump /srv/tas/backups/tas-1.dump" in (
        plan.reason
    )
    assert "lose every write" in plan.reason


def test_restore_backup_restores_the_recorded_dump():
    v2 = manifest("1.1.0", migration("0002", "0001", irreversible=True, compatible=False), BASE)
    plan = plan_rollback(v2, V1, "0002", restore_backup=True, backup="/srv/tas/backups/tas-1.dump")
    assert plan.mode == RESTORE_BACKUP
    assert plan.backup == "/srv/tas/backups/tas-1.dump"
    assert any("every write since the dump is lost" in step for step in plan.steps)


def test_restore_backup_without_a_recorded_dump_is_refused():
    v2 = manifest("1.1.0", migration("0002", "0001", irreversible=True, compatible=False), BASE)
    plan = plan_rollback(v2, V1, "0002", restore_backup=True, backup=None)
    assert plan.mode == REFUSED
    assert "no pre-deploy dump" in plan.reason


def test_rolling_back_across_several_releases_walks_the_whole_chain():
    v3 = manifest(
        "1.2.0",
        migration("0004", "0003", serves="1.1.0"),
        migration("0003", "0002", compatible=False),
        migration("0002", "0001"),
        BASE,
    )
    plan = plan_rollback(v3, V1, "0004")
    assert plan.mode == DOWNGRADE
    assert [m.revision for m in plan.path] == ["0004", "0003", "0002"]


def test_a_database_behind_the_target_is_an_upgrade_not_a_rollback():
    v2 = manifest("1.1.0", migration("0002", "0001"), BASE)
    plan = plan_rollback(V1, v2, "0001")
    assert plan.mode == REFUSED
    assert "that is an upgrade" in plan.reason


def test_an_unknown_database_revision_is_refused():
    v2 = manifest("1.1.0", migration("0002", "0001"), BASE)
    plan = plan_rollback(v2, V1, "9999")
    assert plan.mode == REFUSED
    assert "a revision neither 1.1.0 nor 1.0.0 knows" in plan.reason


def test_a_target_on_another_branch_is_refused():
    v2 = manifest("1.1.0", migration("0002", "0001"), BASE)
    other = manifest("0.9.0", migration("0001b", None))
    plan = plan_rollback(v2, other, "0002")
    assert plan.mode == REFUSED
    assert "no downgrade path" in plan.reason


def test_an_unmigrated_database_cannot_be_planned():
    v2 = manifest("1.1.0", migration("0002", "0001"), BASE)
    assert plan_rollback(v2, V1, None).mode == REFUSED


def test_rolling_back_to_what_runs_is_refused():
    assert plan_rollback(V1, dict(V1), "0001").mode == REFUSED


def test_merge_revisions_are_followed_through_both_parents():
    v2 = manifest(
        "1.1.0",
        migration("0004", ["0002", "0003"], compatible=True),
        migration("0003", "0001", compatible=False),
        migration("0002", "0001", compatible=True),
        BASE,
    )
    plan = plan_rollback(v2, V1, "0004")
    assert plan.mode == DOWNGRADE
    assert plan.path[0].revision == "0004"
    assert {m.revision for m in plan.path} == {"0002", "0003", "0004"}


@pytest.mark.parametrize("mode", [CODE_ONLY, DOWNGRADE])
def test_the_plan_reads_as_lines(mode):
    compatible = mode == CODE_ONLY
    v2 = manifest("1.1.0", migration("0002", "0001", compatible=compatible), BASE)
    lines = plan_rollback(v2, V1, "0002").lines()
    assert lines[0] == f"rollback 1.1.0 -> 1.0.0: {mode}"
    assert lines[1].startswith("  why: ")
    assert any("migrations between: 0002" in line for line in lines)


def test_the_backup_is_the_newest_dump_taken_at_the_targets_revision():
    log = [
        {"event": "deploy", "alembic_before": "0001", "backup": "/b/a.dump"},
        {"event": "deploy", "alembic_before": "0002", "backup": "/b/b.dump"},
        {"event": "rollback", "alembic_before": "0001", "backup": "/b/x.dump"},
        {"event": "deploy", "alembic_before": "0001", "backup": "/b/c.dump"},
        {"event": "deploy", "alembic_before": "0001", "backup": None},
    ]
    entry = backup_for(log, "0001")
    assert entry is not None and entry["backup"] == "/b/c.dump"
    assert backup_for(log, "0007") is None


def test_migrations_between_two_revisions_newest_first():
    v3 = manifest("1.2.0", migration("0003", "0002"), migration("0002", "0001"), BASE)
    assert [m.revision for m in migrations_between(v3, "0003", "0001") or []] == ["0003", "0002"]
    assert migrations_between(v3, "0002", "0002") == []
    assert [m.revision for m in migrations_between(v3, "0001", None) or []] == ["0001"]
    assert migrations_between(v3, "0001", "0003") is None
    assert migrations_between(v3, "0009", "0001") is None


# --- compatible with which release -------------------------------------------------------


V2 = manifest("1.1.0", migration("0002", "0001"), BASE)
# 1.2.0 adds 0003, declared compatible with the release before it: 1.1.0, not 1.0.0.
V3 = manifest("1.2.0", migration("0003", "0002", serves="1.1.0"), *V2["migrations"])


def test_two_releases_back_across_migrations_compatible_with_their_previous_is_a_downgrade():
    plan = plan_rollback(V3, V1, "0003")
    assert plan.mode == DOWNGRADE
    assert [m.revision for m in plan.path] == ["0003", "0002"]
    assert "0003 is compatible with 1.1.0's code only" in plan.reason
    assert plan.steps[0].startswith("alembic downgrade 0001 from 1.2.0's venv")


def test_one_release_back_across_its_own_migrations_stays_code_only():
    assert plan_rollback(V3, V2, "0003").mode == CODE_ONLY
    assert plan_rollback(V2, V1, "0002").mode == CODE_ONLY


def test_migrations_first_shipped_right_after_the_target_roll_back_code_only_from_later():
    # 1.1.0 shipped 0002 and 0003, both for 1.0.0's code; 1.2.0 ships no migration.
    v2 = manifest("1.1.0", migration("0003", "0002"), migration("0002", "0001"), BASE)
    v3 = dict(v2, version="1.2.0", commit="c1.2.0")
    for current in (v2, v3):
        plan = plan_rollback(current, V1, "0003")
        assert plan.mode == CODE_ONLY
        assert [m.revision for m in plan.path] == ["0003", "0002"]


def test_a_manifest_cut_before_releases_were_pinned_never_rolls_back_code_only():
    old = manifest("1.1.0", migration("0002", "0001", serves=None), BASE)
    plan = plan_rollback(old, V1, "0002")
    assert plan.mode == DOWNGRADE
    assert "0002 names no release whose code serves it" in plan.reason
    # And when it cannot be downgraded either, nothing is done without a backup.
    frozen = manifest("1.1.0", migration("0002", "0001", serves=None, irreversible=True), BASE)
    assert plan_rollback(frozen, V1, "0002").mode == REFUSED


def test_no_rollback_plans_a_downgrade_through_0001():
    # A release from before any migration: getting back to it means undoing 0001, which
    # drops every table. Even a manifest that calls 0001 reversible (cut before it was
    # marked irreversible) gets no downgrade, with or without --restore-backup.
    schemaless = {"version": "0.9.0", "commit": "c0.9.0", "alembic_head": None, "migrations": []}
    old_base = migration("0001", None, irreversible=False, serves=None)
    for current in (manifest("1.0.0", old_base), V2):
        for restore in (False, True):
            plan = plan_rollback(
                current, schemaless, current["alembic_head"], restore_backup=restore, backup="/b"
            )
            assert plan.mode == REFUSED
            assert "no migration path" in plan.reason

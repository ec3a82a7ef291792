"""The pure parts of deploy: cleanup choice, undo order, health answers, lock staleness."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from releases.deploy import undo_plan
from releases.deploy import undo_schema
from releases.inventory import Release
from releases.inventory import ServerState
from releases.inventory import releases_to_delete
from releases.inventory import table
from releases.lock import LockState
from releases.lock import merge_log
from releases.rollback import RollbackRefused
from releases.rollback import choose_target
from releases.scripts import runner
from releases.scripts.runner import judge
from releases.scripts.runner import renders
from releases.scripts.runner import summary


def release(name: str, head: str | None = "0001", failed: str | None = None) -> Release:
    manifest = {"version": name.split("-")[0], "alembic_head": head} if head else None
    return Release(name=name, manifest=manifest, deploy=None, failed=failed, complete=True)


RELEASES = [release(f"0.{i}.0-2026112{i}T100000Z") for i in range(1, 8)]


def names(releases: list[Release]) -> list[str]:
    return [r.name for r in releases]


# --- cleanup ----------------------------------------------------------------------------


def test_cleanup_deletes_the_oldest_beyond_keep():
    doomed = releases_to_delete(RELEASES, 5, [RELEASES[-1].name, RELEASES[-2].name])
    assert names(doomed) == names(RELEASES[:2])


def test_cleanup_never_deletes_current_previous_or_one_in_use():
    current, previous, in_use = RELEASES[0].name, RELEASES[1].name, RELEASES[2].name
    doomed = releases_to_delete(RELEASES, 2, [current, previous, in_use, None])
    assert names(doomed) == names(RELEASES[3:5])


def test_cleanup_keeps_at_least_one_and_nothing_when_few():
    assert releases_to_delete(RELEASES[:3], 5, []) == []
    assert names(releases_to_delete(RELEASES[:3], 0, [])) == names(RELEASES[:2])


# --- undoing a failed deploy --------------------------------------------------------------


def manifest(*migrations: dict[str, Any]) -> dict[str, Any]:
    return {"version": "2.0.0", "alembic_head": migrations[0]["revision"], "migrations": migrations}


BASE = {"revision": "0001", "down_revision": None, "compatible_with_previous": True}
OLD = release("1.0.0-20261120T100000Z")


def kinds(actions: list[tuple[str, str]]) -> list[str]:
    return [kind for kind, _ in actions]


def test_without_a_migration_undo_is_switch_back_and_verify():
    actions = undo_plan(manifest(BASE), OLD, "0001", "0001", switched=True)
    assert kinds(actions) == ["switch", "verify"]
    assert "1.0.0-20261120T100000Z" in actions[0][1]


def test_a_contract_migration_is_downgraded_before_switching_back():
    new = {"revision": "0002", "down_revision": "0001", "compatible_with_previous": False}
    actions = undo_plan(manifest(new, BASE), OLD, "0001", "0002", switched=True)
    assert kinds(actions) == ["downgrade", "switch", "verify"]
    assert actions[0][1] == "alembic downgrade 0001 from the new release's venv"


def test_an_expand_migration_is_downgraded_after_the_old_release_serves_again():
    new = {
        "revision": "0002",
        "down_revision": "0001",
        "compatible_with_previous": True,
        "compatible_with_release": "1.0.0",
    }
    actions = undo_plan(manifest(new, BASE), OLD, "0001", "0002", switched=True)
    assert kinds(actions) == ["switch", "verify", "downgrade"]


def test_an_expand_migration_for_another_release_goes_back_before_switching():
    """Deploying over a release older than the one the migration was written for."""
    new = {
        "revision": "0002",
        "down_revision": "0001",
        "compatible_with_previous": True,
        "compatible_with_release": "1.1.0",
    }
    actions = undo_plan(manifest(new, BASE), OLD, "0001", "0002", switched=True)
    assert kinds(actions) == ["downgrade", "switch", "verify"]


def test_an_irreversible_migration_stays_and_says_so():
    new = {
        "revision": "0002",
        "down_revision": "0001",
        "irreversible": True,
        "compatible_with_previous": True,
    }
    actions = undo_plan(manifest(new, BASE), OLD, "0001", "0002", switched=True)
    assert kinds(actions) == ["switch", "verify", "note"]
    assert "the schema stays at 0002" in actions[-1][1]


def test_before_the_switch_only_the_schema_is_undone():
    new = {"revision": "0002", "down_revision": "0001", "compatible_with_previous": False}
    assert kinds(undo_plan(manifest(new, BASE), OLD, "0001", "0002", switched=False)) == [
        "downgrade"
    ]
    assert kinds(undo_plan(manifest(BASE), OLD, "0001", "0001", switched=False)) == ["note"]


def test_a_first_deploy_has_nothing_to_switch_back_to_and_never_goes_to_base():
    actions = undo_plan(manifest(BASE), None, None, "0001", switched=True)
    assert kinds(actions) == ["note", "note"]
    assert "no previous release" in actions[0][1]
    assert "the schema stays at 0001: there was none before" in actions[1][1]
    assert not any("base" in words for _, words in actions)
    assert undo_schema(manifest(BASE), None, None, "/srv/tas/releases/x") is None


def test_the_runner_goes_back_to_the_revision_seen_under_the_lock():
    new = {"revision": "0002", "down_revision": "0001", "compatible_with_previous": False}
    undo = undo_schema(manifest(new, BASE), OLD, "0001", "/srv/tas/releases/2.0.0-x")
    assert undo == {
        "release": "/srv/tas/releases/2.0.0-x",
        "action": "downgrade",
        "target": "@before",
        "when": "before-switch-back",
        "words": "alembic downgrade 0001 from the new release's venv",
    }
    expand = {**new, "compatible_with_previous": True, "compatible_with_release": "1.0.0"}
    assert undo_schema(manifest(expand, BASE), OLD, "0001", "p")["when"] == "after-switch-back"


# --- health answers -------------------------------------------------------------------------


def test_health_needs_200_ok_and_the_expected_version():
    good = {"status": "ok", "version": "1.2.0", "schema": "0002", "schema_state": "current"}
    assert judge(200, json.dumps(good), 0, "1.2.0")["ok"]
    wrong = judge(200, json.dumps({**good, "version": "1.1.0"}), 0, "1.2.0")
    assert not wrong["ok"] and wrong["detail"] == "answers version 1.1.0"
    behind = judge(503, json.dumps({"status": "error", "version": "1.2.0"}), 22, "1.2.0")
    assert not behind["ok"] and behind["http"] == 503
    assert "HTTP 503" in summary(behind)
    silent = judge(0, "", 28, "1.2.0")
    assert not silent["ok"] and "no answer" in silent["detail"]


def test_a_page_renders_only_whole_with_its_form():
    page = '<html><form><input name="csrf_token" value="x"></form></html>'
    assert renders(200, page)
    assert not renders(500, page)
    assert not renders(200, "<html><h1>Internal Server Error</h1></html>")
    assert not renders(200, page[:30])  # cut off half-way


class _ScriptedGate(runner.Runner):
    """The gate's loop against scripted answers: (healthz ok?, page HTTP status) per check."""

    def __init__(self, run_dir: Path, answers: list[tuple[bool, int]]) -> None:
        (run_dir / "plan.json").write_text(
            json.dumps({"entry": {}, "gate": {"timeout": 3600}, "run": "t", "log": "/dev/null"})
        )
        super().__init__(run_dir)
        self.answers = list(answers)
        self.asked = 0

    def check(self, version: str, socket: str = "") -> dict[str, Any]:
        healthy, page = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        if self.asked > 50:
            raise AssertionError("the gate kept asking")
        return {
            "ok": healthy and page == 200,
            "http": 200 if healthy else 502,
            "page": page,
            "body": {},
            "detail": "" if page == 200 else f"/signin does not render (HTTP {page})",
        }


def test_the_gate_gives_up_at_once_on_a_healthy_release_whose_page_keeps_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "_restarts", lambda: 0)
    monkeypatch.setattr(runner.time, "sleep", lambda seconds: None)
    broken = _ScriptedGate(tmp_path, [(True, 500)])
    health = broken.gate("1.2.0")
    assert not health["ok"] and broken.asked == runner.PAGE_ERRORS_TO_FAIL
    assert "did not wait for its timeout" in health["detail"]
    # A release still starting (nginx's 502, then a page error once) is waited for.
    starting = _ScriptedGate(tmp_path, [(False, 502)] * 6 + [(True, 500), (True, 200)])
    assert starting.gate("1.2.0")["ok"] and starting.asked == 9


def test_a_failed_restart_says_what_the_app_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemctl's own message names no cause; the operator gets the app's last words too."""
    said: list[str] = []

    def sh(command: str, *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        said.append(command)
        if "systemctl restart" in command:
            message = "Job for tas.service failed because the control process exited"
            return subprocess.CompletedProcess(command, 1, "", message + "\n")
        if command.startswith("journalctl -u tas.service --since"):
            return subprocess.CompletedProcess(command, 0, "ModuleNotFoundError: flask\n", "")
        if command.startswith("systemctl show -p ExecMainStatus"):
            return subprocess.CompletedProcess(command, 0, "1\n", "")  # the app's own exit
        raise AssertionError(command)

    monkeypatch.setattr(runner, "sh", sh)
    (tmp_path / "plan.json").write_text(json.dumps({"entry": {}, "run": "t", "log": "/dev/null"}))
    failure = runner.Runner(tmp_path).restart()
    assert failure.splitlines() == [
        "Job for tas.service failed because the control process exited",
        "ModuleNotFoundError: flask",
    ]
    # The app ran and failed: trying again would fail the same way, so it is not retried.
    assert sum("systemctl restart" in command for command in said) == 1


@pytest.mark.parametrize("second_try_works", [True, False])
def test_a_restart_systemd_itself_failed_is_tried_once_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second_try_works: bool
) -> None:
    """Exit status 219/CGROUP: systemd could not set the process up, the app never ran."""
    restarts: list[str] = []

    def sh(command: str, *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        if "systemctl restart" in command:
            restarts.append(command)
            if second_try_works and len(restarts) == 2:
                return subprocess.CompletedProcess(command, 0, "", "")
            message = "Job for tas.service failed because the control process exited"
            return subprocess.CompletedProcess(command, 1, "", message + "\n")
        if command.startswith("systemctl show -p ExecMainStatus"):
            return subprocess.CompletedProcess(command, 0, "219\n", "")
        if command.startswith("journalctl -u tas.service --since"):
            said = "tas.service: Failed at step CGROUP spawning gunicorn: Device or resource busy"
            return subprocess.CompletedProcess(command, 0, said + "\n", "")
        raise AssertionError(command)

    monkeypatch.setattr(runner, "sh", sh)
    monkeypatch.setattr(runner.time, "sleep", lambda seconds: None)
    (tmp_path / "plan.json").write_text(json.dumps({"entry": {}, "run": "t", "log": "/dev/null"}))
    failure = runner.Runner(tmp_path).restart()
    assert len(restarts) == 2  # once more, not in a loop
    progress = (tmp_path / "progress.jsonl").read_text()
    assert "exit status 219, its own, before the app ran" in progress
    if second_try_works:
        assert failure == ""
    else:
        assert "Failed at step CGROUP" in failure


# --- the lock ------------------------------------------------------------------------------


def test_a_lock_whose_ssh_session_is_gone_or_too_old_is_stale():
    info = {"who": "ana@laptop", "pid": 7, "action": "deploy", "version": "1.2.0"}
    live = LockState(held=True, info=info, age=30, session_alive=True)
    assert live.stale() == ""
    assert live.describe().startswith("held by ana@laptop (pid 7) deploy 1.2.0")
    gone = LockState(held=True, info=info, age=30, session_alive=False)
    assert gone.stale() == "the holder's SSH session is gone"
    assert "STALE" in gone.describe()
    old = LockState(held=True, info=info, age=4000, session_alive=True)
    assert "older than 30 minutes" in old.stale()
    assert LockState(held=False).describe() == "free"
    # Being taken right now (no info yet) is not stale.
    assert LockState(held=True, info=None, age=1, session_alive=None).stale() == ""


# --- invoke releases --------------------------------------------------------------------------


def test_the_releases_table_marks_current_previous_and_failed():
    releases = [
        release("0.1.0-20261120T100000Z"),
        release("0.2.0-20261121T100000Z", head="0002"),
        release("0.2.1-20261122T100000Z", head="0002", failed="the health gate failed"),
    ]
    state = ServerState(
        releases=releases,
        current="0.2.0-20261121T100000Z",
        previous="0.1.0-20261120T100000Z",
        db_ok=True,
        db_revision="0002",
    )
    lines = table(state)
    assert lines[0].split() == ["release", "version", "deployed", "at", "alembic", "state"]
    assert lines[1].startswith("0.2.1-20261122T100000Z") and "failed: the health gate" in lines[1]
    assert lines[2].endswith("current") and lines[3].endswith("previous")
    assert lines[-1].startswith("database at 0002")


def test_a_lock_handed_to_a_running_unit_is_held_even_when_the_client_is_gone():
    info = {"who": "ana@laptop", "pid": 7, "action": "deploy", "version": "1.2.0"}
    running = LockState(
        held=True, info=info, age=30, session_alive=False, unit="tas-run-x", unit_active=True
    )
    assert running.stale() == ""
    assert "the server is finishing it in unit tas-run-x" in running.describe()
    ended = LockState(held=True, info=info, age=30, session_alive=False, unit="tas-run-x")
    assert ended.stale() == "the holder's SSH session is gone and its unit tas-run-x has ended"


# --- the deploy log and rollback targets -------------------------------------------------------


def test_the_lines_of_one_run_make_one_entry_in_its_place():
    lines = [
        {"run": "a", "event": "deploy", "release": "r2", "result": "started", "backup": None},
        {"event": "unlock", "reason": "x"},
        {"run": "a", "result": "migrating", "backup": "/srv/tas/backups/d.dump"},
        {"run": "a", "result": "ok"},
        {"run": "a", "deleted": ["r0"]},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
    entries = merge_log(text)
    assert [e.get("event") for e in entries] == ["deploy", "unlock"]
    assert entries[0] == {
        "run": "a",
        "event": "deploy",
        "release": "r2",
        "result": "ok",
        "backup": "/srv/tas/backups/d.dump",
        "deleted": ["r0"],
    }


def test_a_second_rollback_goes_further_back_instead_of_returning():
    r1, r2, r3 = (release(f"0.{i}.0-2026112{i}T100000Z") for i in (1, 2, 3))
    log = [
        {"event": "deploy", "release": r2.name, "from_release": r1.name, "result": "ok"},
        {"event": "deploy", "release": r3.name, "from_release": r2.name, "result": "ok"},
        {"event": "rollback", "release": r2.name, "from_release": r3.name, "result": "ok"},
    ]
    # After rolling back from r3 to r2, `previous` names r3; the log says r2 came over r1.
    state = ServerState(releases=[r1, r2, r3], current=r2.name, previous=r3.name, db_ok=True)
    assert choose_target(state, "", log).name == r1.name
    first = ServerState(releases=[r1, r2, r3], current=r3.name, previous=r2.name, db_ok=True)
    assert choose_target(first, "", log[:2]).name == r2.name


def test_a_rollback_whose_release_before_is_gone_asks_for_a_target():
    r2, r3 = release("0.2.0-20261122T100000Z"), release("0.3.0-20261123T100000Z")
    log = [{"event": "deploy", "release": r3.name, "from_release": "0.1.0-x", "result": "ok"}]
    state = ServerState(releases=[r2, r3], current=r3.name, previous=None, db_ok=True)
    with pytest.raises(RollbackRefused, match="no longer on the server: give --to"):
        choose_target(state, "", log)


def test_the_health_gate_warns_about_an_old_or_missing_backup_and_never_fails_for_it():
    assert runner.backup_warning({"status": "ok", "backup_age_hours": 12.5}) is None
    assert runner.backup_warning({"status": "ok"}) is None  # an app that does not report it
    old = runner.backup_warning({"status": "ok", "backup_age_hours": 40.2})
    assert old is not None and old.startswith("WARNING: the last good backup is 40 hours old")
    missing = runner.backup_warning({"status": "ok", "backup_age_hours": None})
    assert missing is not None and "no good backup is recorded" in missing
    # The health itself stays good: judge() ignores the backup's age.
    body = '{"status": "ok", "version": "1.0.0", "backup_age_hours": 99}'
    assert judge(200, body, 0, "1.0.0")["ok"] is True

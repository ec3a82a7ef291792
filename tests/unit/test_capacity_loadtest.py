"""The load test's plan and accounts, and set-cap's server side against a fake server."""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest

from db import load_accounts
from db.models import USERNAME_MAX
from releases import capacity
from releases import loadtest
from releases.capacity import Gates
from releases.capacity import Report
from releases.loadtest import LoadSettings
from releases.lock import DEPLOY_LOG
from releases.lock import merge_log
from service.accounts.forms import USERNAME_PATTERN
from service.accounts.services import key_hash as app_key_hash
from service.accounts.services import new_signin_key

ROOT = Path(__file__).resolve().parents[2]


def test_settings_travel_to_locust_workers_through_the_environment():
    settings = LoadSettings(
        steps=(1000, 2000, 3000),
        step_seconds=90,
        settle_seconds=20,
        think_min=1,
        think_max=2,
        prefix="load-ab-",
        secret="s3",
        processes=2,
        spread_addresses=False,
        snapshots_file="/tmp/x.json",
    )
    env = settings.to_env()
    assert env["TAS_LOAD_STEPS"] == "1000,2000,3000"
    assert LoadSettings.from_env(env) == settings
    assert LoadSettings.from_env({}) == LoadSettings()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"steps": ()},
        {"steps": (30, 20)},
        {"steps": (0, 10)},
        {"settle_seconds": 60, "step_seconds": 60},
        {"think_min": 5, "think_max": 1},
    ],
)
def test_impossible_plans_are_refused(kwargs):
    with pytest.raises(ValueError):
        LoadSettings(**kwargs)


def test_each_step_is_measured_after_its_settle_time_until_it_ends():
    settings = LoadSettings(steps=(20, 30), step_seconds=60, settle_seconds=15)
    assert [(m.at, m.step, m.opens) for m in loadtest.marks(settings)] == [
        (15, 0, True),
        (60, 0, False),
        (75, 1, True),
        (120, 1, False),
    ]
    assert [loadtest.target_users(settings, t) for t in (0, 59.9, 60, 119, 120)] == [
        20,
        20,
        30,
        30,
        None,
    ]


def test_users_arrive_within_the_settle_time_unless_a_rate_is_given():
    settings = LoadSettings(steps=(1000, 1500, 2500), settle_seconds=20)
    assert settings.effective_spawn_rate * settings.settle_seconds >= 1000
    assert LoadSettings(spawn_rate=7).effective_spawn_rate == 7
    assert settings.accounts >= 2500 + settings.processes


def test_seeded_keys_are_valid_app_keys_and_differ_per_person_and_run():
    key = load_accounts.load_user_key("secret", "load-00001")
    assert len(key) == len(new_signin_key()) and key.count("-") == 4
    assert set(key.replace("-", "")) <= set(load_accounts.KEY_ALPHABET)
    assert load_accounts.key_hash(key) == app_key_hash(key)
    assert key != load_accounts.load_user_key("secret", "load-00002")
    assert key != load_accounts.load_user_key("other", "load-00001")


def test_load_account_names_pass_the_sign_up_rules_and_runs_are_checked():
    name = load_accounts.load_username(load_accounts.run_prefix("ab12cd34"), 7)
    assert name == "load-ab12cd34-00007"
    assert re.fullmatch(USERNAME_PATTERN, name) and len(name) <= USERNAME_MAX
    for bad in ("", "AB12", "ab", "a-b-c", "x" * 33, "ab12; rm -rf /"):
        with pytest.raises(ValueError, match="a run's name"):
            load_accounts.run_prefix(bad)


def test_every_virtual_user_gets_its_own_client_address():
    addresses = {loadtest.address_for(n) for n in range(70_000)}
    assert len(addresses) == 70_000
    assert loadtest.address_for(0) == "10.0.0.1"


def test_snapshots_pair_into_one_window_per_step_and_an_unfinished_step_is_dropped():
    def row(step, opens, t, n):
        return {
            "step": step,
            "opens": opens,
            "time": t,
            "users": 20,
            "requests": n,
            "failures": 0,
            "response_times": {"10": n} if n else {},
        }

    rows = [row(0, True, 15, 10), row(0, False, 60, 100), row(1, True, 75, 130)]
    (window,) = loadtest.windows(rows)
    assert (window[0].requests, window[1].requests) == (10, 100)


# --- set-cap against a fake server --------------------------------------------------------


@dataclass
class Result:
    stdout: str = ""
    stderr: str = ""
    exited: int = 0


@dataclass
class FakeServer:
    """Just enough of releases.remote.Remote: files, the current link, healthz, systemctl."""

    release: str = "/srv/tas/releases/0.2.0-20250501T101010Z"
    running: str | None = "0.2.0"
    files: dict[str, str] = field(
        default_factory=lambda: {
            capacity.ENV_FILE: "APP_ENV=production\nMAX_USERS=25\n",
            "/etc/machine-id": "machine-1\n",
        }
    )
    dry_run: bool = False
    commands: list[str] = field(default_factory=list)
    app_started_before_env_file: bool = False

    def sudo(self, command: str, *, warn: bool = False, **_: object) -> Result:
        self.commands.append(command)
        if "ActiveEnterTimestamp" in command:
            return Result("Thu 2026-12-03 10:00:00 UTC\n")
        if command.startswith('[ "$(stat'):
            return Result(exited=0 if self.app_started_before_env_file else 1)
        if command.startswith("readlink"):
            return Result(self.release + "\n")
        if "healthz" in command:
            if self.running is None:
                return Result(exited=7, stderr="connection refused")
            return Result(json.dumps({"version": self.running, "status": "ok"}))
        if DEPLOY_LOG in command and command.startswith("echo "):
            line = base64.b64decode(command.split()[1]).decode()
            self.files[DEPLOY_LOG] = self.files.get(DEPLOY_LOG, "") + line
        if command.startswith("printf"):
            line = shlex.split(command)[2]
            self.files[capacity.CAPACITY_LOG] = self.files.get(capacity.CAPACITY_LOG, "") + line
        return Result()

    def ok(self, command: str, **_: object) -> bool:
        self.commands.append(command)
        return True

    def read(self, path: str) -> str | None:
        return self.files.get(path)

    def ensure_file(self, path: str, content: str, **_: object) -> bool:
        changed = self.files.get(path) != content
        self.files[path] = content
        return changed


def _passing(version: str = "0.2.0", release: str = "0.2.0-20250501T101010Z") -> Report:
    steps = [capacity.StepFigures(u, u, 60, 5000, 0, 83.3, 0.0, 20, 100, 200) for u in (20, 40)]
    return Report(
        version=version,
        url="https://tas.example",
        commit="abc",
        date="2025-05-01T10:00:00+00:00",
        gates=Gates(),
        steps=[capacity.judge_step(s, Gates()) for s in steps],
        target={
            "kind": "host",
            "machine_id": "machine-1",
            "release": release,
            "release_after": release,
        },
    )


def test_set_cap_writes_the_env_file_logs_restarts_and_checks_health():
    server = FakeServer()
    decision, lines = capacity.set_cap(server, 30, [_passing()], who="ops@laptop")
    assert decision.allowed
    assert "MAX_USERS=30\n" in server.files[capacity.ENV_FILE]
    assert "APP_ENV=production" in server.files[capacity.ENV_FILE]
    assert "systemctl restart tas.service" in server.commands
    entry = json.loads(server.files[capacity.CAPACITY_LOG])
    assert entry["from"] == 25 and entry["to"] == 30 and entry["who"] == "ops@laptop"
    assert entry["forced"] is False and entry["version"] == "0.2.0"
    assert entry["report"]["release"] == "0.2.0-20250501T101010Z"
    assert lines[-1] == "healthz answered after the restart"
    # The deploy log tells the same story, with the report the change relied on.
    (logged,) = merge_log(server.files[DEPLOY_LOG])
    assert logged["event"] == "set-cap" and (logged["from"], logged["to"]) == (25, 30)
    assert logged["served_release"] == "0.2.0-20250501T101010Z"
    assert logged["report"]["date"] == "2025-05-01T10:00:00+00:00"
    assert logged["report"]["recommended_cap"] == 30


def test_a_set_cap_cut_off_after_the_env_file_is_finished_by_the_next_one():
    """The env file already says 30 (replaced whole before the connection dropped), the
    app runs the old cap and nothing was logged: set-cap 30 logs it and restarts."""
    server = FakeServer(app_started_before_env_file=True)
    server.files[capacity.ENV_FILE] = "APP_ENV=production\nMAX_USERS=30\n"
    _, lines = capacity.set_cap(server, 30, [_passing()])
    assert any(
        "an earlier set-cap stopped before logging it and restarting the app" in line
        for line in lines
    )
    assert "systemctl restart tas.service" in server.commands
    entry = json.loads(server.files[capacity.CAPACITY_LOG])
    assert entry["to"] == 30 and entry["finishes_interrupted"] is True
    # Logged but not restarted (cut off after the log lines): only the restart is left.
    restart_only = FakeServer(app_started_before_env_file=True)
    restart_only.files.update(server.files)
    _, lines = capacity.set_cap(restart_only, 30, [_passing()])
    assert any("stopped before restarting the app" in line for line in lines)
    assert restart_only.files[capacity.CAPACITY_LOG] == server.files[capacity.CAPACITY_LOG]
    # All done: nothing to do, nothing restarted.
    done = FakeServer()
    done.files.update(server.files)
    _, lines = capacity.set_cap(done, 30, [_passing()])
    assert "MAX_USERS already has that value: nothing to do" in lines
    assert "systemctl restart tas.service" not in done.commands


def test_set_cap_refuses_above_the_report_and_changes_nothing():
    server = FakeServer()
    with pytest.raises(capacity.CapRefused, match="above the recommended cap 30"):
        capacity.set_cap(server, 31, [_passing()])
    assert "MAX_USERS=25\n" in server.files[capacity.ENV_FILE]
    assert capacity.CAPACITY_LOG not in server.files
    assert not any("restart" in c for c in server.commands)


def test_a_forced_change_is_logged_with_its_reason():
    server = FakeServer(release="/srv/tas/releases/0.3.0-20250601T000000Z", running="0.3.0")
    decision, _ = capacity.set_cap(server, 100, [_passing()], force=True, reason="launch day")
    assert decision.forced
    entry = json.loads(server.files[capacity.CAPACITY_LOG])
    assert entry["forced"] is True and entry["reason"] == "launch day"


def test_set_cap_refuses_while_the_running_app_is_not_the_current_release():
    server = FakeServer(running="0.1.0")
    with pytest.raises(capacity.CapRefused, match="reports 0.1.0"):
        capacity.set_cap(server, 30, [_passing()])


def test_a_dry_run_decides_and_describes_but_writes_nothing():
    server = FakeServer(dry_run=True)
    _, lines = capacity.set_cap(server, 30, [_passing()])
    assert "MAX_USERS=25\n" in server.files[capacity.ENV_FILE]
    assert any(line.startswith("would write MAX_USERS=30") for line in lines)
    assert not any("restart" in c for c in server.commands)


def test_set_cap_from_the_command_line_refuses_a_cap_that_is_not_a_number():
    """The operator's typo gets a sentence before anything connects anywhere."""
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "set-cap", "--host", "192.0.2.1", "--users", "lots"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "set-cap: --users must be a whole number, got 'lots'" in result.stderr
    assert "Traceback" not in result.stderr

"""The sizing loop on the deployed site (issue 15): load test through the front, then the cap.

One provisioned box with a deployed release. ``invoke loadtest --host`` runs small steps
through the site's domain, nginx and TLS (the box's address given with ``--connect-to``,
pebble's CA with ``--ca-file``), with its accounts made on the server over SSH; its report
raises the cap with ``invoke set-cap``, and a sign-up refused at the old cap then works.
An interrupted run (Ctrl-C) cleans up at once; a killed one is cleaned up by the server's
own timer. Afterwards no load-test account, nginx key or unit is left on the server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from releases.loadtest import resolving
from releases.loadtest_smoke import _Visitor
from releases.lock import merge_log
from releases.remote import KNOWN_HOSTS_ENV
from tests.e2e import vpsbox
from tests.e2e.conftest import DOMAIN
from tests.e2e.conftest import ROOT
from tests.e2e.conftest import clone_for_releases
from tests.e2e.conftest import cut
from tests.e2e.conftest import invoke
from tests.e2e.conftest import must
from tests.e2e.conftest import provisioned_box

pytestmark = pytest.mark.e2e

V1 = "0.2.0"
KEYS_DIR = "/etc/nginx/tas-load-keys"


@dataclass
class Sized:
    box: vpsbox.VpsBox
    ssh: list[str]
    front: list[str]  # how the load generator reaches and trusts the site
    ca: Path
    release: str
    provision: list[str]  # the arguments `invoke provision` was given
    repo: Path


@pytest.fixture(scope="module")
def sized(
    box_image: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sized]:
    box, pebble, ssh = provisioned_box(box_image, request, "sizing")
    repo = clone_for_releases(tmp_path_factory.mktemp("sizing") / "repo")
    assert cut(repo, "minor", "First release for the sizing test.") == V1
    ca = ["--ca-file", str(pebble.issuer_root)]
    must(invoke("deploy", *ssh, "--domain", DOMAIN, *ca, "--repo", str(repo)))
    release = box.enter(["readlink", "-f", "/srv/tas/current"]).stdout.strip().rsplit("/", 1)[-1]
    front = ["--connect-to", box.address, *ca]
    provision = [*ssh, "--domain", DOMAIN, "--acme-server", pebble.directory_url]
    provision += ["--acme-ca-file", str(pebble.api_ca)]
    with resolving(DOMAIN, box.address):
        yield Sized(box, ssh, front, pebble.issuer_root, release, provision, repo)


def as_tas(box: vpsbox.VpsBox, sql: str) -> str:
    result = box.enter(["runuser", "-u", "tas", "--", "psql", "-X", "-qtA", "-d", "tas", "-c", sql])
    return result.stdout.strip()


def leftovers(box: vpsbox.VpsBox) -> dict[str, Any]:
    """What a load test may leave on the server: must all be empty afterwards."""
    units = box.enter(
        ["systemctl", "list-units", "--all", "--plain", "--no-legend", "tas-load-*"], check=False
    ).stdout.split("\n")
    return {
        "accounts": int(as_tas(box, "SELECT count(*) FROM load_test_accounts")),
        "load users": int(as_tas(box, "SELECT count(*) FROM users WHERE username LIKE 'load-%'")),
        "keys": box.enter(["ls", "-A", KEYS_DIR]).stdout.split(),
        "units": [u.split()[0] for u in units if u.strip() and " active " in f" {u} "],
    }


CLEAN = {"accounts": 0, "load users": 0, "keys": [], "units": []}


def _max_users(box: vpsbox.VpsBox) -> int:
    env = box.enter(["cat", "/srv/tas/shared/tas.env"]).stdout
    return int(re.findall(r"^MAX_USERS=(\d+)$", env, re.MULTILINE)[-1])


def _stranger(sized: Sized) -> _Visitor:
    stranger = _Visitor(f"https://{DOMAIN}", str(sized.ca))
    stranger.http.trust_env = False
    return stranger


def test_the_cap_rises_only_on_a_load_test_of_the_deployed_site(sized: Sized, tmp_path: Path):
    box = sized.box
    # The cap where it starts: no room, sign-up refused.
    must(invoke("set-cap", *sized.ssh, "--users", "0"))
    _stranger(sized).get("/signup", contains="Sign-up is closed for now.")
    refused = invoke("set-cap", *sized.ssh, "--users", "10", "--reports-dir", str(tmp_path))
    assert refused.returncode == 1 and "no capacity report for the deployed release" in (
        refused.stderr
    )

    reports = tmp_path / "reports"
    run = invoke(
        "loadtest",
        *sized.ssh,
        *sized.front,
        "--steps",
        "10,25,50",
        "--step-seconds",
        "30",
        "--settle-seconds",
        "10",
        # No timing gate in a test (the machine is shared): errors still fail a step.
        "--p95-ms",
        "60000",
        "--out",
        str(reports),
    )
    out = must(run)
    assert "nginx lets this run's requests through its sign-in limit" in out
    assert re.search(r"made \d+ accounts load-\w+-\* with history on the server", out)
    assert "cleaned up on the server" in out
    (report_file,) = reports.glob("capacity-*.json")
    report = json.loads(report_file.read_text())
    print(json.dumps({k: report[k] for k in ("steps", "server", "target")}, indent=1))

    # What answered, and along which path.
    target = report["target"]
    assert report["version"] == V1 and report["url"] == f"https://{DOMAIN}"
    assert target["kind"] == "host" and target["release"] == target["release_after"]
    assert target["release"] == sized.release
    assert target["healthz"]["version"] == V1
    assert "nginx (TLS)" in target["path"] and "X-TAS-Load-Key" in target["rate_limits"]
    # Each step measured with no error, and the server's side of it read over SSH.
    assert [s["users"] for s in report["steps"]] == [10, 25, 50]
    assert all(s["requests"] > 0 and s["failures"] == 0 for s in report["steps"])
    assert report["passed"] and report["highest_passing_users"] == 50
    # New people arrived too: signed up through the pages (their accounts the run's).
    assert report["run"]["signups"] >= 5
    assert [s["users"] for s in report["server"]] == [10, 25, 50]
    for step in report["server"]:
        assert 0 < step["cpu_busy"] <= 100 and step["cpu_steal"] >= 0
        assert step["app_cpu"] > 0 and step["mem_used_mib"] > 0
        # nginx's own timing of the step's requests, from the site's timed log.
        assert step["front_requests"] > 0 and step["front_p95_ms"] is not None
        assert step["app_p95_ms"] is not None and step["recovered_after_s"] is not None
    assert target["server_before"]["cpu_busy"] is not None
    # The baseline through the same front: the smallest page, no think time, no failure.
    baseline = report["baseline"]
    assert baseline["path"] == "/healthz/live" and baseline["failures"] == 0
    assert baseline["rps"] > max(s["rps"] for s in report["steps"])
    assert leftovers(box) == CLEAN

    # Above the report's recommendation: refused; at it: the cap rises, and a stranger who
    # was turned away can now sign up.
    cap = report["recommended_cap"]
    too_many = invoke("set-cap", *sized.ssh, "--users", str(cap + 1), "--reports-dir", str(reports))
    assert too_many.returncode == 1
    assert f"{cap + 1} users is above the recommended cap {cap}" in too_many.stderr
    must(invoke("set-cap", *sized.ssh, "--users", str(cap), "--reports-dir", str(reports)))
    assert _max_users(box) == cap
    stranger = _stranger(sized)
    stranger.get("/signup")
    stranger.post("/signup", {"username": "after-sizing", "timezone": "UTC"}, expect=200)
    assert as_tas(box, "SELECT count(*) FROM users WHERE username = 'after-sizing'") == "1"

    # The deploy log keeps the change and the report it relied on.
    log = merge_log(box.enter(["cat", "/srv/tas/shared/deploys.log"]).stdout)
    change = [e for e in log if e.get("event") == "set-cap"][-1]
    assert (change["from"], change["to"], change["forced"]) == (0, cap, False)
    assert change["served_release"] == sized.release
    assert change["report"]["release"] == sized.release
    assert change["report"]["date"] == report["date"]
    assert change["report"]["recommended_cap"] == cap


def test_a_set_cap_cut_off_after_writing_the_env_file_is_finished_by_the_next_one(sized: Sized):
    """What a dropped connection right after the env file was replaced leaves: the new cap
    on disk, the app still running the old one, no log line. The same set-cap again must
    finish it, not say "nothing to do"."""
    box = sized.box
    assert _max_users(box) > 0  # the cap the test above raised
    # Replaced whole (sed -i renames a new file into place), as set-cap replaces it.
    box.enter(["sed", "-i", "s/^MAX_USERS=.*/MAX_USERS=0/", "/srv/tas/shared/tas.env"])
    stranger = _stranger(sized)
    stranger.get("/signup")
    stranger.post("/signup", {"username": "while-cut", "timezone": "UTC"}, expect=200)

    out = must(invoke("set-cap", *sized.ssh, "--users", "0"))
    assert "an earlier set-cap stopped before logging it and restarting the app" in out
    assert "restarted tas.service" in out
    _stranger(sized).get("/signup", contains="Sign-up is closed for now.")
    log = merge_log(box.enter(["cat", "/srv/tas/shared/deploys.log"]).stdout)
    change = [e for e in log if e.get("event") == "set-cap"][-1]
    assert change["to"] == 0
    # Once finished, the next one has nothing left to do.
    again = must(invoke("set-cap", *sized.ssh, "--users", "0"))
    assert "MAX_USERS already has that value: nothing to do" in again


def _start_loadtest(sized: Sized, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "loadtest.out"
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "loadtest", *sized.ssh, *sized.front, *extra],
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, log


def _wait_for(log: Path, pattern: str, process: subprocess.Popen, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        found = re.search(pattern, text)
        if found:
            return found.group(0)
        assert process.poll() is None, f"loadtest ended early:\n{text}"
        time.sleep(0.3)
    raise AssertionError(f"no {pattern!r} within {timeout}s:\n{log.read_text()}")


def test_an_interrupted_load_test_leaves_no_accounts_and_no_key_behind(
    sized: Sized, tmp_path: Path
):
    process, log = _start_loadtest(
        sized, tmp_path, "--steps", "10", "--step-seconds", "120", "--out", str(tmp_path)
    )
    try:
        _wait_for(log, r"loadtest: steps \[10\]", process)
        time.sleep(5)  # the virtual users are signing in and clicking around
        assert leftovers(sized.box)["accounts"] > 0 and len(leftovers(sized.box)["keys"]) == 1
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    out = log.read_text()
    print(out)
    assert process.returncode == 130
    assert "cleaned up on the server" in out and "interrupted: no report" in out
    assert "Traceback" not in out
    assert leftovers(sized.box) == CLEAN
    assert not list(tmp_path.glob("capacity-*.json"))


def test_a_killed_load_test_is_cleaned_up_by_the_server_itself(sized: Sized, tmp_path: Path):
    process, log = _start_loadtest(
        sized,
        tmp_path,
        *("--steps", "5", "--step-seconds", "20", "--settle-seconds", "5"),
        *("--cleanup-margin", "5", "--out", str(tmp_path)),
    )
    try:
        run = _wait_for(log, r"run \w+ on", process).split()[1]
        _wait_for(log, r"loadtest: steps \[5\]", process)
        os.kill(process.pid, signal.SIGKILL)  # the locust it started runs out its 20 s
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    left = leftovers(sized.box)
    assert left["accounts"] > 0 and left["keys"] == [f"{run}.conf"]
    assert f"tas-load-cleanup-{run}.timer" in left["units"]
    # The timer fires about 30 s (accounts) + 20 s (the step) + 5 s (margin) after set-up.
    deadline = time.monotonic() + 150
    while leftovers(sized.box) != CLEAN and time.monotonic() < deadline:
        time.sleep(2)
    assert leftovers(sized.box) == CLEAN
    journal = sized.box.enter(
        ["journalctl", "-u", f"tas-load-cleanup-{run}.service", "-o", "cat"], check=False
    ).stdout
    print(journal)
    # Everyone else's requests are limited as before: the site's sign-in still answers.
    _stranger(sized).get("/signin")


def _short_run(sized: Sized, tmp_path: Path) -> tuple[subprocess.Popen, Path, str]:
    """A one-step load test (5 users, 20 s), its safety timer 5 s after its end."""
    process, log = _start_loadtest(
        sized,
        tmp_path,
        *("--steps", "5", "--step-seconds", "20", "--settle-seconds", "5", "--p95-ms", "60000"),
        *("--baseline-seconds", "2", "--cleanup-margin", "5", "--out", str(tmp_path)),
    )
    run = _wait_for(log, r"run \w+ on", process).split()[1]
    _wait_for(log, r"loadtest: steps \[5\]", process)
    time.sleep(4)  # the virtual users are signed in and clicking around
    return process, log, run


def _ends_clean(sized: Sized, process: subprocess.Popen, log: Path) -> str:
    """The run ends by itself, without a traceback, and leaves nothing behind (at once, or
    when its safety timer fires)."""
    try:
        process.wait(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    out = log.read_text()
    print(out)
    assert process.returncode in (0, 1) and "Traceback" not in out
    deadline = time.monotonic() + 150
    while leftovers(sized.box) != CLEAN and time.monotonic() < deadline:
        time.sleep(2)
    assert leftovers(sized.box) == CLEAN
    _stranger(sized).get("/signin")
    return out


def test_a_load_test_that_loses_its_ssh_connection_still_leaves_nothing_behind(
    sized: Sized, tmp_path: Path
):
    process, log, run = _short_run(sized, tmp_path)
    # The sshd processes serving the deploy user: the connection drops at once.
    sized.box.enter(["pkill", "-KILL", "-f", "^sshd: deploy"], check=False)
    out = _ends_clean(sized, process, log)
    # Cleaned up over a new connection, or, if none could be made, by the server's timer.
    assert "cleaned up on the server" in out or f"timer tas-load-cleanup-{run}" in out


def test_a_postgresql_restart_during_a_load_test_is_reported_and_cleaned_up(
    sized: Sized, tmp_path: Path
):
    process, log, _ = _short_run(sized, tmp_path)
    sized.box.enter(["systemctl", "restart", "postgresql"])
    out = _ends_clean(sized, process, log)
    assert "cleaned up on the server" in out
    # The run still reports: requests that failed meanwhile count as that step's errors.
    (report_file,) = tmp_path.glob("capacity-*.json")
    report = json.loads(report_file.read_text())
    assert [s["users"] for s in report["steps"]] == [5]
    assert report["steps"][0]["requests"] > 0


def _fingerprint(box: vpsbox.VpsBox, kind: str = "ed25519") -> str:
    key = box.root / f"etc/ssh/ssh_host_{kind}_key.pub"
    return subprocess.run(
        ["ssh-keygen", "-lf", str(key)], capture_output=True, text=True, check=True
    ).stdout.split()[1]


def _any_fingerprint(box: vpsbox.VpsBox) -> list[str]:
    """The box's keys as the server offers them (which one is asked for depends on the
    key types the client knows for it)."""
    return [
        f"{name} {_fingerprint(box, kind)}"
        for kind, name in (
            ("ed25519", "ssh-ed25519"),
            ("ecdsa", "ecdsa-sha2-nistp256"),
            ("rsa", "ssh-rsa"),
        )
    ]


def test_only_a_recorded_host_key_is_trusted(sized: Sized, tmp_path: Path):
    """Issue 16: tasks refuse an unknown server; provision records a new one only when told
    (printing the fingerprint the server's console shows); a changed key is refused.
    Last in this module: it changes the box's host keys (and puts them back)."""
    box = sized.box
    mine = {KNOWN_HOSTS_ENV: str(tmp_path / "known_hosts")}  # an operator's first contact
    unknown = invoke("releases", *sized.ssh, env=mine)
    assert unknown.returncode == 1
    assert f"{box.address} is not a known server" in unknown.stderr
    assert _fingerprint(box) in unknown.stderr and "--accept-new-host-key" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    recorded = must(invoke("provision", *sized.provision, "--accept-new-host-key", env=mine))
    assert f"recorded the host key of {box.address}: ssh-ed25519 {_fingerprint(box)}" in recorded
    must(invoke("releases", *sized.ssh, env=mine))

    box.enter(["sh", "-c", "mkdir -p /root/keys && cp -a /etc/ssh/ssh_host_* /root/keys/"])
    try:
        box.enter(["sh", "-c", "rm /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh"])
        for env in (mine, {}):  # the operator's file and the session's: both refuse
            deploy = ["--domain", DOMAIN, "--repo", str(sized.repo)]
            changed = invoke("deploy", *sized.ssh, *deploy, env=env)
            assert changed.returncode == 1
            assert f"the host key of deploy@{box.address}:22 is not the one recorded" in (
                changed.stderr
            )
            assert any(f"it is now {key}" in changed.stderr for key in _any_fingerprint(box))
            assert "Nothing was run" in changed.stderr and "Traceback" not in changed.stderr
    finally:
        box.enter(["sh", "-c", "cp -a /root/keys/ssh_host_* /etc/ssh/ && systemctl restart ssh"])
    must(invoke("releases", *sized.ssh))

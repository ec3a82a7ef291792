"""The fault matrix: deploy and rollback, each step hit by the faults that really happen.

One provisioned box for the whole module. v1 (0.2.0) serves; v2 (0.3.0) adds a migration
that takes a few seconds (so a fault can land inside it); 0.3.1 is v2 with a sign-in page
that fails (its /healthz is fine). A person signed in over HTTPS keeps creating tasks the
whole time (the writer) while another thread loads their dashboard (the prober).

Each case starts from v1 serving (v2 for rollback cases), runs ``invoke deploy`` or
``invoke rollback`` as an operator does, and when the step named by the case starts (its
line in the output) injects the fault: the SSH connection dropped (the box's sshd
processes serving it killed), the local invoke killed (SIGKILL) or interrupted (SIGINT),
PostgreSQL restarted or stopped, or a release whose page fails. After each case:

* the site answers the person's dashboard through nginx over HTTPS (within 60 s);
* no acknowledged write is lost (every task the writer got a redirect for is there);
* code and schema are a consistent pair: /healthz is ok and its schema is the head of the
  release that answers;
* the deploy log has a line for the attempt; the lock is free, or reported stale (then
  removed with ``invoke unlock`` as an operator would);
* the next ``invoke deploy`` (or ``invoke rollback``) succeeds.

The outcomes are written to ``docs/faults.md`` (generated, not written by hand).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import pytest
import requests

from releases import lock as deploy_lock
from releases.loadtest_smoke import StepFailed
from releases.loadtest_smoke import _Visitor
from tests.e2e import vpsbox
from tests.e2e.conftest import DOMAIN
from tests.e2e.conftest import ROOT
from tests.e2e.conftest import clone_for_releases
from tests.e2e.conftest import cut
from tests.e2e.conftest import git
from tests.e2e.conftest import invoke
from tests.e2e.conftest import must
from tests.e2e.conftest import provisioned_box

pytestmark = pytest.mark.e2e

V1, V2, BROKEN = "0.2.0", "0.3.0", "0.3.1"
DOC = ROOT / "docs" / "faults.md"

SLOW_MIGRATION = '''"""e2e: a column on tasks, and a few seconds of work (tests/e2e/test_faults.py)

Revision ID: e2efault1
Revises: {down}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e2efault1"
down_revision = "{down}"
branch_labels = None
depends_on = None
irreversible = False
compatible_with_previous = False


def upgrade() -> None:
    op.add_column("tasks", sa.Column("e2e_fault", sa.Text(), nullable=True))
    op.execute("SELECT pg_sleep(4)")


def downgrade() -> None:
    op.execute("SELECT pg_sleep(2)")
    op.drop_column("tasks", "e2e_fault")
'''


@dataclass
class Lab:
    box: vpsbox.VpsBox
    ssh: list[str]
    release_args: list[str]
    ca: Path
    heads: dict[str, str]
    person: _Visitor
    writer: Writer
    prober: Prober
    rows: list[dict[str, Any]] = field(default_factory=list)
    rewound: set[str] = field(default_factory=set)


# --- traffic --------------------------------------------------------------------------------


def _visitor(ca: Path) -> _Visitor:
    person = _Visitor(f"https://{DOMAIN}", str(ca))
    person.http.trust_env = False
    person.http.headers["Referer"] = f"https://{DOMAIN}/"
    return person


class Writer(threading.Thread):
    """Creates a task every ~0.3 s through the site; keeps the names it got a 302 for."""

    def __init__(self, ca: Path, cookies: Any) -> None:
        super().__init__(daemon=True)
        self.person = _visitor(ca)
        self.person.http.cookies.update(cookies)
        self.stop = threading.Event()
        self.acked: list[str] = []
        self.failed = 0
        self.n = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.n += 1
            name = f"w-{os.getpid()}-{self.n}"
            try:
                self.person.get("/tasks/new")
                self.person.post("/tasks/new", {"name": name, "kind": "one-time"})
                self.acked.append(name)
            except (StepFailed, requests.RequestException):
                self.failed += 1
            time.sleep(0.3)


class Prober(threading.Thread):
    """Loads the person's dashboard every 0.25 s; remembers when it answered."""

    def __init__(self, ca: Path, cookies: Any) -> None:
        super().__init__(daemon=True)
        self.person = _visitor(ca)
        self.person.http.cookies.update(cookies)
        self.stop = threading.Event()
        self.answers: list[tuple[float, bool]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.person.get("/", contains="Survive faults")
                ok = True
            except (StepFailed, requests.RequestException):
                ok = False
            self.answers.append((time.monotonic(), ok))
            time.sleep(0.25)

    def longest_gap(self, since: float) -> float:
        """The longest time without a good answer since ``since`` (0 when never down)."""
        last_good, gap = since, 0.0
        for at, ok in list(self.answers):
            if at < since:
                continue
            if ok:
                gap = max(gap, at - last_good - 0.5)
                last_good = at
        return round(max(gap, 0.0), 1)


# --- the box --------------------------------------------------------------------------------


@contextlib.contextmanager
def _resolving(address: str) -> Iterator[None]:
    import socket

    original = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return original(address if host == DOMAIN else host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = original


@pytest.fixture(scope="module")
def lab(
    box_image: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    box, pebble, ssh = provisioned_box(box_image, request, "faults")
    repo = clone_for_releases(tmp_path_factory.mktemp("faults") / "repo")
    assert cut(repo, "minor", "The release that serves before every case.") == V1
    heads = {V1: _head(repo, V1)}
    (repo / "db/migrations/versions/20261203_e2efault1_slow.py").write_text(
        SLOW_MIGRATION.format(down=heads[V1])
    )
    assert cut(repo, "minor", "A slow migration.") == V2
    heads[V2] = "e2efault1"
    signin = repo / "service/templates/accounts/signin.html"
    signin.write_text(signin.read_text().replace("<h1>", "{{ broken_on_purpose() }}<h1>", 1))
    assert cut(repo, "patch", "A release whose sign-in page fails.") == BROKEN
    heads[BROKEN] = "e2efault1"
    git(repo, "checkout", "-q", f"v{V2}", "--", "service/templates/accounts/signin.html")
    release_args = ["--domain", DOMAIN, "--ca-file", str(pebble.issuer_root), "--repo", str(repo)]
    must(invoke("deploy", *ssh, *release_args, "--version", V1))
    with _resolving(box.address):
        person = _visitor(pebble.issuer_root)
        person.get("/signup")
        person.post("/signup", {"username": "faults-e2e", "timezone": "UTC"}, expect=200)
        person.get("/tasks/new")
        person.post("/tasks/new", {"name": "Survive faults", "kind": "one-time"})
        writer = Writer(pebble.issuer_root, person.http.cookies)
        prober = Prober(pebble.issuer_root, person.http.cookies)
        writer.start()
        prober.start()
        lab = Lab(box, ssh, release_args, pebble.issuer_root, heads, person, writer, prober)
        try:
            yield lab
        finally:
            writer.stop.set()
            prober.stop.set()
            writer.join(timeout=30)
            prober.join(timeout=30)
            if lab.rows:
                write_doc(lab.rows)


def _head(repo: Path, version: str) -> str:
    manifest = json.loads((repo / "releases/manifests" / f"{version}.json").read_text())
    return str(manifest["alembic_head"])


def as_postgres(box: vpsbox.VpsBox, sql: str) -> str:
    result = box.enter(
        ["runuser", "-u", "postgres", "--", "psql", "-X", "-qtA", "-d", "tas", "-c", sql],
        check=False,
    )
    return result.stdout.strip()


def written(box: vpsbox.VpsBox, database: str) -> set[str]:
    """The writer's tasks in ``database``."""
    result = box.enter(
        ["runuser", "-u", "postgres", "--", "psql", "-X", "-qtA", "-d", database, "-c"]
        + ["SELECT name FROM tasks WHERE name LIKE 'w-%'"],
        check=False,
    )
    return set(result.stdout.split())


def log_entries(box: vpsbox.VpsBox) -> list[dict[str, Any]]:
    text = box.enter(["cat", "/srv/tas/shared/deploys.log"], check=False).stdout
    return deploy_lock.merge_log(text)


def healthz(lab: Lab) -> dict[str, Any]:
    response = requests.get(f"https://{DOMAIN}/healthz", verify=str(lab.ca), timeout=10)
    body: dict[str, Any] = response.json()
    return body


def lock_held(box: vpsbox.VpsBox) -> bool:
    return box.enter(["test", "-d", deploy_lock.LOCK_DIR], check=False).returncode == 0


def runs_active(box: vpsbox.VpsBox) -> bool:
    out = box.enter(
        ["systemctl", "list-units", "--no-legend", "--state=active,activating", "tas-run-*"],
        check=False,
    ).stdout
    return bool(out.strip())


# --- faults ---------------------------------------------------------------------------------


def inject(lab: Lab, fault: str, process: subprocess.Popen[str]) -> None:
    box = lab.box
    if fault == "sigkill":
        process.send_signal(signal.SIGKILL)
    elif fault == "sigint":
        process.send_signal(signal.SIGINT)
    elif fault == "ssh-drop":
        # The sshd processes serving the deploy user: the connection drops at once.
        box.enter(["pkill", "-KILL", "-f", "^sshd: deploy"], check=False)
    elif fault == "pg-restart":
        box.enter(["systemctl", "restart", "postgresql"])
    else:
        raise AssertionError(f"unknown fault {fault}")


@dataclass(frozen=True)
class Case:
    id: str
    action: str  # deploy | rollback
    target: str
    step: str  # the line that starts the step (a regex)
    fault: str
    extra: tuple[str, ...] = ()
    # Seconds after the step's line before the fault: lands inside a step that takes a while
    # (the test migration sleeps 4 s inside its transaction).
    delay: float = 0.0


def run_case(lab: Lab, case: Case) -> dict[str, Any]:
    """Run the command, inject the fault when its step starts; what happened."""
    if case.action == "deploy":
        args = ["deploy", *lab.ssh, *lab.release_args, "--version", case.target, *case.extra]
    elif case.action == "restore":
        args = ["restore", *lab.ssh, "--ca-file", str(lab.ca), "--yes", "--file", case.target]
    else:
        args = ["rollback", *lab.ssh, *lab.release_args, "--to", case.target, *case.extra]
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output: list[str] = []
    fired_at = 0.0
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line.rstrip("\n"))
        if not fired_at and re.search(case.step, line):
            time.sleep(case.delay)
            fired_at = time.monotonic()
            inject(lab, case.fault, process)
    code = process.wait(timeout=900)
    text = "\n".join(output)
    print(f"[faults] {case.id}: exit {code}\n{text}", flush=True)
    assert fired_at, f"{case.id}: the step {case.step!r} never started:\n{text}"
    assert "Traceback" not in text, f"{case.id}: the operator got a stack trace"
    return {"code": code, "output": text, "started": started, "fired_at": fired_at}


def settle(lab: Lab, timeout: float = 180) -> None:
    """Wait until no server-side run is going on (a detached one finishes by itself)."""
    deadline = time.monotonic() + timeout
    while runs_active(lab.box):
        assert time.monotonic() < deadline, "a server-side run did not end"
        time.sleep(1)


def serving(lab: Lab, timeout: float = 60) -> float:
    """Seconds until the person's dashboard answers (0 if at once)."""
    started = time.monotonic()
    while True:
        try:
            lab.person.get("/", contains="Survive faults")
            return round(time.monotonic() - started, 1)
        except (StepFailed, requests.RequestException):
            assert time.monotonic() - started < timeout, "the site did not answer in 60 s"
            time.sleep(0.5)


def check_after(lab: Lab, case: Case, ran: dict[str, Any]) -> dict[str, Any]:
    settle(lab)
    waited = serving(lab)
    # No acknowledged write is lost: each is in the live database or, after a restore (which
    # rewinds on purpose), in the replaced database the restore keeps.
    acked = list(lab.writer.acked)
    present = written(lab.box, "tas")
    replaced = 0
    if case.action == "restore":
        kept = as_postgres(
            lab.box, "SELECT datname FROM pg_database WHERE datname LIKE 'tas_replaced_%'"
        ).split()
        for database in kept:
            before = len(present)
            present |= written(lab.box, database)
            replaced += len(present) - before
    # Writes an earlier restore rewound were kept in its replaced database, which the next
    # restore drops (their copy stays in that restore's safety dump, never deleted).
    lost = [name for name in acked if name not in present and name not in lab.rewound]
    assert lost == [], f"{case.id}: acknowledged writes lost: {lost[:10]}"
    if case.action == "restore":
        lab.rewound |= present - written(lab.box, "tas")
    # Code and schema are a consistent pair.
    body = healthz(lab)
    assert body["status"] == "ok", body
    version = body["version"]
    assert body["schema"] == lab.heads[version], body
    # The attempt is in the deploy log.
    entries = [
        e
        for e in log_entries(lab.box)
        if e.get("event") == case.action and str(e.get("started_at", "")) >= ran["stamp"]
    ]
    assert entries, f"{case.id}: no deploy log line for the attempt"
    entry = entries[-1]
    # The lock is free or reported stale; a stale one is removed as an operator would.
    lock = "free"
    if lock_held(lab.box):
        dry = invoke("deploy", *lab.ssh, *lab.release_args, "--version", V1, "--dry-run")
        assert "STALE" in dry.stdout, f"{case.id}: the lock is held and not stale:\n{dry.stdout}"
        must(invoke("unlock", *lab.ssh, "--reason", f"e2e fault case {case.id}"))
        lock = "stale (unlocked)"
    return {
        "serves": version,
        "result": entry.get("result"),
        "lock": lock,
        "gap": lab.prober.longest_gap(ran["started"]),
        "waited": waited,
        "lost": len(lost),
        "acked": len(acked),
        "replaced": replaced,
    }


def back_to(lab: Lab, version: str) -> str:
    """The following deploy or rollback, which must succeed: leaves ``version`` serving."""
    now = healthz(lab)["version"]
    if now == version == V1:
        must(invoke("deploy", *lab.ssh, *lab.release_args, "--version", V1))
        return f"deploy {V1} ok"
    if now == version:
        must(invoke("rollback", *lab.ssh, *lab.release_args, "--to", V1))
        must(invoke("deploy", *lab.ssh, *lab.release_args, "--version", version))
        return f"rollback {V1}, deploy {version} ok"
    if version == V1:
        must(invoke("rollback", *lab.ssh, *lab.release_args, "--to", V1))
        return f"rollback {V1} ok"
    must(invoke("deploy", *lab.ssh, *lab.release_args, "--version", version))
    return f"deploy {version} ok"


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


STEP = {
    "read": r"deploy: read the server \.\.\.",
    "install": r"deploy: install the dependencies into a fresh venv \.\.\.",
    "backup": r"deploy: back up the database",
    "migrate": r"deploy: migrate \S+ -> e2efault1",
    "canary": r"deploy: canary: ",
    "switch": r"deploy: switch current -> ",
    "gate": r"deploy: health gate: ",
    "finish": r"deploy: clean up",
    "rb-downgrade": r"rollback: alembic downgrade \S+ from ",
    "rb-switch": r"rollback: switch current -> ",
    "rb-gate": r"rollback: health gate: ",
    "rs-check": r"restore: \S+ holds revision",
    "rs-restore": r"restore: restore \S+ \(the app is stopped meanwhile\) \.\.\.",
    "rs-start": r"restore: start the app again \.\.\.",
}

DEPLOY_CASES = [
    Case("install-sigkill", "deploy", V2, STEP["install"], "sigkill"),
    Case("install-sigint", "deploy", V2, STEP["install"], "sigint"),
    Case("install-ssh", "deploy", V2, STEP["install"], "ssh-drop"),
    Case("backup-pg", "deploy", V2, STEP["backup"], "pg-restart"),
    Case("backup-sigkill", "deploy", V2, STEP["backup"], "sigkill"),
    Case("migrate-pg", "deploy", V2, STEP["migrate"], "pg-restart", delay=2.0),
    Case("migrate-ssh", "deploy", V2, STEP["migrate"], "ssh-drop"),
    Case("migrate-sigint", "deploy", V2, STEP["migrate"], "sigint"),
    Case("canary-sigkill", "deploy", V2, STEP["canary"], "sigkill"),
    Case("switch-ssh", "deploy", V2, STEP["switch"], "ssh-drop"),
    Case("gate-sigint", "deploy", V2, STEP["gate"], "sigint"),
    Case("gate-pg", "deploy", V2, STEP["gate"], "pg-restart"),
    Case("finish-sigkill", "deploy", V2, STEP["finish"], "sigkill"),
]

ROLLBACK_CASES = [
    Case("rb-downgrade-sigkill", "rollback", V1, STEP["rb-downgrade"], "sigkill"),
    Case("rb-downgrade-pg", "rollback", V1, STEP["rb-downgrade"], "pg-restart", delay=1.0),
    Case("rb-switch-ssh", "rollback", V1, STEP["rb-switch"], "ssh-drop"),
    Case("rb-gate-sigint", "rollback", V1, STEP["rb-gate"], "sigint"),
]


RESTORE_CASES = [
    Case("rs-check-sigkill", "restore", "", STEP["rs-check"], "sigkill"),
    Case("rs-restore-pg", "restore", "", STEP["rs-restore"], "pg-restart", delay=0.3),
    Case("rs-restore-ssh", "restore", "", STEP["rs-restore"], "ssh-drop"),
    Case("rs-restore-sigint", "restore", "", STEP["rs-restore"], "sigint"),
    Case("rs-start-sigkill", "restore", "", STEP["rs-start"], "sigkill"),
]


def _record(lab: Lab, case: Case, ran: dict[str, Any], after: dict[str, Any], follow: str) -> None:
    lab.rows.append(
        {
            "case": case.id,
            "action": case.action,
            "step": case.step,
            "fault": case.fault,
            "exit": ran["code"],
            **after,
            "following": follow,
        }
    )


@pytest.mark.parametrize("case", DEPLOY_CASES, ids=[c.id for c in DEPLOY_CASES])
def test_a_fault_during_a_deploy_loses_nothing_and_leaves_a_consistent_site(lab: Lab, case: Case):
    assert healthz(lab)["version"] == V1
    stamp = _stamp()
    ran = {**run_case(lab, case), "stamp": stamp}
    after = check_after(lab, case, ran)
    follow = back_to(lab, V1)
    _record(lab, case, ran, after, follow)


@pytest.mark.parametrize("case", ROLLBACK_CASES, ids=[c.id for c in ROLLBACK_CASES])
def test_a_fault_during_a_rollback_loses_nothing_and_leaves_a_consistent_site(lab: Lab, case: Case):
    if healthz(lab)["version"] != V2:
        must(invoke("deploy", *lab.ssh, *lab.release_args, "--version", V2))
    stamp = _stamp()
    ran = {**run_case(lab, case), "stamp": stamp}
    after = check_after(lab, case, ran)
    follow = back_to(lab, V1)
    _record(lab, case, ran, after, follow)


@pytest.mark.parametrize("case", RESTORE_CASES, ids=[c.id for c in RESTORE_CASES])
def test_a_fault_during_a_restore_loses_nothing_and_leaves_a_consistent_site(lab: Lab, case: Case):
    """A restore rewinds on purpose: what it replaces stays in the replaced database."""
    assert healthz(lab)["version"] == V1
    out = must(invoke("backup", *lab.ssh))
    match = re.search(r"backup: (/srv/tas/backups/\S+\.dump)", out)
    assert match, out
    case = Case(
        case.id, case.action, Path(match.group(1)).name, case.step, case.fault, delay=case.delay
    )
    time.sleep(2)  # a few writes after the dump: the restore replaces them
    stamp = _stamp()
    ran = {**run_case(lab, case), "stamp": stamp}
    after = check_after(lab, case, ran)
    _record(lab, case, ran, after, back_to(lab, V1))


@pytest.mark.parametrize("action", ["deploy", "rollback"])
def test_nothing_is_planned_while_the_database_cannot_be_read(lab: Lab, action: str):
    """Item 1: with PostgreSQL down, a deploy or rollback is refused (no plan made from a
    guess, so no undo that would downgrade to base) and nothing changes."""
    before = lab.box.enter(["readlink", "/srv/tas/current"]).stdout.strip()
    target = V2 if action == "deploy" else V1
    option = "--version" if action == "deploy" else "--to"
    stamp = _stamp()
    started = time.monotonic()
    lab.box.enter(["systemctl", "stop", "postgresql"])
    try:
        result = invoke(action, *lab.ssh, *lab.release_args, option, target)
    finally:
        lab.box.enter(["systemctl", "start", "postgresql"])
    assert result.returncode != 0
    assert f"{action} refused: the database cannot be read" in result.stderr
    assert lab.box.enter(["readlink", "/srv/tas/current"]).stdout.strip() == before
    step = STEP["read"] if action == "deploy" else "plan"
    case = Case(f"{action}-pg-down", action, target, step, "PostgreSQL stopped")
    ran = {"code": result.returncode, "started": started, "stamp": stamp}
    after = check_after(lab, case, ran)
    assert after["result"] == "refused" and after["lock"] == "free"
    _record(lab, case, ran, after, back_to(lab, V1))


def test_a_release_whose_pages_fail_is_stopped_by_the_canary_and_by_the_gate(lab: Lab):
    """Item 8: /healthz answers, the sign-in page does not: neither check lets it through."""
    for extra, name, words in (
        ((), "canary-broken-page", "the canary failed"),
        (("--no-canary",), "gate-broken-page", "the health gate failed"),
    ):
        stamp = _stamp()
        started = time.monotonic()
        result = invoke("deploy", *lab.ssh, *lab.release_args, "--version", BROKEN, *extra)
        assert result.returncode != 0
        assert words in result.stderr and "/signin does not render (HTTP 500)" in result.stderr
        case = Case(name, "deploy", BROKEN, "-", "a page fails")
        ran = {"code": result.returncode, "started": started, "stamp": stamp}
        after = check_after(lab, case, ran)
        assert after["serves"] == V1 and after["result"] == "rolled back"
        _record(lab, case, ran, after, back_to(lab, V1))


# --- docs/faults.md -------------------------------------------------------------------------


def write_doc(rows: list[dict[str, Any]]) -> None:
    head = DOC.read_text().split("<!-- generated -->")[0] if DOC.exists() else ""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    lines = [
        "<!-- generated -->",
        f"Generated by `tests/e2e/test_faults.py` on {when} (load average {load}).",
        "",
        "| case | action | fault | at the step | invoke exit | then serves | log says | lock "
        "| longest gap (s) | acked writes | lost | replaced (kept) | the next command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        step = row["step"].split(": ", 1)[-1].replace("\\.", ".").replace("|", "/")
        lines.append(
            f"| {row['case']} | {row['action']} | {row['fault']} | `{step}` | {row['exit']} "
            f"| {row['serves']} | {row['result']} | {row['lock']} | {row['gap']} "
            f"| {row['acked']} | {row['lost']} | {row.get('replaced', 0)} | {row['following']} |"
        )
    DOC.write_text(head + "\n".join(lines) + "\n")

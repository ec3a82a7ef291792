"""The fault matrix: every step of deploy, rollback and restore, hit by the faults that happen.

Two provisioned boxes, each running one share of the cases in order (in a thread of its
own: most of a case is waiting on the box, so two boxes nearly halve the run); the test of
each case waits for its outcome and reports it. On each box v1 (0.2.0) serves first; v2
(0.3.0) adds a migration that takes a few seconds (so a fault can land inside it); 0.3.1
is v2 with a sign-in page that fails (its /healthz is fine); v3 (0.4.0) adds an
irreversible migration on top of v2's, so the way back from it is ``rollback
--restore-backup``. A person signed in over HTTPS keeps creating tasks the whole time (the
writer) while another thread loads their dashboard (the prober).

Each case starts from the release it names serving, runs ``invoke deploy``, ``invoke
rollback`` or ``invoke restore`` as an operator does, and when the step named by the case
starts (its line in the output) injects the fault: the SSH connection dropped (the box's
sshd processes serving it killed), the local invoke killed (SIGKILL) or interrupted
(SIGINT), PostgreSQL restarted; or PostgreSQL is down for the whole command; or the
release's page fails (the canary or the health gate fails). After each case:

* the site answers the person's dashboard through nginx over HTTPS (within 60 s);
* no acknowledged write is lost: every task the writer got a redirect for is in the live
  database, or -- only where a restore rewinds on purpose or a failed restore is swapped
  back -- in the database it kept aside (``tas_replaced_*``, ``tas_failed_*``; counted);
* code and schema are a consistent pair: /healthz is ok and its schema is the head of the
  release that answers, and what ``invoke`` said matches what serves;
* the deploy log has a line for the attempt; the lock is free, or reported stale (then
  removed with ``invoke unlock`` as an operator would);
* after a dropped connection the client that reconnects names its new SSH session in the
  lock (a live holder never looks stale);
* the following ``invoke deploy`` or ``invoke rollback`` succeeds. It is chosen to bring
  the box to the release the next case starts from, so it is also that case's set-up.

The outcomes, with the time each case took, are written to ``docs/faults.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import pytest
import requests

from releases import lock as deploy_lock
from releases import scripts
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

V1, V2, BROKEN, V3 = "0.2.0", "0.3.0", "0.3.1", "0.4.0"
# Releases kept by every deploy here (an operator's option): the cases redeploy the same
# version many times, and the default 5 would delete every release of the one a rollback
# case goes back to (and the failed 0.3.1 a restore-backup rollback case needs).
KEEP = ["--keep", "40"]
DOC = ROOT / "docs" / "faults.md"
# A case's command, checks and following command; far more than any case takes.
CASE_TIMEOUT = 600

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
    op.execute("SELECT pg_sleep(3)")


def downgrade() -> None:
    op.execute("SELECT pg_sleep(2)")
    op.drop_column("tasks", "e2e_fault")
'''

IRREVERSIBLE_MIGRATION = '''"""e2e: a table; its removal is irreversible (tests/e2e/test_faults.py)

Revision ID: e2efault2
Revises: e2efault1
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from alembic.util import CommandError

revision = "e2efault2"
down_revision = "e2efault1"
branch_labels = None
depends_on = None
irreversible = True
compatible_with_previous = False


def upgrade() -> None:
    op.create_table("e2e_fault_notes", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    raise CommandError("e2efault2 is irreversible: restore the pre-deploy dump")
'''


# --- traffic --------------------------------------------------------------------------------

# Which box the site's domain means, per thread: each box has its writer, prober and the
# thread running its cases.
_ADDRESS: dict[int, str] = {}
_original_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host == DOMAIN:
        host = _ADDRESS.get(threading.get_ident(), host)
    return _original_getaddrinfo(host, *args, **kwargs)


def _visitor(ca: Path) -> _Visitor:
    person = _Visitor(f"https://{DOMAIN}", str(ca))
    person.http.trust_env = False
    person.http.headers["Referer"] = f"https://{DOMAIN}/"
    return person


class Writer(threading.Thread):
    """Creates a task every ~0.3 s through the site; keeps the names it got a 302 for."""

    def __init__(self, ca: Path, cookies: Any, address: str, tag: str) -> None:
        super().__init__(daemon=True)
        self.person = _visitor(ca)
        self.person.http.cookies.update(cookies)
        self.address = address
        self.tag = tag
        self.stop = threading.Event()
        self.acked: list[str] = []
        self.failed = 0
        self.n = 0

    def run(self) -> None:
        _ADDRESS[threading.get_ident()] = self.address
        while not self.stop.is_set():
            self.n += 1
            name = f"w-{self.tag}-{os.getpid()}-{self.n}"
            try:
                self.person.get("/tasks/new")
                self.person.post("/tasks/new", {"name": name, "kind": "one-time"})
                self.acked.append(name)
            except (StepFailed, requests.RequestException):
                self.failed += 1
            time.sleep(0.3)


class Prober(threading.Thread):
    """Loads the person's dashboard every 0.25 s; remembers when it answered."""

    def __init__(self, ca: Path, cookies: Any, address: str) -> None:
        super().__init__(daemon=True)
        self.person = _visitor(ca)
        self.person.http.cookies.update(cookies)
        self.address = address
        self.stop = threading.Event()
        self.answers: list[tuple[float, bool]] = []

    def run(self) -> None:
        _ADDRESS[threading.get_ident()] = self.address
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


# --- the cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    action: str  # deploy | rollback | restore
    start: str  # the release serving before the case
    target: str  # the version deployed or rolled back to ("" for a restore)
    step: str  # key of STEP: the line that starts the step; "" when nothing is injected
    fault: str  # ssh-drop | sigkill | sigint | pg-restart | pg-down | page-fails
    shard: int  # which box runs it
    extra: tuple[str, ...] = ()
    # Seconds after the step's line before the fault: lands inside a step that takes a while
    # (the test migration sleeps 3 s inside its transaction, its downgrade 2 s).
    delay: float = 0.0
    # What must serve afterwards, when the case is about that (None: whatever is consistent).
    then_serves: str | None = None

    @property
    def restores(self) -> bool:
        return self.action == "restore" or "--restore-backup" in self.extra


STEP = {
    "deploy/read": r"deploy: read the server \.\.\.",
    "deploy/install": r"deploy: install the dependencies into a fresh venv \.\.\.",
    "deploy/backup": r"deploy: back up the database",
    "deploy/migrate": r"deploy: migrate \S+ -> e2efault1",
    "deploy/canary": r"deploy: canary: ",
    "deploy/switch": r"deploy: switch current -> ",
    "deploy/gate": r"deploy: health gate: ",
    "deploy/finish": r"deploy: clean up",
    "rollback/plan": r"rollback: plan: read the server",
    "rollback/downgrade": r"rollback: alembic downgrade \S+ from ",
    "rollback/restore": r"rollback: restore \S+ \(the app is stopped meanwhile\) \.\.\.",
    "rollback/switch": r"rollback: switch current -> ",
    "rollback/gate": r"rollback: health gate: ",
    "restore/check": r"restore: \S+ holds revision",
    "restore/restore": r"restore: restore \S+ \(the app is stopped meanwhile\) \.\.\.",
    "restore/start": r"restore: start the app again \.\.\.",
    "restore/gate": r"restore: health gate: ",
}
FAULTS = ("ssh-drop", "sigkill", "sigint", "pg-restart")
SHORT = {"ssh-drop": "ssh", "sigkill": "sigkill", "sigint": "sigint", "pg-restart": "pg"}
# Where a fault must land inside a step that takes a while, not at its first instant.
DELAY = {
    ("deploy/migrate", "pg-restart"): 1.5,
    ("rollback/downgrade", "pg-restart"): 1.0,
    ("rollback/restore", "pg-restart"): 0.3,
    ("restore/restore", "pg-restart"): 0.3,
}


def _grid(
    action: str, steps: list[str], start: str, target: str, shard: int, **kw: Any
) -> list[Case]:
    prefix = {"deploy": "", "rollback": "rb-", "restore": "rs-"}[action]
    if "--restore-backup" in kw.get("extra", ()):
        prefix = "rbr-"
    return [
        Case(
            f"{prefix}{step}-{SHORT[fault]}",
            action,
            start,
            target,
            f"{action}/{step}",
            fault,
            shard,
            delay=DELAY.get((f"{action}/{step}", fault), 0.0),
            **kw,
        )
        for step in steps
        for fault in FAULTS
    ]


def _restores(steps: list[str], shard: int) -> list[Case]:
    """Restore cases start on v1 and v2 by turns, so each following command is one deploy
    or one rollback that also sets up the next case."""
    cases = _grid("restore", steps, V1, "", shard)
    return [
        Case(c.id, c.action, (V1, V2)[i % 2], c.target, c.step, c.fault, shard, delay=c.delay)
        for i, c in enumerate(cases)
    ]


CASES = [
    # Box 0: deploys v1 -> v2, then restores.
    Case("deploy-pg-down", "deploy", V1, V2, "", "pg-down", 0, then_serves=V1),
    *_grid(
        "deploy",
        ["read", "install", "backup", "migrate", "canary", "switch", "gate", "finish"],
        V1,
        V2,
        0,
    ),
    *_restores(["check", "restore"], 0),
    # Box 1: restores, rollbacks v2 -> v1, the pages that fail, restore-backup rollbacks.
    *_restores(["start", "gate"], 1),
    Case("rollback-pg-down", "rollback", V2, V1, "", "pg-down", 1, then_serves=V2),
    *_grid("rollback", ["plan", "downgrade", "switch", "gate"], V2, V1, 1),
    Case("canary-broken-page", "deploy", V1, BROKEN, "", "page-fails", 1, then_serves=V1),
    Case(
        "gate-broken-page",
        "deploy",
        V1,
        BROKEN,
        "",
        "page-fails",
        1,
        ("--no-canary",),
        then_serves=V1,
    ),
    # The health gate fails after the restore (the target's page fails): the replaced
    # database is swapped back, then the code; the site is back on v3 as it was.
    Case(
        "rbr-gate-fails",
        "rollback",
        V3,
        BROKEN,
        "",
        "page-fails",
        1,
        ("--restore-backup",),
        then_serves=V3,
    ),
    *_grid("rollback", ["restore", "switch", "gate"], V3, V2, 1, extra=("--restore-backup",)),
]


# --- one box --------------------------------------------------------------------------------


@dataclass
class Lab:
    shard: int
    box: vpsbox.VpsBox
    ssh: list[str]
    release_args: list[str]
    ca: Path
    heads: dict[str, str]
    writer: Writer | None = None
    prober: Prober | None = None
    person: _Visitor | None = None
    # Acknowledged writes seen in a database kept aside by a restore or its undo (its copy
    # stays in the safety dump when the next restore drops that database).
    kept: set[str] = field(default_factory=set)

    def say(self, text: str) -> None:
        print(f"[faults:{self.shard}] {text}", flush=True)


def _head(repo: Path, version: str) -> str:
    manifest = json.loads((repo / "releases/manifests" / f"{version}.json").read_text())
    return str(manifest["alembic_head"])


def _cut_releases(repo: Path) -> dict[str, str]:
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
    (repo / "db/migrations/versions/20261203_e2efault2_irreversible.py").write_text(
        IRREVERSIBLE_MIGRATION
    )
    assert cut(repo, "minor", "An irreversible migration.") == V3
    heads[V3] = "e2efault2"
    return heads


def _open_lab(
    shard: int,
    box_image: Path,
    request: pytest.FixtureRequest,
    repo: Path,
    heads: dict[str, str],
) -> Lab:
    box, pebble, ssh = provisioned_box(box_image, request, f"faults{shard}")
    release_args = ["--domain", DOMAIN, "--ca-file", str(pebble.issuer_root), "--repo", str(repo)]
    lab = Lab(shard, box, ssh, release_args, pebble.issuer_root, heads)
    must(invoke("deploy", *ssh, *release_args, "--version", V1))
    _ADDRESS[threading.get_ident()] = box.address
    person = _visitor(pebble.issuer_root)
    person.get("/signup")
    person.post("/signup", {"username": f"faults-e2e-{shard}", "timezone": "UTC"}, expect=200)
    person.get("/tasks/new")
    person.post("/tasks/new", {"name": "Survive faults", "kind": "one-time"})
    lab.person = person
    lab.writer = Writer(pebble.issuer_root, person.http.cookies, box.address, str(shard))
    lab.prober = Prober(pebble.issuer_root, person.http.cookies, box.address)
    lab.writer.start()
    lab.prober.start()
    return lab


def as_postgres(box: vpsbox.VpsBox, sql: str, database: str = "tas") -> str:
    result = box.enter(
        ["runuser", "-u", "postgres", "--", "psql", "-X", "-qtA", "-d", database, "-c", sql],
        check=False,
    )
    return result.stdout.strip()


def written(box: vpsbox.VpsBox, database: str) -> set[str]:
    """The writer's tasks in ``database``."""
    return set(as_postgres(box, "SELECT name FROM tasks WHERE name LIKE 'w-%'", database).split())


def note_kept(lab: Lab) -> None:
    """Remember the writes in the databases restores and their undo keep aside."""
    kept = as_postgres(
        lab.box, "SELECT datname FROM pg_database WHERE datname ~ '^tas_(replaced|failed)_'"
    ).split()
    for database in kept:
        lab.kept |= written(lab.box, database)


def log_entries(box: vpsbox.VpsBox) -> list[dict[str, Any]]:
    text = box.enter(["cat", deploy_lock.DEPLOY_LOG], check=False).stdout
    return deploy_lock.merge_log(text)


def healthz(lab: Lab) -> dict[str, Any]:
    response = requests.get(f"https://{DOMAIN}/healthz", verify=str(lab.ca), timeout=10)
    body: dict[str, Any] = response.json()
    return body


def lock_now(box: vpsbox.VpsBox) -> deploy_lock.LockState:
    """The lock as ``invoke`` sees it: the same script, run in the box without SSH."""
    out = box.enter(["python3", "-c", scripts.text("lock_status.py"), deploy_lock.LOCK_DIR])
    return deploy_lock.LockState.from_status(out.stdout)


def runs_active(box: vpsbox.VpsBox) -> bool:
    out = box.enter(
        ["systemctl", "list-units", "--no-legend", "--state=active,activating", "tas-run-*"],
        check=False,
    ).stdout
    return bool(out.strip())


def serving_version(lab: Lab) -> str:
    return str(healthz(lab).get("version"))


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


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


def command(lab: Lab, case: Case, dump: str = "") -> list[str]:
    if case.action == "deploy":
        return ["deploy", *lab.ssh, *lab.release_args, "--version", case.target, *case.extra, *KEEP]
    if case.action == "restore":
        return ["restore", *lab.ssh, "--ca-file", str(lab.ca), "--yes", "--file", dump]
    return ["rollback", *lab.ssh, *lab.release_args, "--to", case.target, *case.extra]


def run_case(lab: Lab, case: Case, args: list[str]) -> dict[str, Any]:
    """Run the command, inject the fault when its step starts; what happened."""
    started = time.monotonic()
    if case.fault == "pg-down":
        lab.box.enter(["systemctl", "stop", "postgresql"])
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
    reconnected = False
    renewals: list[deploy_lock.LockState] = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line.rstrip("\n"))
        if reconnected and line.startswith(f"{case.action}: ") and "connection lost" not in line:
            # The client reconnected and goes on: the lock must name a live session.
            renewals.append(lock_now(lab.box))
            reconnected = False
        if "connection lost" in line:
            reconnected = True
        if case.step and not fired_at and re.search(STEP[case.step], line):
            time.sleep(case.delay)
            fired_at = time.monotonic()
            inject(lab, case.fault, process)
    code = process.wait(timeout=900)
    if case.fault == "pg-down":
        lab.box.enter(["systemctl", "start", "postgresql"])
        fired_at = started
    text = "\n".join(output)
    lab.say(f"{case.id}: exit {code}\n{text}")
    assert not case.step or fired_at, f"{case.id}: the step {case.step!r} never started:\n{text}"
    assert "Traceback" not in text, f"{case.id}: the operator got a stack trace"
    for state in renewals:
        assert not state.held or state.session_alive, (
            f"{case.id}: the client reconnected but the lock names its dead session: "
            f"{state.describe()}"
        )
    return {
        "code": code,
        "output": text,
        "started": started,
        "took": round(time.monotonic() - started, 1),
        "renewed": bool(renewals),
    }


def settle(lab: Lab, timeout: float = 180) -> None:
    """Wait until no server-side run is going on (a detached one finishes by itself)."""
    deadline = time.monotonic() + timeout
    while runs_active(lab.box):
        assert time.monotonic() < deadline, "a server-side run did not end"
        time.sleep(0.3)


def serving(lab: Lab, timeout: float = 60) -> float:
    """Seconds until the person's dashboard answers (0 if at once)."""
    assert lab.person is not None
    started = time.monotonic()
    while True:
        try:
            lab.person.get("/", contains="Survive faults")
            return round(time.monotonic() - started, 1)
        except (StepFailed, requests.RequestException):
            assert time.monotonic() - started < timeout, "the site did not answer in 60 s"
            time.sleep(0.25)


def check_after(lab: Lab, case: Case, ran: dict[str, Any]) -> dict[str, Any]:
    assert lab.writer is not None and lab.prober is not None
    settle(lab)
    waited = serving(lab)
    # No acknowledged write is lost: each is in the live database or, where a restore
    # rewinds on purpose or its undo swaps the database back, in one kept aside.
    acked = list(lab.writer.acked)
    live = written(lab.box, "tas")
    kept_before = set(lab.kept)
    note_kept(lab)
    lost = [name for name in acked if name not in live and name not in lab.kept]
    assert lost == [], f"{case.id}: acknowledged writes lost: {lost[:10]}"
    aside = [n for n in acked if n not in live and n in lab.kept and n not in kept_before]
    assert case.restores or not aside, f"{case.id}: writes moved aside without a restore"
    # Code and schema are a consistent pair.
    body = healthz(lab)
    assert body["status"] == "ok", body
    version = body["version"]
    assert body["schema"] == lab.heads[version], body
    if case.then_serves:
        assert version == case.then_serves, f"{case.id}: {version} serves"
    # What invoke said matches what serves: success means the target serves, a failure
    # or refusal that it does not (a restore keeps the release either way).
    if case.action != "restore":
        if ran["code"] == 0:
            assert version == case.target, f"{case.id}: exit 0 but {version} serves"
        elif ran["code"] == 1:
            assert version != case.target, f"{case.id}: exit 1 but {version} serves"
        if "the old release still serves" in ran["output"]:
            assert version == case.start, f"{case.id}: said the old release serves; {version} does"
    # Ctrl-C before the hand-over: the operator is told (exit 130), and the log says so.
    interrupted = case.fault == "sigint" and "handed over to the server" not in ran["output"]
    if interrupted:
        assert ran["code"] == 130 and "interrupted" in ran["output"], ran["output"]
    # The attempt is in the deploy log.
    entries = [
        e
        for e in log_entries(lab.box)
        if e.get("event") == case.action and str(e.get("started_at", "")) >= ran["stamp"]
    ]
    assert entries, f"{case.id}: no deploy log line for the attempt"
    entry = entries[-1]
    if interrupted:
        assert entry.get("result") == "interrupted", entry
    # The lock is free or reported stale; a stale one is removed as an operator would.
    lock = "free"
    state = lock_now(lab.box)
    if state.held:
        assert state.stale(), f"{case.id}: the lock is held and not stale: {state.describe()}"
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
        "aside": len(aside),
    }


# --- moving between releases: the following command, and set-ups ---------------------------


def _do(lab: Lab, *args: str) -> str:
    # Following deploys skip the canary (--no-canary, an operator's option): every case's
    # own deploy runs it, and the gate still checks the release; it saves seconds a case.
    extra = ["--no-canary", *KEEP] if args[0] == "deploy" else []
    must(invoke(*args[:1], *lab.ssh, *lab.release_args, *args[1:], *extra))
    note_kept(lab)  # a restore-backup rollback keeps the rewound writes aside
    return " ".join(a for a in args if not a.startswith("--") or a == "--restore-backup")


def move(lab: Lab, want: str) -> str:
    """Bring ``want`` to serve with deploys and rollbacks that must each succeed (at least
    one: it is the case's following command); says which ran."""
    now = serving_version(lab)
    done = []
    if now == V3 and want != V3:
        done.append(_do(lab, "rollback", "--to", V2, "--restore-backup"))
        now = V2
    if want == V1:
        done.append(
            _do(lab, "rollback", "--to", V1) if now == V2 else _do(lab, "deploy", "--version", V1)
        )
    elif want == V2:
        if not done or now != V2:
            done.append(_do(lab, "deploy", "--version", V2))
    elif want == V3:
        if now == V1:
            done.append(_do(lab, "deploy", "--version", V2))
        done.append(_do(lab, "deploy", "--version", V3))
    return "; ".join(f"{d} ok" for d in done)


def take_backup(lab: Lab) -> str:
    """A nightly dump now, as ``invoke backup`` takes it (the same unit, without SSH)."""
    lab.box.enter(["systemctl", "start", "tas-backup.service"])
    out = lab.box.enter(
        ["sh", "-c", "ls -1t /srv/tas/backups/ | grep -E '^tas-[0-9TZ]+[.]dump$' | head -n 1"]
    )
    name = out.stdout.strip()
    assert name, "the backup unit wrote no dump"
    return name


def play(lab: Lab, case: Case, following: str) -> dict[str, Any]:
    """One case on its box, then the following command that brings ``following`` to serve."""
    began = time.monotonic()
    setup = ""
    if serving_version(lab) != case.start:
        setup = move(lab, case.start)  # only when the previous case failed or was left out
    dump = ""
    if case.action == "restore":
        dump = take_backup(lab)
        time.sleep(1)  # a few writes after the dump: the restore replaces them
    stamp = _stamp()
    ran = {**run_case(lab, case, command(lab, case, dump)), "stamp": stamp}
    after = check_after(lab, case, ran)
    checked = time.monotonic()
    follow = move(lab, following)
    ended = time.monotonic()
    row = {
        "case": case.id,
        "action": case.action,
        "step": case.step or "-",
        "fault": case.fault,
        "exit": ran["code"],
        **after,
        "renewed": ran["renewed"],
        "following": follow,
        "output": ran["output"],
        "setup": setup,
        "command_s": ran["took"],
        "case_s": round(checked - began, 1),
        "following_s": round(ended - checked, 1),
    }
    lab.say(f"{case.id}: {json.dumps(row)}")
    return row


def recover(lab: Lab, case: Case) -> None:
    """After a failed case, free a lock it left so the next cases still run (and say so)."""
    with contextlib.suppress(Exception):
        settle(lab)
        if lock_now(lab.box).held:
            invoke("unlock", *lab.ssh, "--reason", f"e2e: recover after the failed case {case.id}")


# --- running both boxes ---------------------------------------------------------------------


@dataclass
class Outcome:
    done: threading.Event = field(default_factory=threading.Event)
    row: dict[str, Any] | None = None
    error: str = ""


def _box_story(lab: Lab) -> str:
    """What the box's app and deploy units said lately: the reason behind a failed case."""
    said = lab.box.enter(
        [
            "journalctl",
            "-u",
            "tas.service",
            "-u",
            "tas-run-*",
            "-n",
            "60",
            "--no-pager",
            "-o",
            "short-precise",
        ],
        check=False,
    )
    return f"\n--- box journal (tas.service, runs) ---\n{said.stdout[-6000:]}"


class Matrix:
    """Each box's cases in order, in a thread per box; the tests wait for their case."""

    def __init__(self, labs: list[Lab], cases: list[Case]) -> None:
        self.labs = labs
        self.outcomes = {case.id: Outcome() for case in cases}
        self.threads = [
            threading.Thread(
                target=self._run,
                args=(lab, [c for c in cases if c.shard == lab.shard]),
                daemon=True,
            )
            for lab in labs
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _run(self, lab: Lab, cases: list[Case]) -> None:
        _ADDRESS[threading.get_ident()] = lab.box.address
        for i, case in enumerate(cases):
            outcome = self.outcomes[case.id]
            following = cases[i + 1].start if i + 1 < len(cases) else V1
            try:
                outcome.row = play(lab, case, following)
            except BaseException:  # noqa: BLE001 - reported by the case's test
                outcome.error = traceback.format_exc() + _box_story(lab)
                lab.say(f"{case.id}: FAILED\n{outcome.error}")
                recover(lab, case)
            finally:
                outcome.done.set()

    def wait(self, case: Case) -> dict[str, Any]:
        outcome = self.outcomes[case.id]
        assert outcome.done.wait(timeout=CASE_TIMEOUT * 90), f"{case.id} never ran"
        if outcome.error:
            pytest.fail(f"{case.id}:\n{outcome.error}", pytrace=False)
        assert outcome.row is not None
        return outcome.row


@pytest.fixture(scope="module")
def matrix(
    box_image: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Matrix]:
    began = time.monotonic()
    repo = clone_for_releases(tmp_path_factory.mktemp("faults") / "repo")
    heads = _cut_releases(repo)
    socket.getaddrinfo = _getaddrinfo  # type: ignore[assignment]
    # Only the cases pytest selected (-k) run; a box only for a share that has some.
    chosen = {
        item.callspec.params["case"].id
        for item in request.session.items
        if item.module is sys.modules[__name__] and hasattr(item, "callspec")
    }
    cases = [case for case in CASES if case.id in chosen]
    shards = sorted({case.shard for case in cases})
    labs: dict[int, Lab] = {}
    errors: list[str] = []

    def open_one(shard: int) -> None:
        try:
            labs[shard] = _open_lab(shard, box_image, request, repo, heads)
        except BaseException:  # noqa: BLE001 - raised below, in the fixture's thread
            errors.append(traceback.format_exc())

    run: Matrix | None = None
    openers = [threading.Thread(target=open_one, args=(shard,)) for shard in shards]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join()
    try:
        assert not errors, "\n".join(errors)
        print(f"[faults] boxes ready: {time.monotonic() - began:.1f} s", flush=True)
        run = Matrix([labs[s] for s in shards], cases)
        run.start()
        yield run
    finally:
        for lab in labs.values():
            for thread in (lab.writer, lab.prober):
                if thread is not None:
                    thread.stop.set()
                    thread.join(timeout=30)
        socket.getaddrinfo = _original_getaddrinfo
        rows = [] if run is None else [o.row for o in run.outcomes.values() if o.row]
        if rows and len(rows) == len(CASES):  # a partial run (-k) leaves the doc alone
            write_doc(rows, round(time.monotonic() - began))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_fault_loses_nothing_and_leaves_a_consistent_site(matrix: Matrix, case: Case):
    row = matrix.wait(case)
    assert row["lost"] == 0
    if case.fault == "pg-down":
        # Item 1: nothing is planned from a guess while the database cannot be read.
        assert f"{case.action} refused: the database cannot be read" in row["output"]
        assert row["result"] == "refused" and row["lock"] == "free"
    if case.fault == "page-fails":
        # Item 8: /healthz answers, the sign-in page does not: stopped, everything put back.
        assert row["exit"] == 1
        assert "/signin does not render (HTTP 500)" in row["output"]
        assert row["result"] in ("rolled back", "failed, back on the release it came from")
    if case.id == "canary-broken-page":
        assert "the canary failed" in row["output"]
    if case.id in ("gate-broken-page", "rbr-gate-fails"):
        assert "the health gate failed" in row["output"]
    if case.id == "rbr-gate-fails":
        # The restore was swapped back before the code went back: the log says so.
        assert "put the replaced database back" in row["output"]


# --- docs/faults.md -------------------------------------------------------------------------


def write_doc(rows: list[dict[str, Any]], total: int) -> None:
    head = DOC.read_text().split("<!-- generated -->")[0] if DOC.exists() else ""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    lines = [
        "<!-- generated -->",
        f"Generated by `tests/e2e/test_faults.py` on {when}: {len(rows)} cases on two boxes "
        f"in {total // 60} min {total % 60} s including provisioning (load average {load}).",
        "",
        "| case | action | fault | at the step | invoke exit | then serves | log says | lock "
        "| longest gap (s) | acked writes | lost | kept aside | the next command "
        "| case (s) | next (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        step = row["step"].split("/", 1)[-1]
        lines.append(
            f"| {row['case']} | {row['action']} | {row['fault']} | {step} | {row['exit']} "
            f"| {row['serves']} | {row['result']} | {row['lock']} | {row['gap']} "
            f"| {row['acked']} | {row['lost']} | {row['aside']} | {row['following']} "
            f"| {row['case_s']} | {row['following_s']} |"
        )
    DOC.write_text(head + "\n".join(lines) + "\n")

"""Release, deploy and roll back on a disposable "VPS", under load, the way an operator would.

One box for the whole module (its own, so the provisioning tests keep a fresh one): the
module fixture provisions it, then the tests run IN ORDER as one story, each building on
the last — in a throwaway clone of this repository, with real ``invoke release`` runs:

1. v1 (0.2.0) is released and deployed; a person signs up over HTTPS and makes a task;
2. a broken release (0.2.1, its app cannot start) is refused by the canary, then — with
   the canary off — switched to, caught by the health gate and undone by itself;
3. a dry run of v2 (0.3.0, with a real migration) shows the pending SQL and what cleanup
   would delete, and changes nothing (server snapshot compared);
4. v2 is deployed with ``--keep 2`` while a load generator sends requests through nginx
   over HTTPS: no request may fail; the data is intact; the oldest failed release is
   deleted but v1 (previous, beyond the 2 kept) is not;
5. a second deploy is refused by the lock; a stale lock is reported and force-removed;
6. rollback to v1 under the same load: no failed request, schema back at v1's revision;
   ``invoke releases`` shows the table; the deploy log has one line per event;
7. across an irreversible migration the rollback is refused; --restore-backup restores
   the pre-deploy dump and says which writes were lost;
8. a tampered manifest is refused; ``invoke set-cap`` refuses without a passing capacity
   report, raises the cap within one under load without a failed request, closes sign-up
   when lowered, and logs a forced change with its reason.
"""

from __future__ import annotations

import json
import re
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
from releases.loadtest import resolving
from releases.loadtest_smoke import _Visitor
from releases.remote import Remote
from releases.remote import SshTarget
from releases.remote import connect
from tests.e2e import vpsbox
from tests.e2e.conftest import DOMAIN
from tests.e2e.conftest import clone_for_releases
from tests.e2e.conftest import cut
from tests.e2e.conftest import git
from tests.e2e.conftest import invoke
from tests.e2e.conftest import must
from tests.e2e.conftest import provisioned_box

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
V1, BROKEN, V2 = "0.2.0", "0.2.1", "0.3.0"
TIMINGS: dict[str, Any] = {}

MIGRATION = '''"""e2e: a note column on tasks (added by tests/e2e/test_deploy.py)

Revision ID: e2e0002
Revises: {down}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e2e0002"
down_revision = "{down}"
branch_labels = None
depends_on = None
irreversible = False
# Declared a contract step on purpose, so the rollback runs the downgrade path.
compatible_with_previous = False


def upgrade() -> None:
    op.add_column("tasks", sa.Column("e2e_note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "e2e_note")
'''


@dataclass
class Site:
    box: vpsbox.VpsBox
    ssh: list[str]
    health: list[str]
    repo: Path
    ca: Path
    v1_revision: str
    person: _Visitor | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def _git(repo: Path, *args: str) -> str:
    return git(repo, *args)


def _release(repo: Path, part: str, note: str) -> str:
    return cut(repo, part, note)


def as_tas(box: vpsbox.VpsBox, sql: str) -> str:
    result = box.enter(["runuser", "-u", "tas", "--", "psql", "-X", "-qtA", "-d", "tas", "-c", sql])
    return result.stdout.strip()


def snapshot(box: vpsbox.VpsBox) -> dict[str, str]:
    """What a dry run must not change: the files under /srv/tas, the links, the schema, the log."""
    listing = box.enter(
        ["find", "/srv/tas", "-not", "-path", "*/venv/*", "-printf", "%p %y %s %l\\n"]
    ).stdout
    return {
        "listing": "\n".join(sorted(listing.splitlines())),
        "current": box.enter(["readlink", "/srv/tas/current"], check=False).stdout,
        "revision": as_tas(box, "SELECT version_num FROM alembic_version"),
        "log": box.enter(["cat", "/srv/tas/shared/deploys.log"], check=False).stdout,
        "units": box.enter(["systemctl", "is-active", "tas.service"], check=False).stdout,
    }


def log_entries(box: vpsbox.VpsBox) -> list[dict[str, Any]]:
    """The deploy log as `invoke releases` reads it: the lines of one run make one entry."""
    text = box.enter(["cat", "/srv/tas/shared/deploys.log"], check=False).stdout
    return deploy_lock.merge_log(text)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Load:
    """A few threads sending requests through nginx over HTTPS as one signed-in person.

    Every answer counts: a connection error, a timeout or any 5xx is a failure.
    """

    PATHS = ("/", "/tasks/new", "/signin", "/static/css/app.css")

    def __init__(self, site: Site, threads: int = 4) -> None:
        assert site.person is not None
        self.cookies = site.person.http.cookies
        self.ca = str(site.ca)
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: list[str] = []
        self.statuses: dict[int, int] = {}

    def _run(self) -> None:
        http = requests.Session()
        http.trust_env = False  # see test_v1_...: the environment's CA bundle must not win
        http.verify = self.ca
        http.cookies.update(self.cookies)
        n = 0
        while not self.stop.is_set():
            path = self.PATHS[n % len(self.PATHS)]
            n += 1
            try:
                response = http.get(f"https://{DOMAIN}{path}", timeout=30, allow_redirects=False)
                failed = response.status_code >= 500
                detail = f"{path}: HTTP {response.status_code}"
                status = response.status_code
            except requests.RequestException as exc:
                failed, detail, status = True, f"{path}: {type(exc).__name__}: {exc}", 0
            with self.lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if failed:
                    self.failures.append(f"{time.strftime('%H:%M:%S')} {detail}")
                else:
                    self.ok += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        time.sleep(1.0)  # traffic flowing before the deploy starts
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(1.0)  # and still flowing after it ends
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=40)

    def summary(self) -> str:
        return f"{self.ok} ok, {len(self.failures)} failed, statuses {self.statuses}"


@pytest.fixture(scope="module")
def site(
    box_image: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    box, pebble, ssh = provisioned_box(box_image, request, "deploy")

    repo = clone_for_releases(tmp_path_factory.mktemp("deploy") / "repo")
    assert _release(repo, "minor", "First release for the deploy test.") == V1
    v1_revision = json.loads((repo / "releases/manifests" / f"{V1}.json").read_text())[
        "alembic_head"
    ]
    health = ["--domain", DOMAIN, "--ca-file", str(pebble.issuer_root), "--repo", str(repo)]
    with resolving(DOMAIN, box.address):
        yield Site(box, ssh, health, repo, pebble.issuer_root, v1_revision)


def healthz(site: Site) -> dict[str, Any]:
    response = requests.get(f"https://{DOMAIN}/healthz", verify=str(site.ca), timeout=10)
    body: dict[str, Any] = response.json()
    return body


NOTE_COLUMN = (
    "SELECT count(*) FROM information_schema.columns "
    "WHERE table_name = 'tasks' AND column_name = 'e2e_note'"
)


def data(site: Site) -> str:
    """The people and tasks in the database: what no deploy or rollback may change."""
    users = as_tas(site.box, "SELECT string_agg(username, ',' ORDER BY id) FROM users")
    return users + "/" + as_tas(site.box, "SELECT string_agg(name, ',' ORDER BY id) FROM tasks")


# --- the story, in order ------------------------------------------------------------------


def test_v1_deploys_from_its_tag_and_answers_with_its_version(site: Site):
    result = invoke("deploy", *site.ssh, *site.health)
    out = must(result)
    TIMINGS["deploy v1 (first, empty database)"] = (round(result.took, 1), load_average())
    assert "build the artifact from v0.2.0 and check its hash: done" in out
    assert "= manifest" in out
    assert "back up the database" in out  # an empty database still gets its dump first
    body = healthz(site)
    assert body["version"] == V1 and body["schema_state"] == "current"
    current = site.box.enter(["readlink", "/srv/tas/current"]).stdout.strip()
    assert re.fullmatch(rf"/srv/tas/releases/{V1}-\d{{8}}T\d{{6}}Z", current)
    # The server got a manifest and no git: the release directory holds only the artifact.
    assert site.box.enter(["test", "-f", f"{current}/manifest.json"], check=False).returncode == 0
    assert site.box.enter(["test", "-e", f"{current}/.git"], check=False).returncode != 0
    assert site.box.enter(["readlink", f"{current}/tas.env"]).stdout.strip() == (
        "/srv/tas/shared/tas.env"
    )
    entry = log_entries(site.box)[-1]
    assert entry["event"] == "deploy" and entry["result"] == "ok"
    assert entry["version"] == V1 and entry["alembic_after"] == site.v1_revision
    assert entry["backup"].startswith("/srv/tas/backups/tas-")
    assert entry["health"]["body"]["version"] == V1
    assert set(entry["steps"]) >= {
        "install the app",
        f"health gate: https://{DOMAIN}/healthz must answer {V1}",
    }
    tag = f"deployed/{site.box.address}"
    assert _git(site.repo, "cat-file", "-t", tag) == "tag"
    assert _git(site.repo, "rev-parse", f"{tag}^{{commit}}") == _git(
        site.repo, "rev-parse", f"v{V1}^{{commit}}"
    )

    # A person signs up over HTTPS and makes a task: the data every later step must keep.
    person = _Visitor(f"https://{DOMAIN}", str(site.ca))
    # REQUESTS_CA_BUNDLE in the environment would override a session's own verify=.
    person.http.trust_env = False
    # Flask-WTF checks the Referer of a form posted over HTTPS, as a browser sends it.
    person.http.headers["Referer"] = f"https://{DOMAIN}/"
    person.get("/signup")
    person.post("/signup", {"username": "deploy-e2e", "timezone": "UTC"}, expect=200)
    person.get("/tasks/new")
    person.post(
        "/tasks/new",
        {"name": "Survive deploys", "kind": "one-time", "default_estimate_minutes": "5"},
    )
    person.get("/", contains="Survive deploys")
    site.person = person
    site.notes["data"] = data(site)
    assert site.notes["data"] == "deploy-e2e/Survive deploys"


def test_a_broken_release_is_stopped_by_the_canary_and_the_old_one_keeps_serving(site: Site):
    wsgi = site.repo / "service" / "wsgi.py"
    wsgi.write_text(wsgi.read_text() + '\nraise RuntimeError("broken on purpose (e2e)")\n')
    assert _release(site.repo, "patch", "A release whose app cannot start.") == BROKEN
    live = site.box.enter(["readlink", "/srv/tas/current"]).stdout.strip()
    result = invoke("deploy", *site.ssh, *site.health, "--health-timeout", "30")
    TIMINGS["deploy refused by the canary"] = (round(result.took, 1), load_average())
    assert result.returncode != 0
    assert "deploy FAILED and was undone: the canary failed" in result.stderr
    assert "Worker failed to boot" in result.stderr  # the service log says why
    assert site.box.enter(["readlink", "/srv/tas/current"]).stdout.strip() == live
    assert healthz(site)["version"] == V1
    entry = log_entries(site.box)[-1]
    assert entry["result"] == "rolled back" and entry["version"] == BROKEN
    site.notes["refused_by_canary"] = entry["release"]
    failed = site.box.enter(["cat", f"/srv/tas/releases/{entry['release']}/DEPLOY_FAILED"])
    assert "canary" in failed.stdout


def test_a_release_failing_its_health_gate_after_the_switch_is_undone_by_itself(site: Site):
    result = invoke("deploy", *site.ssh, *site.health, "--no-canary", "--health-timeout", "30")
    TIMINGS["failed deploy, automatic switch back"] = (round(result.took, 1), load_average())
    assert result.returncode != 0
    assert "the health gate failed" in result.stderr
    assert "tas.service crashed and was restarted by systemd" in result.stderr
    assert f"switch current back to {V1}-" in result.stderr
    assert f"undo: check /healthz answers {V1} through nginx: done" in result.stdout
    body = healthz(site)
    assert body["version"] == V1 and body["schema"] == site.v1_revision
    entry = log_entries(site.box)[-1]
    assert entry["result"] == "rolled back"
    assert entry["rollback_health"]["ok"] is True
    # The tag still names what runs.
    tag = f"deployed/{site.box.address}"
    assert _git(site.repo, "rev-parse", f"{tag}^{{commit}}") == _git(
        site.repo, "rev-parse", f"v{V1}^{{commit}}"
    )


def test_a_dry_run_of_v2_shows_the_pending_sql_and_changes_nothing(site: Site):
    _git(site.repo, "checkout", f"v{V1}", "--", "service/wsgi.py")
    (site.repo / "db/migrations/versions/20261201_e2e0002_task_note.py").write_text(
        MIGRATION.format(down=site.v1_revision)
    )
    assert _release(site.repo, "minor", "Add a note column to tasks; start again.") == V2
    before = snapshot(site.box)
    out = must(invoke("deploy", *site.ssh, *site.health, "--keep", "2", "--dry-run"))
    assert snapshot(site.box) == before
    assert f"release: {V2}, tag v{V2}" in out
    assert "lock: free" in out
    assert re.search(r"disk: [\d.]+ GiB free", out)
    assert f"database: at {site.v1_revision}, {V2} needs e2e0002" in out
    assert "ALTER TABLE tasks ADD COLUMN e2e_note TEXT" in out
    assert "restart: switch current atomically" in out
    assert f"cleanup (keep 2): would delete {site.notes['refused_by_canary']}\n" in out
    assert f"alembic downgrade {site.v1_revision} from the new release's venv" in out
    assert "rollback afterwards (invoke rollback): downgrade" in out


def test_v2_with_a_migration_deploys_under_load_without_a_failed_request(site: Site):
    with Load(site) as load:
        result = invoke("deploy", *site.ssh, *site.health, "--keep", "2")
    print(f"[e2e] load during the v2 deploy: {load.summary()}")
    out = must(result)
    TIMINGS["deploy v2 (migration, under load)"] = (round(result.took, 1), load_average())
    TIMINGS["deploy v2 load"] = load.summary()
    assert load.ok > 50
    assert load.failures == [], load.failures[:20]
    assert "database at e2e0002" in out
    assert "canary: the new release alone on a temporary socket: done" in out
    body = healthz(site)
    assert body["version"] == V2 and body["schema"] == "e2e0002"
    assert as_tas(site.box, NOTE_COLUMN) == "1"
    assert data(site) == site.notes["data"]
    entry = log_entries(site.box)[-1]
    assert entry["alembic_before"] == site.v1_revision and entry["alembic_after"] == "e2e0002"
    assert entry["backup"] and entry["from_version"] == V1
    # Cleanup: the oldest failed release goes; v1 is beyond --keep 2 but is the previous.
    assert entry["deleted"] == [site.notes["refused_by_canary"]]
    names = site.box.enter(["ls", "/srv/tas/releases"]).stdout.split()
    previous = Path(site.box.enter(["readlink", "/srv/tas/previous"]).stdout.strip()).name
    assert previous.startswith(f"{V1}-") and previous in names and len(names) == 3


def test_a_second_deploy_is_refused_by_the_lock_and_a_stale_lock_is_reported(site: Site):
    target = SshTarget(host=site.box.address, user="deploy", key_file=str(site.box.key_file))
    holder = Remote(connect(target))
    try:
        held = deploy_lock.acquire(
            holder, {"who": "someone@elsewhere", "pid": 4242, "action": "deploy", "version": "9"}
        )
        before = snapshot(site.box)
        result = invoke("deploy", *site.ssh, *site.health, "--lock-wait", "1")
        assert result.returncode != 0
        assert "another deploy is running after waiting 1s" in result.stderr
        assert "held by someone@elsewhere (pid 4242) deploy 9" in result.stderr
        assert snapshot(site.box) == before
        dry = must(invoke("rollback", *site.ssh, *site.health, "--dry-run"))
        assert "lock: held by someone@elsewhere" in dry
        held.release()
        # The holder's SSH session ends without releasing: the lock goes stale.
        deploy_lock.acquire(holder, {"who": "crashed@laptop", "pid": 1, "version": "9"})
    finally:
        holder.close()
    time.sleep(0.5)
    stale = invoke("deploy", *site.ssh, *site.health)
    assert stale.returncode != 0
    assert "the deploy lock is stale (the holder's SSH session is gone)" in stale.stderr
    unlocked = must(invoke("unlock", *site.ssh, "--reason", "e2e: the laptop crashed"))
    assert "removed the lock" in unlocked
    entry = log_entries(site.box)[-1]
    assert entry["event"] == "unlock" and entry["reason"] == "e2e: the laptop crashed"
    assert entry["holder"]["who"] == "crashed@laptop"


def test_rollback_to_v1_downgrades_first_under_load_without_a_failed_request(site: Site):
    before = snapshot(site.box)
    dry = must(invoke("rollback", *site.ssh, *site.health, "--to", V1, "--dry-run"))
    assert snapshot(site.box) == before
    assert f"rollback {V2} -> {V1}: downgrade" in dry
    assert f"alembic downgrade {site.v1_revision} from {V2}'s venv" in dry

    with Load(site) as load:
        result = invoke("rollback", *site.ssh, *site.health, "--to", V1)
    print(f"[e2e] load during the rollback: {load.summary()}")
    must(result)
    TIMINGS["rollback v2 -> v1 (downgrade, under load)"] = (round(result.took, 1), load_average())
    TIMINGS["rollback load"] = load.summary()
    assert load.ok > 20
    assert load.failures == [], load.failures[:20]
    body = healthz(site)
    assert body["version"] == V1 and body["schema"] == site.v1_revision
    assert body["schema_state"] == "current"
    assert as_tas(site.box, NOTE_COLUMN) == "0"
    assert data(site) == site.notes["data"]
    entry = log_entries(site.box)[-1]
    assert entry["event"] == "rollback" and entry["mode"] == "downgrade"
    assert entry["alembic_before"] == "e2e0002" and entry["alembic_after"] == site.v1_revision
    assert entry["result"] == "ok" and entry["health"]["body"]["version"] == V1
    tag = f"deployed/{site.box.address}"
    assert _git(site.repo, "rev-parse", f"{tag}^{{commit}}") == _git(
        site.repo, "rev-parse", f"v{V1}^{{commit}}"
    )

    table = must(invoke("releases", *site.ssh))
    assert re.search(rf"^{V1}-\S+\s+{V1}\s.*current$", table, re.M)
    assert re.search(rf"^{V2}-\S+\s+{V2}\s.*previous$", table, re.M)
    assert re.search(rf"^{BROKEN}-\S+\s+{BROKEN}\s.*failed: the health gate failed", table, re.M)
    events = [(e["event"], e.get("result")) for e in log_entries(site.box)]
    assert events == [
        ("deploy", "ok"),
        ("deploy", "rolled back"),
        ("deploy", "rolled back"),
        ("deploy", "ok"),
        ("unlock", None),
        ("rollback", "ok"),
    ]
    print(f"[e2e] timings: {json.dumps(TIMINGS, indent=1)}")


IRREVERSIBLE = '''"""e2e: a flag column on tasks that cannot be taken back (test_deploy.py)

Revision ID: e2e0003
Revises: e2e0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e2e0003"
down_revision = "e2e0002"
branch_labels = None
depends_on = None
irreversible = True
compatible_with_previous = False


def upgrade() -> None:
    op.add_column("tasks", sa.Column("e2e_flag", sa.Boolean(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("e2e0003 is irreversible")
'''


def test_an_irreversible_migration_needs_restore_backup_which_says_what_is_lost(site: Site):
    (site.repo / "db/migrations/versions/20261202_e2e0003_task_flag.py").write_text(IRREVERSIBLE)
    v3 = _release(site.repo, "minor", "An irreversible migration.")
    result = invoke("deploy", *site.ssh, *site.health)
    must(result)
    TIMINGS["deploy v3 (two migrations, no load)"] = (round(result.took, 1), load_average())
    backup = log_entries(site.box)[-1]["backup"]
    assert site.person is not None
    site.person.get("/tasks/new")
    site.person.post("/tasks/new", {"name": "Made after the dump", "kind": "one-time"})

    refused = invoke("rollback", *site.ssh, *site.health, "--to", V1)
    assert refused.returncode != 0
    assert "irreversible migration(s) e2e0003" in refused.stderr
    assert f"--restore-backup would restore the pre-deploy dump {backup}" in refused.stderr
    assert healthz(site)["version"] == v3

    result = invoke("rollback", *site.ssh, *site.health, "--to", V1, "--restore-backup")
    out = must(result)
    TIMINGS["rollback v3 -> v1 restoring the pre-deploy dump"] = (
        round(result.took, 1),
        load_average(),
    )
    assert f"restore {backup}" in out
    assert "tasks 2 -> 1" in out  # the writes lost, per table
    body = healthz(site)
    assert body["version"] == V1 and body["schema"] == site.v1_revision
    assert data(site) == site.notes["data"]
    entry = log_entries(site.box)[-1]
    assert entry["mode"] == "restore-backup" and entry["lost_rows"]["tasks"] == 1
    print(f"[e2e] timings: {json.dumps(TIMINGS, indent=1)}")


def test_an_artifact_that_does_not_match_its_manifest_is_refused(site: Site):
    """A tag whose manifest names other bytes than the tag builds: nothing goes live."""
    manifest = json.loads((site.repo / "releases/manifests" / f"{V2}.json").read_text())
    manifest.update(version="0.9.9", tag="v0.9.9", artifact_sha256="0" * 64)
    (site.repo / "releases/manifests/0.9.9.json").write_text(json.dumps(manifest))
    _git(site.repo, "add", "-A")
    _git(site.repo, "commit", "-qm", "A manifest that lies about its artifact")
    _git(site.repo, "tag", "-a", "v0.9.9", "-m", "tampered")
    live = site.box.enter(["readlink", "/srv/tas/current"]).stdout.strip()
    result = invoke("deploy", *site.ssh, *site.health, "--version", "0.9.9")
    assert result.returncode != 0
    assert "deploy refused: the artifact rebuilt from v0.9.9 hashes" in result.stderr
    assert f"the manifest says {'0' * 64}: refusing to deploy it" in result.stderr
    assert site.box.enter(["readlink", "/srv/tas/current"]).stdout.strip() == live
    names = site.box.enter(["ls", "/srv/tas/releases"]).stdout.split()
    assert not [name for name in names if name.startswith("0.9.9-")]
    entry = log_entries(site.box)[-1]
    assert entry["version"] == "0.9.9" and entry["result"] == "refused"


def _max_users(site: Site) -> str:
    env = site.box.enter(["cat", "/srv/tas/shared/tas.env"]).stdout
    return ",".join(re.findall(r"^MAX_USERS=(.*)$", env, re.MULTILINE))


def test_set_cap_refuses_without_a_report_and_restarts_without_a_failed_request(site: Site):
    """Issue 7: the cap is raised only on a load test of this server (tests/e2e/
    test_sizing.py raises it on a real one); lowering needs none; forcing needs a reason and
    is logged; the restart a change needs fails no request; sign-up closes at the cap."""
    release = site.box.enter(["readlink", "-f", "/srv/tas/current"]).stdout.strip()
    before = _max_users(site)
    refused = invoke("set-cap", *site.ssh, "--users", "30", "--reports-dir", str(site.repo))
    assert refused.returncode != 0
    assert f"no capacity report for the deployed release {release.rsplit('/', 1)[-1]}" in (
        refused.stderr
    )
    assert _max_users(site) == before

    reason = ["--force", "--reason", "e2e: before the first load test"]
    with Load(site) as load:
        result = invoke("set-cap", *site.ssh, "--users", "30", *reason)
    must(result)
    print(f"[e2e] set-cap under load: {load.summary()}")
    TIMINGS["set-cap 30 under load"] = (round(result.took, 1), load_average())
    assert load.failures == [], load.failures
    assert load.ok > 0
    assert _max_users(site) == "30"
    assert healthz(site)["status"] == "ok"

    # Lowering needs no report: down to the people already here closes sign-up for others.
    people = as_tas(site.box, "SELECT count(*) FROM users")
    must(invoke("set-cap", *site.ssh, "--users", people))
    stranger = _Visitor(f"https://{DOMAIN}", str(site.ca))
    stranger.http.trust_env = False
    stranger.get("/signup", contains="Sign-up is closed for now.")
    assert site.person is not None
    site.person.get("/", contains="Survive deploys")  # people already in are unaffected

    must(invoke("set-cap", *site.ssh, "--users", "100", "--force", "--reason", "e2e: launch day"))
    assert _max_users(site) == "100"
    log = site.box.enter(["cat", "/srv/tas/shared/capacity.log"]).stdout.splitlines()
    last = json.loads(log[-1])
    assert last["to"] == 100 and last["forced"] is True and last["reason"] == "e2e: launch day"
    assert [json.loads(line)["to"] for line in log[-3:]] == [30, int(people), 100]
    changes = [e for e in log_entries(site.box) if e.get("event") == "set-cap"]
    assert [(e["to"], e["forced"]) for e in changes[-3:]] == [
        (30, True),
        (int(people), False),
        (100, True),
    ]


def test_a_deploy_whose_hand_over_cannot_start_changes_nothing_and_frees_the_lock(site: Site):
    """The runner's folder cannot be made (a file stands where it goes): the deploy stops
    before anything serves from the new release, says why, logs it and frees the lock."""
    box = site.box
    live = box.enter(["readlink", "/srv/tas/current"]).stdout.strip()
    serving = healthz(site)["version"]
    box.enter(["mv", "/srv/tas/shared/runs", "/srv/tas/shared/runs.e2e"])
    box.enter(["touch", "/srv/tas/shared/runs"])
    try:
        # No --ca-file: nothing is staged in that folder before the hand-over.
        result = invoke(
            "deploy", *site.ssh, "--domain", DOMAIN, "--repo", str(site.repo), "--version", V2
        )
    finally:
        box.enter(["rm", "-f", "/srv/tas/shared/runs"])
        box.enter(["mv", "/srv/tas/shared/runs.e2e", "/srv/tas/shared/runs"])
    assert result.returncode != 0
    assert "deploy failed:" in result.stderr
    assert box.enter(["readlink", "/srv/tas/current"]).stdout.strip() == live
    assert healthz(site)["version"] == serving
    assert box.enter(["test", "-e", deploy_lock.LOCK_DIR], check=False).returncode != 0
    entry = log_entries(box)[-1]
    assert entry["event"] == "deploy" and entry["version"] == V2 and entry["result"] == "failed"
    failed = box.enter(["cat", f"/srv/tas/releases/{entry['release']}/DEPLOY_FAILED"])
    assert failed.stdout.strip()

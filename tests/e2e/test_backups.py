"""Backups an operator can trust (issue 16), on a disposable provisioned and deployed box.

One box for the module; the tests run IN ORDER as one story:

1. before any backup the deploy's health gate warns that none is recorded, and
   ``invoke backup`` says plainly that its copy lives on the server's disk only;
2. ``invoke provision --offsite-repo`` (a folder on the box standing in for the second
   place) initialises the restic repository and shows its generated password once; a
   second provision keeps it and shows nothing;
3. ``invoke backup`` reports the local dump and its restic snapshot; ``invoke backups``
   lists both; the restore drill restores the local dump and the off-site snapshot and
   its JSON lines show the row counts recorded at dump time matching; /healthz reports
   the backup's age;
4. a backup that cannot write its dump fails, and ``tas-alert@`` records it in the journal
   and POSTs it to the webhook (a tiny listener on the box); a certificate renewal's
   failure is wired to the same alert.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from releases.loadtest import resolving
from tests.e2e import vpsbox
from tests.e2e.conftest import DOMAIN
from tests.e2e.conftest import clone_for_releases
from tests.e2e.conftest import cut
from tests.e2e.conftest import invoke
from tests.e2e.conftest import must
from tests.e2e.conftest import provisioned_box

pytestmark = pytest.mark.e2e

OFFSITE = "/srv/offsite/tas"
HOOK_PORT = 8787
HOOK_LOG = "/root/hook-posts.jsonl"
# A tiny webhook receiver on the box: one JSON line per POST it gets.
HOOK = f"""
import http.server, json

class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open({HOOK_LOG!r}, "a") as log:
            log.write(json.dumps({{"path": self.path, "body": body.decode()}}) + "\\n")
        self.send_response(204)
        self.end_headers()

http.server.HTTPServer(("127.0.0.1", {HOOK_PORT}), Hook).serve_forever()
"""


@dataclass
class Site:
    box: vpsbox.VpsBox
    ssh: list[str]
    provision: list[str]
    ca: Path
    deploy_output: str


@pytest.fixture(scope="module")
def site(
    box_image: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    box, pebble, ssh = provisioned_box(box_image, request, "backups")
    repo = clone_for_releases(tmp_path_factory.mktemp("backups") / "repo")
    cut(repo, "minor", "First release for the backup test.")
    ca = ["--ca-file", str(pebble.issuer_root)]
    deployed = must(invoke("deploy", *ssh, "--domain", DOMAIN, *ca, "--repo", str(repo)))
    provision = [*ssh, "--domain", DOMAIN, "--acme-server", pebble.directory_url]
    provision += ["--acme-ca-file", str(pebble.api_ca)]
    with resolving(DOMAIN, box.address):
        yield Site(box, ssh, provision, pebble.issuer_root, deployed)


def as_tas(box: vpsbox.VpsBox, sql: str) -> str:
    result = box.enter(["runuser", "-u", "tas", "--", "psql", "-X", "-qtA", "-d", "tas", "-c", sql])
    return result.stdout.strip()


def drills(box: vpsbox.VpsBox) -> list[dict]:
    text = box.enter(["cat", "/srv/tas/backups/drills.jsonl"], check=False).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def drill(box: vpsbox.VpsBox) -> None:
    """What the timer starts, started now."""
    run = box.enter(["systemctl", "start", "tas-drill.service"], check=False)
    journal = box.enter(["journalctl", "-u", "tas-drill.service", "-n", "30", "--no-pager"])
    assert run.returncode == 0, f"{run.stderr}\n{journal.stdout}\n{drills(box)}"


def healthz(site: Site) -> dict:
    response = requests.get(f"https://{DOMAIN}/healthz", verify=str(site.ca), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_without_a_backup_the_gate_warns_and_backup_says_there_is_no_offsite_copy(site: Site):
    assert "WARNING: no good backup is recorded on this server yet" in site.deploy_output
    assert healthz(site)["backup_age_hours"] is None

    out = must(invoke("backup", *site.ssh))

    assert re.search(r"backup: local copy: /srv/tas/backups/tas-\d{8}T\d{6}Z\.dump", out)
    assert "backup: no off-site copy is configured" in out
    assert 0 <= healthz(site)["backup_age_hours"] < 1


def test_provision_sets_up_the_offsite_repository_and_shows_its_password_once(site: Site):
    hook = f"http://127.0.0.1:{HOOK_PORT}/alert"
    first = must(
        invoke("provision", *site.provision, "--offsite-repo", OFFSITE, "--alert-webhook-url", hook)
    )

    shown = re.search(
        r"^env file: changed \(write /srv/tas/shared/tas.env; generate RESTIC_PASSWORD\).*\n"
        r"  The off-site copies' RESTIC_PASSWORD, shown this once. STORE THIS SOMEWHERE SAFE "
        r"OFF THE SERVER: without it no off-site copy can be restored.\n    (\S+)$",
        first,
        re.M,
    )
    assert shown, first
    assert f"restic init {OFFSITE}" in first
    env = site.box.enter(["cat", "/srv/tas/shared/tas.env"]).stdout
    assert f"RESTIC_REPOSITORY={OFFSITE}" in env.splitlines()
    assert f"RESTIC_PASSWORD={shown.group(1)}" in env.splitlines()
    assert f"ALERT_WEBHOOK_URL={hook}" in env.splitlines()

    again = must(invoke("provision", *site.provision))

    assert "RESTIC_PASSWORD" not in again
    assert "off-site repository: unchanged" in again
    assert "env file: unchanged" in again
    assert site.box.enter(["cat", "/srv/tas/shared/tas.env"]).stdout == env


def test_a_backup_goes_off_site_and_the_drills_restore_both_copies_with_matching_rows(
    site: Site,
):
    box = site.box
    as_tas(box, "INSERT INTO users (username, signin_key_hash) VALUES ('ann', 'x'), ('bob', 'y')")
    users = int(as_tas(box, "SELECT count(*) FROM users"))

    out = must(invoke("backup", *site.ssh))

    dump = re.search(r"backup: local copy: /srv/tas/backups/(tas-\d{8}T\d{6}Z\.dump)", out)
    snapshot = re.search(
        rf"backup: off-site copy: restic snapshot ([0-9a-f]{{8,}}) in {OFFSITE}", out
    )
    assert dump and snapshot, out
    counts = json.loads(box.enter(["cat", f"/srv/tas/backups/{dump.group(1)}.counts.json"]).stdout)
    assert counts["tables"]["users"] == users

    listed = must(invoke("backups", *site.ssh))
    assert re.search(
        rf"^  {re.escape(dump.group(1))}  \S+ \S+  \S+ \S+ old  \(nightly\)$", listed, re.M
    )
    assert f"off-site snapshots in {OFFSITE} (1):" in listed
    assert re.search(
        rf"^  {snapshot.group(1)[:8]}  \S+Z  {re.escape(dump.group(1))}$", listed, re.M
    )
    assert "last local drill: none yet" in listed

    # Writes after the dump: the drill compares with the counts AT dump time.
    as_tas(box, "INSERT INTO users (username, signin_key_hash) VALUES ('cy', 'z')")
    drill(box)

    local, offsite = drills(box)
    for entry, source in ((local, "local"), (offsite, "offsite")):
        assert entry["source"] == source
        assert entry["result"] == "ok", entry
        assert entry["backup"] == dump.group(1)
        assert entry["rows"] == sum(counts["tables"].values())
        assert entry["tables"] == len(counts["tables"])
        assert entry["restore_seconds"] > 0
    assert offsite["snapshot"] == snapshot.group(1)[:8]
    databases = as_tas(box, "SELECT datname FROM pg_database ORDER BY 1").split()
    assert "tas_drill" not in databases

    # The next day's drill: local only (the off-site drill is weekly).
    drill(box)
    assert [e["source"] for e in drills(box)] == ["local", "offsite", "local"]

    listed = must(invoke("backups", *site.ssh))
    assert re.search(
        rf"last local drill: ok at \S+: {re.escape(dump.group(1))} restored in [\d.]+ s, "
        rf"{local['rows']} rows in {local['tables']} tables match the dump's counts",
        listed,
    )
    assert f"last offsite drill: ok at {offsite['at']}: {dump.group(1)} (snapshot " in listed
    assert 0 <= healthz(site)["backup_age_hours"] < 1


def test_a_failed_backup_raises_the_alert_in_the_journal_and_on_the_webhook(site: Site):
    box = site.box
    (box.root / "root" / "hook.py").write_text(HOOK)
    box.enter(["systemd-run", "--unit", "test-hook", "python3", "/root/hook.py"])
    deadline = time.monotonic() + 20
    while box.enter(
        ["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{HOOK_PORT}/"], check=False
    ).returncode not in (0, 22):
        assert time.monotonic() < deadline, "the test's webhook receiver did not start"
        time.sleep(0.3)
    before = healthz(site)["backup_age_hours"]
    box.enter(["chmod", "0550", "/srv/tas/backups"])  # the dump cannot be written
    try:
        failed = invoke("backup", *site.ssh)
    finally:
        box.enter(["chmod", "0750", "/srv/tas/backups"])

    assert failed.returncode == 1
    assert "backup failed: the backup failed:" in failed.stderr
    deadline = time.monotonic() + 30
    while True:
        journal = box.enter(["journalctl", "-t", "tas-alert", "--no-pager", "-o", "cat"]).stdout
        posts = box.enter(["cat", HOOK_LOG], check=False).stdout
        if "sent to the webhook" in journal and posts.strip():
            break
        assert time.monotonic() < deadline, f"no alert:\n{journal}\n{posts}"
        time.sleep(0.5)
    assert re.search(r"^ALERT: tas-backup.service failed on \S+ \(journalctl -u", journal, re.M)
    (post,) = [json.loads(line) for line in posts.splitlines()]
    assert post["path"] == "/alert"
    assert json.loads(post["body"])["unit"] == "tas-backup.service"
    # No new good backup: the age did not reset.
    assert healthz(site)["backup_age_hours"] >= before

    # A failed certificate renewal raises the same alert.
    on_failure = box.enter(["systemctl", "show", "-p", "OnFailure", "certbot.service"]).stdout
    assert "tas-alert@certbot.service.service" in on_failure
    for unit in ("tas-backup.service", "tas-drill.service"):
        shown = box.enter(["systemctl", "show", "-p", "OnFailure", unit]).stdout
        assert f"tas-alert@{unit}.service" in shown
    assert box.enter(["systemctl", "is-enabled", "tas-drill.timer"]).stdout.strip() == "enabled"


def test_health_reports_an_old_backup_in_hours(site: Site):
    box = site.box
    status = json.loads(box.enter(["cat", "/srv/tas/backups/last-ok"]).stdout)
    status["finished_at"] -= 40 * 3600
    (box.root / "srv/tas/backups/last-ok").write_text(json.dumps(status))

    assert 39.9 <= healthz(site)["backup_age_hours"] <= 41

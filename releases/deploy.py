"""Ship a release to a server: ``invoke deploy`` (from a tag) and ``invoke deploy-simple``.

Both build here and install there: the project wheel plus a wheelhouse of the locked
runtime dependencies for the server's Python and platform, uploaded into
``/srv/tas/releases/<version>-<UTC time>/`` and installed into that release's own venv
with no index (the server needs neither PyPI nor git nor any credential of ours).

``invoke deploy`` (:func:`deploy_release`) is the full pipeline, step by step:

1. take the deploy lock (:mod:`releases.lock`);
2. rebuild the artifact from the tag ``v<version>`` and refuse unless its SHA-256 is the
   manifest's — while the server's venv is being filled from the wheelhouse;
3. if the database is not at the release's Alembic head: a verified ``pg_dump -Fc``
   first, then ``alembic upgrade`` once, from the NEW release's venv, under an advisory
   lock (the previous release keeps serving: migrations are written for that);
4. a canary: the new release on a temporary socket must answer ``/healthz`` with its own
   version before it gets any traffic;
5. switch ``current`` atomically and ``systemctl restart`` (the socket unit queues
   connections meanwhile: no request fails);
6. the health gate: ``/healthz`` through nginx over HTTPS must answer the new version.
   If it does not, the deploy undoes itself: back to the previous release (schema
   downgraded first when it migrated and the downgrade exists), restarted and checked;
7. keep the newest N releases (never current, previous, or one a process uses), write the
   deploy log line, and move the local tag ``deployed/<host>``.

``--dry-run`` (:func:`plan_deploy`) changes nothing and prints the plan.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import getpass
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from releases import lock as deploy_lock
from releases import steps
from releases.artifact import ROOT
from releases.artifact import build_from_ref
from releases.artifact import export_tree
from releases.backups import take_backup
from releases.inventory import RELEASES_DIR
from releases.inventory import Release
from releases.inventory import ServerState
from releases.inventory import read_state
from releases.inventory import releases_to_delete
from releases.provision import APP_ROOT
from releases.provision import ENV_FILE
from releases.remote import Remote

# The marker environment of the server's python3 (what pip there would evaluate).
_PROBE = r"""
import json, os, platform, sys
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": platform.python_version(),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
    "libc": platform.libc_ver(),
}))
"""


@dataclass(frozen=True)
class ServerPython:
    """What the server's ``python3`` is, for choosing wheels that run there."""

    markers: dict[str, str]
    libc: tuple[str, str]

    @property
    def version_tag(self) -> str:
        return self.markers["python_version"].replace(".", "")

    def platforms(self) -> list[str]:
        """manylinux tags this server's glibc accepts, newest first."""
        machine = self.markers["platform_machine"]
        name, version = self.libc
        if name != "glibc":
            raise RuntimeError(f"the server's libc is {name or 'unknown'}; only glibc is supported")
        minor = int(version.split(".")[1])
        tags = [f"manylinux_2_{m}_{machine}" for m in range(minor, 16, -1)]
        return [*tags, f"manylinux2014_{machine}"]


def probe_python(remote: Remote) -> ServerPython:
    out = json.loads(remote.run(f"python3 -c {shlex.quote(_PROBE)}").stdout)
    libc = out.pop("libc")
    return ServerPython(markers=out, libc=(libc[0], libc[1]))


def locked_requirements_for(lock_file: Path, server: ServerPython) -> str:
    """The lock's entries that apply on the server, markers resolved, hashes kept.

    pip evaluates markers with the interpreter it runs on: filtering here lets a 3.11
    laptop download exactly what a 3.10 server will install.
    """
    logical: list[str] = []
    pending = ""
    for raw in lock_file.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip() if not raw.lstrip().startswith("--hash") else raw
        if not line.strip():
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append((pending + line.strip()).strip())
        pending = ""
    kept = []
    for entry in logical:
        spec, _, hashes = entry.partition(" --hash")
        requirement = Requirement(spec)
        if requirement.marker and not requirement.marker.evaluate(server.markers):
            continue
        requirement.marker = None
        kept.append(f"{requirement} --hash{hashes}")
    return "\n".join(kept) + "\n"


def wheelhouse_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tas" / "wheelhouse"


def build_wheelhouse(lock_text: str, server: ServerPython, wheelhouse: Path) -> None:
    """``wheelhouse/``: every locked runtime wheel for the server, hashes checked by pip.

    The same lock for the same server platform gives the same wheels: they are kept in a
    local cache and reused (pip on the server checks every hash again when installing).
    """
    requirements = wheelhouse / "requirements.txt"
    wheelhouse.mkdir(parents=True)
    lock_file = wheelhouse / "runtime.lock"
    lock_file.write_text(lock_text)
    requirements.write_text(locked_requirements_for(lock_file, server))
    lock_file.unlink()
    platform_args = [arg for tag in server.platforms() for arg in ("--platform", tag)]
    key = hashlib.sha256(
        "\n".join([requirements.read_text(), server.version_tag, *platform_args]).encode()
    ).hexdigest()[:24]
    cached = wheelhouse_cache() / key
    if cached.is_dir():
        for wheel in cached.glob("*.whl"):
            shutil.copyfile(wheel, wheelhouse / wheel.name)
        return
    _download_wheels(server, platform_args, wheelhouse, requirements)
    staging = cached.with_name(f".{key}.{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    for wheel in wheelhouse.glob("*.whl"):
        shutil.copyfile(wheel, staging / wheel.name)
    with contextlib.suppress(OSError):  # another deploy filled it first: theirs is as good
        staging.rename(cached)
    shutil.rmtree(staging, ignore_errors=True)


def _download_wheels(
    server: ServerPython, platform_args: list[str], wheelhouse: Path, requirements: Path
) -> None:
    _pip(
        "download",
        "--require-hashes",
        "--no-deps",
        "--only-binary=:all:",
        *("--python-version", server.markers["python_version"], "--implementation", "cp"),
        *("--abi", f"cp{server.version_tag}", "--abi", "abi3", "--abi", "none"),
        *platform_args,
        *("-d", str(wheelhouse), "-r", str(requirements)),
    )


def copy_checkout(project: Path, target: Path) -> None:
    """The checkout as git sees it (tracked and new files, ignored ones left out) plus the
    vendored browser libraries. Building from the checkout itself would reuse setuptools'
    ``build/`` directory, which keeps files since deleted or renamed (a migration that
    moved would then ship twice)."""
    listed = subprocess.run(
        ["git", "-C", str(project), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = project / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    vendor = Path("service") / "static" / "vendor"
    if (project / vendor).is_dir():
        shutil.copytree(project / vendor, target / vendor, dirs_exist_ok=True)


def build_artifacts(project: Path, server: ServerPython, out: Path) -> Path:
    """Build ``out/dist/<project>.whl`` and ``out/wheelhouse/``; return the wheel."""
    dist = out / "dist"
    with tempfile.TemporaryDirectory(prefix="tas-checkout-") as tmp:
        copy_checkout(project, Path(tmp))
        _pip("wheel", "--no-deps", "-w", str(dist), tmp)
    lock = (project / "requirements" / "runtime.lock").read_text()
    build_wheelhouse(lock, server, out / "wheelhouse")
    (wheel,) = dist.glob("*.whl")
    return wheel


def _pip(*args: str) -> None:
    """Run pip here; its chatter is shown only when it fails."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip {args[0]} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


def _git_revision(project: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(project), "describe", "--always", "--dirty", "--abbrev=12"],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or "unknown"


def who() -> str:
    """Who deploys: the local user at the local machine."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _tar(directory: Path, tarball: Path) -> Path:
    with tarfile.open(tarball, "w:gz", compresslevel=1) as tar:
        tar.add(directory, arcname=".")
    return tarball


# --- invoke deploy-simple: this checkout, no tag ----------------------------------------------


def deploy_current_code(remote: Remote, project: Path, echo: Callable[[str], None] = print) -> str:
    """Build, upload, install, migrate, switch, restart; returns the release name."""
    from releases.release import migration_chain  # alembic: only when deploying

    run = steps.Steps("deploy-simple", echo)
    info = {"who": who(), "pid": os.getpid(), "action": "deploy-simple", "version": "checkout"}
    held = deploy_lock.acquire(remote, info, echo=run.say)
    try:
        with tempfile.TemporaryDirectory(prefix="tas-build-") as tmp:
            out = Path(tmp)
            with run("build the wheel and the wheelhouse") as note:
                server = probe_python(remote)
                wheel = build_artifacts(project, server, out / "artifact")
                version = wheel.name.split("-")[1]
                release = f"{version}-{_stamp()}"
                chain = migration_chain(project)
                manifest = {
                    "version": version,
                    "tag": None,
                    "commit": _git_revision(project),
                    "alembic_head": chain[0]["revision"] if chain else None,
                    "migrations": chain,
                    "artifact": wheel.name,
                    "artifact_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
                    "created_at": _now(),
                }
                (out / "artifact" / "manifest.json").write_text(json.dumps(manifest, indent=2))
                bundle = _tar(out / "artifact", out / "artifact.tar.gz")
                note["detail"] = f"{wheel.name}, Python {server.markers['python_version']}"
            path = f"{RELEASES_DIR}/{release}"
            with run(f"upload to {path}"):
                steps.upload_bundle(remote, bundle, path)
        try:
            _install_migrate_switch(remote, run, path, release, wheel.name)
        except Exception as exc:
            steps.mark_failed(remote, path, f"{type(exc).__name__}: {exc}")
            raise
        steps.write_json(
            remote,
            f"{path}/deploy.json",
            {"release": release, "version": version, "deployed_at": _now(), "who": who()},
        )
    finally:
        held.release()
    return release


def _install_migrate_switch(
    remote: Remote, run: steps.Steps, path: str, release: str, wheel_name: str
) -> None:
    with run("install the release venv"):
        steps.install_dependencies(remote, path)
        steps.install_app(remote, path, wheel_name)
    with run("migrate the database") as note:
        migrated = steps.migrate_database(remote, path, "upgrade", "head")
        note["detail"] = f"{migrated.before} -> {migrated.after}"
    with run(f"switch current -> {release} and restart") as note:
        before = read_state(remote).current
        steps.switch_current_release(remote, path)
        failure = steps.restart_app(remote)
        if failure:
            raise RuntimeError(f"systemctl restart tas.service failed: {failure}")
        note["detail"] = f"healthz: {steps.wait_for_socket_health(remote)}"
        if before and before != release:
            steps.set_previous(remote, f"{RELEASES_DIR}/{before}")


def plan(remote: Remote) -> list[str]:
    """What :func:`deploy_current_code` would do on this server (a dry run)."""
    server = probe_python(remote)
    current = remote.sudo(f"readlink {APP_ROOT}/current || echo '(none)'").stdout.strip()
    releases = remote.sudo(f"ls -1 {APP_ROOT}/releases 2>/dev/null || true").stdout.split()
    provisioned = remote.exists(ENV_FILE)
    lines = [
        f"server: Python {server.markers['python_version']} ({server.markers['platform_machine']},"
        f" {' '.join(server.libc)})",
        f"current release: {current}; {len(releases)} release(s) on the server",
        "would build the project wheel and a wheelhouse from requirements/runtime.lock",
        f"would install a new release under {APP_ROOT}/releases/, migrate the database, "
        "switch current and restart tas.service",
    ]
    if not provisioned:
        lines.append(f"WARNING: {ENV_FILE} is missing: run invoke provision first")
    return lines


# --- invoke deploy: a tagged release ------------------------------------------------------------


class DeployRefused(RuntimeError):
    """A precondition failed before anything changed on the server."""


class DeployFailed(RuntimeError):
    """The deploy failed and undid itself; the message says why and what was undone."""


@dataclass
class DeployOptions:
    version: str = ""
    repo: Path = ROOT
    host: str = ""
    lock_wait: float = 0.0
    keep: int = 5
    domain: str = ""
    ca_file: str | None = None
    canary: bool = True
    health_timeout: float = 60.0


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DeployRefused(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def find_manifest(repo: Path, version: str = "") -> dict[str, Any]:
    """The manifest of ``version`` (default: the newest one), as its tag holds it."""
    if not version:
        directory = repo / "releases" / "manifests"
        versions = [
            p.stem for p in directory.glob("*.json") if re.fullmatch(r"\d+\.\d+\.\d+", p.stem)
        ]
        if not versions:
            raise DeployRefused(f"no release manifests in {directory}: cut one (invoke release)")
        version = max(versions, key=_version_key)
    tag = f"v{version}"
    if not _git(repo, "tag", "--list", tag).strip():
        raise DeployRefused(f"no tag {tag} in {repo}: cut the release first (invoke release)")
    text = _git(repo, "show", f"{tag}:releases/manifests/{version}.json")
    manifest: dict[str, Any] = json.loads(text)
    if manifest.get("version") != version:
        raise DeployRefused(f"{tag}'s manifest says version {manifest.get('version')}")
    return manifest


def _runtime_lock(repo: Path, manifest: dict[str, Any]) -> str:
    text = _git(repo, "show", f"v{manifest['version']}:requirements/runtime.lock")
    digest = hashlib.sha256(text.encode()).hexdigest()
    wanted = manifest.get("runtime_lock_sha256")
    if wanted and digest != wanted:
        raise DeployRefused(f"requirements/runtime.lock at the tag hashes {digest}, not {wanted}")
    return text


def _refuse_if_database_is_ahead(manifest: dict[str, Any], state: ServerState) -> None:
    known = {m["revision"] for m in manifest.get("migrations", [])}
    if state.db_revision and state.db_revision not in known:
        raise DeployRefused(
            f"the database is at {state.db_revision}, which {manifest['version']} does not "
            "know (a newer schema): that is a rollback, use invoke rollback --to "
            f"{manifest['version']}"
        )


def tag_deployed(repo: Path, host: str, version: str, message: str) -> str:
    """Move the local annotated tag ``deployed/<host>`` to the release commit of ``version``."""
    name = "deployed/" + re.sub(r"[^A-Za-z0-9._-]", "_", host).strip(".") if host else ""
    if not name:
        return ""
    commit = _git(repo, "rev-parse", f"v{version}^{{commit}}").strip()
    _git(repo, "tag", "-f", "-a", name, "-m", message, commit)
    return name


def _toc_entries(remote: Remote, dump: str) -> int:
    listing = remote.sudo(f"pg_restore --list {shlex.quote(dump)}").stdout
    return sum(1 for line in listing.splitlines() if line and not line.startswith(";"))


def undo_plan(
    manifest: dict[str, Any],
    old: Release | None,
    before: str | None,
    after: str | None,
    *,
    switched: bool,
) -> list[tuple[str, str]]:
    """What undoing a failed deploy does, in order: (kind, words) pairs.

    kinds: ``downgrade`` (to ``before``, from the new release's venv), ``switch`` (back to
    ``old`` and restart), ``verify`` (old version through nginx), ``note`` (what stays).
    When the old release can serve the newer schema (every migration only expanded it),
    it goes back first and the schema follows; otherwise the schema goes back first.
    """
    from releases.rollback import migrations_between

    migrated = before != after
    path = migrations_between(manifest, after, before) if migrated else []
    reversible = path is not None and not any(m.irreversible for m in path)
    compatible = path is not None and all(m.compatible_with_previous for m in path)
    down = ("downgrade", f"alembic downgrade {before or 'base'} from the new release's venv")
    actions: list[tuple[str, str]] = []
    if switched and old is not None:
        if migrated and reversible and not compatible:
            actions.append(down)
        actions.append(("switch", f"switch current back to {old.name} and restart"))
        actions.append(("verify", f"check /healthz answers {old.version} through nginx"))
        if migrated and reversible and compatible:
            actions.append(down)
    else:
        if migrated and reversible:
            actions.append(down)
        if switched:
            actions.append(("note", "no previous release to go back to"))
    if migrated and not reversible:
        actions.append(
            (
                "note",
                f"the schema stays at {after}: a migration on the way is irreversible "
                "(the pre-deploy backup can be restored: invoke restore)",
            )
        )
    if not actions:
        actions.append(("note", f"nothing to undo: {old.name if old else 'nothing'} serves"))
    return actions


@dataclass
class _Deploy:
    """One run of the full deploy, with what it has done so far (for the undo and the log)."""

    remote: Remote
    options: DeployOptions
    manifest: dict[str, Any]
    run: steps.Steps
    entry: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    old: Release | None = None
    before: str | None = None
    after: str | None = None
    probe: steps.HttpsProbe | None = None

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def prepare(self, state: ServerState) -> None:
        with self.run("read the server") as note:
            domain = self.options.domain or steps.site_domain(self.remote)
            self.probe = steps.HttpsProbe(self.remote, domain, self.options.ca_file)
            current = state.current_release
            note["detail"] = (
                f"current {current.name if current else '(none)'}, database at "
                f"{state.db_revision or '(none)'}, disk {state.disk()}"
            )
        self.old = state.current_release
        self.before = self.after = state.db_revision
        _refuse_if_database_is_ahead(self.manifest, state)
        name = f"{self.version}-{_stamp()}"
        self.path = f"{RELEASES_DIR}/{name}"
        self.entry.update(
            release=name,
            from_release=self.old.name if self.old else None,
            from_version=self.old.version if self.old else None,
            alembic_before=state.db_revision,
        )

    def install(self) -> None:
        """Wheelhouse and venv on the server while the artifact is rebuilt and checked."""
        tag = f"v{self.version}"
        lock_text = _runtime_lock(self.options.repo, self.manifest)
        with tempfile.TemporaryDirectory(prefix="tas-deploy-") as tmp:
            out = Path(tmp)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                build = pool.submit(build_from_ref, tag, out / "dist", self.options.repo)
                with self.run("wheelhouse for the server's Python, upload") as note:
                    server = probe_python(self.remote)
                    bundle = out / "bundle"
                    build_wheelhouse(lock_text, server, bundle / "wheelhouse")
                    (bundle / "manifest.json").write_text(json.dumps(self.manifest, indent=2))
                    steps.upload_bundle(self.remote, _tar(bundle, out / "deps.tar.gz"), self.path)
                    note["detail"] = f"Python {server.markers['python_version']} -> {self.path}"
                with self.run("install the dependencies into a fresh venv"):
                    steps.install_dependencies(self.remote, self.path)
                with self.run(f"build the artifact from {tag} and check its hash") as note:
                    artifact = build.result()
                    wanted = self.manifest["artifact_sha256"]
                    if artifact.sha256 != wanted:
                        self.remote.sudo(f"rm -rf {shlex.quote(self.path)}")
                        raise DeployRefused(
                            f"the artifact rebuilt from {tag} hashes {artifact.sha256}, the "
                            f"manifest says {wanted}: refusing to deploy it"
                        )
                    note["detail"] = f"sha256 {artifact.sha256[:16]}... = manifest"
            with self.run("install the app"):
                app = out / "app"
                (app / "dist").mkdir(parents=True)
                (app / "dist" / artifact.wheel.name).write_bytes(artifact.wheel.read_bytes())
                steps.upload_bundle(self.remote, _tar(app, out / "app.tar.gz"), self.path)
                steps.install_app(self.remote, self.path, artifact.wheel.name)

    def migrate(self) -> None:
        head = self.manifest.get("alembic_head")
        if not head or self.before == head:
            self.run.say(f"migrations: none pending (database at {self.before})")
            return
        with self.run("back up the database (pg_dump -Fc, checked by pg_restore --list)") as n:
            dump = take_backup(self.remote)
            entries = _toc_entries(self.remote, dump)
            self.entry.update(backup=dump, backup_entries=entries)
            n["detail"] = f"{dump} ({entries} entries)"
        with self.run(f"migrate {self.before or 'base'} -> {head} from the new venv") as note:
            try:
                done = steps.migrate_database(self.remote, self.path, "upgrade", head)
            except steps.MigrationFailed:
                self.after = self._database_revision()
                raise
            self.after = done.after
            note["detail"] = f"database at {done.after}"

    def _database_revision(self) -> str | None:
        return read_state(self.remote).db_revision

    def canary(self) -> None:
        assert self.probe is not None
        with self.run("canary: the new release alone on a temporary socket") as note:
            health = steps.canary_check(
                self.remote,
                self.path,
                self.probe.domain,
                self.version,
                timeout=self.options.health_timeout,
            )
            note["detail"] = health.summary()
        self.entry["canary"] = health.record()
        if not health.ok:
            raise DeployFailed(f"the canary failed: {health.explain()}")

    def switch(self) -> None:
        assert self.probe is not None
        with self.run(f"switch current -> {self.entry['release']} and restart"):
            steps.switch_current_release(self.remote, self.path)
            failure = steps.restart_app(self.remote)
        with self.run(f"health gate: {self.probe.url} must answer {self.version}") as note:
            if failure:
                health = steps.Health(False, 0, detail=f"restart failed: {failure}")
            else:
                health = steps.wait_for_https_health(
                    self.probe, self.version, timeout=self.options.health_timeout
                )
            note["detail"] = health.summary()
        self.entry["health"] = health.record()
        if not health.ok:
            raise DeployFailed(f"the health gate failed: {health.explain()}")

    def finish(self) -> None:
        name = self.entry["release"]
        steps.set_previous(self.remote, self.old.path if self.old else None)
        steps.write_json(
            self.remote,
            f"{self.path}/deploy.json",
            {
                "release": name,
                "version": self.version,
                "deployed_at": _now(),
                "who": who(),
                "from_release": self.entry.get("from_release"),
                "alembic_before": self.before,
                "alembic_after": self.after,
                "backup": self.entry.get("backup"),
            },
        )
        with self.run(f"clean up (keep {self.options.keep})") as note:
            state = read_state(self.remote)
            protected = [state.current, state.previous, name, *state.in_use]
            doomed = releases_to_delete(state.releases, self.options.keep, protected)
            steps.remove_releases(self.remote, [r.path for r in doomed])
            self.entry["deleted"] = [r.name for r in doomed]
            note["detail"] = "deleted " + ", ".join(self.entry["deleted"]) if doomed else "none"

    def undo(self, reason: str, *, switched: bool) -> list[str]:
        """Put things back as they were before this deploy; returns what was done."""
        assert self.probe is not None
        self.run.say(f"FAILED: {reason}")
        steps.mark_failed(self.remote, self.path, reason)
        done = []
        for kind, words in undo_plan(
            self.manifest, self.old, self.before, self.after, switched=switched
        ):
            with self.run(f"undo: {words}") as note:
                if kind == "downgrade":
                    back = steps.migrate_database(
                        self.remote, self.path, "downgrade", self.before or "base"
                    )
                    self.after = back.after
                    note["detail"] = f"database at {back.after}"
                elif kind == "switch":
                    assert self.old is not None
                    steps.switch_current_release(self.remote, self.old.path)
                    failure = steps.restart_app(self.remote)
                    note["detail"] = f"restart failed: {failure}" if failure else "restarted"
                elif kind == "verify":
                    assert self.old is not None
                    health = steps.wait_for_https_health(
                        self.probe, self.old.version, timeout=self.options.health_timeout
                    )
                    self.entry["rollback_health"] = health.record()
                    note["detail"] = health.summary()
                    if not health.ok:
                        words += f" -- FAILED: {health.explain()}"
            done.append(words)
        return done


def deploy_release(
    remote: Remote, options: DeployOptions, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """The full deploy of a tagged release (see the module docstring); returns its log entry.

    Raises :class:`DeployRefused` (nothing changed), :class:`releases.lock.LockHeld`, or
    :class:`DeployFailed` (it changed things and put them back, as the message says).
    """
    manifest = find_manifest(options.repo, options.version)
    version = str(manifest["version"])
    run = steps.Steps("deploy", echo)
    started = time.monotonic()
    entry: dict[str, Any] = {
        "event": "deploy",
        "version": version,
        "commit": manifest.get("commit"),
        "tag": manifest.get("tag"),
        "artifact_sha256": manifest.get("artifact_sha256"),
        "host": options.host,
        "who": who(),
        "started_at": _now(),
        "backup": None,
    }
    commit = str(manifest.get("commit"))[:12]
    run.say(f"{version} (tag v{version}, commit {commit}) to {options.host}")
    held = deploy_lock.acquire(
        remote,
        {"who": entry["who"], "pid": os.getpid(), "action": "deploy", "version": version},
        wait=options.lock_wait,
        echo=run.say,
    )
    job = _Deploy(remote, options, manifest, run, entry)
    try:
        run.say(f"lock: taken ({deploy_lock.LOCK_DIR})")
        _deploy_locked(job)
    finally:
        held.release()
        entry.setdefault("result", "interrupted")  # Ctrl-C or a lost connection
        entry["duration_s"] = round(time.monotonic() - started, 1)
        entry["steps"] = run.timings
        entry["alembic_after"] = job.after
        if entry.get("release"):
            deploy_lock.append_log(remote, entry)
    if options.host:
        message = f"{version} deployed to {options.host} at {_now()} by {entry['who']}"
        try:
            entry["git_tag"] = tag_deployed(options.repo, options.host, version, message)
            run.say(f"tagged {entry['git_tag']} (local; push it if you share it)")
        except DeployRefused as exc:
            run.say(f"WARNING: could not move the deployed tag: {exc}")
    run.say(f"{version} is live on {options.host} [{entry['duration_s']:.1f}s]")
    return entry


def _deploy_locked(job: _Deploy) -> None:
    state = read_state(job.remote)
    job.prepare(state)
    switched = False
    try:
        job.install()
        job.migrate()
        if job.options.canary:
            job.canary()
        switched = True
        job.switch()
    except DeployRefused as exc:
        job.entry.update(result="refused", reason=str(exc))
        raise
    except Exception as exc:  # noqa: BLE001 - whatever failed, the deploy is undone
        reason = str(exc).strip() or type(exc).__name__
        if not isinstance(exc, DeployFailed):
            reason = f"{type(exc).__name__}: {reason}"
        undone = job.undo(reason, switched=switched)
        job.entry.update(result="rolled back", reason=reason, undone=undone)
        raise DeployFailed(f"{reason}\nundone: " + "; ".join(undone)) from exc
    job.finish()
    job.entry["result"] = "ok"


# --- invoke deploy --dry-run ------------------------------------------------------------------

_OFFLINE_SQL = """
import sys
import db
from alembic import command
from db import migrate
assert db.__file__.startswith(sys.argv[3]), db.__file__
start, end = sys.argv[1], sys.argv[2]
config = migrate.alembic_config("postgresql://offline@localhost/tas", configure_logging=False)
command.upgrade(config, f"{start}:{end}" if start else end, sql=True)
"""


def pending_sql(repo: Path, version: str, start: str | None, end: str) -> str:
    """``alembic upgrade start:end --sql`` with the migrations of the tag ``v<version>``."""
    with tempfile.TemporaryDirectory(prefix="tas-sql-") as tmp:
        tree = Path(tmp)
        export_tree(f"v{version}", tree, repo)
        result = subprocess.run(
            [sys.executable, "-c", _OFFLINE_SQL, start or "", end, str(tree)],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree)},
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        return f"(could not render the SQL: {result.stderr.strip()[-500:]})"
    return result.stdout


def plan_deploy(remote: Remote, options: DeployOptions) -> list[str]:
    """What :func:`deploy_release` would do, from a look at the server; changes nothing."""
    from releases.rollback import plan_rollback

    manifest = find_manifest(options.repo, options.version)
    version = str(manifest["version"])
    head = manifest.get("alembic_head")
    state = read_state(remote)
    held = deploy_lock.lock_state(remote)
    server = probe_python(remote)
    domain = options.domain or steps.site_domain(remote)
    df = remote.run(f"df -h {APP_ROOT} | tail -n 1", warn=True).stdout.strip()
    current = state.current_release
    lines = [
        f"deploy plan for {options.host or 'the server'} (dry run: nothing is changed)",
        f"  release: {version}, tag v{version}, commit {manifest.get('commit')}",
        f"  artifact: would rebuild {manifest.get('artifact')} from the tag and require "
        f"sha256 {manifest.get('artifact_sha256')}",
        f"  server: Python {server.markers['python_version']} "
        f"({server.markers['platform_machine']}, {' '.join(server.libc)})",
        f"  current: {current.name if current else '(none)'}"
        + (f" ({current.version}, alembic {current.alembic_head})" if current else "")
        + f"; previous: {state.previous or '(none)'}",
        f"  lock: {held.describe()}",
        f"  disk: {state.disk()}  [df: {df}]",
        f"  install: {RELEASES_DIR}/{version}-<UTC time>/ with a fresh venv from a locked "
        "wheelhouse (no index on the server); env file linked from shared/",
    ]
    if state.db_revision and state.db_revision not in {
        m["revision"] for m in manifest.get("migrations", [])
    }:
        lines.append(
            f"  REFUSED: the database is at {state.db_revision}, newer than {version} knows: "
            "use invoke rollback"
        )
        return lines
    if head and state.db_revision != head:
        lines.append(
            f"  database: at {state.db_revision or '(none)'}, {version} needs {head}: would "
            "pg_dump -Fc first (checked by pg_restore --list), then alembic upgrade once "
            "from the new venv under an advisory lock (lock_timeout 5s per statement)"
        )
        sql = pending_sql(options.repo, version, state.db_revision, head)
        lines.append("  pending SQL:")
        lines += [f"    {line}" for line in sql.strip().splitlines()]
    else:
        lines.append(f"  database: at {state.db_revision}: no migration pending")
    if options.canary:
        lines.append(
            f"  canary: would start {version} on a temporary socket and require /healthz "
            f"to answer {version} before any traffic"
        )
    lines.append(
        "  restart: switch current atomically (temporary link + mv -T), systemctl restart "
        "tas.service; tas.socket queues connections meanwhile (no request refused)"
    )
    lines.append(
        f"  health gate: https://{domain}/healthz through nginx must answer {version} "
        f"within {options.health_timeout:.0f}s"
    )
    name = f"{version}-{_stamp()}"
    future = [
        *state.releases,
        Release(name=name, manifest=manifest, deploy=None, failed=None, complete=True),
    ]
    protected = [name, state.current, *state.in_use]
    doomed = releases_to_delete(future, options.keep, protected)
    lines.append(
        f"  cleanup (keep {options.keep}): would delete "
        + (", ".join(r.name for r in doomed) if doomed else "nothing")
    )
    undo = undo_plan(manifest, current, state.db_revision, head, switched=True)
    lines.append(
        "  if the canary or the health gate fails, by itself: " + "; ".join(w for _, w in undo)
    )
    if current and current.manifest:
        back = plan_rollback(manifest, current.manifest, head)
        lines.append(f"  rollback afterwards (invoke rollback): {back.mode} -- {back.reason}")
    return lines

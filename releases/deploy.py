"""Ship a tagged release to a server: ``invoke deploy`` (the one way to deploy).

It builds here and installs there: the project wheel plus a wheelhouse of the locked
runtime dependencies for the server's Python and platform, uploaded into
``/srv/tas/releases/<version>-<UTC time>/`` and installed into that release's own venv
with no index (the server needs neither PyPI nor git nor any credential of ours).

:func:`deploy_release`, step by step, and what a fault at each step leaves behind
(``docs/faults.md`` has the measured outcomes):

1. take the deploy lock (:mod:`releases.lock`) and read the server. A database that
   cannot be read refuses the deploy (nothing changed). A line "started" goes into the
   deploy log at once, so every attempt is on record.
2. rebuild the artifact from the tag ``v<version>`` and refuse unless its SHA-256 is the
   manifest's (a wheel an earlier deploy rebuilt from the same commit and checked is
   reused from ``~/.cache/tas/artifacts``, hashed again), while the server's venv is
   filled from the wheelhouse. Until here only a new release directory exists; a fault
   (client killed, connection lost) leaves the old release serving and the lock stale
   (its SSH session is gone), reported by the next deploy and removed with ``invoke
   unlock``.
3. hand over: the plan goes to the server and ``releases/scripts/runner.py`` runs it as a
   transient systemd unit that no longer needs this client (:mod:`releases.handover`):
   a verified pre-deploy ``pg_dump -Fc`` (its path logged before migrating), ``alembic
   upgrade`` from the NEW venv under an advisory lock (refused unless the database is
   still at the revision this plan was made from), the canary (``/healthz`` and a real
   page on a temporary socket), the atomic switch of ``current`` and ``previous``, a
   restart (the socket queues connections), and the health gate through nginx over
   HTTPS. A failure undoes itself there: the schema back to the revision seen under the
   advisory lock (never below it, never to ``base``), the old release back, checked.
   The unit writes the final log line and frees the lock if the client is gone.
4. the client follows and prints the progress; Ctrl-C or a lost connection only stop
   the following. When the run succeeded: keep the newest N releases (never current,
   previous, or one a process uses) and their pre-deploy dumps, and move the local tag
   ``deployed/<host>``.

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

from releases import backups
from releases import handover
from releases import lock as deploy_lock
from releases import scripts
from releases import steps
from releases.artifact import ROOT
from releases.artifact import Artifact
from releases.artifact import build_from_ref
from releases.artifact import export_tree
from releases.artifact import sha256_file
from releases.inventory import CURRENT_LINK
from releases.inventory import FAILED_MARK
from releases.inventory import PREVIOUS_LINK
from releases.inventory import RELEASES_DIR
from releases.inventory import Release
from releases.inventory import ServerState
from releases.inventory import read_state
from releases.inventory import releases_to_delete
from releases.provision import APP_ROOT
from releases.provision import APP_USER
from releases.provision import DATABASE
from releases.provision import ENV_FILE
from releases.provision import UNIT_DIR
from releases.remote import Remote


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
    probe = scripts.text("server_python.py")
    out = json.loads(remote.run(f"python3 -c {shlex.quote(probe)}").stdout)
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


def artifact_cache() -> Path:
    return wheelhouse_cache().parent / "artifacts"


def cached_artifact(sha256: str, commit: str) -> Artifact | None:
    """The wheel an earlier deploy rebuilt from ``commit`` and found to hash to ``sha256``
    (hashed again here): the same bytes a rebuild gives, without the rebuild."""
    folder = artifact_cache() / sha256
    wheels = sorted(folder.glob("*.whl")) if sha256 else []
    with contextlib.suppress(OSError):
        if (
            len(wheels) == 1
            and (folder / "commit").read_text().strip() == commit
            and sha256_file(wheels[0]) == sha256
        ):
            return Artifact(wheel=wheels[0], sha256=sha256, commit=commit)
    return None


def keep_artifact(artifact: Artifact) -> None:
    """Keep a rebuilt wheel that matched its manifest, so the next deploy of it skips the
    rebuild (a few seconds to half a minute)."""
    target = artifact_cache() / artifact.sha256
    if target.is_dir():
        return
    staging = target.with_name(f".{artifact.sha256}.{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(artifact.wheel, staging / artifact.wheel.name)
    (staging / "commit").write_text(artifact.commit + "\n")
    with contextlib.suppress(OSError):  # another deploy kept it first: the same bytes
        staging.rename(target)
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


def _pip(*args: str) -> None:
    """Run pip here; its chatter is shown only when it fails."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip {args[0]} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


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


def record_deployed(repo: Path, host: str, version: str, message: str) -> tuple[str, str]:
    """Move ``deployed/<host>`` to ``version`` and, when the repository has a remote, push
    it there so every developer sees what the server runs. Returns the tag and what to
    say (a warning when it could not be moved or pushed; the deploy itself stands)."""
    try:
        name = tag_deployed(repo, host, version, message)
    except DeployRefused as exc:
        return "", f"WARNING: could not move the deployed tag: {exc}"
    remotes = _git(repo, "remote").split()
    if not remotes:
        return name, f"tagged {name} (local: the repository has no remote)"
    remote = "origin" if "origin" in remotes else remotes[0]
    pushed = subprocess.run(
        ["git", "push", "--quiet", "--force", remote, f"refs/tags/{name}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if pushed.returncode != 0:
        return (
            name,
            f"tagged {name}; WARNING: could not push it to {remote}: {pushed.stderr.strip()}",
        )
    return name, f"tagged {name} and pushed it to {remote}"


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
    Never a downgrade to ``base``: with no revision before (a first deploy), the schema
    stays.
    """
    from releases.rollback import migrations_between

    migrated = before != after
    path = migrations_between(manifest, after, before) if migrated else []
    reversible = path is not None and not any(m.irreversible for m in path)
    # The old release serves the newer schema only if every migration says it does for
    # that very release (a deploy may skip releases: see releases.rollback).
    compatible = path is not None and old is not None and all(m.serves(old.version) for m in path)
    can_go_back = migrated and reversible and before is not None
    down = ("downgrade", f"alembic downgrade {before} from the new release's venv")
    actions: list[tuple[str, str]] = []
    if switched and old is not None:
        if can_go_back and not compatible:
            actions.append(down)
        actions.append(("switch", f"switch current back to {old.name} and restart"))
        actions.append(("verify", f"check /healthz answers {old.version} through nginx"))
        if can_go_back and compatible:
            actions.append(down)
    else:
        if can_go_back:
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
    elif migrated and before is None:
        actions.append(("note", f"the schema stays at {after}: there was none before"))
    if not actions:
        actions.append(("note", f"nothing to undo: {old.name if old else 'nothing'} serves"))
    return actions


def undo_schema(
    manifest: dict[str, Any], old: Release | None, before: str | None, path: str
) -> dict[str, str] | None:
    """The runner's schema undo (see :func:`undo_plan`), or None when the schema stays."""
    actions = undo_plan(manifest, old, before, manifest.get("alembic_head"), switched=True)
    kinds = [kind for kind, _ in actions]
    if "downgrade" not in kinds:
        return None
    first = "switch" not in kinds or kinds.index("downgrade") < kinds.index("switch")
    return {
        "release": path,
        "action": "downgrade",
        "target": "@before",  # the revision seen under the advisory lock
        "when": "before-switch-back" if first else "after-switch-back",
        "words": dict(actions)["downgrade"],
    }


def service_hardening(unit_text: str) -> list[str]:
    """The sandboxing settings of the service unit, for the canary to run under them too."""
    not_sandboxing = {
        "Type", "NotifyAccess", "User", "Group", "EnvironmentFile", "RuntimeDirectory",
        "RuntimeDirectoryMode", "ExecStart", "ExecReload", "KillMode", "TimeoutStopSec",
        "Restart", "RestartSec", "WorkingDirectory",
    }  # fmt: skip
    settings, section = [], ""
    for raw in unit_text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            if line.split("=", 1)[0] not in not_sandboxing:
                settings.append(line)
    return settings


@dataclass
class _Deploy:
    """One run of the full deploy, with what it has done so far (for the log)."""

    remote: Remote
    options: DeployOptions
    manifest: dict[str, Any]
    run: steps.Steps
    entry: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    old: Release | None = None
    before: str | None = None
    previous: str | None = None
    domain: str = ""
    cacert: str = ""

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def prepare(self) -> None:
        with self.run("read the server") as note:
            state = read_state(self.remote)
            self.domain = self.options.domain or steps.site_domain(self.remote)
            current = state.current_release
            note["detail"] = (
                f"current {current.name if current else '(none)'}, database at "
                f"{state.db_revision or '(none)'}, disk {state.disk()}"
            )
        self.old = state.current_release
        self.before = state.db_revision
        self.previous = f"{RELEASES_DIR}/{state.previous}" if state.previous else None
        name = f"{self.version}-{_stamp()}"
        self.path = f"{RELEASES_DIR}/{name}"
        self.entry.update(
            release=name,
            from_release=self.old.name if self.old else None,
            from_version=self.old.version if self.old else None,
            alembic_before=state.db_revision,
        )
        if not state.db_ok:
            raise DeployRefused(
                "the database cannot be read (PostgreSQL down or restarting?): refusing to "
                "deploy without knowing its schema; nothing was changed"
            )
        _refuse_if_database_is_ahead(self.manifest, state)

    def install(self) -> None:
        """Wheelhouse and venv on the server while the artifact is rebuilt and checked."""
        tag = f"v{self.version}"
        lock_text = _runtime_lock(self.options.repo, self.manifest)
        with tempfile.TemporaryDirectory(prefix="tas-deploy-") as tmp:
            out = Path(tmp)
            wanted = str(self.manifest.get("artifact_sha256") or "")
            cached = cached_artifact(
                wanted, _git(self.options.repo, "rev-parse", f"{tag}^{{commit}}").strip()
            )
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                if cached is None:
                    build = pool.submit(build_from_ref, tag, out / "dist", self.options.repo)
                else:
                    build = pool.submit(lambda: cached)
                with self.run("wheelhouse for the server's Python, upload") as note:
                    server = probe_python(self.remote)
                    bundle = out / "bundle"
                    build_wheelhouse(lock_text, server, bundle / "wheelhouse")
                    (bundle / "manifest.json").write_text(json.dumps(self.manifest, indent=2))
                    steps.upload_bundle(self.remote, _tar(bundle, out / "deps.tar.gz"), self.path)
                    note["detail"] = f"Python {server.markers['python_version']} -> {self.path}"
                with self.run("install the dependencies into a fresh venv") as note:
                    note["detail"] = steps.install_dependencies(self.remote, self.path)
                with self.run(f"build the artifact from {tag} and check its hash") as note:
                    artifact = build.result()
                    if artifact.sha256 != wanted:
                        self.remote.sudo(f"rm -rf {shlex.quote(self.path)}")
                        raise DeployRefused(
                            f"the artifact rebuilt from {tag} hashes {artifact.sha256}, the "
                            f"manifest says {wanted}: refusing to deploy it"
                        )
                    note["detail"] = f"sha256 {artifact.sha256[:16]}... = manifest"
                    if cached is None:
                        keep_artifact(artifact)
                    else:
                        note["detail"] += " (rebuilt and checked before: cached)"
            with self.run("install the app"):
                app = out / "app"
                (app / "dist").mkdir(parents=True)
                (app / "dist" / artifact.wheel.name).write_bytes(artifact.wheel.read_bytes())
                steps.upload_bundle(self.remote, _tar(app, out / "app.tar.gz"), self.path)
                steps.install_app(self.remote, self.path, artifact.wheel.name)

    def plan(self, run_id: str, token: str) -> dict[str, Any]:
        """What the server-side runner does from here (releases/scripts/runner.py)."""
        head = self.manifest.get("alembic_head")
        name = self.entry["release"]
        prepare: list[dict[str, Any]] = []
        if head and self.before != head:
            prepare.append(
                {
                    "do": "backup",
                    "label": "back up the database (pg_dump -Fc, checked by pg_restore --list)",
                    # Named after the release whose schema it holds (the one a
                    # rollback --restore-backup returns to); kept while that release is.
                    "command": backups.predeploy_command(self.old.name if self.old else "initial"),
                }
            )
            prepare.append(
                {
                    "do": "migrate",
                    "label": f"migrate {self.before or 'base'} -> {head} from the new venv",
                    "release": self.path,
                    "action": "upgrade",
                    "target": head,
                }
            )
        if self.options.canary:
            prepare.append({"do": "canary"})
        unit = self.remote.read(f"{UNIT_DIR}/tas.service") or ""
        return {
            **runner_settings(run_id, token, self.domain, self.cacert, self.options),
            "kind": "deploy",
            "entry": self.entry,
            "expect_before": self.before,
            "new": {"name": name, "path": self.path, "version": self.version},
            "old": _release_info(self.old),
            "previous_before": self.previous,
            "prepare": prepare,
            "undo_schema": undo_schema(self.manifest, self.old, self.before, self.path),
            "undone_result": "rolled back",
            "canary": {
                "unit": steps.CANARY_UNIT,
                "socket": steps.CANARY_SOCKET,
                "hardening": service_hardening(unit),
            },
            "deploy_json": {
                "release": name,
                "version": self.version,
                "who": self.entry["who"],
                "from_release": self.entry.get("from_release"),
            },
        }

    def clean_up(self) -> None:
        name = self.entry["release"]
        with self.run(f"clean up (keep {self.options.keep})") as note:
            state = read_state(self.remote)
            protected = [state.current, state.previous, name, *state.in_use]
            doomed = releases_to_delete(state.releases, self.options.keep, protected)
            steps.remove_releases(self.remote, [r.path for r in doomed])
            self.entry["deleted"] = [r.name for r in doomed]
            kept = [r.name for r in state.releases if r not in doomed]
            dumps = backups.prune_predeploy_dumps(self.remote, kept)
            self.entry["deleted_dumps"] = dumps
            note["detail"] = "deleted " + ", ".join(self.entry["deleted"]) if doomed else "none"
            if dumps:
                note["detail"] += f"; pre-deploy dumps of releases gone: {', '.join(dumps)}"


def _release_info(release: Release | None) -> dict[str, str] | None:
    if release is None:
        return None
    return {"name": release.name, "path": release.path, "version": release.version}


def runner_settings(
    run_id: str, token: str, domain: str, cacert: str, options: Any
) -> dict[str, Any]:
    """The parts of a runner plan that deploys and rollbacks share."""
    return {
        "run": run_id,
        "log": deploy_lock.DEPLOY_LOG,
        "lock": {"dir": deploy_lock.LOCK_DIR, "token": token},
        "app_user": APP_USER,
        "env_file": ENV_FILE,
        "database": DATABASE,
        "current_link": CURRENT_LINK,
        "previous_link": PREVIOUS_LINK,
        "failed_mark": FAILED_MARK,
        "gate": {
            "domain": domain,
            "cacert": cacert,
            "timeout": options.health_timeout,
            "page": "/signin",
        },
    }


def stage_ca_file(remote: Remote, ca_file: str | None) -> str:
    """Put a local CA file (a test CA) where the runner can read it; "" without one."""
    if not ca_file:
        return ""
    staged = f"{remote.scratch()}/health-ca.pem"
    remote.connection.put(ca_file, staged)
    target = f"{APP_ROOT}/shared/runs/health-ca.pem"
    remote.sudo(f"install -d -m 755 {APP_ROOT}/shared/runs && install -m 644 {staged} {target}")
    return target


def deploy_release(
    remote: Remote, options: DeployOptions, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """The full deploy of a tagged release (see the module docstring); returns its log entry.

    Raises :class:`DeployRefused` (nothing changed), :class:`releases.lock.LockHeld`,
    :class:`DeployFailed` (it changed things and put them back, as the message says), or
    :class:`releases.handover.Detached` (the server finishes it on its own).
    """
    manifest = find_manifest(options.repo, options.version)
    version = str(manifest["version"])
    run = steps.Steps("deploy", echo)
    started = time.monotonic()
    run_id = handover.new_run_id("deploy")
    entry: dict[str, Any] = {
        "run": run_id,
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
    handed_over = followed = False
    try:
        run.say(f"lock: taken ({deploy_lock.LOCK_DIR})")
        # Every attempt is on record before anything else happens, refused ones too.
        deploy_lock.append_log(remote, {**entry, "result": "started"})
        try:
            job.prepare()
        finally:
            # What it was read to start from (the release, the revision), for the record.
            deploy_lock.append_log(remote, {k: v for k, v in entry.items() if k != "result"})
        job.cacert = stage_ca_file(remote, options.ca_file)
        job.install()
        plan = job.plan(run_id, held.token)
        entry["steps"] = run.timings
        unit = handover.start(remote, run_id, plan, held, echo, "deploy")
        handed_over = True  # from here the server finishes the deploy, whatever happens here
        entry.update(handover.follow(remote, unit, held, echo, "deploy"))
        followed = True
        if entry.get("result") != "ok":
            reason = str(entry.get("reason") or entry.get("result"))
            undone = "; ".join(entry.get("undone", []))
            raise DeployFailed(f"{reason}\nundone: {undone}")
        try:
            job.clean_up()
            deploy_lock.append_log(
                remote,
                {
                    "run": run_id,
                    "deleted": entry["deleted"],
                    "deleted_dumps": entry["deleted_dumps"],
                },
            )
        except (Exception, KeyboardInterrupt) as exc:
            # The release is live and logged: a clean-up cut short (Ctrl-C, a dropped
            # connection) fails nothing; the next deploy cleans up.
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed ({exc})"
            run.say(f"clean up {why}: skipped, the next deploy does it")
    except DeployRefused as exc:
        entry.update(result="refused", reason=str(exc))
        raise
    except (DeployFailed, handover.Detached):
        raise
    except BaseException as exc:
        # Before the hand-over nothing serves from the new release: say so and mark it.
        if not handed_over:
            reason = f"{type(exc).__name__}: {exc}".strip()
            entry.update(
                result="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                reason=reason[:2000],
            )
            with contextlib.suppress(Exception):
                if job.path:
                    steps.mark_failed(remote, job.path, reason)
        raise
    finally:
        if not handed_over or followed:
            # Detached, the unit frees the lock itself when it ends.
            try:
                held.release()
            except Exception as exc:  # noqa: BLE001 - the lock is then reported stale
                run.say(f"WARNING: could not free the deploy lock: {exc}")
        entry["duration_s"] = round(time.monotonic() - started, 1)
        if not handed_over and entry.get("result") not in (None, "started"):
            with contextlib.suppress(Exception):
                deploy_lock.append_log(
                    remote,
                    {
                        "run": run_id,
                        "result": entry["result"],
                        "reason": entry.get("reason"),
                        "steps": run.timings,
                        "duration_s": entry["duration_s"],
                    },
                )
    if options.host:
        message = f"{version} deployed to {options.host} at {_now()} by {entry['who']}"
        entry["git_tag"], said = record_deployed(options.repo, options.host, version, message)
        run.say(said)
    run.say(f"{version} is live on {options.host} [{entry['duration_s']:.1f}s]")
    return entry


# --- invoke deploy --dry-run ------------------------------------------------------------------


def pending_sql(repo: Path, version: str, start: str | None, end: str) -> str:
    """``alembic upgrade start:end --sql`` with the migrations of the tag ``v<version>``."""
    with tempfile.TemporaryDirectory(prefix="tas-sql-") as tmp:
        tree = Path(tmp)
        export_tree(f"v{version}", tree, repo)
        result = subprocess.run(
            [sys.executable, "-c", scripts.text("offline_sql.py"), start or "", end, str(tree)],
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

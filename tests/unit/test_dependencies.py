"""The declared dependencies and their locks (requirements/*.lock, made by `invoke lock`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCKS = sorted((ROOT / "requirements").glob("*.lock"))
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def _pins(lock: Path) -> list[tuple[str, str]]:
    return [(name.lower(), version) for name, version in PIN.findall(lock.read_text())]


@pytest.mark.parametrize("lock", LOCKS, ids=[lock.name for lock in LOCKS])
def test_each_lock_holds_one_version_of_each_package_for_every_supported_python(lock):
    """A server on Python 3.10 must run exactly the versions CI tested on 3.11."""
    versions: dict[str, set[str]] = {}
    for name, version in _pins(lock):
        versions.setdefault(name, set()).add(version)
    forked = {name: sorted(v) for name, v in versions.items() if len(v) > 1}
    assert forked == {}


def test_the_locks_resolve_for_the_oldest_supported_python():
    assert PYPROJECT["project"]["requires-python"] == ">=3.10"
    for lock in LOCKS:
        assert "--python-version 3.10" in lock.read_text().splitlines()[1], lock.name


def test_the_build_backend_is_pinned_exactly_and_locked_with_hashes_at_that_version():
    (backend,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    (spec,) = backend.specifier
    assert backend.name == "setuptools" and spec.operator == "=="
    # Installed from the locks into the venvs that build (deploy, release) and install (-e).
    for extra in ("local", "dev"):
        declared = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]]
        assert str(backend) in {str(r) for r in declared}, extra
    for name in ("local.lock", "dev.lock"):
        text = (ROOT / "requirements" / name).read_text()
        assert ("setuptools", spec.version) in _pins(ROOT / "requirements" / name), name
        entry = text[text.index(f"setuptools=={spec.version}") :].split("\n    #", 1)[0]
        assert "--hash=sha256:" in entry, name


def test_the_tools_invoke_lock_needs_are_declared_and_locked():
    dev = {Requirement(r).name for r in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    assert "uv" in dev
    assert "uv" in dict(_pins(ROOT / "requirements" / "dev.lock"))


@pytest.mark.parametrize(
    ("group", "lock"),
    [("runtime", "runtime.lock"), ("local", "local.lock"), ("dev", "dev.lock")],
)
def test_every_declared_requirement_is_satisfied_by_its_lock(group, lock):
    """A changed pyproject.toml (say, a Dependabot update) fails here until `invoke lock`."""
    declared = PYPROJECT["project"]["dependencies"]
    if group != "runtime":
        declared = declared + PYPROJECT["project"]["optional-dependencies"][group]
    locked = dict(_pins(ROOT / "requirements" / lock))
    unsatisfied = []
    for requirement in map(Requirement, declared):
        name = requirement.name.lower()
        version = locked.get(name)
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            unsatisfied.append(f"{requirement} (locked: {version})")
    assert unsatisfied == []

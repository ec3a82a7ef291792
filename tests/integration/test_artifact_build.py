"""The artifact is built by the build backend the lock pins, never by one fetched at build time."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import pytest

from releases.artifact import ArtifactError
from releases.artifact import build_from_ref
from releases.artifact import build_from_tree
from releases.artifact import build_requirements
from releases.artifact import export_tree

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _pinned_backend() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (requirement,) = data["build-system"]["requires"]
    name, version = requirement.split("==")
    return f"{name} ({version})"


def _generator(wheel: Path) -> str:
    """What the wheel says built it (its .dist-info/WHEEL)."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/WHEEL")]
        for line in archive.read(name).decode().splitlines():
            if line.startswith("Generator:"):
                return line.partition(":")[2].strip()
    raise AssertionError("the wheel names no generator")


def test_the_artifact_is_built_by_the_pinned_backend_with_no_package_index(tmp_path, monkeypatch):
    # No index, no local wheel folder, no pip configuration: a build that fetched its
    # backend (build isolation) could not even start.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    artifact = build_from_ref("HEAD", tmp_path / "dist", ROOT)
    assert _generator(artifact.wheel) == _pinned_backend()
    # The licence travels with the wheel and matches what its metadata declares.
    with zipfile.ZipFile(artifact.wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        (license_file,) = [n for n in archive.namelist() if n.endswith("/licenses/LICENSE")]
        assert "License-Expression: MIT" in archive.read(metadata).decode()
        assert archive.read(license_file).decode().startswith("MIT License")


def test_a_release_pinning_another_backend_is_refused_before_building(tmp_path):
    tree = tmp_path / "src"
    tree.mkdir()
    commit = export_tree("HEAD", tree, ROOT)
    pyproject = tree / "pyproject.toml"
    text = pyproject.read_text()
    (pinned,) = [str(r) for r in build_requirements(tree)]
    pyproject.write_text(text.replace(f'requires = ["{pinned}"]', 'requires = ["setuptools==1.0"]'))
    with pytest.raises(ArtifactError) as refused:
        build_from_tree(tree, tmp_path / "dist", commit)
    message = str(refused.value)
    assert "built with setuptools==1.0" in message
    assert f"has setuptools {pinned.partition('==')[2]}" in message
    assert "requirements/dev.lock" in message
    assert not (tmp_path / "dist").exists()

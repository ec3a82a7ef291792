"""A deploy reuses a wheel an earlier deploy rebuilt from the same commit and found to hash
to the manifest's SHA-256 -- only those very bytes, hashed again each time."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from releases import deploy
from releases.artifact import Artifact


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def built(tmp_path: Path, content: bytes) -> Artifact:
    wheel = tmp_path / "task_aversion_system-0.2.0-py3-none-any.whl"
    wheel.write_bytes(content)
    return Artifact(wheel=wheel, sha256=hashlib.sha256(content).hexdigest(), commit="c0ffee")


def test_a_checked_rebuild_is_reused_for_the_same_commit_and_hash(cache_home: Path):
    artifact = built(cache_home, b"wheel bytes")
    deploy.keep_artifact(artifact)
    again = deploy.cached_artifact(artifact.sha256, "c0ffee")
    assert again is not None
    assert again.wheel.read_bytes() == b"wheel bytes"
    assert again.wheel.name == artifact.wheel.name


def test_another_commit_or_hash_is_rebuilt(cache_home: Path):
    artifact = built(cache_home, b"wheel bytes")
    deploy.keep_artifact(artifact)
    assert deploy.cached_artifact(artifact.sha256, "another-commit") is None
    assert deploy.cached_artifact("0" * 64, "c0ffee") is None


def test_a_cached_wheel_changed_on_disk_is_not_used(cache_home: Path):
    artifact = built(cache_home, b"wheel bytes")
    deploy.keep_artifact(artifact)
    kept = deploy.artifact_cache() / artifact.sha256 / artifact.wheel.name
    kept.write_bytes(b"tampered")
    assert deploy.cached_artifact(artifact.sha256, "c0ffee") is None

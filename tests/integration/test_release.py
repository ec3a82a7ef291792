"""`invoke release`: version, CHANGELOG, manifest, commit and tag — and a reproducible artifact."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest

from db import migrate
from releases.artifact import build_from_ref
from releases.release import ReleaseRefused
from releases.release import bump
from releases.release import changelog_with_release
from releases.release import cut_release
from releases.release import unreleased_notes

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 11, 27)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A clone of this project with one unreleased change committed."""
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    _git(clone, "config", "user.email", "release-test@example.invalid")
    _git(clone, "config", "user.name", "Release Test")
    changelog = clone / "CHANGELOG.md"
    text = changelog.read_text()
    changelog.write_text(
        text.replace("## [Unreleased]\n", "## [Unreleased]\n\n### Fixed\n- A test change.\n", 1)
    )
    _git(clone, "commit", "-qam", "Add a change to release")
    return clone


def test_bump_follows_semantic_versioning():
    assert bump("1.2.3", "patch") == "1.2.4"
    assert bump("1.2.3", "minor") == "1.3.0"
    assert bump("1.2.3", "major") == "2.0.0"
    with pytest.raises(ReleaseRefused):
        bump("1.2.3", "huge")


def test_unreleased_notes_become_a_dated_section_under_an_empty_unreleased():
    text = (
        "# Changelog\n\n## [Unreleased]\n\n### Added\n- Thing.\n\n## [0.1.0] - 2026-01-01\n- Old.\n"
    )
    assert unreleased_notes(text) == "### Added\n- Thing."
    new = changelog_with_release(text, "0.2.0", DAY)
    assert new.index("## [Unreleased]") < new.index("## [0.2.0] - 2026-11-27")
    assert new.index("- Thing.") < new.index("## [0.1.0]")
    with pytest.raises(ReleaseRefused, match="empty"):
        unreleased_notes(new)


def test_a_release_bumps_commits_tags_and_records_a_reproducible_artifact(repo, tmp_path):
    manifest = cut_release("minor", today=DAY, root=repo, echo=lambda _: None)
    assert manifest is not None
    version = manifest["version"]
    assert f'version = "{version}"' in (repo / "pyproject.toml").read_text()
    changelog = (repo / "CHANGELOG.md").read_text()
    assert f"## [{version}] - 2026-11-27" in changelog
    with pytest.raises(ReleaseRefused):
        unreleased_notes(changelog)
    stored = json.loads((repo / "releases" / "manifests" / f"{version}.json").read_text())
    assert stored["alembic_head"] == migrate.head_revision()
    assert stored["commit"] == _git(repo, "rev-parse", "HEAD~1")
    assert _git(repo, "cat-file", "-t", f"v{version}") == "tag"  # annotated
    assert _git(repo, "status", "--porcelain") == ""
    # Deploys rebuild from the tag: the bytes must be the same.
    rebuilt = build_from_ref(f"v{version}", tmp_path / "rebuild", repo)
    assert rebuilt.sha256 == stored["artifact_sha256"]


def test_a_release_is_refused_with_uncommitted_changes_or_nothing_to_release(repo):
    (repo / "stray.txt").write_text("oops")
    with pytest.raises(ReleaseRefused, match="uncommitted"):
        cut_release("patch", today=DAY, root=repo, echo=lambda _: None)
    (repo / "stray.txt").unlink()
    cut_release("patch", today=DAY, root=repo, echo=lambda _: None)
    head = _git(repo, "rev-parse", "HEAD")
    with pytest.raises(ReleaseRefused, match="empty"):
        cut_release("patch", today=DAY, root=repo, echo=lambda _: None)
    assert _git(repo, "rev-parse", "HEAD") == head


def test_a_dry_run_changes_nothing(repo):
    head = _git(repo, "rev-parse", "HEAD")
    lines: list[str] = []
    assert cut_release("patch", dry_run=True, today=DAY, root=repo, echo=lines.append) is None
    assert any("0.1.0 -> 0.1.1" in line for line in lines)
    assert _git(repo, "rev-parse", "HEAD") == head
    assert _git(repo, "status", "--porcelain") == ""
    assert _git(repo, "tag", "--list") == ""

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
    _git(clone, "checkout", "-q", "-B", "main")  # releases are cut from main only
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


def test_a_release_is_cut_from_main_only_and_not_behind_its_remote(repo, tmp_path):
    _git(repo, "checkout", "-q", "-b", "feature")
    with pytest.raises(
        ReleaseRefused, match="releases are cut from main; this checkout is on feature"
    ):
        cut_release("patch", today=DAY, root=repo, echo=lambda _: None)
    _git(repo, "checkout", "-q", "main")
    # The remote gets a commit this checkout has not pulled.
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(repo), str(other)], check=True)
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(origin)], check=True)
    _git(repo, "remote", "set-url", "origin", str(origin))
    _git(repo, "fetch", "-q", "origin")
    _git(repo, "branch", "-q", "--set-upstream-to=origin/main", "main")
    _git(other, "remote", "set-url", "origin", str(origin))
    _git(other, "config", "user.email", "other@example.invalid")
    _git(other, "config", "user.name", "Other")
    (other / "NOTE.txt").write_text("merged elsewhere\n")
    _git(other, "add", "NOTE.txt")
    _git(other, "commit", "-qm", "A change merged by someone else")
    _git(other, "push", "-q", "origin", "HEAD:main")
    head = _git(repo, "rev-parse", "HEAD")
    with pytest.raises(ReleaseRefused, match=r"main is 1 commit\(s\) behind origin/main"):
        cut_release("patch", today=DAY, root=repo, echo=lambda _: None)
    assert _git(repo, "rev-parse", "HEAD") == head and _git(repo, "tag", "--list") == ""
    _git(repo, "pull", "-q", "--no-rebase", "origin", "main")
    assert cut_release("patch", today=DAY, root=repo, echo=lambda _: None) is not None


def test_a_dry_run_lists_the_new_migrations_and_whether_the_release_before_serves_them(repo):
    versions = repo / "db/migrations/versions"
    head = migrate.head_revision()
    (versions / "20261231_9001_note.py").write_text(
        f'''"""a note column

Revision ID: t9001
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = "t9001"
down_revision = "{head}"
branch_labels = None
depends_on = None
irreversible = False
compatible_with_previous = False


def upgrade() -> None:
    op.add_column("tasks", sa.Column("t_note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "t_note")
'''
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "A contract migration")
    lines: list[str] = []
    cut_release("patch", dry_run=True, today=DAY, root=repo, echo=lines.append)
    text = "\n".join(lines)
    assert "release: migrations: " in text
    assert "t9001: contract: the release before cannot serve it (rollback downgrades)" in text


def test_the_deployed_tag_is_pushed_to_the_remote_so_everybody_sees_what_runs(repo, tmp_path):
    from releases.deploy import record_deployed

    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(origin)], check=True)
    _git(repo, "remote", "set-url", "origin", str(origin))
    manifest = cut_release("patch", today=DAY, root=repo, echo=lambda _: None)
    assert manifest is not None
    name, said = record_deployed(repo, "vps.example", manifest["version"], "deployed by a test")
    assert name == "deployed/vps.example"
    assert said == "tagged deployed/vps.example and pushed it to origin"
    pushed = _git(origin, "rev-parse", "deployed/vps.example^{commit}")
    assert pushed == _git(repo, "rev-parse", f"v{manifest['version']}^{{commit}}")
    # Without a remote it stays local, and says so.
    _git(repo, "remote", "remove", "origin")
    assert record_deployed(repo, "vps.example", manifest["version"], "again")[1] == (
        "tagged deployed/vps.example (local: the repository has no remote)"
    )

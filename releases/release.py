"""Cut a release: version bump, CHANGELOG section, manifest, commit and annotated tag.

The manifest (``releases/manifests/<version>.json``) records what a deploy needs to trust
and to plan with: the commit the release was cut from, the Alembic head it needs, every
migration with its ``irreversible`` and ``compatible_with_previous`` flags, and the SHA-256
of the artifact, which a deploy rebuilds from the tag and compares.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory

from releases.artifact import ROOT
from releases.artifact import build_from_tree
from releases.artifact import export_tree
from releases.artifact import sha256_file

PARTS = ("patch", "minor", "major")
MANIFESTS = ROOT / "releases" / "manifests"
UNRELEASED = re.compile(r"^## \[Unreleased\][^\n]*\n(?P<body>.*?)(?=^## \[|\Z)", re.M | re.S)
VERSION_LINE = re.compile(r'^version = "(?P<version>\d+\.\d+\.\d+)"$', re.M)


class ReleaseRefused(RuntimeError):
    """A precondition failed; nothing was changed."""


@dataclass(frozen=True)
class ReleasePlan:
    current: str
    version: str
    notes: str
    changelog: str
    pyproject: str
    base_commit: str


def bump(version: str, part: str) -> str:
    if part not in PARTS:
        raise ReleaseRefused(f"--part must be one of {', '.join(PARTS)}, not {part!r}")
    major, minor, patch = (int(n) for n in version.split("."))
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def unreleased_notes(changelog: str) -> str:
    match = UNRELEASED.search(changelog)
    if match is None:
        raise ReleaseRefused("CHANGELOG.md has no '## [Unreleased]' section")
    body = match.group("body").strip()
    if not re.search(r"^\s*[-*] \S", body, re.M):
        raise ReleaseRefused("the Unreleased section of CHANGELOG.md is empty: nothing to release")
    return body


def changelog_with_release(changelog: str, version: str, day: dt.date) -> str:
    """Turn the Unreleased notes into a dated section, leaving an empty Unreleased on top."""
    match = UNRELEASED.search(changelog)
    assert match is not None
    body = match.group("body").strip()
    section = f"## [Unreleased]\n\n## [{version}] - {day.isoformat()}\n\n{body}\n\n"
    return changelog[: match.start()] + section + changelog[match.end() :].lstrip("\n")


def _git(*args: str, root: Path = ROOT) -> str:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ReleaseRefused(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


RELEASE_BRANCH = "main"


def check_branch(root: Path = ROOT) -> str:
    """Releases are cut from ``main``, and not from a ``main`` behind its remote.

    The remote is fetched when one is configured; when it cannot be reached, the last
    known state of it is used and the returned warning says so ("" otherwise).
    """
    branch = _git("rev-parse", "--abbrev-ref", "HEAD", root=root)
    if branch != RELEASE_BRANCH:
        raise ReleaseRefused(
            f"releases are cut from {RELEASE_BRANCH}; this checkout is on {branch}: "
            f"merge into {RELEASE_BRANCH} and release from there"
        )
    upstream = subprocess.run(
        ["git", "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not upstream:
        return ""
    remote = upstream.split("/", 1)[0]
    warning = ""
    fetched = subprocess.run(
        ["git", "fetch", "--quiet", remote, RELEASE_BRANCH],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if fetched.returncode != 0:
        why = fetched.stderr.strip() or f"exit {fetched.returncode}"
        warning = f"could not fetch {remote} ({why}): compared with its last known state"
    behind = int(_git("rev-list", "--count", f"HEAD..{upstream}", root=root) or 0)
    if behind:
        raise ReleaseRefused(
            f"{RELEASE_BRANCH} is {behind} commit(s) behind {upstream}: pull first, so the "
            "release holds what everybody merged"
        )
    return warning


def plan_release(part: str, day: dt.date, root: Path = ROOT) -> ReleasePlan:
    """Check the preconditions and compute the new files; changes nothing."""
    dirty = _git("status", "--porcelain", "--untracked-files=normal", root=root)
    if dirty:
        raise ReleaseRefused(
            "the working tree has uncommitted changes; commit or stash them first:\n" + dirty
        )
    changelog = (root / "CHANGELOG.md").read_text(encoding="utf-8")
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    notes = unreleased_notes(changelog)
    found = VERSION_LINE.search(pyproject)
    if found is None:
        raise ReleaseRefused("pyproject.toml has no version line")
    current = found.group("version")
    version = bump(current, part)
    if _git("tag", "--list", f"v{version}", root=root):
        raise ReleaseRefused(f"the tag v{version} exists already")
    return ReleasePlan(
        current=current,
        version=version,
        notes=notes,
        changelog=changelog_with_release(changelog, version, day),
        pyproject=VERSION_LINE.sub(f'version = "{version}"', pyproject, count=1),
        base_commit=_git("rev-parse", "HEAD", root=root),
    )


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def migration_chain(root: Path = ROOT) -> list[dict[str, Any]]:
    """Every migration from head to base with its flags (for rollback plans).

    ``compatible_with_previous`` missing from a migration counts as False: the rollback
    planner then downgrades instead of trusting older code with the newer schema.
    ``compatible_with_release`` names the release that "previous" means: the one cut right
    before the first release that shipped the migration, read from the manifests of the
    releases cut so far (a migration none of them lists is new: the newest of them). It
    is None for a contract step, and when no release came before the first one that
    shipped it. The planner rolls back code-only only to that release (releases.rollback).
    """
    released = sorted(
        (
            json.loads(path.read_text(encoding="utf-8"))
            for path in (root / "releases" / "manifests").glob("*.json")
        ),
        key=lambda manifest: _version_key(str(manifest["version"])),
    )
    # revision -> the release cut right before the first release that shipped it
    before_first: dict[str, str | None] = {}
    previous: str | None = None
    for manifest in released:
        for entry in manifest.get("migrations", []):
            before_first.setdefault(str(entry["revision"]), previous)
        previous = str(manifest["version"])
    script = ScriptDirectory(str(root / "db" / "migrations"))
    chain = []
    for rev in script.walk_revisions():
        compatible = bool(getattr(rev.module, "compatible_with_previous", False))
        chain.append(
            {
                "revision": rev.revision,
                "down_revision": rev.down_revision,
                "irreversible": bool(getattr(rev.module, "irreversible", False)),
                "compatible_with_previous": compatible,
                "compatible_with_release": (
                    before_first.get(rev.revision, previous) if compatible else None
                ),
            }
        )
    return chain


def new_migrations(root: Path = ROOT) -> list[str]:
    """The migrations this release carries that no release before it did, one line each:
    whether the release before can run beside it (and be rolled back to code-only)."""
    shipped = {
        str(entry["revision"])
        for path in (root / "releases" / "manifests").glob("*.json")
        for entry in json.loads(path.read_text(encoding="utf-8")).get("migrations", [])
    }
    fresh = [m for m in migration_chain(root) if m["revision"] not in shipped]
    if not fresh:
        return ["migrations: none new (the schema is the previous release's)"]
    lines = [f"migrations: {len(fresh)} new, newest first"]
    for m in fresh:
        if m["compatible_with_previous"]:
            before = m["compatible_with_release"] or "no earlier release"
            how = f"expand: compatible with {before}"
        else:
            how = "contract: the release before cannot serve it (rollback downgrades)"
        lines.append(f"  {m['revision']}: {how}" + ("; IRREVERSIBLE" if m["irreversible"] else ""))
    return lines


def manifest_for(plan: ReleasePlan, artifact_sha256: str, root: Path = ROOT) -> dict[str, Any]:
    chain = migration_chain(root)
    return {
        "version": plan.version,
        "tag": f"v{plan.version}",
        "commit": plan.base_commit,
        "alembic_head": chain[0]["revision"] if chain else None,
        "migrations": chain,
        "artifact": f"task_aversion_system-{plan.version}-py3-none-any.whl",
        "artifact_sha256": artifact_sha256,
        "runtime_lock_sha256": sha256_file(root / "requirements" / "runtime.lock"),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def build_release_artifact(plan: ReleasePlan, root: Path = ROOT) -> str:
    """Build the wheel from exactly what the release commit will hold; return its hash."""
    with tempfile.TemporaryDirectory(prefix="tas-release-") as tmp:
        tree = Path(tmp) / "src"
        tree.mkdir()
        export_tree("HEAD", tree, root)
        (tree / "pyproject.toml").write_text(plan.pyproject, encoding="utf-8")
        (tree / "CHANGELOG.md").write_text(plan.changelog, encoding="utf-8")
        return build_from_tree(tree, Path(tmp) / "dist", plan.base_commit).sha256


def cut_release(
    part: str,
    *,
    dry_run: bool = False,
    today: dt.date | None = None,
    root: Path = ROOT,
    echo: Callable[[str], None] = print,
) -> dict[str, Any] | None:
    warning = check_branch(root)
    if warning:
        echo(f"release: WARNING: {warning}")
    plan = plan_release(part, today or dt.date.today(), root)
    echo(f"release: {plan.current} -> {plan.version} (from {plan.base_commit[:12]})")
    echo("release: notes:\n" + plan.notes)
    for line in new_migrations(root):
        echo(f"release: {line}")
    if dry_run:
        echo("release: dry run: nothing changed")
        return None
    echo("release: building the artifact ...")
    manifest = manifest_for(plan, build_release_artifact(plan, root), root)
    (root / "pyproject.toml").write_text(plan.pyproject, encoding="utf-8")
    (root / "CHANGELOG.md").write_text(plan.changelog, encoding="utf-8")
    path = root / "releases" / "manifests" / f"{plan.version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _git("add", "pyproject.toml", "CHANGELOG.md", str(path.relative_to(root)), root=root)
    _git("commit", "-q", "-m", f"Release {plan.version}", root=root)
    _git(
        "tag", "-a", f"v{plan.version}", "-m", f"Release {plan.version}\n\n{plan.notes}", root=root
    )
    echo(f"release: committed and tagged v{plan.version}; artifact {manifest['artifact_sha256']}")
    return manifest

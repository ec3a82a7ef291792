"""What a server holds: its releases, which is current and previous, the database revision.

One SSH round trip (a small Python script run by the server's ``python3`` as root) reads
every release directory's ``manifest.json`` (the release manifest, stored at deploy time)
and ``deploy.json`` (when, by whom, from what), the ``current`` and ``previous`` links,
which releases a running process uses (``/proc/*/cwd``, ``exe`` and ``maps``), free disk
space, and the database's Alembic revision. The cleanup decision is a pure function.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from releases import scripts
from releases.provision import APP_ROOT
from releases.provision import DATABASE
from releases.remote import Remote
from releases.shell import sudo_input

RELEASES_DIR = f"{APP_ROOT}/releases"
CURRENT_LINK = f"{APP_ROOT}/current"
PREVIOUS_LINK = f"{APP_ROOT}/previous"
FAILED_MARK = "DEPLOY_FAILED"
_STAMP = re.compile(r"-(\d{8}T\d{6}Z)$")


@dataclass(frozen=True)
class Release:
    name: str
    manifest: dict[str, Any] | None
    deploy: dict[str, Any] | None
    failed: str | None
    complete: bool

    @property
    def path(self) -> str:
        return f"{RELEASES_DIR}/{self.name}"

    @property
    def stamp(self) -> str:
        """The UTC time in the name (``0.2.0-20261127T101500Z``): releases sort by it."""
        match = _STAMP.search(self.name)
        return match.group(1) if match else ""

    @property
    def version(self) -> str:
        if self.manifest and self.manifest.get("version"):
            return str(self.manifest["version"])
        return _STAMP.sub("", self.name)

    @property
    def alembic_head(self) -> str | None:
        return self.manifest.get("alembic_head") if self.manifest else None


@dataclass(frozen=True)
class ServerState:
    releases: list[Release]
    current: str | None
    previous: str | None
    in_use: set[str] = field(default_factory=set)
    db_ok: bool = False
    db_revision: str | None = None
    disk_free: int | None = None
    disk_total: int | None = None

    def release(self, name: str | None) -> Release | None:
        return next((r for r in self.releases if r.name == name), None)

    def find_version(self, version: str) -> Release | None:
        """The newest good release of ``version`` (a failed one only if nothing else)."""
        matching = [r for r in self.releases if r.version == version and r.complete]
        good = [r for r in matching if not r.failed]
        pool = good or matching
        return pool[-1] if pool else None

    @property
    def current_release(self) -> Release | None:
        return self.release(self.current)

    def disk(self) -> str:
        if self.disk_free is None or not self.disk_total:
            return "unknown"
        gib = 1024**3
        return (
            f"{self.disk_free / gib:.1f} GiB free of {self.disk_total / gib:.1f} GiB "
            f"({100 * self.disk_free / self.disk_total:.0f}%)"
        )


def read_state(remote: Remote) -> ServerState:
    args = " ".join([APP_ROOT, RELEASES_DIR, DATABASE, FAILED_MARK])
    data = json.loads(sudo_input(remote, f"python3 - {args}", scripts.text("inventory.py")).stdout)
    releases = sorted(
        (Release(**r) for r in data["releases"]),
        key=lambda r: (r.stamp, r.name),
    )
    return ServerState(
        releases=releases,
        current=data["current"],
        previous=data["previous"],
        in_use=set(data["in_use"]),
        db_ok=data["db_ok"],
        db_revision=data["db_revision"],
        disk_free=data["disk_free"],
        disk_total=data["disk_total"],
    )


def releases_to_delete(
    releases: Iterable[Release],
    keep: int,
    protected: Iterable[str | None],
) -> list[Release]:
    """The releases beyond the newest ``keep``, oldest first, never a protected one.

    ``protected``: current, previous, the one being deployed, and any a process uses.
    """
    keep = max(keep, 1)
    ordered = list(releases)
    shielded = {name for name in protected if name}
    candidates = ordered[: max(0, len(ordered) - keep)]
    return [r for r in candidates if r.name not in shielded]


def table(state: ServerState, log: Iterable[dict[str, Any]] = ()) -> list[str]:
    """``invoke releases``: one line per release, newest first."""
    results: dict[str, str] = {}
    for entry in log:
        if entry.get("release") and entry.get("event") in ("deploy", "rollback"):
            results[entry["release"]] = str(entry.get("result", ""))
    rows = [("release", "version", "deployed at", "alembic", "state")]
    for release in reversed(state.releases):
        marks = []
        if release.name == state.current:
            marks.append("current")
        if release.name == state.previous:
            marks.append("previous")
        if release.failed:
            marks.append(f"failed: {release.failed}")
        if not release.complete:
            marks.append("incomplete")
        if release.name in state.in_use and release.name != state.current:
            marks.append("in use")
        deployed = (release.deploy or {}).get("deployed_at", "?")
        rows.append(
            (
                release.name,
                release.version,
                str(deployed),
                str(release.alembic_head or "?"),
                ", ".join(marks) or results.get(release.name, ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    ]
    lines.append(
        f"database at {state.db_revision or '(none)'}; disk {state.disk()}"
        if state.db_ok
        else "database: unreachable"
    )
    return [line.rstrip() for line in lines]

"""Database backups on the server: take one, list them, check one, restore one, prune.

Three kinds of dump live in ``/srv/tas/backups``, told apart by their names (the stamp is
the UTC time the dump was started):

* ``tas-<stamp>.dump`` — **nightly**: the ``tas-backup.timer`` and ``invoke backup`` run
  ``tas-backup.service`` (``/usr/local/sbin/tas-backup``); the newest N are kept.
* ``tas-predeploy-<stamp>-<release>.dump`` — **pre-deploy**: taken before a deploy migrates,
  holding the schema of ``<release>`` (the release live when it was taken, the one a
  ``rollback --restore-backup`` goes back to). The nightly retention never deletes one; the
  deploy's cleanup does (:func:`prune_predeploy_dumps`) once ``<release>`` is no longer kept.
* ``tas-pre-restore-<stamp>.dump`` — **pre-restore**: the safety dump ``tas-restore`` takes of
  the database it replaces. Never deleted automatically.

Every dump is made with ``pg_dump -Fc`` and read back with ``pg_restore --list`` before it
gets its final name. A restore (``/usr/local/sbin/tas-restore``, releases/scripts/tas_restore.py)
checks the dump and its Alembic revision first, restores into a new database, takes the
safety dump, and swaps the names while the app is stopped: see that script.

Each dump has ``<dump>.counts.json`` beside it (rows per table, counted in the dump's own
snapshot). A nightly dump is also copied off-site with restic when the env file names a
repository (RESTIC_REPOSITORY): :func:`take_backup` reports both copies. ``tas-drill``
restores the newest backups daily into a scratch database and logs one JSON line per drill
in ``drills.jsonl``; :func:`inventory` gathers dumps, snapshots and the last drills for
``invoke backups``.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from releases.provision import APP_USER
from releases.provision import BACKUP_DIR
from releases.provision import BACKUP_SCRIPT
from releases.provision import BACKUP_STATUS_FILE
from releases.provision import DATABASE
from releases.provision import DRILL_LOG
from releases.provision import ENV_FILE
from releases.provision import RESTIC_SCRIPT
from releases.provision import RESTORE_SCRIPT
from releases.provision import parse_env
from releases.remote import Remote

NIGHTLY = "nightly"
PREDEPLOY = "predeploy"
PRE_RESTORE = "pre-restore"
# What the nightly retention counts, and what the other two kinds look like.
_STAMP = r"(?P<stamp>\d{8}T\d{6}Z)"
_KINDS = {
    NIGHTLY: re.compile(rf"^tas-{_STAMP}\.dump$"),
    PREDEPLOY: re.compile(
        rf"^tas-predeploy-{_STAMP}-(?P<release>[A-Za-z0-9_+][A-Za-z0-9._+-]*)\.dump$"
    ),
    PRE_RESTORE: re.compile(rf"^tas-pre-restore-{_STAMP}\.dump$"),
}
_RELEASE_NAME = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]*$")
# How the restore script is told where things are on the server (its defaults match).
_RESTORE_OPTIONS = (
    f"--database={DATABASE} --app-role={APP_USER} --backup-dir={BACKUP_DIR} "
    f"--app-user={APP_USER} --admin-user=postgres"
)
APP_UNITS = "tas.socket,tas.service"


class BackupNotFound(LookupError):
    """No such dump in the backup directory."""


class BackupUnusable(RuntimeError):
    """A dump that should be there is missing, unreadable or at the wrong revision."""


# --- names (pure) ---------------------------------------------------------------------------


def backup_kind(path: str) -> str | None:
    """``nightly``, ``predeploy`` or ``pre-restore`` from a dump's file name; None otherwise."""
    name = PurePosixPath(path).name
    return next((kind for kind, pattern in _KINDS.items() if pattern.match(name)), None)


def backup_stamp(path: str) -> str:
    """The UTC stamp in a dump's name (``20261127T101500Z``); "" when it has none."""
    name = PurePosixPath(path).name
    for pattern in _KINDS.values():
        match = pattern.match(name)
        if match:
            return match.group("stamp")
    return ""


def predeploy_release(path: str) -> str | None:
    """The release a pre-deploy dump protects (whose schema it holds); None for other dumps."""
    match = _KINDS[PREDEPLOY].match(PurePosixPath(path).name)
    return match.group("release") if match else None


def predeploy_command(release: str) -> str:
    """A verified pre-deploy dump of the schema ``release`` serves, as the app user; prints
    its path (the server-side deploy runs it: releases/scripts/runner.py)."""
    if not _RELEASE_NAME.match(release):
        raise ValueError(f"a pre-deploy backup needs a release name, not {release!r}")
    return f"runuser -u {APP_USER} -- {BACKUP_SCRIPT} predeploy {shlex.quote(release)}"


def predeploy_dumps_to_delete(paths: Iterable[str], kept_releases: Iterable[str]) -> list[str]:
    """The pre-deploy dumps whose release is not among ``kept_releases`` (release names).

    Other kinds are never chosen. An empty ``kept_releases`` chooses nothing: a server
    always keeps its current release, so an empty list is a caller's mistake, and
    deleting every pre-deploy dump on a mistake is what this guards against.
    """
    kept = set(kept_releases)
    if not kept:
        return []
    return [
        path
        for path in paths
        if (release := predeploy_release(path)) is not None and release not in kept
    ]


# --- on the server --------------------------------------------------------------------------


def list_backups(remote: Remote) -> list[str]:
    """Every dump on the server (all kinds), oldest first by the stamp in its name."""
    result = remote.sudo(f"ls -1 {BACKUP_DIR} | grep -E '^tas-.*[.]dump$' || true")
    names = result.stdout.split()
    return [f"{BACKUP_DIR}/{name}" for name in sorted(names, key=lambda n: (backup_stamp(n), n))]


@dataclass
class Taken:
    """One ``invoke backup``: the local dump, and what became of its off-site copy."""

    dump: str
    repository: str  # "" when no off-site copy is configured
    snapshot: str = ""  # restic's snapshot id when the off-site copy was made
    offsite_error: str = ""  # why the off-site copy failed (the dump itself is good)


def offsite_repository(remote: Remote) -> str:
    """The env file's RESTIC_REPOSITORY ("" when off-site copies are not configured)."""
    return parse_env(remote.read(ENV_FILE) or "").get("RESTIC_REPOSITORY", "")


def take_backup(remote: Remote) -> Taken:
    """Take a nightly dump now, as the timer does (it counts towards the nightly retention),
    with its off-site copy when one is configured. Pre-deploy dumps are taken by the
    server-side deploy with :func:`predeploy_command`. Raises RuntimeError with the reason
    when no dump was made; a failed off-site copy is reported in ``offsite_error``."""
    before = set(list_backups(remote))
    result = remote.sudo("systemctl start tas-backup.service", warn=True)
    new = [
        path for path in list_backups(remote) if path not in before and backup_kind(path) == NIGHTLY
    ]
    if result.exited != 0 and not new:
        raise RuntimeError(f"the backup failed:\n{_journal(remote)}")
    if not new:
        raise RuntimeError("the backup unit succeeded but wrote no new dump")
    taken = Taken(dump=new[-1], repository=offsite_repository(remote))
    if result.exited != 0:
        taken.offsite_error = _journal(remote)
        return taken
    status = read_status(remote)
    if taken.repository:
        if status.get("dump") == PurePosixPath(taken.dump).name and status.get("offsite_snapshot"):
            taken.snapshot = str(status["offsite_snapshot"])
        else:
            taken.offsite_error = "the backup recorded no off-site snapshot for this dump"
    return taken


def _journal(remote: Remote) -> str:
    log = remote.sudo("journalctl -u tas-backup.service -n 20 --no-pager", warn=True)
    return log.stdout.strip()


def read_status(remote: Remote) -> dict[str, Any]:
    """The last good nightly backup (``finished_at``, ``dump``, ``offsite_snapshot``); {}."""
    try:
        status = json.loads(remote.read(BACKUP_STATUS_FILE) or "{}")
    except ValueError:
        return {}
    return status if isinstance(status, dict) else {}


# --- invoke backups: what is there, off-site, and how the last drills went ------------------


@dataclass
class Inventory:
    dumps: list[dict[str, Any]]  # {"name", "size", "mtime"}, oldest first
    repository: str
    snapshots: list[dict[str, Any]]  # restic's JSON: {"short_id", "time", "paths", ...}
    offsite_error: str
    drills: dict[str, dict[str, Any]]  # the last drill per source ("local", "offsite")
    status: dict[str, Any]


def inventory(remote: Remote) -> Inventory:
    listing = remote.sudo(
        f'cd {BACKUP_DIR} && for f in tas-*.dump; do [ -f "$f" ] && '
        "stat -c '%n %s %Y' \"$f\"; done; true",
        warn=True,
    )
    dumps: list[dict[str, Any]] = []
    for line in listing.stdout.splitlines():
        name, size, mtime = line.rsplit(" ", 2)
        if backup_kind(name):
            dumps.append({"name": name, "size": int(size), "mtime": int(mtime)})
    dumps.sort(key=lambda d: (backup_stamp(d["name"]), d["name"]))
    repository = offsite_repository(remote)
    snapshots: list[dict[str, Any]] = []
    error = ""
    if repository:
        found = remote.sudo(f"{RESTIC_SCRIPT} snapshots --json --tag tas", warn=True)
        if found.exited == 0:
            snapshots = sorted(json.loads(found.stdout or "[]"), key=lambda s: s["time"])
        else:
            error = found.stderr.strip() or f"exit status {found.exited}"
    return Inventory(
        dumps=dumps,
        repository=repository,
        snapshots=snapshots,
        offsite_error=error,
        drills=last_drills(remote.read(DRILL_LOG) or ""),
        status=read_status(remote),
    )


def last_drills(log: str) -> dict[str, dict[str, Any]]:
    """The newest drill line per source from the drill log's JSON lines."""
    newest: dict[str, dict[str, Any]] = {}
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("source"):
            newest[str(entry["source"])] = entry
    return newest


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(0, int(seconds // 60))} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


def drill_line(entry: dict[str, Any]) -> str:
    what = entry.get("backup") or "-"
    if entry.get("snapshot"):
        what += f" (snapshot {entry['snapshot']})"
    if entry.get("result") == "ok":
        return (
            f"ok at {entry.get('at')}: {what} restored in {entry.get('restore_seconds')} s, "
            f"{entry.get('rows')} rows in {entry.get('tables')} tables match the dump's counts"
        )
    return f"FAILED at {entry.get('at')}: {what}: {entry.get('reason')}"


def inventory_lines(found: Inventory, now: float | None = None) -> list[str]:
    """The ``invoke backups`` report."""
    now = time.time() if now is None else now
    lines = [f"local dumps in {BACKUP_DIR} ({len(found.dumps)}):"]
    for dump in found.dumps:
        kind = backup_kind(dump["name"])
        lines.append(
            f"  {dump['name']}  {_size(dump['size'])}  {_age(now - dump['mtime'])} old  ({kind})"
        )
    if not found.dumps:
        lines.append("  none")
    if "finished_at" in found.status:
        age = _age(now - float(found.status["finished_at"]))
        lines.append(f"last good nightly backup: {found.status.get('dump')}, {age} ago")
    else:
        lines.append("last good nightly backup: none recorded")
    if not found.repository:
        lines.append(
            "off-site: not configured (invoke provision --offsite-repo sets a restic repository)"
        )
    elif found.offsite_error:
        lines.append(
            f"off-site: {found.repository}: FAILED to list snapshots: {found.offsite_error}"
        )
    else:
        lines.append(f"off-site snapshots in {found.repository} ({len(found.snapshots)}):")
        for snap in found.snapshots:
            names = ", ".join(
                PurePosixPath(p).name for p in snap.get("paths", []) if p.endswith(".dump")
            )
            lines.append(f"  {snap.get('short_id')}  {snap.get('time', '')[:19]}Z  {names}")
        if not found.snapshots:
            lines.append("  none")
    for source in ("local", "offsite"):
        entry = found.drills.get(source)
        lines.append(f"last {source} drill: " + (drill_line(entry) if entry else "none yet"))
    return lines


def prune_predeploy_dumps(remote: Remote, kept_release_names: Iterable[str]) -> list[str]:
    """Delete the pre-deploy dumps of releases no longer kept; return their paths.

    For the deploy's cleanup, after it chose the releases to keep: pass the names of every
    release that stays on the server (current and previous included). In a dry run
    (``remote.dry_run``) nothing is deleted and the paths that would be are returned.
    """
    doomed = predeploy_dumps_to_delete(list_backups(remote), kept_release_names)
    if doomed and not remote.dry_run:
        # Each with its row counts (<dump>.counts.json) beside it.
        paths = [p for path in doomed for p in (path, f"{path}.counts.json")]
        remote.sudo("rm -f -- " + " ".join(shlex.quote(path) for path in paths))
    return doomed


def resolve_backup(remote: Remote, name: str) -> str:
    """A dump by file name or full path; only files in the backup directory qualify."""
    path = name if name.startswith("/") else f"{BACKUP_DIR}/{name}"
    if str(PurePosixPath(path).parent) != BACKUP_DIR or path not in list_backups(remote):
        raise BackupNotFound(f"no backup {name!r} in {BACKUP_DIR} (invoke backup lists them)")
    return path


def restore_command(
    path: str, expect_revision: str | None = None, check: bool = False, units: str = APP_UNITS
) -> str:
    """The ``tas-restore`` command line for ``path`` (run as root on the server).

    ``units``: what it stops while swapping ("" when the caller stopped the app itself,
    as a rollback does: it starts the release it goes back to on the restored database)."""
    parts = [RESTORE_SCRIPT, _RESTORE_OPTIONS, f"--units={shlex.quote(units)}"]
    if expect_revision is not None:
        parts.append(f"--expect-revision={shlex.quote(expect_revision)}")
    if check:
        parts.append("--check")
    parts += ["--", shlex.quote(path)]
    return " ".join(parts)


def _run_restore_script(remote: Remote, command: str) -> dict[str, Any]:
    """Run tas-restore; its last stdout line is JSON. Raises RuntimeError with its message."""
    result = remote.sudo(command, warn=True)
    if result.exited == 127:
        raise RuntimeError(f"{RESTORE_SCRIPT} is missing on the server: run invoke provision")
    lines = result.stdout.strip().splitlines()
    if result.exited != 0 or not lines:
        message = result.stderr.strip() or result.stdout.strip() or f"exit status {result.exited}"
        raise RuntimeError(message.removeprefix("tas-restore: "))
    try:
        outcome: dict[str, Any] = json.loads(lines[-1])
    except ValueError as exc:
        raise RuntimeError(f"tas-restore printed no result line:\n{result.stdout}") from exc
    outcome["lines"] = lines[:-1]
    return outcome


def ensure_backup_present(
    remote: Remote, path: str, expect_revision: str | None = None
) -> dict[str, Any]:
    """Check a dump (say, the one the deploy log names) before relying on it.

    It must be in the backup directory, its table of contents and data must read to the
    end, and — when ``expect_revision`` is given — its Alembic revision must be that one.
    Changes nothing. Returns ``{"dump", "revision", "entries"}``; raises
    :class:`BackupUnusable` (a RuntimeError) saying what is wrong otherwise.
    """
    if str(PurePosixPath(path).parent) != BACKUP_DIR:
        raise BackupUnusable(f"the dump {path} is not in {BACKUP_DIR}")
    try:
        outcome = _run_restore_script(remote, restore_command(path, expect_revision, check=True))
    except RuntimeError as exc:
        raise BackupUnusable(f"the dump {path} cannot be used: {exc}") from exc
    return {key: outcome[key] for key in ("dump", "revision", "entries")}

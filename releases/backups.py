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
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

from releases.provision import APP_USER
from releases.provision import BACKUP_DIR
from releases.provision import BACKUP_SCRIPT
from releases.provision import DATABASE
from releases.provision import RESTORE_SCRIPT
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


def take_backup(remote: Remote) -> str:
    """Take a nightly dump now, as the timer does (it counts towards the nightly retention),
    and return its path. Pre-deploy dumps are taken by the server-side deploy with
    :func:`predeploy_command`. Raises RuntimeError with the reason when it fails."""
    before = set(list_backups(remote))
    result = remote.sudo("systemctl start tas-backup.service", warn=True)
    if result.exited != 0:
        log = remote.sudo("journalctl -u tas-backup.service -n 20 --no-pager", warn=True)
        raise RuntimeError(f"the backup failed:\n{log.stdout}")
    new = [
        path for path in list_backups(remote) if path not in before and backup_kind(path) == NIGHTLY
    ]
    if not new:
        raise RuntimeError("the backup unit succeeded but wrote no new dump")
    return new[-1]


def prune_predeploy_dumps(remote: Remote, kept_release_names: Iterable[str]) -> list[str]:
    """Delete the pre-deploy dumps of releases no longer kept; return their paths.

    For the deploy's cleanup, after it chose the releases to keep: pass the names of every
    release that stays on the server (current and previous included). In a dry run
    (``remote.dry_run``) nothing is deleted and the paths that would be are returned.
    """
    doomed = predeploy_dumps_to_delete(list_backups(remote), kept_release_names)
    if doomed and not remote.dry_run:
        remote.sudo("rm -f -- " + " ".join(shlex.quote(path) for path in doomed))
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

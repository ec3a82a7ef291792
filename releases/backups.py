"""Database backups on the server: take one now, list them, restore one.

The nightly ``tas-backup.timer`` and ``invoke backup`` run the same unit
(``tas-backup.service`` -> ``/usr/local/sbin/tas-backup``): ``pg_dump -Fc``, checked with
``pg_restore --list``, newest N kept. A restore stops the app (its socket too), runs
``pg_restore --clean --if-exists --single-transaction`` and starts it again.
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath

from releases.provision import BACKUP_DIR
from releases.provision import RESTORE_SCRIPT
from releases.remote import Remote


def list_backups(remote: Remote) -> list[str]:
    """Dumps on the server, oldest first (names sort by their UTC timestamp)."""
    result = remote.sudo(f"ls -1 {BACKUP_DIR} | grep -E '^tas-.*[.]dump$' || true")
    return [f"{BACKUP_DIR}/{name}" for name in sorted(result.stdout.split())]


def take_backup(remote: Remote) -> str:
    """Run the backup unit now and return the new dump's path."""
    before = set(list_backups(remote))
    result = remote.sudo("systemctl start tas-backup.service", warn=True)
    if result.exited != 0:
        log = remote.sudo("journalctl -u tas-backup.service -n 20 --no-pager", warn=True)
        raise RuntimeError(f"the backup failed:\n{log.stdout}")
    new = [path for path in list_backups(remote) if path not in before]
    if not new:
        raise RuntimeError("the backup unit succeeded but wrote no new dump")
    return new[-1]


class BackupNotFound(LookupError):
    """No such dump in the backup directory."""


def resolve_backup(remote: Remote, name: str) -> str:
    """A dump by file name or full path; only files in the backup directory qualify."""
    path = name if name.startswith("/") else f"{BACKUP_DIR}/{name}"
    if str(PurePosixPath(path).parent) != BACKUP_DIR or path not in list_backups(remote):
        raise BackupNotFound(f"no backup {name!r} in {BACKUP_DIR} (invoke backup lists them)")
    return path


def restore_backup(remote: Remote, path: str) -> str:
    result = remote.sudo(f"{RESTORE_SCRIPT} {shlex.quote(path)}", warn=True)
    if result.exited != 0:
        raise RuntimeError(f"the restore failed:\n{result.stdout}{result.stderr}")
    return result.stdout.strip()

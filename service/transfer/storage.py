"""Where the web import keeps files: uploads waiting for confirmation, backups of imports.

Everything lives under the ``DATA_DIR`` setting (on the server ``/srv/tas/shared/data``,
which survives restarts and deploys)::

    uploads/<person id>-<token>.zip       an upload until it is confirmed (at most an hour)
    import-backups/<person id>/<UTC time>/ the files of each committed import, with their
                                          SHA256SUMS and the report (newest IMPORT_BACKUPS_KEEP)

A person's files go when their account goes (:func:`forget_person`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

from flask import current_app

log = logging.getLogger(__name__)

# An upload waits this long for its confirmation before it is thrown away.
STASH_SECONDS = 3600


def data_dir(*parts: str) -> Path:
    """``DATA_DIR``/parts, created (0700) if missing.

    Production refuses to start without ``DATA_DIR`` (service/config.py); development and
    tests without one use a folder in the system's temp dir.
    """
    base = current_app.config.get("DATA_DIR")
    if not base:
        if current_app.config.get("APP_ENV") == "production":
            raise RuntimeError("DATA_DIR is not set: production keeps imported files there")
        base = Path(tempfile.gettempdir()) / "tas"
    path = Path(base, *parts)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def stash_path(user_id: int, token: str) -> Path:
    """Where an upload waits for its confirmation; abandoned ones are forgotten first."""
    stash = data_dir("uploads")
    for old in stash.glob("*.zip"):
        try:
            if old.stat().st_mtime < time.time() - STASH_SECONDS:
                old.unlink(missing_ok=True)
        except FileNotFoundError:
            continue  # another worker cleaned it up first
    return stash / f"{user_id}-{token}.zip"


def backup_dir(user_id: int) -> Path:
    """The folder a person's import backups go into (one sub-folder per import)."""
    return data_dir("import-backups", str(user_id))


def prune_backups(user_id: int, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` import backups of a person; return what went.

    The newest is the one written last (its report is the last file an import writes):
    the folders' names (UTC second, ``-N`` when taken) can be reused once pruned.
    """
    folders = sorted((p for p in backup_dir(user_id).iterdir() if p.is_dir()), key=_age_key)
    doomed = folders[:-keep] if keep > 0 else folders
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return doomed


def _age_key(folder: Path) -> tuple[int, str]:
    return folder.stat().st_mtime_ns, folder.name


def forget_person(user_id: int) -> None:
    """Delete a person's import backups and waiting uploads (their account is gone)."""
    base = Path(current_app.config.get("DATA_DIR") or data_dir())
    targets = [base / "import-backups" / str(user_id)]
    targets += list((base / "uploads").glob(f"{user_id}-*.zip"))
    for target in targets:
        try:
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        except FileNotFoundError:
            continue
        except OSError:
            # The account is already gone; say loudly what is left behind.
            log.exception("could not delete %s of deleted account %s", target, user_id)

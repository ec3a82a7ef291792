"""Copy the legacy CSV files aside, with a SHA-256 manifest, before an import writes."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

MANIFEST = "SHA256SUMS"
BACKUP_FOLDER = "tas-import-backups"


def default_backup_base(data_dir: Path) -> Path:
    # Beside the data folder, not inside it: the old app rewrites its folder whole.
    return data_dir.resolve().parent / BACKUP_FOLDER


def _new_folder(base: Path) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        folder = base / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue  # two imports in the same second
        return folder
    raise FileExistsError(f"cannot create a backup folder under {base}")


def copy_with_digest(source: Path, target: Path) -> str:
    """Copy a file and return its SHA-256, reading it once."""
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            dst.write(chunk)
    shutil.copystat(source, target)
    return digest.hexdigest()


def back_up(files: list[Path], base: Path) -> Path:
    """Copy ``files`` into ``base/<UTC timestamp>/`` and write a ``SHA256SUMS`` manifest.

    The manifest has the format of ``sha256sum``, so ``sha256sum -c SHA256SUMS`` run in
    the folder checks the copies.
    """
    folder = _new_folder(base)
    lines = []
    for source in sorted(files):
        digest = copy_with_digest(source, folder / source.name)
        lines.append(f"{digest}  {source.name}\n")
    (folder / MANIFEST).write_text("".join(lines), encoding="utf-8")
    return folder


def read_manifest(folder: Path) -> dict[str, str]:
    entries = {}
    for line in (folder / MANIFEST).read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        entries[name] = digest
    return entries

"""Import a legacy data folder uploaded as a zip (the account page's import).

An upload is untrusted: member names could climb out of the target folder (zip-slip),
tiny members could inflate to gigabytes (zip bombs), and anything could be inside. The
extractor only ever writes plain ``.csv`` files, by their base name, into a fresh
temporary folder, counting the bytes it really writes against the limits rather than
trusting the sizes the zip claims.
"""

from __future__ import annotations

import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import Engine

from db.legacy.importer import LegacyImportError
from db.legacy.importer import import_legacy_folder
from db.legacy.report import ImportReport

MiB = 1024 * 1024
# Resource forks and Finder litter that macOS adds to every zip it makes.
_JUNK_PREFIXES = ("__MACOSX/",)
_JUNK_NAMES = (".DS_Store", "Thumbs.db")


@dataclass(frozen=True)
class UploadLimits:
    """What an uploaded zip may hold. CSV compresses about 5–15×; bombs 1000× and more."""

    max_members: int = 50
    max_member_bytes: int = 512 * MiB
    max_total_bytes: int = 1024 * MiB
    max_ratio: int = 100


def _is_junk(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return name.startswith(_JUNK_PREFIXES) or base in _JUNK_NAMES or base.startswith("._")


def _csv_members(archive: zipfile.ZipFile, limits: UploadLimits) -> list[zipfile.ZipInfo]:
    """The members to extract, after every check that needs no decompression."""
    infos = [i for i in archive.infolist() if not i.is_dir() and not _is_junk(i.filename)]
    if len(infos) > limits.max_members:
        raise LegacyImportError(f"the zip holds {len(infos)} files; at most {limits.max_members}")
    folders: set[str] = set()
    names: set[str] = set()
    members = []
    for info in infos:
        name = info.filename
        parts = name.split("/")
        if name.startswith("/") or "\\" in name or ":" in name or ".." in parts or "" in parts:
            raise LegacyImportError(f"the zip member {name!r} has an unsafe path")
        if len(parts) > 2:
            raise LegacyImportError(
                f"the zip member {name!r} is nested too deep: put the CSV files at the top of "
                "the zip or in one folder"
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise LegacyImportError(f"the zip member {name!r} is a symbolic link")
        if info.flag_bits & 0x1:
            raise LegacyImportError(f"the zip member {name!r} is encrypted")
        folders.add(parts[0] if len(parts) == 2 else "")
        if not parts[-1].lower().endswith(".csv"):
            continue  # only the CSV files are read; anything else is left in the zip
        if parts[-1] in names:
            raise LegacyImportError(f"the zip holds {parts[-1]} twice")
        names.add(parts[-1])
        if info.file_size > limits.max_member_bytes:
            raise LegacyImportError(f"{name} is larger than {limits.max_member_bytes // MiB} MiB")
        if info.file_size > MiB and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise LegacyImportError(f"{name} is compressed suspiciously well (a zip bomb?)")
        members.append(info)
    if len(folders) > 1:
        raise LegacyImportError(
            "the zip must hold the CSV files at its top level or inside one single folder"
        )
    if not members:
        raise LegacyImportError("the zip holds no CSV files")
    return members


def extract_legacy_zip(
    fileobj: IO[bytes], target: Path, limits: UploadLimits | None = None
) -> list[str]:
    """Extract the ``.csv`` members of an uploaded zip into ``target``; return their names."""
    limits = limits or UploadLimits()
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise LegacyImportError("the upload is not a readable zip file") from None
    written_total = 0
    names = []
    with archive:
        for info in _csv_members(archive, limits):
            base = info.filename.split("/")[-1]
            written = 0
            try:
                with archive.open(info) as source, open(target / base, "wb") as out:
                    while chunk := source.read(MiB):
                        written += len(chunk)
                        written_total += len(chunk)
                        # The sizes in the zip's directory are claims; these are facts.
                        if written > limits.max_member_bytes or written > info.file_size:
                            raise LegacyImportError(f"{info.filename} inflates beyond its size")
                        if written_total > limits.max_total_bytes:
                            raise LegacyImportError(
                                f"the zip inflates beyond {limits.max_total_bytes // MiB} MiB"
                            )
                        out.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
                raise LegacyImportError(f"cannot extract {info.filename}: {exc}") from None
            except NotImplementedError:
                raise LegacyImportError(
                    f"{info.filename} uses a compression method this server cannot read"
                ) from None
            names.append(base)
    return names


def import_uploaded_zip(
    engine: Engine,
    fileobj: IO[bytes],
    *,
    user_id: int,
    backup_dir: Path,
    timezone: str | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    limits: UploadLimits | None = None,
) -> ImportReport:
    """Extract an uploaded zip safely into a temporary folder and import it.

    ``backup_dir`` is where real imports keep the copies of the files (and the report);
    the temporary folder is removed whatever happens.
    """
    with tempfile.TemporaryDirectory(prefix="tas-upload-") as tmp:
        folder = Path(tmp) / "legacy-data"
        folder.mkdir()
        extract_legacy_zip(fileobj, folder, limits)
        report = import_legacy_folder(
            engine,
            folder,
            user_id=user_id,
            timezone=timezone,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
            backup_dir=backup_dir,
            progress=False,
        )
    report.data_dir = "uploaded zip"
    return report

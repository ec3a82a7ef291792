"""Streaming reader for the old app's CSV files, with the line each record starts on.

``csv.reader.line_num`` is the number of physical lines read *so far*, i.e. the line a
record ends on; a cell with embedded newlines makes that differ from where the record
starts, which is the line a person looks for in an editor. The start line is one past
the previous record's end.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Generator
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import IO
from typing import Any

from tqdm import tqdm

from db.legacy.cells import unguard_formula


class FileUnreadable(Exception):
    """The file cannot be read any further (not UTF-8, a NUL byte, a huge cell...)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Header:
    """Column names mapped to positions (the importer never relies on positions)."""

    names: tuple[str, ...]
    index: dict[str, int]
    _needed: dict[tuple[str, ...], int] = field(default_factory=dict, compare=False)

    @classmethod
    def from_cells(cls, cells: list[str]) -> Header:
        names = tuple(cell.strip() for cell in cells)
        return cls(names=names, index={name: i for i, name in enumerate(names)})

    def cells_needed(self, required: tuple[str, ...]) -> int:
        """How many cells a record needs to reach its last required column (cached)."""
        if required not in self._needed:
            self._needed[required] = max(self.index[name] for name in required) + 1
        return self._needed[required]

    def duplicates(self) -> list[str]:
        seen: set[str] = set()
        return [n for n in self.names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]


@dataclass
class Record:
    line: int
    cells: list[str]


class _CountingRaw(io.RawIOBase):
    """Reports bytes read to a progress bar; lets tqdm track a streamed file by size."""

    def __init__(self, raw: IO[bytes], bar: Any) -> None:
        self._raw = raw
        self._bar = bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._bar.update(n)
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def progress_enabled(progress: bool | None) -> bool:
    # Only a person watching a terminal wants a bar; logs and pipes get none.
    return sys.stderr.isatty() if progress is None else progress


class CsvFile:
    """Iterate the records of one CSV file, streaming, with start line numbers."""

    def __init__(self, path: Path, *, progress: bool = False) -> None:
        self.path = path
        self.name = path.name
        self._progress = progress

    def records(self) -> Generator[Record, None, None]:
        """Yield the header as the first record, then every non-blank record.

        Raises :class:`FileUnreadable` where reading cannot go on.
        """
        size = self.path.stat().st_size
        bar = tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc=self.name,
            disable=not self._progress,
            file=sys.stderr,
        )
        raw = open(self.path, "rb")  # noqa: SIM115 - closed by the wrapper below
        stream = io.BufferedReader(_CountingRaw(raw, bar), buffer_size=1 << 20)
        # utf-8-sig: files saved by Excel start with a byte-order mark.
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        try:
            yield from self._parse(text)
        finally:
            text.close()
            bar.close()

    def _parse(self, text: IO[str]) -> Iterator[Record]:
        reader = csv.reader(text, strict=False)
        end = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError:
                raise FileUnreadable(end + 1, "the file is not UTF-8 text") from None
            except csv.Error as exc:
                raise FileUnreadable(end + 1, f"unreadable CSV ({exc})") from None
            start = end + 1
            end = reader.line_num
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank lines carry nothing
            # A cell of this app's own CSV files may carry a ' against spreadsheet
            # formulas (cells.guard_formula). A quick look at the row first: few have one.
            if "\n'" in "\n" + "\n".join(cells):
                cells = [unguard_formula(cell) for cell in cells]
            yield Record(line=start, cells=cells)

"""Sort the records of ``task_instances.csv`` into COPY text, set-aside rows and refusals.

:class:`InstanceSorter` does everything the import decides per attempt record without
the database: the duplicate-id check, parsing (the fast path of :mod:`db.legacy.fast`
first, the precise parser when it gives up), and the route of each valid row (straight
into ``attempts``, or set aside for the staging path when its task must be created
first or it was imported before). It works on batches of records, in file order, and
returns a :class:`Batch` the importer applies in that same order, so the report is the
same line for line however the work was spread.

Big files are sorted in a worker process (:class:`SortingWorker`) that reads the file
itself, while the importer streams the results into PostgreSQL: the two cores of a
small server then parse and insert at the same time. At most a few dozen batches are
on their way between them, so memory stays flat.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import re
import subprocess
import sys
import threading
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from db.legacy.cells import CellError
from db.legacy.fast import FastInstances
from db.legacy.fast import copy_fields
from db.legacy.fast import copy_text
from db.legacy.fast import row_values
from db.legacy.reader import CsvFile
from db.legacy.reader import FileUnreadable
from db.legacy.reader import Header
from db.legacy.reader import Record
from db.legacy.rows import AttemptRow
from db.legacy.rows import missing_task_key
from db.legacy.rows import parse_instance

BATCH_ROWS = 2000
# Ids like i1763738425 are kept as ints in the duplicate check: a million of them then
# cost tens of megabytes instead of a hundred.
_NUMERIC_ID = re.compile(r"i[1-9][0-9]{0,17}")


def compact_id(legacy_id: str) -> int | str:
    return int(legacy_id[1:]) if _NUMERIC_ID.fullmatch(legacy_id) else legacy_id


@dataclass
class Batch:
    """What became of a run of consecutive records, in file order.

    ``direct``: COPY text lines of rows for ``attempts`` (every column after ``id``,
    each with its line end); ``links``: the emotions felt in those rows, as a flat array
    of ``(row in direct, phase, name number)`` triples (phase 0 = before, 1 = after);
    ``names``: the emotion names the sorter numbered first in this batch (numbers count
    on from the previous batch's); ``later``: rows for the staging path; ``refused``:
    ``(line, cells, column, reason)``.

    Plain strings and an array of integers, not a tuple and two lists per row: this
    travels pickled between two processes, and unpickling a million small objects cost
    the importer more than all the rest of its work on them.
    """

    direct: list[str] = field(default_factory=list)
    links: array[int] = field(default_factory=lambda: array("q"))
    names: list[str] = field(default_factory=list)
    later: list[AttemptRow] = field(default_factory=list)
    refused: list[tuple[int, list[str], str, str]] = field(default_factory=list)
    deleted: int = 0
    # Rows per JSON key read but not imported yet (see db.legacy.late).
    pending: dict[str, int] = field(default_factory=dict)
    flat_count: int = 0
    flat_first: int = 0


@dataclass
class SortRules:
    """What the sorter needs to know about the import and the person (picklable)."""

    user_id: int
    timezone: str
    task_ids: dict[str, int]
    imported: set[int | str]
    # Problems in the report before this file: a strict import stops writing after one.
    problems_before: int
    keep_writing: bool  # skip_invalid or dry_run


class InstanceSorter:
    def __init__(self, header: Header, rules: SortRules) -> None:
        self.header = header
        self.rules = rules
        self.tz = ZoneInfo(rules.timezone)
        self.fast = FastInstances(header, self.tz)
        self.seen: set[int | str] = set()
        self.refused = 0
        self._id_position = header.index["instance_id"]
        self._prefix = f"{rules.user_id}\t"
        # Each distinct emotion name of a direct row gets a number, once per file.
        self._name_numbers: dict[str, int] = {}

    @property
    def writing(self) -> bool:
        # Once a strict import is bound to be refused, reading on only collects problems.
        rules = self.rules
        return rules.keep_writing or not (rules.problems_before + self.refused)

    def _check_unique(self, cells: list[str]) -> int | str:
        # Checked first, so that a repeated id is caught even when its first occurrence
        # was refused for another reason.
        position = self._id_position
        legacy_id = cells[position].strip() if position < len(cells) else ""
        key = compact_id(legacy_id)
        if not legacy_id:
            return key
        if key in self.seen:
            raise CellError(f"{legacy_id} appears twice in the file", "instance_id")
        self.seen.add(key)
        return key

    def sort(self, records: list[Record]) -> Batch:
        batch = Batch()
        header = self.header
        tz = self.tz
        fast = self.fast.parse
        task_ids = self.rules.task_ids
        imported = self.rules.imported
        prefix = self._prefix
        for record in records:
            cells = record.cells
            row: AttemptRow | None = None
            try:
                key = self._check_unique(cells)
                try:
                    parsed = fast(cells)
                except Exception:  # noqa: BLE001 - the precise parser decides
                    row = parse_instance(header, cells, record.line, tz)
                    for name in row.pending:
                        batch.pending[name] = batch.pending.get(name, 0) + 1
                    parsed = (
                        row.legacy_id,
                        row.task_legacy_id,
                        row.task_name,
                        None,
                        row.emotions_before,
                        row.emotions_after,
                        row.extra,
                        row.deleted,
                        row.flat_disagrees,
                    )
            except CellError as exc:
                self.refused += 1
                batch.refused.append((record.line, cells, exc.column, exc.reason))
                continue
            (legacy_id, task_legacy_id, task_name, fields, before, after, extra, deleted, flat) = (
                parsed
            )
            if deleted:
                batch.deleted += 1
                continue
            if not self.writing:
                continue
            if flat:
                batch.flat_count += 1
                batch.flat_first = batch.flat_first or record.line
            task_id = task_ids.get(task_legacy_id or missing_task_key(task_name))
            if task_id is None or key in imported:
                if row is None:
                    row = parse_instance(header, cells, record.line, tz)
                batch.later.append(row)
                continue
            if fields is None:
                fields = copy_fields(row_values(row))  # type: ignore[arg-type]
            if before or after:
                self._link(batch, len(batch.direct), before, after)
            batch.direct.append(
                f"{prefix}{task_id}\t{copy_text(legacy_id)}\t{fields}\t"
                f"{copy_text(json.dumps(extra)) if extra else '{}'}\n"
            )
        return batch

    def _link(self, batch: Batch, row: int, before: list[str], after: list[str]) -> None:
        numbers = self._name_numbers
        links = batch.links
        for phase, names in ((0, before), (1, after)):
            for name in names:
                number = numbers.get(name)
                if number is None:
                    number = numbers[name] = len(numbers)
                    batch.names.append(name)
                links.extend((row, phase, number))


def batches(records: Iterator[Record], size: int = BATCH_ROWS) -> Iterator[list[Record]]:
    """Consecutive records in lists; the records read before an unreadable spot come
    out before :class:`FileUnreadable` does."""
    batch: list[Record] = []
    try:
        for record in records:
            batch.append(record)
            if len(batch) >= size:
                yield batch
                batch = []
    except FileUnreadable:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


# --- the worker process ---------------------------------------------------------------

_END = "end"
_BATCH = "batch"
_FAILED = "failed"
# Batches read ahead of the importer (about half a megabyte of text each). More than one
# COPY segment (importer.SEGMENT_ROWS / BATCH_ROWS = 10 batches): while PostgreSQL takes
# a segment, the worker parses the whole next one instead of waiting for room.
QUEUE_BATCHES = 24


def sort_file(path: str, header_cells: list[str], rules: SortRules, progress: bool) -> None:
    """The worker: read the file (after its header), sort it, send the batches."""
    out = sys.stdout.buffer
    sorter = InstanceSorter(Header.from_cells(header_cells), rules)
    records = CsvFile(Path(path), progress=progress).records()
    unreadable: tuple[int, str] | None = None
    try:
        next(records)  # the header, checked by the importer
        for batch in batches(records):
            pickle.dump((_BATCH, sorter.sort(batch)), out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
    except FileUnreadable as exc:
        unreadable = (exc.line, exc.reason)
    finally:
        records.close()
    pickle.dump((_END, unreadable), out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


class SortingWorker:
    """Sort one file in a separate process; iterate the batches in file order.

    The process is a fresh interpreter (``python -m db.legacy.sort_worker``), not a fork:
    the importer runs in web workers with threads and an open database connection,
    which a fork would share, and multiprocessing's spawn would re-run the caller's
    main module. Batches come back pickled through a pipe and are unpickled by a
    thread into a queue of a few batches, so the worker parses on while the importer
    waits on PostgreSQL, and memory stays bounded. After the iteration, :attr:`unreadable`
    holds ``(line, reason)`` if the file could not be read to its end.
    """

    def __init__(self, path: Path, header: Header, rules: SortRules, *, progress: bool) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._process = subprocess.Popen(  # noqa: S603 - our own module, no shell
            [sys.executable, "-m", "db.legacy.sort_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._out = self._process.stdout
        pickle.dump(
            (str(path), list(header.names), rules, progress),
            self._process.stdin,
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        self._process.stdin.close()
        self.unreadable: tuple[int, str] | None = None
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=QUEUE_BATCHES)
        self._reader = threading.Thread(target=self._read, name="legacy-sorter-reader")
        self._reader.daemon = True
        self._reader.start()

    def _read(self) -> None:
        # A thread: unpickles the next batches while the importer waits on PostgreSQL.
        try:
            while True:
                message = pickle.load(self._out)  # noqa: S301 - our own worker
                self._queue.put(message)
                if message[0] != _BATCH:
                    return
        except EOFError:
            self._queue.put((_FAILED, self._process.wait()))
        except BaseException as exc:  # noqa: BLE001 - handed to the importer's thread
            self._queue.put((_FAILED, exc))

    def __iter__(self) -> Iterator[Batch]:
        while True:
            kind, payload = self._queue.get()
            if kind == _BATCH:
                yield payload
            elif kind == _END:
                self.unreadable = payload
                return
            else:
                raise RuntimeError(
                    f"the import's sorting process ended unexpectedly ({payload!r})"
                ) from (payload if isinstance(payload, BaseException) else None)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        # The reader ends at the end of the pipe; make room in case it waits to put.
        while self._reader.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self._out.close()

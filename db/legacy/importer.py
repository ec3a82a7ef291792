"""Import one legacy data folder for one person, in one transaction.

Files are read in dependency order (emotions, tasks, attempts, prototype logs). Small
files (emotions, tasks) go through SQLAlchemy Core row by row. New attempts whose task
exists are streamed straight into ``attempts`` (and their emotions into
``attempt_emotions``) with ``COPY``, parsed in a worker process when the file is big
(see :mod:`db.legacy.attempts`); the other attempts and the prototype logs go through a
temporary staging table and are moved with one ``INSERT ... SELECT ... ON CONFLICT``.
Memory stays flat however big the files.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import pickle
import re
import shutil
import tempfile
import time
from array import array
from collections.abc import Generator
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from typing import Any
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from sqlalchemy import Connection
from sqlalchemy import Engine
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError

from db.legacy.attempts import Batch
from db.legacy.attempts import InstanceSorter
from db.legacy.attempts import SortingWorker
from db.legacy.attempts import SortRules
from db.legacy.attempts import batches
from db.legacy.attempts import compact_id
from db.legacy.backup import back_up
from db.legacy.backup import default_backup_base
from db.legacy.cells import CellError
from db.legacy.cells import guard_row
from db.legacy.groups import JOB_COLUMNS_NOT_IMPORTED
from db.legacy.groups import JOB_HEADER
from db.legacy.groups import JOB_TASKS
from db.legacy.groups import JOBS
from db.legacy.groups import Jobs
from db.legacy.groups import import_groups
from db.legacy.groups import read_job_tasks
from db.legacy.groups import read_jobs
from db.legacy.late import PENDING_ATTEMPT_KEYS
from db.legacy.late import PENDING_FILES
from db.legacy.late import PENDING_TASK_COLUMNS
from db.legacy.late import UNSUPPORTED_FILES
from db.legacy.late import PendingTally
from db.legacy.late import column_notes
from db.legacy.late import has_value
from db.legacy.late import preferences_zone
from db.legacy.reader import CsvFile
from db.legacy.reader import FileUnreadable
from db.legacy.reader import Header
from db.legacy.reader import Record
from db.legacy.reader import progress_enabled
from db.legacy.report import STATUS_DRY_RUN
from db.legacy.report import STATUS_REFUSED
from db.legacy.report import ImportReport
from db.legacy.rows import ATTEMPT_VALUE_COLUMNS
from db.legacy.rows import EMOTION_REQUIRED
from db.legacy.rows import INSTANCE_COLUMNS
from db.legacy.rows import INSTANCE_REQUIRED
from db.legacy.rows import INTENSITIES_AFTER
from db.legacy.rows import INTENSITIES_BEFORE
from db.legacy.rows import LOG_COLUMNS
from db.legacy.rows import NOTE_COLUMNS
from db.legacy.rows import NOTE_REQUIRED
from db.legacy.rows import TASK_COLUMN_HANDLERS
from db.legacy.rows import TASK_COLUMNS
from db.legacy.rows import UNNAMED_TASK
from db.legacy.rows import AttemptRow
from db.legacy.rows import NoteRow
from db.legacy.rows import Row
from db.legacy.rows import TaskRow
from db.legacy.rows import log_header_problem
from db.legacy.rows import missing_columns
from db.legacy.rows import missing_task_key
from db.legacy.rows import parse_emotion
from db.legacy.rows import parse_log
from db.legacy.rows import parse_note
from db.legacy.rows import parse_task
from db.legacy.rows import prototype_task_key
from db.legacy.rows import task_header_problem
from db.models import NOTES_MAX
from db.models import Attempt
from db.models import Emotion
from db.models import ImportRun
from db.models import Note
from db.models import Task
from db.models import TaskEmotion
from db.models import User

EMOTIONS = "emotions.csv"
TASKS = "tasks.csv"
INSTANCES = "task_instances.csv"
LOGS = "logs.csv"
NOTES = "notes.csv"
# The order matters: attempts refer to tasks and emotions, logs to task names, notes to
# attempts. Each file's step is the _Run method of that name (see FILE_STEPS).
FILE_STEPS = {
    EMOTIONS: "import_emotions",
    TASKS: "import_tasks",
    INSTANCES: "import_instances",
    LOGS: "import_logs",
    NOTES: "import_notes",
    # Jobs become task groups (with job_task_mapping.csv, read in the same step).
    JOBS: "import_jobs",
    JOB_TASKS: "import_job_tasks",
}
IMPORTED_FILES = tuple(FILE_STEPS)
# The columns each file's step reads; the report names the others, and why.
COLUMNS_READ = {
    EMOTIONS: EMOTION_REQUIRED,
    TASKS: (*TASK_COLUMNS, *TASK_COLUMN_HANDLERS, *PENDING_TASK_COLUMNS),
    INSTANCES: INSTANCE_COLUMNS,
    LOGS: LOG_COLUMNS,
    NOTES: NOTE_COLUMNS,
    JOBS: tuple(c for c in JOB_HEADER if c not in JOB_COLUMNS_NOT_IMPORTED),
    JOB_TASKS: ("job_id", "task_id"),
}
# task_instances.csv from this size on is sorted in a worker process (about 20,000 rows;
# starting the process takes a moment, which smaller files would not win back).
PARALLEL_MIN_BYTES = 8 * 1024 * 1024
# Attempt rows per COPY segment (see _AttemptWriter): a few megabytes of text.
SEGMENT_ROWS = 20_000
REFUSED_PREFIX = "refused-"
REASON_COLUMN = "import_problem"

STAGE_COLUMNS = (
    "line",
    "legacy_id",
    "task_id",
    "task_key",
    *ATTEMPT_VALUE_COLUMNS,
    "extra",
    "emotions_before",
    "emotions_after",
)
_STAGE_TYPES = {
    "line": "integer",
    "user_id": "bigint",
    "legacy_id": "text",
    "task_id": "bigint",
    "task_key": "text",
    "task_version": "integer",
    "status": "text",
    "initialized_at": "timestamptz",
    "started_at": "timestamptz",
    "completed_at": "timestamptz",
    "cancelled_at": "timestamptz",
    "physical_context": "text",
    "description": "text",
    "notes": "text",
    "cancel_reason": "text",
    "due_at": "timestamptz",
    "cancel_category": "text",
    "postponed_at": "timestamptz",
    "postponed_until": "timestamptz",
    # Staged as text and cast on the way in: psycopg would dump a str as a JSON string.
    "extra": "text",
    "emotions_before": "text[]",
    "emotions_after": "text[]",
}
_SMALLINT = re.compile(r"expected_|motivation|actual_(relief|cognitive|emotional|physical)")


class LegacyImportError(Exception):
    """A problem the operator must fix before an import can run (shown without traceback)."""


def _stage_type(column: str) -> str:
    if column in _STAGE_TYPES:
        return _STAGE_TYPES[column]
    return "smallint" if _SMALLINT.match(column) or column == "completion_percent" else "float8"


_STAGE_DDL = (
    "CREATE TEMP TABLE legacy_stage ("
    + ", ".join(f"{c} {_stage_type(c)}" for c in STAGE_COLUMNS)
    + ") ON COMMIT DROP"
)
_VALUES = ", ".join(ATTEMPT_VALUE_COLUMNS)
_STAGED_VALUES = ", ".join("s." + c for c in ATTEMPT_VALUE_COLUMNS)
_EXCLUDED_VALUES = ", ".join("EXCLUDED." + c for c in ATTEMPT_VALUE_COLUMNS)
_MOVE_SQL = f"""
WITH moved AS (
    INSERT INTO attempts (user_id, task_id, {_VALUES}, extra, legacy_id)
    SELECT :user_id, coalesce(s.task_id, t.id), {_STAGED_VALUES},
           s.extra::jsonb, s.legacy_id
    FROM legacy_stage s
    LEFT JOIN tasks t ON t.user_id = :user_id AND t.legacy_id = s.task_key
    ORDER BY s.line
    ON CONFLICT ON CONSTRAINT uq_attempts_user_id_legacy_id DO UPDATE
    SET ({_VALUES}, extra) = ({_EXCLUDED_VALUES},
                              attempts.extra || EXCLUDED.extra)
    -- An attempt imported while open and closed since in the old app is brought up to
    -- date; one the person has moved on in the web app is theirs and is left alone.
    WHERE attempts.status IN ('initialized', 'paused')
      AND EXCLUDED.status IN ('completed', 'cancelled')
    RETURNING id, legacy_id, (xmax = 0) AS created
)
INSERT INTO legacy_moved (id, legacy_id, created) SELECT id, legacy_id, created FROM moved
"""
# attempt_emotions.phase by the sorter's phase numbers.
PHASES = ("before", "after")
_DIRECT_COLUMNS = ("user_id", "task_id", "legacy_id", *ATTEMPT_VALUE_COLUMNS, "extra")
_EMOTIONS_SQL = """
INSERT INTO attempt_emotions (attempt_id, emotion_id, phase, user_id)
SELECT DISTINCT m.id, e.id, :phase, :user_id
FROM legacy_moved m
JOIN legacy_stage s ON s.legacy_id = m.legacy_id
CROSS JOIN LATERAL unnest(s.{column}) AS n(name)
JOIN emotions e ON e.user_id = :user_id AND lower(e.name) = lower(n.name)
WHERE cardinality(s.{column}) > 0
ON CONFLICT DO NOTHING
"""


# The intensities the rows carried (db.legacy.rows: name → 0–100), kept in the attempts'
# data while they were written, onto their attempt emotions; then out of the data: the
# attempt emotions hold them. Both ways of writing attempts (COPY, or staged) end here.
_INTENSITIES_SQL = text(
    """
    UPDATE attempt_emotions ae SET intensity = v.value::smallint
    FROM attempts a
    CROSS JOIN LATERAL jsonb_each_text(a.extra -> CAST(:key AS text)) AS v(name, value)
    JOIN emotions e ON e.user_id = :user_id AND lower(e.name) = lower(v.name)
    WHERE a.user_id = :user_id AND a.extra ? CAST(:key AS text)
      AND ae.user_id = :user_id AND ae.attempt_id = a.id AND ae.emotion_id = e.id
      AND ae.phase = :phase
    """
)
_DROP_INTENSITIES_SQL = text(
    f"""
    UPDATE attempts SET extra = extra - '{INTENSITIES_BEFORE}' - '{INTENSITIES_AFTER}'
    WHERE user_id = :user_id
      AND (extra ? '{INTENSITIES_BEFORE}' OR extra ? '{INTENSITIES_AFTER}')
    """
)


@dataclass
class _TaskRef:
    id: int
    version: int
    fingerprint: str | None


@dataclass
class _PendingTask:
    name: str
    placeholder: bool


class _EmotionBook:
    """The person's emotions by lower-case name; new ones are created on first use."""

    def __init__(self, conn: Connection, user_id: int) -> None:
        self.conn = conn
        self.user_id = user_id
        rows = conn.execute(select(Emotion.id, Emotion.name).where(Emotion.user_id == user_id))
        self.ids = {name.lower(): id_ for id_, name in rows}
        self.pending: dict[str, str] = {}
        self.created = 0

    def ensure(self, name: str) -> tuple[int, bool]:
        key = name.lower()
        if key in self.ids:
            return self.ids[key], False
        statement = (
            pg_insert(Emotion)
            .values(user_id=self.user_id, name=name)
            .on_conflict_do_nothing()
            .returning(Emotion.id)
        )
        new_id = self.conn.execute(statement).scalar_one_or_none()
        created = new_id is not None
        if new_id is None:
            # Python's and PostgreSQL's lower() disagree on a few non-ASCII letters.
            new_id = self.conn.execute(
                select(Emotion.id).where(
                    Emotion.user_id == self.user_id, func.lower(Emotion.name) == func.lower(name)
                )
            ).scalar_one()
        self.ids[key] = new_id
        return new_id, created

    def note(self, names: list[str]) -> None:
        """Remember names to create once the running COPY has finished."""
        for name in names:
            key = name.lower()
            if key not in self.ids and key not in self.pending:
                self.pending[key] = name

    def flush(self) -> int:
        created = 0
        for name in self.pending.values():
            created += self.ensure(name)[1]
        self.pending.clear()
        return created


def _routine_values(row: TaskRow) -> dict[str, Any]:
    """The task's schedule columns from the row's routine (none: it doesn't repeat); an
    imported schedule counts from the import."""
    if row.routine is None:
        return dict.fromkeys(
            ("routine_frequency", "routine_weekdays", "routine_time", "routine_since")
        )
    frequency, weekdays, at = row.routine
    return {
        "routine_frequency": frequency,
        "routine_weekdays": weekdays,
        "routine_time": dt.time.fromisoformat(at),
        "routine_since": func.now(),
    }


class _TaskBook:
    """The person's tasks by legacy id and by name."""

    def __init__(self, conn: Connection, user_id: int) -> None:
        self.conn = conn
        self.user_id = user_id
        self.by_legacy: dict[str, _TaskRef] = {}
        self.by_name: dict[str, int] = {}
        rows = conn.execute(
            select(Task.id, Task.name, Task.legacy_id, Task.version, Task.extra)
            .where(Task.user_id == user_id)
            # Logs name their task: the oldest active task of that name wins.
            .order_by(Task.archived_at.is_not(None), Task.id)
        )
        for id_, name, legacy_id, version, extra in rows:
            self.by_name.setdefault(name, id_)
            if legacy_id is not None:
                self.by_legacy[legacy_id] = _TaskRef(id_, version, extra.get("legacy_fingerprint"))

    def upsert(self, row: TaskRow, emotions: _EmotionBook) -> str:
        """Create or update the task of one legacy row; returns the count it goes to."""
        fingerprint = row.fingerprint()
        existing = self.by_legacy.get(row.legacy_id)
        if existing is not None and existing.fingerprint == fingerprint:
            return "skipped"
        values: dict[str, Any] = {
            "name": row.name,
            "description": row.description,
            "kind": row.kind,
            "default_estimate_minutes": row.default_estimate_minutes,
            "archived_at": row.archived_at,
            "extra": {**row.extra, "legacy_fingerprint": fingerprint},
            **_routine_values(row),
        }
        if row.created_at is not None:
            values["created_at"] = row.created_at
        if existing is None:
            task_id = self.conn.execute(
                insert(Task)
                .values(
                    user_id=self.user_id, legacy_id=row.legacy_id, version=row.version, **values
                )
                .returning(Task.id)
            ).scalar_one()
            self.by_legacy[row.legacy_id] = _TaskRef(task_id, row.version, fingerprint)
            self.by_name.setdefault(row.name, task_id)
            outcome = "created"
        else:
            # The legacy row changed since the last import (edited in the old app).
            task_id = existing.id
            existing.version = max(existing.version, row.version)
            existing.fingerprint = fingerprint
            self.conn.execute(
                update(Task)
                .where(Task.id == task_id)
                .values(version=existing.version, updated_at=func.now(), **values)
            )
            self.conn.execute(delete(TaskEmotion).where(TaskEmotion.task_id == task_id))
            outcome = "updated"
        emotion_ids = {emotions.ensure(name)[0] for name in row.emotions}
        if emotion_ids:
            self.conn.execute(
                pg_insert(TaskEmotion).on_conflict_do_nothing(),
                [
                    {"task_id": task_id, "emotion_id": e, "user_id": self.user_id}
                    for e in emotion_ids
                ],
            )
        return outcome

    def create_pending(self, key: str, pending: _PendingTask) -> int:
        extra: dict[str, Any] = {}
        if pending.placeholder:
            extra["placeholder"] = "task deleted in the old app"
        task_id = self.conn.execute(
            insert(Task)
            .values(
                user_id=self.user_id,
                legacy_id=key,
                name=pending.name,
                archived_at=func.now() if pending.placeholder else None,
                extra=extra,
            )
            .returning(Task.id)
        ).scalar_one()
        self.by_legacy[key] = _TaskRef(task_id, 1, None)
        self.by_name.setdefault(pending.name, task_id)
        return task_id


class _Run:
    """The state of one import while it reads the files."""

    def __init__(
        self,
        conn: Connection,
        report: ImportReport,
        tz: ZoneInfo,
        source: Path,
        *,
        progress: bool,
        refused_dir: Path | None,
    ) -> None:
        self.conn = conn
        self.report = report
        self.user_id = report.user_id
        self.tz = tz
        self.source = source
        self.progress = progress
        self.refused_dir = refused_dir
        self.emotions = _EmotionBook(conn, self.user_id)
        self.tasks = _TaskBook(conn, self.user_id)
        self.pending_tasks: dict[str, _PendingTask] = {}
        self.placeholder_ids: list[int] = []
        self._refused: dict[str, tuple[IO[str], Any]] = {}
        # tasks.csv's running notes: (task's legacy id, task name, time, text).
        self.task_notes: list[tuple[str, str, dt.datetime, str]] = []
        self._known_notes: set[tuple[dt.datetime, str]] | None = None
        self._stage_ready = False

    @property
    def writing(self) -> bool:
        # Once a strict import is bound to be refused, reading on only collects problems.
        return self.report.skip_invalid or self.report.dry_run or not self.report.problem_count

    # --- reading --------------------------------------------------------------------

    def _records(self, filename: str) -> Iterator[tuple[Header, Record]]:
        opened = self._open_records(filename)
        if opened is None:
            return
        header, records = opened
        try:
            for record in records:
                yield header, record
        except FileUnreadable as exc:
            self._file_problem(filename, exc.line, "-", exc.reason + "; the rest is not read")
        finally:
            records.close()

    def _open_records(
        self, filename: str, *, progress: bool | None = None
    ) -> tuple[Header, Generator[Record, None, None]] | None:
        """The file's header and its records after it; None (reported) if unusable."""
        csv_file = CsvFile(
            self.source / filename, progress=self.progress if progress is None else progress
        )
        records = csv_file.records()
        try:
            first = next(records, None)
            if first is None:
                self.report.notes.append(f"{filename}: empty file.")
                records.close()
                return None
            header = Header.from_cells(first.cells)
            duplicates = header.duplicates()
            problem = (
                (duplicates[0], "column appears twice")
                if duplicates
                else self._header_problem(filename, header)
            )
            if problem:
                self._file_problem(filename, first.line, *problem)
                records.close()
                return None
        except FileUnreadable as exc:
            self._file_problem(filename, exc.line, "-", exc.reason + "; the rest is not read")
            records.close()
            return None
        self.report.notes += column_notes(filename, header.names, set(COLUMNS_READ[filename]))
        return header, records

    def _header_problem(self, filename: str, header: Header) -> tuple[str, str] | None:
        if filename == TASKS:
            return task_header_problem(header)
        if filename == LOGS:
            return log_header_problem(header)
        if filename in (JOBS, JOB_TASKS):
            return None  # never fails the import: read_jobs names each row it can't use
        required = {INSTANCES: INSTANCE_REQUIRED, NOTES: NOTE_REQUIRED}.get(
            filename, EMOTION_REQUIRED
        )
        missing = missing_columns(header, required)
        return (missing[0], "required column missing from the header") if missing else None

    def _file_problem(self, filename: str, line: int, column: str, reason: str) -> None:
        self.report.problem(filename, line, column, reason)

    def _refuse(self, filename: str, header: Header, record: Record, exc: CellError) -> None:
        column = exc.column or "-"
        self.report.counts(filename).refused += 1
        self.report.problem(filename, record.line, column, exc.reason)
        if self.refused_dir is None:
            return
        if filename not in self._refused:
            path = self.refused_dir / (REFUSED_PREFIX + filename)
            handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            writer = csv.writer(handle)
            writer.writerow([*header.names, REASON_COLUMN])
            self._refused[filename] = (handle, writer)
            self.report.refused_files.append(str(path))
        # Opened in a spreadsheet to be fixed: formulas stay text (read back by the import).
        self._refused[filename][1].writerow(
            guard_row([*record.cells, f"line {record.line}: {column}: {exc.reason}"])
        )

    def close(self) -> None:
        for handle, _writer in self._refused.values():
            handle.close()

    # --- the files ------------------------------------------------------------------

    def import_emotions(self) -> None:
        counts = self.report.counts(EMOTIONS)
        for header, record in self._records(EMOTIONS):
            try:
                name = parse_emotion(header, record.cells)
            except CellError as exc:
                self._refuse(EMOTIONS, header, record, exc)
                continue
            if not name or not self.writing:
                continue
            _id, created = self.emotions.ensure(name)
            if created:
                counts.created += 1
            else:
                counts.skipped += 1  # already known, in any letter case

    def import_tasks(self) -> None:
        counts = self.report.counts(TASKS)
        first_line: dict[str, int] = {}
        tally = PendingTally()
        for header, record in self._records(TASKS):
            try:
                row = parse_task(header, record.cells, record.line, self.tz)
                cells = Row(header, record.cells)
                for column, handle in TASK_COLUMN_HANDLERS.items():
                    if column in header.index:
                        try:
                            handle(cells.get(column), row, self.tz)
                        except CellError as exc:
                            exc.column = exc.column or column
                            raise
                for column in PENDING_TASK_COLUMNS:
                    if has_value(column, cells.get(column)):
                        tally.add(column)
                if row.legacy_id in first_line:
                    column = "task" if row.legacy_id.startswith("proto:") else "task_id"
                    raise CellError(f"same task as line {first_line[row.legacy_id]}", column)
            except CellError as exc:
                self._refuse(TASKS, header, record, exc)
                continue
            first_line[row.legacy_id] = record.line
            if self.writing:
                outcome = self.tasks.upsert(row, self.emotions)
                setattr(counts, outcome, getattr(counts, outcome) + 1)
                self.task_notes += [(row.legacy_id, row.name, *n) for n in row.running_notes]
        self.report.pending += tally.lines(TASKS, PENDING_TASK_COLUMNS)

    def import_instances(self) -> None:
        """Sort the attempts (in a worker process for big files) and stream them in.

        Valid rows whose task exists and that were never imported go straight into
        ``attempts`` with COPY, in segments: each segment's ids are drawn from the
        table's sequence first, so that its emotions go straight into
        ``attempt_emotions`` with a second COPY. PostgreSQL inserts while the worker
        parses the next rows. Rows that cannot go in directly (their task must be
        created first, or they were imported before) are set aside on disk and take
        the staging path afterwards.
        """
        counts = self.report.counts(INSTANCES)
        path = self.source / INSTANCES
        parallel = path.is_file() and path.stat().st_size >= PARALLEL_MIN_BYTES
        opened = self._open_records(INSTANCES, progress=False if parallel else None)
        if opened is None:
            return
        header, records = opened
        rules = SortRules(
            user_id=self.user_id,
            timezone=self.tz.key,
            task_ids={key: ref.id for key, ref in self.tasks.by_legacy.items()},
            imported=self._imported_attempt_keys(),
            problems_before=self.report.problem_count,
            keep_writing=self.report.skip_invalid or self.report.dry_run,
        )
        flat = _FlatCopies()
        tally = PendingTally()
        deleted = 0
        unreadable: tuple[int, str] | None = None
        writer = _AttemptWriter(self)
        with _Spool() as later:

            def apply(batch: Batch) -> None:
                nonlocal deleted
                for line, cells, column, reason in batch.refused:
                    self._refuse(INSTANCES, header, Record(line, cells), CellError(reason, column))
                deleted += batch.deleted
                for key, rows in batch.pending.items():
                    tally.rows[key] = tally.rows.get(key, 0) + rows
                if batch.flat_count:
                    flat.count += batch.flat_count
                    flat.first = flat.first or batch.flat_first
                for row in batch.later:
                    later.add(row)
                writer.add(batch)

            if parallel:
                records.close()
                worker = SortingWorker(path, header, rules, progress=self.progress)
                rules.imported = set()  # the worker has its copy
                try:
                    for batch in worker:
                        apply(batch)
                    unreadable = worker.unreadable
                finally:
                    worker.close()
            else:
                sorter = InstanceSorter(header, rules)
                try:
                    for chunk in batches(records):
                        apply(sorter.sort(chunk))
                except FileUnreadable as exc:
                    unreadable = (exc.line, exc.reason)
                finally:
                    records.close()
            writer.finish()
            if unreadable is not None:
                line, reason = unreadable
                self._file_problem(INSTANCES, line, "-", reason + "; the rest is not read")
            counts.created += writer.written
            if self.writing:
                if writer.emotions_created:
                    self.report.notes.append(
                        f"{writer.emotions_created} emotion(s) created from attempts."
                    )
                self._stage_file(INSTANCES, later.stage_with(self))
        counts.skipped += deleted
        ignored = {key: n for key, n in tally.rows.items() if key not in PENDING_ATTEMPT_KEYS}
        tally.rows = {key: n for key, n in tally.rows.items() if key in PENDING_ATTEMPT_KEYS}
        self.report.pending += tally.lines(INSTANCES, PENDING_ATTEMPT_KEYS)
        if ignored:
            self.report.notes.append(
                f"{INSTANCES}: keys of the JSON details not imported (the web app has no "
                "place for them): "
                + ", ".join(f"{key} ({n} rows)" for key, n in sorted(ignored.items()))
                + "."
            )
        if deleted:
            self.report.notes.append(
                f"{INSTANCES}: {deleted} attempts deleted in the old app were not imported."
            )
        if flat.count:
            self.report.warn(
                f"{INSTANCES}: on {flat.count} rows (first on line {flat.first}) "
                "relief_score/cognitive_load/emotional_load disagree with the outcome in "
                "`actual`; the old app filled those columns from the prediction, so the "
                "outcome was taken from `actual`."
            )

    def _driver(self) -> Any:
        # The psycopg connection under SQLAlchemy's: same transaction, and it can COPY.
        return self.conn.connection.driver_connection

    def _imported_attempt_keys(self) -> set[int | str]:
        """The legacy ids already imported for this person (empty on a first import)."""
        result = self.conn.execute(
            text("SELECT legacy_id FROM attempts WHERE user_id = :u AND legacy_id IS NOT NULL"),
            {"u": self.user_id},
            # Per statement: Connection.execution_options() would stick to the connection.
            execution_options={"stream_results": True, "yield_per": 10000},
        )
        return {compact_id(legacy_id) for (legacy_id,) in result}

    def import_logs(self) -> None:
        seen: set[str] = set()
        duplicates = 0

        def rows(copy: Any) -> int:
            nonlocal duplicates
            staged = 0
            for header, record in self._records(LOGS):
                try:
                    row = parse_log(header, record.cells, record.line, self.tz)
                except CellError as exc:
                    self._refuse(LOGS, header, record, exc)
                    continue
                if row.legacy_id in seen:
                    duplicates += 1  # the very same entry twice: logged once
                    continue
                seen.add(row.legacy_id)
                if self.writing:
                    copy.write_row(self._stage_row(row, *self._log_task(row)))
                    staged += 1
            return staged

        self._stage_file(LOGS, rows)
        self.report.counts(LOGS).skipped += duplicates

    def import_notes(self) -> None:
        """Free notes (and, from this project's export, notes on an attempt).

        A note identical to one the person has (same time, same text) is skipped: a
        second import of the same folder adds nothing.
        """
        counts = self.report.counts(NOTES)
        notes: list[NoteRow] = []
        ids: dict[str, int] = {}
        blank = 0
        for header, record in self._records(NOTES):
            try:
                note = parse_note(header, record.cells, record.line)
                note_id = Row(header, record.cells).get("note_id").strip()
                if note_id in ids:
                    raise CellError(f"same note as line {ids[note_id]}", "note_id")
            except CellError as exc:
                self._refuse(NOTES, header, record, exc)
                continue
            if note_id:
                ids[note_id] = record.line
            if note is None:
                blank += 1
            elif self.writing:
                notes.append(note)
        counts.skipped += blank
        if blank:
            self.report.notes.append(f"{NOTES}: {blank} empty note(s) not imported.")
        if not notes:
            return
        known = self._notes_known()
        wanted = sorted({n.attempt_legacy_id for n in notes if n.attempt_legacy_id})
        attempts: dict[str, int] = {}
        if wanted:
            rows = self.conn.execute(
                select(Attempt.legacy_id, Attempt.id).where(
                    Attempt.user_id == self.user_id, Attempt.legacy_id.in_(wanted)
                )
            )
            attempts = {str(legacy_id): id_ for legacy_id, id_ in rows}
        new = []
        unlinked = 0
        for note in notes:
            key = (note.created_at, note.body)
            if key in known:
                counts.skipped += 1
                continue
            known.add(key)
            attempt_id = attempts.get(note.attempt_legacy_id)
            unlinked += bool(note.attempt_legacy_id) and attempt_id is None
            new.append(
                {
                    "user_id": self.user_id,
                    "attempt_id": attempt_id,
                    "body": note.body,
                    "created_at": note.created_at,
                    "updated_at": note.created_at,
                }
            )
        if new:
            self.conn.execute(insert(Note), new)
        counts.created += len(new)
        if unlinked:
            self.report.warn(
                f"{NOTES}: {unlinked} note(s) name an attempt (instance_id) that is not "
                "there; they were imported as free notes."
            )

    def _notes_known(self) -> set[tuple[dt.datetime, str]]:
        """The person's notes by (time, text): a note already there is not added twice."""
        if self._known_notes is None:
            rows = self.conn.execute(
                select(Note.created_at, Note.body).where(Note.user_id == self.user_id)
            )
            self._known_notes = {(at, body) for at, body in rows}
        return self._known_notes

    def import_task_notes(self) -> None:
        """The running notes of tasks (later export) become notes: on the task's attempt
        open at that time if there is one, else free notes naming the task."""
        if not self.task_notes or not self.writing:
            return
        known = self._notes_known()
        new = []
        on_attempts = 0
        for legacy_id, name, at, body in self.task_notes:
            ref = self.tasks.by_legacy.get(legacy_id)
            attempt_id = None
            if ref is not None:
                attempt_id = self.conn.execute(
                    text(
                        "SELECT id FROM attempts WHERE user_id = :u AND task_id = :t"
                        " AND initialized_at <= :at"
                        " AND coalesce(completed_at, cancelled_at, 'infinity') >= :at"
                        " ORDER BY initialized_at DESC, id DESC LIMIT 1"
                    ),
                    {"u": self.user_id, "t": ref.id, "at": at},
                ).scalar_one_or_none()
            if attempt_id is None:
                body = f"{name}: {body}"
            if (at, body) in known:
                continue
            known.add((at, body))
            on_attempts += attempt_id is not None
            new.append(
                {
                    "user_id": self.user_id,
                    "attempt_id": attempt_id,
                    "body": body[:NOTES_MAX],
                    "created_at": at,
                    "updated_at": at,
                }
            )
        if new:
            self.conn.execute(insert(Note), new)
        self.report.notes.append(
            f"{TASKS}: {len(new)} running note(s) of tasks became notes ({on_attempts} on the "
            f"attempt open at the time); {len(self.task_notes) - len(new)} were there already."
        )

    def _rows(self, filename: str) -> Iterator[dict[str, str]]:
        """A file's rows by column name (its header checked and its columns reported)."""
        for header, record in self._records(filename):
            yield dict(zip(header.names, record.cells, strict=False))

    def import_jobs(self) -> None:
        """The old app's jobs become the person's task groups, and job_task_mapping.csv
        (read here too, after the tasks) puts the tasks in them. A job or pair that can't
        be used is named in the report; it never fails the import."""
        jobs = read_jobs(self._rows(JOBS))
        if (self.source / JOB_TASKS).is_file():
            jobs = read_job_tasks(self._rows(JOB_TASKS), jobs)
        self.report.counts(JOBS)
        if not self.writing:
            self.report.notes += jobs.problems
            return
        done = import_groups(self.conn, self.user_id, jobs)
        self.report.notes += done.problems
        self.report.counts(JOBS).created += done.groups_added
        self.report.counts(JOBS).skipped += done.groups_matched
        if (self.source / JOB_TASKS).is_file():
            self.report.counts(JOB_TASKS).created += done.tasks_added

    def import_job_tasks(self) -> None:
        """Read with jobs.csv (:meth:`import_jobs`); without it no pair has a job."""
        if not (self.source / JOBS).is_file():
            jobs = read_job_tasks(self._rows(JOB_TASKS), Jobs())
            self.report.notes += jobs.problems

    def read_pending(self, filename: str) -> None:
        """A file of the old app with no home yet: counted and named, never refused."""
        rows = 0
        where = ""
        records = CsvFile(self.source / filename).records()
        try:
            next(records, None)  # the header
            for _record in records:
                rows += 1
        except FileUnreadable as exc:
            where = f"; unreadable from line {exc.line} ({exc.reason})"
        finally:
            records.close()
        self.report.pending.append(f"{filename}: {rows} row(s), {PENDING_FILES[filename]}{where}")

    # --- tasks for attempts ---------------------------------------------------------

    def _instance_task(self, row: AttemptRow) -> tuple[int | None, str | None]:
        key = row.task_legacy_id or missing_task_key(row.task_name)
        ref = self.tasks.by_legacy.get(key)
        if ref is not None:
            return ref.id, None
        # The old app hard-deleted templates: keep the attempt on an archived stand-in.
        self.pending_tasks.setdefault(key, _PendingTask(row.task_name or UNNAMED_TASK, True))
        return None, key

    def _log_task(self, row: AttemptRow) -> tuple[int | None, str | None]:
        task_id = self.tasks.by_name.get(row.task_name)
        if task_id is not None:
            return task_id, None
        key = prototype_task_key(row.task_name)
        self.pending_tasks.setdefault(key, _PendingTask(row.task_name, False))
        return None, key

    # --- staging and moving ---------------------------------------------------------

    def _stage_row(self, row: AttemptRow, task_id: int | None, task_key: str | None) -> tuple:
        self.emotions.note(row.emotions_before)
        self.emotions.note(row.emotions_after)
        values = row.values
        return (
            row.line,
            row.legacy_id,
            task_id,
            task_key,
            *[values[c] for c in ATTEMPT_VALUE_COLUMNS],
            json.dumps(row.extra) if row.extra else "{}",
            row.emotions_before,
            row.emotions_after,
        )

    def _stage_file(self, filename: str, write_rows: Any) -> None:
        counts = self.report.counts(filename)
        if not self._stage_ready:
            self.conn.exec_driver_sql(_STAGE_DDL)
            self.conn.exec_driver_sql(
                "CREATE TEMP TABLE legacy_moved (id bigint, legacy_id text, created boolean)"
                " ON COMMIT DROP"
            )
            self._stage_ready = True
        else:
            self.conn.exec_driver_sql("TRUNCATE legacy_stage, legacy_moved")
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        columns = ", ".join(STAGE_COLUMNS)
        with cursor.copy(f"COPY legacy_stage ({columns}) FROM STDIN") as copy:
            copy.set_types([_stage_type(c) for c in STAGE_COLUMNS])
            staged = write_rows(copy)
        if not staged or not self.writing:
            return
        self._create_pending()
        self.conn.exec_driver_sql("ANALYZE legacy_stage")
        params = {"user_id": self.user_id}
        self.conn.execute(text(_MOVE_SQL), params)
        for phase, column in (("before", "emotions_before"), ("after", "emotions_after")):
            self.conn.execute(text(_EMOTIONS_SQL.format(column=column)), {**params, "phase": phase})
        created, updated = self.conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created)"
                " FROM legacy_moved"
            )
        ).one()
        counts.created += created
        counts.updated += updated
        counts.skipped += staged - created - updated

    def _create_pending(self) -> None:
        for key, pending in self.pending_tasks.items():
            task_id = self.tasks.create_pending(key, pending)
            if pending.placeholder:
                self.placeholder_ids.append(task_id)
        if self.pending_tasks:
            made = sum(p.placeholder for p in self.pending_tasks.values())
            if made:
                self.report.notes.append(
                    f"{made} archived stand-in task(s) created for attempts whose task "
                    "no longer exists in tasks.csv."
                )
            if len(self.pending_tasks) > made:
                self.report.notes.append(
                    f"{len(self.pending_tasks) - made} task(s) created for log entries "
                    "naming a task that did not exist."
                )
        self.pending_tasks.clear()
        created = self.emotions.flush()
        if created:
            self.report.notes.append(f"{created} emotion(s) created from attempts.")

    def finish(self) -> None:
        """Intensities onto the attempt emotions; stand-in tasks dated by their first
        attempt rather than by the import."""
        if self.writing:
            params = {"user_id": self.user_id}
            for phase, key in (("before", INTENSITIES_BEFORE), ("after", INTENSITIES_AFTER)):
                self.conn.execute(_INTENSITIES_SQL, {**params, "phase": phase, "key": key})
            self.conn.execute(_DROP_INTENSITIES_SQL, params)
        if not self.placeholder_ids:
            return
        self.conn.execute(
            text(
                "UPDATE tasks t SET created_at = first.at FROM ("
                " SELECT task_id, min(initialized_at) AS at FROM attempts"
                " WHERE user_id = :user_id AND task_id IN :ids GROUP BY task_id"
                ") AS first WHERE t.id = first.task_id"
            ).bindparams(bindparam("ids", expanding=True)),
            {"user_id": self.user_id, "ids": self.placeholder_ids},
        )


class _Spool:
    """Attempt rows set aside on disk (pickled), so memory stays flat however many."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile()
        self.count = 0

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def add(self, row: AttemptRow) -> None:
        pickle.dump(row, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += 1

    def rows(self) -> Iterator[AttemptRow]:
        self._file.seek(0)
        for _ in range(self.count):
            yield pickle.load(self._file)  # noqa: S301 - our own file, written above

    def stage_with(self, run: _Run) -> Any:
        def write(copy: Any) -> int:
            for row in self.rows():
                copy.write_row(run._stage_row(row, *run._instance_task(row)))
            return self.count

        return write


class _AttemptWriter:
    """COPY sorted attempt rows into ``attempts`` and their emotions, segment by segment.

    No other statement can run on the connection while a COPY does, so each segment
    first creates the emotions it names and draws its ids from the table's sequence,
    then copies the attempts and their ``attempt_emotions``.
    """

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.lines: list[str] = []
        # (first row of the batch in the segment, its links) per batch with links.
        self.links: list[tuple[int, array[int]]] = []
        self.written = 0
        self.emotions_created = 0
        # By the sorter's name numbers: the names, and their emotions' ids once resolved.
        self._names: list[str] = []
        self._emotion_ids: list[int | None] = []
        self._sequence: str | None = None

    def add(self, batch: Batch) -> None:
        self._names.extend(batch.names)
        if batch.links:
            self.links.append((len(self.lines), batch.links))
        self.lines.extend(batch.direct)
        if len(self.lines) >= SEGMENT_ROWS:
            self.flush()

    def finish(self) -> None:
        self.flush()

    def flush(self) -> None:
        lines, self.lines = self.lines, []
        links, self.links = self.links, []
        if not lines:
            return
        run = self.run
        cursor = run._driver().cursor()
        new_names = self._names[len(self._emotion_ids) :]
        if new_names:
            run.emotions.note(new_names)
            self.emotions_created += run.emotions.flush()
            self._resolve(cursor, new_names)
        if self._sequence is None:
            self._sequence = cursor.execute(
                "SELECT pg_get_serial_sequence('attempts', 'id')"
            ).fetchone()[0]
        ids = sorted(
            id_
            for (id_,) in cursor.execute(
                "SELECT nextval(%s) FROM generate_series(1, %s)", (self._sequence, len(lines))
            )
        )
        text = [f"{id_}\t{line}" for id_, line in zip(ids, lines, strict=True)]
        with cursor.copy(f"COPY attempts (id, {', '.join(_DIRECT_COLUMNS)}) FROM STDIN") as copy:
            for start in range(0, len(text), 1000):
                copy.write("".join(text[start : start + 1000]))
        del text
        self.written += len(lines)
        if links:
            self._copy_links(cursor, ids, links)

    def _resolve(self, cursor: Any, names: list[str]) -> None:
        # As PostgreSQL compares them (lower()), which differs from Python's for a few
        # letters: the same match a join on lower(name) would make.
        for name in names:
            found = cursor.execute(
                "SELECT id FROM emotions WHERE user_id = %s AND lower(name) = lower(%s)",
                (self.run.user_id, name),
            ).fetchone()
            self._emotion_ids.append(found[0] if found else None)

    def _copy_links(self, cursor: Any, ids: list[int], links: list[tuple[int, array[int]]]) -> None:
        emotion_ids = self._emotion_ids
        tail = f"\t{self.run.user_id}\n"
        lines = []
        for first, triples in links:
            # Two names of one row and phase may be the same emotion (lower case).
            linked: set[int] = set()
            last = (-1, -1)
            numbers = iter(triples)
            for row, phase, number in zip(numbers, numbers, numbers, strict=True):
                emotion_id = emotion_ids[number]
                if emotion_id is None:
                    continue
                if (row, phase) != last:
                    last = (row, phase)
                    linked = set()
                elif emotion_id in linked:
                    continue
                linked.add(emotion_id)
                lines.append(f"{ids[first + row]}\t{emotion_id}\t{PHASES[phase]}{tail}")
        if not lines:
            return
        columns = "attempt_id, emotion_id, phase, user_id"
        with cursor.copy(f"COPY attempt_emotions ({columns}) FROM STDIN") as copy:
            for start in range(0, len(lines), 5000):
                copy.write("".join(lines[start : start + 5000]))


class _FlatCopies:
    def __init__(self) -> None:
        self.count = 0
        self.first = 0

    def add(self, line: int) -> None:
        self.count += 1
        self.first = self.first or line


# --- the entry points -------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise LegacyImportError(
            f"unknown time zone {name!r}: use a name like Europe/Berlin or America/New_York"
        ) from None


def user_id_for_username(engine: Engine, username: str) -> int:
    """The id of the account with this username (case-insensitive), or a clear error."""
    with engine.connect() as conn:
        user_id = conn.execute(
            select(User.id).where(func.lower(User.username) == username.strip().lower())
        ).scalar_one_or_none()
    if user_id is None:
        raise LegacyImportError(f"no account with the username {username!r}")
    return user_id


def survey_folder(data_dir: Path) -> tuple[list[str], list[str], list[str], list[str]]:
    """The files to import, those read but not imported yet, those of unsupported
    features, and unknown ones."""
    if not data_dir.is_dir():
        raise LegacyImportError(f"{data_dir} is not a folder")
    names = sorted(p.name for p in data_dir.iterdir() if p.is_file())
    present = [name for name in IMPORTED_FILES if name in names]
    pending = [name for name in PENDING_FILES if name in names]
    skipped = [name for name in names if name in UNSUPPORTED_FILES]
    known = (*IMPORTED_FILES, *PENDING_FILES, *UNSUPPORTED_FILES)
    ignored = [name for name in names if name not in known]
    if not present:
        raise LegacyImportError(
            f"{data_dir} holds none of the old app's files ({', '.join(IMPORTED_FILES)})"
        )
    return present, pending, skipped, ignored


def import_legacy_folder(
    engine: Engine,
    data_dir: Path,
    *,
    user_id: int,
    timezone: str | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    backup_dir: Path | None = None,
    progress: bool | None = None,
) -> ImportReport:
    """Import the old app's data folder ``data_dir`` into the account ``user_id``.

    ``timezone`` (default: the account's) is the zone the naive legacy times are read
    in. ``dry_run`` reports what would happen and changes nothing. Without
    ``skip_invalid`` any invalid row refuses the whole import; with it, the valid rows
    are imported and the refused ones are written beside the report. Real imports first
    copy the files into ``backup_dir`` (default: ``<data_dir>/../tas-import-backups``).
    """
    started = time.monotonic()
    data_dir = Path(data_dir)
    present, pending, skipped, ignored = survey_folder(data_dir)
    with engine.connect() as conn:
        user = conn.execute(
            select(User.username, User.timezone).where(User.id == user_id)
        ).one_or_none()
    if user is None:
        raise LegacyImportError(f"no account with the id {user_id}")
    tz_name = timezone or user.timezone
    tz = zone(tz_name)
    report = ImportReport(
        data_dir=str(data_dir),
        user_id=user_id,
        username=user.username,
        timezone=tz_name,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        skipped_files=skipped,
        ignored_files=ignored,
    )
    preferred = preferences_zone(data_dir)
    if preferred is not None and preferred != tz_name:
        report.warn(
            f"user_preferences.csv: the old app was set to the time zone {preferred}, but "
            f"the times were read as {tz_name}. If the old app ran in {preferred}, import "
            "again choosing that zone (a dry run first)."
        )
    backup: Path | None = None
    if not dry_run:
        base = Path(backup_dir) if backup_dir else default_backup_base(data_dir)
        try:
            backup = back_up([data_dir / name for name in (*present, *pending)], base)
        except OSError as exc:
            raise LegacyImportError(f"cannot back up the files into {base}: {exc}") from exc
        report.backup_dir = str(backup)
    committed = False
    try:
        # Read the copies: what was imported is exactly what the manifest describes.
        committed = _run(
            engine, report, tz, backup or data_dir, present, pending, progress, backup, started
        )
    finally:
        if backup is not None and not committed:
            shutil.rmtree(backup, ignore_errors=True)
            report.backup_dir = None
            report.refused_files = []
    report.seconds = time.monotonic() - started
    if backup is not None and committed:
        (backup / "report.txt").write_text(report.render_text() + "\n", encoding="utf-8")
        (backup / "report.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return report


def _run(
    engine: Engine,
    report: ImportReport,
    tz: ZoneInfo,
    source: Path,
    present: list[str],
    pending: list[str],
    progress: bool | None,
    backup: Path | None,
    started: float,
) -> bool:
    """Read every file inside one transaction; commit unless refused or a dry run."""
    refused_dir = backup if report.skip_invalid else None
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            # One import at a time per person: a second one waits for this to finish.
            conn.execute(select(User.id).where(User.id == report.user_id).with_for_update())
            run = _Run(
                conn,
                report,
                tz,
                source,
                progress=progress_enabled(progress),
                refused_dir=refused_dir,
            )
            try:
                for name in present:
                    getattr(run, FILE_STEPS[name])()
                run.import_task_notes()
                for name in pending:
                    run.read_pending(name)
                run.finish()
            finally:
                run.close()
            if report.problem_count and not report.skip_invalid:
                report.status = STATUS_DRY_RUN if report.dry_run else STATUS_REFUSED
                if not report.dry_run:
                    for counts in report.files.values():
                        counts.created = counts.updated = counts.skipped = 0
            elif report.dry_run:
                report.status = STATUS_DRY_RUN
            if report.dry_run or report.refused:
                transaction.rollback()
                return False
            report.seconds = time.monotonic() - started
            conn.execute(
                insert(ImportRun).values(
                    user_id=report.user_id, dry_run=False, report=report.as_dict()
                )
            )
            transaction.commit()
            return True
        except DBAPIError as exc:
            transaction.rollback()
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise LegacyImportError(f"the database refused the import: {reason}") from exc

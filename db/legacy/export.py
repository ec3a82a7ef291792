"""Write one person's data back in the old app's layout (the account's "download").

``tasks.csv`` has the clean header plus an ``archived_at`` column and the later export's
routine columns, ``task_instances.csv`` the v4 header (with ``behavioral_score``) plus the
later export's ``due_at``, the later statuses (a paused attempt is ``initialized`` with
``paused`` in ``actual``, the cancellation category in ``cancellation_category``) and the
prediction and outcome as JSON, ``emotions.csv`` one column, ``notes.csv`` the later
export's header plus ``instance_id`` (the attempt a note was written on, if any),
``jobs.csv`` and ``job_task_mapping.csv`` (the task groups) as the later export has them;
emotion intensities are ``emotion_values`` in the prediction and outcome, as there. Times are
naive local times in the account's zone, like the old app wrote them; a note's time is UTC
in ISO form, as its later export wrote it; a postponement's exact instants go in
``actual`` (``postponed_at``, ``postponed_until``, ISO with offset). The importer reads all
four back, so export → import into another account reproduces them. Archived stand-ins for
tasks the old app had deleted are
not written as tasks: their attempts name them, and an import recreates them. Cells a
spreadsheet would run as formulas get a leading ' (see ``cells.guard_formula``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection
from sqlalchemy import Engine
from sqlalchemy import select
from sqlalchemy import text

from db.legacy.cells import guard_row
from db.legacy.groups import JOB_HEADER
from db.legacy.groups import JOB_TASK_HEADER
from db.legacy.groups import JOB_TASKS
from db.legacy.groups import JOBS
from db.legacy.groups import emotion_values
from db.legacy.groups import job_task_rows
from db.legacy.groups import jobs_rows
from db.legacy.importer import EMOTIONS
from db.legacy.importer import INSTANCES
from db.legacy.importer import TASKS
from db.legacy.importer import LegacyImportError
from db.legacy.importer import zone
from db.legacy.routines import COLUMNS as ROUTINE_COLUMNS
from db.legacy.routines import routine_cells
from db.models import Emotion
from db.models import User

TASK_HEADER = (
    "task_id",
    "name",
    "description",
    "type",
    "version",
    "created_at",
    "is_recurring",
    "categories",
    "default_estimate_minutes",
    "archived_at",
    # The later export's routine columns (db.legacy.routines).
    *ROUTINE_COLUMNS,
)
INSTANCE_HEADER = (
    "instance_id",
    "task_id",
    "task_name",
    "task_version",
    "created_at",
    "initialized_at",
    "started_at",
    "completed_at",
    "predicted",
    "actual",
    "procrastination_score",
    "proactive_score",
    "is_completed",
    "is_deleted",
    "cancelled_at",
    "status",
    "duration_minutes",
    "relief_score",
    "cognitive_load",
    "emotional_load",
    "environmental_effect",
    "skills_improved",
    "behavioral_deviation",
    "net_relief",
    "delay_minutes",
    "behavioral_score",
    "due_at",
)
NOTES = "notes.csv"
# The old app's later layout (its notes were linked to nothing), and the attempt ours are on.
NOTE_HEADER = ("note_id", "content", "timestamp", "user_id", "instance_id")
PREDICTION_OUT = (
    ("time_estimate_minutes", "time_estimate_minutes"),
    ("expected_relief", "expected_relief"),
    ("expected_cognitive_load", "expected_cognitive_load"),
    ("expected_emotional_load", "expected_emotional_load"),
    ("expected_physical_load", "expected_physical_load"),
    ("motivation", "motivation"),
    ("expected_aversion", "expected_aversion"),
    ("physical_context", "physical_context"),
)
OUTCOME_OUT = (
    ("actual_relief", "actual_relief"),
    ("actual_cognitive_load", "actual_cognitive"),
    ("actual_emotional_load", "actual_emotional"),
    ("actual_physical_load", "actual_physical"),
    ("completion_percent", "completion_percent"),
)

_TASKS_SQL = """
SELECT t.id, t.legacy_id, t.name, t.description, t.kind, t.version, t.created_at,
       t.default_estimate_minutes, t.archived_at,
       t.routine_frequency, t.routine_weekdays, t.routine_time,
       coalesce(array_agg(e.name ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}') AS emotions
FROM tasks t
LEFT JOIN task_emotions te ON te.task_id = t.id
LEFT JOIN emotions e ON e.id = te.emotion_id
WHERE t.user_id = :user_id AND NOT (t.extra ? 'placeholder')
GROUP BY t.id
ORDER BY t.id
"""
_ATTEMPTS_SQL = """
SELECT a.*, t.legacy_id AS task_legacy_id, t.name AS task_name,
       array(SELECT e.name FROM attempt_emotions ae JOIN emotions e ON e.id = ae.emotion_id
             WHERE ae.attempt_id = a.id AND ae.phase = 'before' ORDER BY e.id) AS before,
       array(SELECT e.name FROM attempt_emotions ae JOIN emotions e ON e.id = ae.emotion_id
             WHERE ae.attempt_id = a.id AND ae.phase = 'after' ORDER BY e.id) AS after,
       array(SELECT ae.intensity FROM attempt_emotions ae JOIN emotions e ON e.id = ae.emotion_id
             WHERE ae.attempt_id = a.id AND ae.phase = 'before' ORDER BY e.id)
           AS before_intensities,
       array(SELECT ae.intensity FROM attempt_emotions ae JOIN emotions e ON e.id = ae.emotion_id
             WHERE ae.attempt_id = a.id AND ae.phase = 'after' ORDER BY e.id)
           AS after_intensities
FROM attempts a
JOIN tasks t ON t.id = a.task_id
WHERE a.user_id = :user_id
ORDER BY a.id
"""

_NOTES_SQL = """
SELECT n.id, n.body, n.created_at, a.id AS attempt_id, a.legacy_id AS attempt_legacy_id
FROM notes n
LEFT JOIN attempts a ON a.id = n.attempt_id AND a.user_id = n.user_id
WHERE n.user_id = :user_id
ORDER BY n.created_at, n.id
"""


def task_export_id(task_id: int, legacy_id: str | None) -> str:
    # Tasks made in the web app get an id that cannot collide with the old app's t<secs>.
    return legacy_id or f"tas-task-{task_id}"


def attempt_export_id(attempt_id: int, legacy_id: str | None) -> str:
    return legacy_id or f"tas-attempt-{attempt_id}"


def _note_cells(row: Any) -> list[str]:
    at = row.created_at.astimezone(dt.timezone.utc).replace(tzinfo=None)
    on = attempt_export_id(row.attempt_id, row.attempt_legacy_id) if row.attempt_id else ""
    # The old app wrote its account number as user_id; importers ignore it.
    return [f"tas-note-{row.id}", row.body, at.isoformat(), "", on]


def _local(value: dt.datetime | None, tz: ZoneInfo) -> str:
    if value is None:
        return ""
    local = value.astimezone(tz).replace(tzinfo=None)
    if local.microsecond:
        return local.isoformat(sep=" ")
    if local.second:
        return local.strftime("%Y-%m-%d %H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


def _number(value: float | int | None) -> str:
    return "" if value is None else str(value)


def _task_cells(row: Any, tz: ZoneInfo) -> list[str]:
    return [
        task_export_id(row.id, row.legacy_id),
        row.name,
        row.description,
        row.kind,
        str(row.version),
        _local(row.created_at, tz),
        str(row.kind != "one-time"),
        json.dumps(list(row.emotions)),
        _number(row.default_estimate_minutes),
        _local(row.archived_at, tz),
        *routine_cells(row.routine_frequency, row.routine_weekdays, row.routine_time),
    ]


def _predicted(a: Any) -> dict[str, Any]:
    predicted = {key: a[column] for column, key in PREDICTION_OUT if a[column] is not None}
    predicted["emotions"] = list(a["before"])
    felt = emotion_values(a["before"], a["before_intensities"])
    if felt:
        predicted["emotion_values"] = felt
    predicted["description"] = a["description"]
    return predicted


def _actual(a: Any) -> dict[str, Any]:
    closed = a["status"] in ("completed", "cancelled")
    actual: dict[str, Any] = {
        key: a[column] for column, key in OUTCOME_OUT if a[column] is not None
    }
    if closed or a["minutes_spent"]:
        actual["time_actual_minutes"] = a["minutes_spent"]
    if closed or a["notes"]:
        actual["notes"] = a["notes"]
    if a["status"] == "cancelled":
        actual["reason_for_canceling"] = a["cancel_reason"]
        actual["cancelled"] = True
        if a["cancel_category"]:
            actual["cancellation_category"] = a["cancel_category"]
    if a["status"] == "paused":
        actual["paused"] = True
    if not closed:
        # Exact instants (this project's keys): the old app's postpone_history has minutes.
        for column in ("postponed_at", "postponed_until"):
            if a[column] is not None:
                actual[column] = a[column].astimezone(dt.timezone.utc).isoformat()
    if a["after"]:
        actual["emotions"] = list(a["after"])
        felt = emotion_values(a["after"], a["after_intensities"])
        if felt:
            actual["emotion_values"] = felt
    if a["extra"]:
        actual["extra"] = a["extra"]
    return actual


def _attempt_cells(a: Any, tz: ZoneInfo) -> list[str]:
    # The later app's statuses: a paused attempt is initialized (and paused in `actual`).
    status = {"completed": "completed", "cancelled": "cancelled", "paused": "initialized"}.get(
        a["status"], "active"
    )
    closed = status in ("completed", "cancelled")
    return [
        attempt_export_id(a["id"], a["legacy_id"]),
        task_export_id(a["task_id"], a["task_legacy_id"]),
        a["task_name"],
        str(a["task_version"]),
        _local(a["initialized_at"], tz),
        _local(a["initialized_at"], tz),
        _local(a["started_at"], tz),
        _local(a["completed_at"], tz),
        json.dumps(_predicted(a)),
        json.dumps(_actual(a)),
        _number(a["procrastination_score"]),
        _number(a["proactive_score"]),
        str(closed),
        "False",
        _local(a["cancelled_at"], tz),
        status,
        _number(a["minutes_spent"]) if closed else "",
        # Unlike the old app, the flat copies hold the outcome they are named after.
        _number(a["actual_relief"]),
        _number(a["actual_cognitive_load"]),
        _number(a["actual_emotional_load"]),
        "",
        "",
        "",
        "",
        _number(a["delay_minutes"]),
        _number(a["behavioral_score"]),
        _local(a["due_at"], tz),
    ]


def _write_tables(
    conn: Connection, user_id: int, tz: ZoneInfo, open_text: Callable[[str], Any]
) -> None:
    with open_text(EMOTIONS) as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion"])
        names = conn.execute(
            select(Emotion.name).where(Emotion.user_id == user_id).order_by(Emotion.id)
        )
        writer.writerows(guard_row([name]) for (name,) in names)
    with open_text(TASKS) as handle:
        writer = csv.writer(handle)
        writer.writerow(TASK_HEADER)
        for row in conn.execute(text(_TASKS_SQL), {"user_id": user_id}):
            writer.writerow(guard_row(_task_cells(row, tz)))
    with open_text(INSTANCES) as handle:
        writer = csv.writer(handle)
        writer.writerow(INSTANCE_HEADER)
        # A server-side cursor: a million attempts stream through in small batches.
        result = conn.execute(
            text(_ATTEMPTS_SQL),
            {"user_id": user_id},
            execution_options={"stream_results": True, "yield_per": 2000},
        )
        for attempt in result.mappings():
            writer.writerow(guard_row(_attempt_cells(attempt, tz)))
    with open_text(NOTES) as handle:
        writer = csv.writer(handle)
        writer.writerow(NOTE_HEADER)
        for row in conn.execute(text(_NOTES_SQL), {"user_id": user_id}):
            writer.writerow(guard_row(_note_cells(row)))
    # Task groups, as the old app's later export wrote its jobs.
    with open_text(JOBS) as handle:
        writer = csv.writer(handle)
        writer.writerow(JOB_HEADER)
        writer.writerows(guard_row(row) for row in jobs_rows(conn, user_id))
    with open_text(JOB_TASKS) as handle:
        writer = csv.writer(handle)
        writer.writerow(JOB_TASK_HEADER)
        writer.writerows(guard_row(row) for row in job_task_rows(conn, user_id, task_export_id))


def _zone_of(conn: Connection, user_id: int, timezone: str | None) -> ZoneInfo:
    account_zone = conn.execute(
        select(User.timezone).where(User.id == user_id)
    ).scalar_one_or_none()
    if account_zone is None:
        raise LegacyImportError(f"no account with the id {user_id}")
    return zone(timezone or account_zone)


def export_folder(
    engine: Engine, out_dir: Path, *, user_id: int, timezone: str | None = None
) -> list[Path]:
    """Write the person's ``emotions.csv``, ``tasks.csv``, ``task_instances.csv``,
    ``notes.csv``, ``jobs.csv`` and ``job_task_mapping.csv``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def open_text(name: str) -> Iterator[IO[str]]:
        with open(out_dir / name, "w", encoding="utf-8", newline="") as handle:
            yield handle

    with engine.connect() as conn, conn.begin():
        # One snapshot for all the files, even while the person keeps working.
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        _write_tables(conn, user_id, _zone_of(conn, user_id, timezone), open_text)
    return [out_dir / name for name in (EMOTIONS, TASKS, INSTANCES, NOTES, JOBS, JOB_TASKS)]


def export_zip(
    engine: Engine, fileobj: IO[bytes], *, user_id: int, timezone: str | None = None
) -> None:
    """Write the same files as a zip into ``fileobj`` (which need not be seekable)."""
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        @contextmanager
        def open_text(name: str) -> Iterator[IO[str]]:
            with archive.open(name, "w", force_zip64=True) as raw:
                handle = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                yield handle
                handle.flush()
                handle.detach()

        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            _write_tables(conn, user_id, _zone_of(conn, user_id, timezone), open_text)

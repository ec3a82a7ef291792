"""Turn one CSV record of each legacy file into validated values for the database.

Every function here is pure (no database): it takes the record's cells, the file's
header and the person's time zone, and returns a row object or raises
:class:`~db.legacy.cells.CellError` naming the column and the reason. The first problem
of a record is the one reported, so a bad row costs exactly one report line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from zoneinfo import ZoneInfo

from db.legacy.cells import CellError
from db.legacy.cells import json_number
from db.legacy.cells import looks_like_timestamp
from db.legacy.cells import minutes_value
from db.legacy.cells import names_from_json
from db.legacy.cells import parse_bool
from db.legacy.cells import parse_int
from db.legacy.cells import parse_json_list_of_names
from db.legacy.cells import parse_json_object
from db.legacy.cells import parse_number
from db.legacy.cells import parse_timestamp
from db.legacy.cells import scale_value
from db.legacy.cells import shorten
from db.legacy.cells import text_value
from db.legacy.groups import felt_emotions
from db.legacy.late import PENDING_ATTEMPT_KEYS
from db.legacy.reader import Header
from db.legacy.routines import COLUMNS as ROUTINE_COLUMNS
from db.legacy.routines import Routine
from db.legacy.routines import parse_routine
from db.measures import MEASURE_COLUMNS
from db.measures import AttemptFacts
from db.measures import compute_measures
from db.models import CANCEL_CATEGORY_MAX
from db.models import CONTEXT_MAX
from db.models import DESCRIPTION_MAX
from db.models import EMOTION_NAME_MAX
from db.models import NOTES_MAX
from db.models import TASK_KINDS
from db.models import TASK_NAME_MAX

LEGACY_ID_MAX = 64
UTC_ZONE = ZoneInfo("UTC")
UNNAMED_TASK = "Unnamed task (imported)"
NO_CANCEL_REASON = "No reason was recorded in the old app."

TASK_REQUIRED_REAL = ("task_id", "name")
TASK_REQUIRED_PROTOTYPE = ("task",)
INSTANCE_REQUIRED = (
    "instance_id",
    "task_id",
    "task_name",
    "created_at",
    "initialized_at",
    "started_at",
    "completed_at",
    "predicted",
    "actual",
    "is_completed",
)
EMOTION_REQUIRED = ("emotion",)
# The columns each parser reads (the report names the others).
TASK_COLUMNS = (
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
    "task",
    *ROUTINE_COLUMNS,
)
INSTANCE_COLUMNS = (
    *INSTANCE_REQUIRED,
    "task_version",
    "cancelled_at",
    "due_at",
    "is_deleted",
    "status",
)
NOTE_REQUIRED = ("content", "timestamp")
NOTE_COLUMNS = (*NOTE_REQUIRED, "instance_id")
LOG_COLUMNS = (
    "timestamp",
    "task",
    "aversion_level",
    "relief_prediction",
    "relief_actual",
    "completion_percent",
    "perceived_overextension",
    "time_estimate_minutes",
    "time_actual_minutes",
    "comment",
    "blocker_type",
)
LOG_REQUIRED = ("timestamp", "task")

# The attempt columns an imported row fills, in the order of the staging table.
ATTEMPT_VALUE_COLUMNS = (
    "task_version",
    "status",
    "initialized_at",
    "started_at",
    "completed_at",
    "cancelled_at",
    "minutes_spent",
    "expected_aversion",
    "expected_relief",
    "expected_cognitive_load",
    "expected_emotional_load",
    "expected_physical_load",
    "motivation",
    "time_estimate_minutes",
    "physical_context",
    "description",
    "actual_relief",
    "actual_cognitive_load",
    "actual_emotional_load",
    "actual_physical_load",
    "completion_percent",
    "notes",
    "cancel_reason",
    *MEASURE_COLUMNS,
    # The later export's (and this project's export's): after the measures, so the fast
    # path writes them as one constant tail on the rows of the early layouts.
    "due_at",
    "cancel_category",
    "postponed_at",
    "postponed_until",
)
_NO_MEASURES: dict[str, Any] = dict.fromkeys(MEASURE_COLUMNS)

# Aliases the old app used over time, canonical key first.
PREDICTION_KEYS = {
    "expected_relief": ("expected_relief",),
    "expected_cognitive_load": ("expected_cognitive_load", "expected_cognitive"),
    "expected_emotional_load": ("expected_emotional_load", "expected_emotional"),
    "expected_physical_load": ("expected_physical_load",),
    "motivation": ("motivation",),
    "expected_aversion": ("expected_aversion",),
}
OUTCOME_KEYS = {
    "actual_relief": ("actual_relief",),
    "actual_cognitive_load": ("actual_cognitive",),
    "actual_emotional_load": ("actual_emotional",),
    "actual_physical_load": ("actual_physical",),
}
FLAT_COPIES = {
    "relief_score": "actual_relief",
    "cognitive_load": "actual_cognitive_load",
    "emotional_load": "actual_emotional_load",
}


def legacy_key(prefix: str, text: str) -> str:
    """A stable id for legacy rows that have none (prototype tasks, logs, nameless tasks)."""
    return prefix + hashlib.sha256(text.encode()).hexdigest()[:40]


def prototype_task_key(name: str) -> str:
    # The prototype identified tasks by name; logs.csv refers to them the same way.
    return legacy_key("proto:", name)


def missing_task_key(name: str) -> str:
    return legacy_key("missing:", name)


class Row:
    """Cell access by column name for one record (missing trailing cells read as empty)."""

    __slots__ = ("cells", "header")

    def __init__(self, header: Header, cells: list[str]) -> None:
        self.header = header
        self.cells = cells

    def get(self, name: str) -> str:
        i = self.header.index.get(name)
        if i is None or i >= len(self.cells):
            return ""
        return self.cells[i]


def missing_columns(header: Header, required: tuple[str, ...]) -> list[str]:
    return [name for name in required if name not in header.index]


def check_shape(header: Header, cells: list[str], required: tuple[str, ...]) -> None:
    """Refuse records shorter than their required columns, or longer than the header."""
    needed = header.cells_needed(required)
    if len(cells) < needed:
        column = header.names[len(cells)]
        raise CellError(
            f"the row ends after {len(cells)} cells; the required columns from here on are missing",
            column,
        )
    width = len(header.names)
    if len(cells) > width and any(cell.strip() for cell in cells[width:]):
        raise CellError(
            f"the row has {len(cells)} cells but the header has {width} (cells shifted?)"
        )


def _cell(column: str, fn: Any, *args: Any) -> Any:
    """Run a cell parser, labelling its error with the column."""
    try:
        return fn(*args)
    except CellError as exc:
        exc.column = exc.column or column
        raise


def _name(text: str, column: str, limit: int = TASK_NAME_MAX) -> str:
    name = text.strip()
    if len(name) > limit:
        raise CellError(f"{len(name)} characters long, at most {limit} allowed", column)
    return name


def _emotion_names(names: list[str], column: str) -> list[str]:
    for name in names:
        if len(name) > EMOTION_NAME_MAX:
            raise CellError(
                f"emotion {shorten(name)} is longer than {EMOTION_NAME_MAX} characters", column
            )
    return names


# --- tasks.csv --------------------------------------------------------------------------


@dataclass
class TaskRow:
    line: int
    legacy_id: str
    name: str
    description: str = ""
    kind: str = "one-time"
    version: int = 1
    created_at: dt.datetime | None = None
    archived_at: dt.datetime | None = None
    default_estimate_minutes: float = 0.0
    emotions: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    routine: Routine | None = None  # the later export's schedule (db.legacy.routines)
    # The later export's running notes (`notes`): (time, text) per block; they become notes.
    running_notes: list[tuple[dt.datetime, str]] = field(default_factory=list)

    def fingerprint(self) -> str:
        """A hash of the values as imported: unchanged on re-import, changed on edit.

        It is taken over parsed values, not raw cells, so an export of the imported
        task re-imports as the same fingerprint. The creation time is left out: prototype
        tasks have none, and their export carries the time of their import.
        """
        values = [
            self.name,
            self.description,
            self.kind,
            self.version,
            self.archived_at.isoformat() if self.archived_at else None,
            self.default_estimate_minutes,
            sorted({e.lower() for e in self.emotions}),
            self.extra,
        ]
        if self.routine is not None:  # a task without one keeps its earlier fingerprint
            values.append(list(self.routine))
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def task_header_problem(header: Header) -> tuple[str, str] | None:
    if "task_id" in header.index:
        missing = missing_columns(header, TASK_REQUIRED_REAL)
        if missing:
            return missing[0], "required column missing from the header"
        return None
    if "task" in header.index:
        return None
    return "task_id", "the header has neither task_id (app tasks) nor task (prototype tasks)"


def parse_task(header: Header, cells: list[str], line: int, tz: ZoneInfo) -> TaskRow:
    row = Row(header, cells)
    legacy_id = row.get("task_id").strip()
    if legacy_id:
        check_shape(header, cells, TASK_REQUIRED_REAL)
        return _app_task(row, legacy_id, line, tz)
    prototype_name = row.get("task")
    if "task" in header.index and prototype_name.strip():
        check_shape(header, cells, TASK_REQUIRED_PROTOTYPE)
        return _prototype_task(row, line, tz)
    raise CellError("empty: every task needs a task_id (or a prototype name in task)", "task_id")


def _app_task(row: Row, legacy_id: str, line: int, tz: ZoneInfo) -> TaskRow:
    if len(legacy_id) > LEGACY_ID_MAX:
        raise CellError(f"longer than {LEGACY_ID_MAX} characters", "task_id")
    name = _name(row.get("name"), "name")
    if not name:
        raise CellError("empty: a task needs a name", "name")
    description = row.get("description")
    if len(description) > DESCRIPTION_MAX:
        raise CellError(f"longer than {DESCRIPTION_MAX} characters", "description")
    recurring = _cell("is_recurring", parse_bool, row.get("is_recurring"))
    kind = row.get("type").strip().lower()
    if not kind:
        kind = "recurring" if recurring else "one-time"
    elif kind not in TASK_KINDS:
        raise CellError(f"{shorten(kind)} is not one of {', '.join(TASK_KINDS)}", "type")
    version = _cell("version", parse_int, row.get("version").strip()) or 1
    if version < 1:
        raise CellError(f"{version} is not a version (1 or more)", "version")
    estimate = _cell(
        "default_estimate_minutes", parse_number, row.get("default_estimate_minutes").strip()
    )
    if estimate is not None and estimate < 0:
        raise CellError(f"{estimate:g} minutes is negative", "default_estimate_minutes")
    emotions = _cell("categories", parse_json_list_of_names, row.get("categories"))
    return TaskRow(
        line=line,
        legacy_id=legacy_id,
        name=name,
        description=description,
        kind=kind,
        version=version,
        created_at=_cell("created_at", parse_timestamp, row.get("created_at").strip(), tz),
        archived_at=_cell("archived_at", parse_timestamp, row.get("archived_at").strip(), tz),
        default_estimate_minutes=estimate or 0.0,
        emotions=_emotion_names(emotions, "categories"),
        routine=parse_routine(row.get),
    )


def _prototype_task(row: Row, line: int, tz: ZoneInfo) -> TaskRow:
    # The prototype's other columns are running means over logs.csv (imported itself)
    # and a category the web model has no place for; see the package docstring.
    name = _name(row.get("task"), "task")
    return TaskRow(line=line, legacy_id=prototype_task_key(name), name=name)


_NOTE_BLOCK = re.compile(r"\[(\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2})?)\]\r?\n(.*)", re.DOTALL)
_NOTE_SEPARATOR = re.compile(r"\r?\n\r?\n---\r?\n\r?\n")


def task_running_notes(cell: str, row: TaskRow, tz: ZoneInfo) -> None:
    """A task's running notes (``[YYYY-MM-DD HH:MM]``, newline, text; blocks joined by
    a line ``---`` between blank lines), at the old app's local time. A block without
    its time is dated by the task's creation."""
    if not cell.strip():
        return
    for block in _NOTE_SEPARATOR.split(cell):
        match = _NOTE_BLOCK.fullmatch(block)
        when = parse_timestamp(match.group(1), tz) if match else row.created_at
        body = (match.group(2) if match else block).strip()
        if not body:
            continue
        text_value(body, "notes", NOTES_MAX)
        if when is None:
            raise CellError("a note without its [time], and the task has no created_at", "notes")
        row.running_notes.append((when, body))


# tasks.csv columns with a home beyond the early layout's: column → function reading the
# cell (times in the old app's zone) into the row; it raises CellError for a bad cell.
# Columns read but without a home yet are listed in db.legacy.late.PENDING_TASK_COLUMNS.
TASK_COLUMN_HANDLERS: dict[str, Callable[[str, TaskRow, ZoneInfo], None]] = {
    "notes": task_running_notes,
}


# --- emotions.csv -----------------------------------------------------------------------


def parse_emotion(header: Header, cells: list[str]) -> str:
    """The emotion word, stripped; empty means a blank row (skipped by the caller)."""
    name = Row(header, cells).get("emotion").strip()
    if len(name) > EMOTION_NAME_MAX:
        raise CellError(f"longer than {EMOTION_NAME_MAX} characters", "emotion")
    return name


# --- notes.csv --------------------------------------------------------------------------


@dataclass
class NoteRow:
    line: int
    body: str
    created_at: dt.datetime
    # The attempt the note was written on (this project's export), if any.
    attempt_legacy_id: str


def parse_note(header: Header, cells: list[str], line: int) -> NoteRow | None:
    """A note of the later export (``note_id,content,timestamp,user_id``); None if blank.

    Its time is UTC (ISO, ``2026-02-17T04:05:00.104233``), unlike tasks and attempts.
    """
    check_shape(header, cells, NOTE_REQUIRED)
    row = Row(header, cells)
    when = _cell("timestamp", parse_timestamp, row.get("timestamp").strip(), UTC_ZONE)
    if when is None:
        raise CellError("empty: every note has a time", "timestamp")
    body = row.get("content")
    if not body.strip():
        return None
    _cell("content", text_value, body, "content", NOTES_MAX)
    attempt = row.get("instance_id").strip()
    if len(attempt) > LEGACY_ID_MAX:
        raise CellError(f"longer than {LEGACY_ID_MAX} characters", "instance_id")
    return NoteRow(line=line, body=body, created_at=when, attempt_legacy_id=attempt)


# --- task_instances.csv -----------------------------------------------------------------


@dataclass
class AttemptRow:
    """One attempt ready for the database; the task is resolved by the importer."""

    line: int
    legacy_id: str
    task_legacy_id: str
    task_name: str
    values: dict[str, Any]
    emotions_before: list[str]
    emotions_after: list[str]
    extra: dict[str, Any]
    deleted: bool = False
    flat_disagrees: bool = False
    # Keys of the JSON details read but not imported yet (see db.legacy.late).
    pending: tuple[str, ...] = ()


# This file runs a million times per big import: the helpers below take the common
# case (a JSON number) without further calls and leave the rest to the cells module.


def _pick(data: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = data.get(key)
        if value is not None:
            return value
    return None


def _number_of(value: Any, key: str) -> float | None:
    kind = type(value)
    if kind is float or kind is int:
        number = float(value)
        if number != number:  # NaN: pandas' "unknown"
            return None
        if number in (math.inf, -math.inf):
            raise CellError(f"{key} is infinite")
        return number
    return json_number(value, key)


def _score(data: dict[str, Any], keys: tuple[str, ...], high: float = 100) -> int | None:
    value = _pick(data, keys)
    if value is None:
        return None
    number = _number_of(value, keys[0])
    if number is None:
        return None
    if not 0 <= number <= high:
        raise CellError(f"{keys[0]} is {number:g}, outside 0–{high:g}")
    return math.floor(number + 0.5)  # half up: 44.5 → 45


def _minutes(data: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    value = _pick(data, keys)
    if value is None:
        return None
    number = _number_of(value, keys[0])
    if number is not None and number < 0:
        raise CellError(f"{keys[0]} is {number:g}, minutes cannot be negative")
    return number


_ESTIMATE_KEYS = ("time_estimate_minutes", "estimate")
_SPENT_KEYS = ("time_actual_minutes", "actual_time", "duration_minutes")
_COMPLETION_KEYS = ("completion_percent",)
_PREDICTION_ITEMS = tuple(PREDICTION_KEYS.items())
_OUTCOME_ITEMS = tuple(OUTCOME_KEYS.items())


def _prediction(predicted: dict[str, Any], values: dict[str, Any]) -> list[str]:
    for column, keys in _PREDICTION_ITEMS:
        values[column] = _score(predicted, keys)
    values["time_estimate_minutes"] = _minutes(predicted, _ESTIMATE_KEYS)
    context = predicted.get("physical_context")
    if context is not None:
        context = text_value(context, "physical_context", CONTEXT_MAX)
    # The old app wrote the string "None" when no context was chosen.
    values["physical_context"] = None if context in (None, "", "None") else context
    description = predicted.get("description")
    if description is not None:
        description = text_value(description, "description", DESCRIPTION_MAX)
    values["description"] = description or ""
    emotions = predicted.get("emotions")
    return _emotion_names(names_from_json(emotions), "emotions") if emotions else []


def _outcome(actual: dict[str, Any], values: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    if not actual:
        values.update(_EMPTY_OUTCOME)
        return [], {}
    for column, keys in _OUTCOME_ITEMS:
        values[column] = _score(actual, keys)
    values["completion_percent"] = _score(actual, _COMPLETION_KEYS, 200)
    values["minutes_spent"] = _minutes(actual, _SPENT_KEYS)
    # The later app wrote completion_notes (2025-12-28), before: notes.
    key = "completion_notes" if actual.get("completion_notes") is not None else "notes"
    notes = actual.get(key)
    values["notes"] = text_value(notes, key, NOTES_MAX) or "" if notes is not None else ""
    reason = actual.get("reason_for_canceling")
    values["cancel_reason"] = (
        text_value(reason, "reason_for_canceling", NOTES_MAX) if reason is not None else None
    )
    # Extensions written by this project's export, so an export re-imports whole.
    emotions = actual.get("emotions")
    after = _emotion_names(names_from_json(emotions), "emotions") if emotions else []
    extra = actual.get("extra") or {}
    if not isinstance(extra, dict):
        raise CellError("extra is not an object")
    return after, extra


def _due(text: str, tz: ZoneInfo) -> dt.datetime | None:
    """A due date: a time like the other columns, or a date alone (→ 23:59 that day)."""
    text = text.strip()
    if _DATE.fullmatch(text):
        text += " 23:59"
    return parse_timestamp(text, tz)


def _late(
    actual: dict[str, Any],
    predicted: dict[str, Any],
    values: dict[str, Any],
    open_: bool,
    tz: ZoneInfo,
) -> tuple[dict[str, Any], bool, tuple[str, ...]]:
    """The later export's details: cancellation category, pauses, postponements and
    intensities. Returns what goes to ``extra``, whether the attempt is paused, and the
    keys read but not imported yet."""
    extra: dict[str, Any] = {}
    category = actual.get("cancellation_category")
    if category is not None:
        category = text_value(category, "cancellation_category", CANCEL_CATEGORY_MAX)
    values["cancel_category"] = category.strip() or None if category else None
    paused = actual.get("paused") is True
    reason = actual.get("pause_reason")
    if reason is not None:
        reason = text_value(reason, "pause_reason", NOTES_MAX)
    if open_ and (reason or "time_spent_before_pause" in actual):
        extra["pauses"] = [{"reason": reason or ""}]
        done = _score(actual, ("pause_completion_percentage",))
        if done is not None:
            extra["pause_completion_percentage"] = done
        if values["minutes_spent"] is None:
            values["minutes_spent"] = _minutes(actual, ("time_spent_before_pause",))
    history = actual.get("postpone_history")
    if history is not None and not isinstance(history, list):
        raise CellError("postpone_history is not a list")
    postponements = []
    for entry in history or []:
        if not isinstance(entry, dict):
            raise CellError("postpone_history holds something other than {reason, at}")
        when = entry.get("at")
        if when is not None and not isinstance(when, str):
            raise CellError("postpone_history: at is not a time")
        try:
            at = parse_timestamp((when or "").strip(), tz)
        except CellError as exc:
            raise CellError(f"postpone_history: {exc.reason}") from None
        note = text_value(entry.get("reason"), "postpone_history: reason", NOTES_MAX)
        postponements.append({"at": at.isoformat() if at else None, "reason": note or ""})
    if not postponements and actual.get("postpone_reason"):
        note = text_value(actual["postpone_reason"], "postpone_reason", NOTES_MAX)
        postponements.append({"at": None, "reason": note or ""})
    if postponements:
        extra["postponements"] = postponements
        if open_:
            last = postponements[-1]["at"]
            values["postponed_at"] = dt.datetime.fromisoformat(last) if last else None
    # This project's export writes the exact times of a postponement.
    for column in ("postponed_at", "postponed_until"):
        if actual.get(column) is not None:
            values[column] = _iso(actual[column], column) if open_ else None
    if open_ and postponements and values["postponed_at"] is None:
        values["postponed_at"] = values["initialized_at"]
    pending = [f"predicted.{key}" for key in predicted if key not in PREDICTED_KEYS_READ]
    pending += [f"actual.{key}" for key in actual if key not in ACTUAL_KEYS_READ]
    for key in PENDING_ATTEMPT_KEYS:
        before, after = predicted.get(key), actual.get(key)
        if before:
            extra[key + "_before"] = before
        if after:
            extra[key + "_after"] = after
        if before or after:
            pending.append(key)
    return extra, paused, tuple(pending)


# Where an attempt row carries its emotions' intensities (name → 0–100) until the import
# has made its attempt emotions (db.legacy.importer applies them, then drops these keys).
INTENSITIES_BEFORE = "emotion_values_before"
INTENSITIES_AFTER = "emotion_values_after"


def _felt(details: dict[str, Any], names: list[str]) -> tuple[list[str], dict[str, int]]:
    """A phase's emotion names with those only ``emotion_values`` names (the later export
    keeps some there alone), and their intensities."""
    felt = felt_emotions(details)
    known = {name.lower() for name in names}
    more = [name for name in felt if name.lower() not in known]
    if more:
        names = [*names, *_emotion_names(more, "emotion_values")]
    return names, {name: value for name, value in felt.items() if value is not None}


def _iso(value: Any, key: str) -> dt.datetime:
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(dt.timezone.utc)
    raise CellError(f"{key} is {shorten(str(value))}, expected an ISO time with its offset")


# The keys of the JSON details the import reads (or names as not imported yet); the
# report names the others.
PREDICTED_KEYS_READ = frozenset(
    {
        *(key for keys in PREDICTION_KEYS.values() for key in keys),
        "time_estimate_minutes",
        "estimate",
        "emotions",
        "physical_context",
        "description",
        "emotion_values",
        *PENDING_ATTEMPT_KEYS,
    }
)
ACTUAL_KEYS_READ = frozenset(
    {
        *(key for keys in OUTCOME_KEYS.values() for key in keys),
        "completion_percent",
        "time_actual_minutes",
        "actual_time",
        "duration_minutes",
        "notes",
        "completion_notes",
        "reason_for_canceling",
        "cancelled",
        "cancellation_category",
        "emotions",
        "extra",
        "paused",
        "pause_reason",
        "pause_completion_percentage",
        "time_spent_before_pause",
        "postpone_history",
        "postpone_reason",
        "postponed_at",
        "postponed_until",
        "emotion_values",
        *PENDING_ATTEMPT_KEYS,
    }
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LATE_STATUSES = ("draft", "initialized")


_EMPTY_OUTCOME: dict[str, Any] = {
    **dict.fromkeys(OUTCOME_KEYS),
    "completion_percent": None,
    "minutes_spent": None,
    "notes": "",
    "cancel_reason": None,
}


def _status(status: str, is_completed: bool | None, actual: dict[str, Any], cancelled: Any) -> str:
    status = status.strip().lower()
    if status in ("active", "completed", "cancelled", *_LATE_STATUSES):
        return status
    if status:
        raise CellError(
            f"{shorten(status)} is not one of active, completed, cancelled, draft, initialized"
        )
    # Before v2 there was no status: is_completed is True for cancelled rows too.
    if is_completed:
        return "cancelled" if actual.get("cancelled") is True or cancelled else "completed"
    return "active"


def _flat_disagrees(cell: dict[str, str], values: dict[str, Any]) -> bool:
    for flat, column in FLAT_COPIES.items():
        outcome = values[column]
        copy = cell.get(flat)
        if outcome is None or not copy:
            continue
        try:
            number = parse_number(copy.strip())
        except CellError:
            continue  # the flat copies are ignored; an unreadable one changes nothing
        if number is not None and abs(number - outcome) > 0.5:
            return True
    return False


_stamps: dict[tuple[str, ZoneInfo], dt.datetime | None] = {}


def _stamp(text: str, tz: ZoneInfo) -> dt.datetime | None:
    """parse_timestamp with a small cache: created_at and initialized_at often agree."""
    key = (text, tz)
    if key in _stamps:
        return _stamps[key]
    if len(_stamps) > 4096:
        _stamps.clear()
    value = _stamps[key] = parse_timestamp(text, tz)
    return value


def parse_instance(header: Header, cells: list[str], line: int, tz: ZoneInfo) -> AttemptRow:
    check_shape(header, cells, INSTANCE_REQUIRED)
    n = len(cells)
    cell = {name: cells[i] for name, i in header.index.items() if i < n}
    get = cell.get
    # Which column is being read, for the message if it turns out to be invalid.
    column = "instance_id"
    try:
        legacy_id = get("instance_id", "").strip()
        if not legacy_id:
            raise CellError("empty: every attempt needs an instance_id")
        if len(legacy_id) > LEGACY_ID_MAX:
            raise CellError(f"longer than {LEGACY_ID_MAX} characters")
        column = "task_id"
        task_legacy_id = get("task_id", "").strip()
        if len(task_legacy_id) > LEGACY_ID_MAX:
            raise CellError(f"longer than {LEGACY_ID_MAX} characters")
        column = "task_name"
        task_name = _name(get("task_name", ""), column)
        column = "task_version"
        version = parse_int(get("task_version", "").strip()) or 1
        if version < 1:
            raise CellError(f"{version} is not a version (1 or more)")
        column = "created_at"
        created = _stamp(get("created_at", ""), tz)
        column = "initialized_at"
        initialized = _stamp(get("initialized_at", ""), tz) or created
        if initialized is None:
            raise CellError("empty, and created_at is empty too")
        column = "started_at"
        started = _stamp(get("started_at", ""), tz)
        column = "completed_at"
        completed = _stamp(get("completed_at", ""), tz)
        column = "cancelled_at"
        cancelled = _stamp(get("cancelled_at", ""), tz)
        column = "predicted"
        predicted = parse_json_object(get("predicted", ""))
        column = "actual"
        actual = parse_json_object(get("actual", ""))
        column = "predicted"
        values: dict[str, Any] = {}
        before = _prediction(predicted, values)
        column = "actual"
        after, extra = _outcome(actual, values)
        column = "is_completed"
        is_completed = parse_bool(get("is_completed", "").strip())
        column = "is_deleted"
        deleted = parse_bool(get("is_deleted", "").strip()) or False
        column = "status"
        status = _status(get("status", ""), is_completed, actual, cancelled)
        column = "due_at"
        values["due_at"] = _due(get("due_at", ""), tz)
        values["task_version"] = version
        values["initialized_at"] = initialized
        values["postponed_at"] = values["postponed_until"] = None
        column = "actual"
        open_ = status not in ("completed", "cancelled")
        late_extra, paused, pending = _late(actual, predicted, values, open_, tz)
    except CellError as exc:
        exc.column = exc.column or column
        raise
    if late_extra:
        extra = {**late_extra, **extra}
    try:
        before, felt = _felt(predicted, before)
        if felt:
            extra = {**extra, INTENSITIES_BEFORE: felt}
        after, felt = _felt(actual, after)
        if felt:
            extra = {**extra, INTENSITIES_AFTER: felt}
    except CellError as exc:
        exc.column = exc.column or column
        raise
    values["started_at"] = started
    values["completed_at"] = None
    values["cancelled_at"] = None
    if values["minutes_spent"] is None:
        values["minutes_spent"] = 0.0
    if status == "draft":
        # Made by hand or by a routine, its prediction not saved yet: open, not started.
        status = "active"
        extra = {**extra, "legacy_status": "draft"}
    elif status == "initialized":
        # Initialized and not running: not started yet, or paused (its clock stopped).
        status = "active"
        paused = paused or "pauses" in late_extra or started is not None
    if status == "completed":
        values["status"] = "completed"
        values["completed_at"] = completed or started or initialized
        values["cancel_reason"] = None
        values.update(measures_for(values))
    else:
        values.update(_NO_MEASURES)
        if status == "active":
            # Only one attempt per person may be running; a legacy attempt that was
            # started and never finished comes in paused (its clock stopped).
            values["status"] = "paused" if started or paused else "initialized"
            values["cancel_reason"] = None
        else:
            values["status"] = "cancelled"
            values["cancelled_at"] = cancelled or completed or started or initialized
            values["cancel_reason"] = values["cancel_reason"] or NO_CANCEL_REASON
    if status != "cancelled":
        values["cancel_category"] = None
    return AttemptRow(
        line=line,
        legacy_id=legacy_id,
        task_legacy_id=task_legacy_id,
        task_name=task_name,
        values=values,
        emotions_before=before,
        emotions_after=after,
        extra=extra,
        deleted=deleted,
        flat_disagrees=_flat_disagrees(cell, values),
        pending=pending,
    )


def measures_for(values: dict[str, Any]) -> dict[str, Any]:
    """The stored measures of a completed attempt, from the values being stored."""
    return compute_measures(
        AttemptFacts(
            actual_relief=values["actual_relief"],
            expected_relief=values["expected_relief"],
            actual_cognitive_load=values["actual_cognitive_load"],
            actual_emotional_load=values["actual_emotional_load"],
            actual_physical_load=values["actual_physical_load"],
            completion_percent=values["completion_percent"],
            minutes_spent=values["minutes_spent"],
            time_estimate_minutes=values["time_estimate_minutes"],
            initialized_at=values["initialized_at"],
            started_at=values["started_at"],
        )
    )


# --- logs.csv ---------------------------------------------------------------------------


def log_header_problem(header: Header) -> tuple[str, str] | None:
    missing = missing_columns(header, LOG_REQUIRED)
    if missing:
        return missing[0], "required column missing from the header"
    return None


def _log_scale(row: Row, column: str) -> int | None:
    value = _cell(column, parse_number, row.get(column).strip())
    if value is None:
        return None
    if not 0 <= value <= 10:
        raise CellError(f"{value:g} is outside the prototype's 0–10 scale", column)
    return scale_value(value * 10, column)


def parse_log(header: Header, cells: list[str], line: int, tz: ZoneInfo) -> AttemptRow:
    """A prototype log entry: one completed attempt of the task with that name."""
    check_shape(header, cells, LOG_REQUIRED)
    row = Row(header, cells)
    # A cell missing in the middle of a row moves every later value one column left
    # (or right); a time anywhere but in `timestamp` is the tell-tale sign.
    for name in header.names:
        if name != "timestamp" and looks_like_timestamp(row.get(name).strip()):
            raise CellError("holds a time: the cells of this row are shifted", name)
    when = _cell("timestamp", parse_timestamp, row.get("timestamp").strip(), tz)
    if when is None:
        raise CellError("empty: every log entry needs a time", "timestamp")
    task_name = _name(row.get("task"), "task")
    if not task_name:
        raise CellError("empty: every log entry names its task", "task")
    completion = _cell("completion_percent", parse_number, row.get("completion_percent").strip())
    estimate = _cell("time_estimate_minutes", parse_number, row.get("time_estimate_minutes"))
    spent = _cell("time_actual_minutes", parse_number, row.get("time_actual_minutes"))
    comment = row.get("comment")
    if len(comment) > NOTES_MAX:
        raise CellError(f"longer than {NOTES_MAX} characters", "comment")
    values: dict[str, Any] = dict.fromkeys(ATTEMPT_VALUE_COLUMNS)
    values.update(
        task_version=1,
        status="completed",
        initialized_at=when,
        completed_at=when,
        expected_aversion=_log_scale(row, "aversion_level"),
        expected_relief=_log_scale(row, "relief_prediction"),
        actual_relief=_log_scale(row, "relief_actual"),
        # The prototype saved completion already as a percent (its 0–10 slider × 10).
        completion_percent=_cell(
            "completion_percent", scale_value, completion, "completion_percent", 200
        ),
        time_estimate_minutes=_cell(
            "time_estimate_minutes", minutes_value, estimate, "time_estimate_minutes"
        ),
        minutes_spent=_cell("time_actual_minutes", minutes_value, spent, "time_actual_minutes")
        or 0.0,
        description="",
        notes=comment,
    )
    values.update(measures_for(values))
    extra: dict[str, Any] = {}
    blocker = row.get("blocker_type").strip()
    if blocker and blocker != "None":
        extra["blocker_type"] = blocker
    overextension = _log_scale(row, "perceived_overextension")
    if overextension is not None:
        extra["perceived_overextension"] = overextension
    # Logs have no id: the content is the identity (a repeated export re-imports nothing).
    content = json.dumps({name: row.get(name) for name in LOG_COLUMNS}, sort_keys=True)
    return AttemptRow(
        line=line,
        legacy_id=legacy_key("log:", content),
        task_legacy_id="",
        task_name=task_name,
        values=values,
        emotions_before=[],
        emotions_after=[],
        extra=extra,
    )

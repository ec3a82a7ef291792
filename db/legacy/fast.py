"""The per-row hot path of ``task_instances.csv``: well-formed rows, straight to COPY text.

A big import spends nearly all of its Python time here, a million times over.
:class:`FastInstances` reads the common, well-formed row with precomputed column
positions and no per-cell bookkeeping, and returns the values in the order of
:data:`~db.legacy.rows.ATTEMPT_VALUE_COLUMNS`. Anything unusual (a refused cell, an
alias written as a string, a row longer than its header...) makes it give up and the
caller runs the precise :func:`~db.legacy.rows.parse_instance`, which either reads the
row too or raises the error the report shows. The fast path therefore never decides
what is invalid or what a message says; it must only agree with the precise path on
the rows it accepts (``tests/unit/test_legacy_fast.py`` checks that it does).

:func:`copy_fields` turns values into PostgreSQL ``COPY`` text, the same text psycopg's
dumpers would send for them.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from db.legacy.cells import _TIMESTAMP
from db.legacy.cells import CellError
from db.legacy.cells import json_number
from db.legacy.cells import names_from_json
from db.legacy.cells import parse_number
from db.legacy.reader import Header
from db.legacy.rows import _LATE_STATUSES
from db.legacy.rows import ATTEMPT_VALUE_COLUMNS
from db.legacy.rows import INSTANCE_REQUIRED
from db.legacy.rows import LEGACY_ID_MAX
from db.legacy.rows import NO_CANCEL_REASON
from db.legacy.rows import AttemptRow
from db.legacy.rows import _emotion_names
from db.legacy.rows import _status
from db.measures import behavioral_score
from db.measures import proactive
from db.measures import procrastination
from db.models import CONTEXT_MAX
from db.models import DESCRIPTION_MAX
from db.models import NOTES_MAX
from db.models import TASK_NAME_MAX

_CACHE_MAX = 4096
_BOOLS: dict[str, bool | None] = {"True": True, "False": False, "true": True, "false": False}
_BOOLS[""] = None
# task_version as pandas writes it: "1", "2.0"; "" is version 1.
_VERSIONS: dict[str, int] = {"": 1}
for _v in range(1, 1001):
    _VERSIONS[str(_v)] = _VERSIONS[f"{_v}.0"] = _v
_NONE_CONTEXTS = (None, "", "None")
# UTC offsets in whole minutes, as COPY text: -23:59 ... +23:59.
_OFFSETS: dict[dt.timedelta, str] = {}
for _m in range(-24 * 60 + 1, 24 * 60):
    _sign = "-" if _m < 0 else "+"
    _OFFSETS[dt.timedelta(minutes=_m)] = f"{_sign}{abs(_m) // 60:02d}:{abs(_m) % 60:02d}"
_NO_MEASURES = (None,) * 11
_NULL = "\\N"
_MINUTES_MAX = 2.0**63
_NO_MEASURES_TEXT = "\t".join([_NULL] * 11)
_LATE_TAIL = "\t" + "\t".join([_NULL] * 3)
# The keys of the early layouts' JSON details, all read by the fast path.
# Listed, not derived from the precise path's: a key the precise path learns to read
# (emotion_values, say) must not be skipped here in silence.
_PREDICTED_KEYS = frozenset(
    {
        "expected_relief",
        "expected_cognitive_load",
        "expected_cognitive",
        "expected_emotional_load",
        "expected_emotional",
        "expected_physical_load",
        "motivation",
        "expected_aversion",
        "time_estimate_minutes",
        "estimate",
        "emotions",
        "physical_context",
        "description",
    }
)
_ACTUAL_KEYS = frozenset(
    {
        "actual_relief",
        "actual_cognitive",
        "actual_emotional",
        "actual_physical",
        "completion_percent",
        "time_actual_minutes",
        "actual_time",
        "duration_minutes",
        "notes",
        "reason_for_canceling",
        "cancelled",
        "emotions",
        "extra",
    }
)


class Fallback(Exception):
    """The fast path gives up on this row: the precise parser decides."""


def _text(value: Any, limit: int) -> str:
    """A free-text JSON value that needs no message: anything else takes the precise path
    (which also reads numbers as text, as :func:`~db.legacy.cells.text_value` does)."""
    if type(value) is not str or len(value) > limit or "\x00" in value:
        raise Fallback
    return value


def _score(value: Any, high: float = 100) -> int | None:
    kind = type(value)
    if kind is float:
        if value != value:  # NaN: pandas' "unknown"
            return None
        if 0 <= value <= high:
            return math.floor(value + 0.5)
        raise Fallback
    if kind is int:
        if 0 <= value <= high:
            return math.floor(float(value) + 0.5)
        raise Fallback
    if value is None:
        return None
    raise Fallback  # strings, booleans, lists...: the precise path


class FastInstances:
    """Parse well-formed attempt rows of one file (one header, one time zone)."""

    def __init__(self, header: Header, tz: ZoneInfo) -> None:
        index = header.index
        width = len(header.names)
        self.width = width
        self.needed = header.cells_needed(INSTANCE_REQUIRED)
        # Columns absent from the header read the padding cell past the last one.
        (
            self.i_id,
            self.i_task,
            self.i_name,
            self.i_version,
            self.i_created,
            self.i_initialized,
            self.i_started,
            self.i_completed,
            self.i_cancelled,
            self.i_predicted,
            self.i_actual,
            self.i_is_completed,
            self.i_is_deleted,
            self.i_status,
            self.i_relief,
            self.i_cognitive,
            self.i_emotional,
            self.i_due,
        ) = (
            index.get(name, width)
            for name in (
                "instance_id",
                "task_id",
                "task_name",
                "task_version",
                "created_at",
                "initialized_at",
                "started_at",
                "completed_at",
                "cancelled_at",
                "predicted",
                "actual",
                "is_completed",
                "is_deleted",
                "status",
                "relief_score",
                "cognitive_load",
                "emotional_load",
                "due_at",
            )
        )
        self.tz = tz
        self._stamps: dict[str, tuple[dt.datetime, str]] = {}
        self._minutes: dict[str, float | None] = {}
        self._flat: dict[str, float | None] = {}

    def _stamp(self, text: str) -> tuple[dt.datetime, str] | None:
        """The time as naive UTC (for arithmetic) and as COPY text, or None if empty.

        The text is the local time with its UTC offset appended: the same instant as
        :func:`parse_timestamp` gives, without building and printing an aware datetime.
        """
        if not text:
            return None
        value = self._stamps.get(text)
        if value is None:
            if not _TIMESTAMP.fullmatch(text):
                raise Fallback
            naive = dt.datetime.fromisoformat(text)
            offset = self.tz.utcoffset(naive)
            suffix = _OFFSETS.get(offset)  # type: ignore[arg-type]
            if suffix is None:
                raise Fallback  # an offset with seconds (local mean time): rare
            if len(self._stamps) >= _CACHE_MAX:
                self._stamps.clear()
            value = self._stamps[text] = (naive - offset, text + suffix)  # type: ignore[operator]
        return value

    def _minutes_of(self, value: Any) -> float | None:
        kind = type(value)
        if kind is float or kind is int:
            number = float(value)
            if number != number:
                return None
        elif value is None:
            return None
        elif kind is str:
            cached = self._minutes.get(value, self)
            if cached is self:
                if len(self._minutes) >= _CACHE_MAX:
                    self._minutes.clear()
                cached = self._minutes[value] = json_number(value, "")
            if cached is None:
                return None
            number = cached  # type: ignore[assignment]
        else:
            raise Fallback
        if not 0 <= number < _MINUTES_MAX:
            # Negative or infinite: refused by the precise path. Huge: orjson reads an
            # integer beyond 64 bits as a float; the precise path reads it exactly.
            raise Fallback
        return number

    def _flat_number(self, text: str) -> float | None:
        cached = self._flat.get(text, self)
        if cached is self:
            if len(self._flat) >= _CACHE_MAX:
                self._flat.clear()
            try:
                cached = parse_number(text.strip())
            except CellError:
                cached = None  # an unreadable flat copy changes nothing
            self._flat[text] = cached
        return cached  # type: ignore[return-value]

    def parse(self, cells: list[str]) -> tuple[Any, ...]:
        """``(legacy_id, task_legacy_id, task_name, fields, before, after, extra, deleted,
        flat_disagrees)`` of a well-formed row; raises :class:`Fallback` otherwise.

        ``fields`` is the COPY text of the values in ATTEMPT_VALUE_COLUMNS order, as
        :func:`copy_fields` writes them (times in their own zone: the same instants).
        """
        n = len(cells)
        width = self.width
        if n == width:
            c = [*cells, ""]
        elif self.needed <= n < width:
            c = cells + [""] * (width + 1 - n)
        else:
            raise Fallback
        legacy_id = c[self.i_id].strip()
        task_legacy_id = c[self.i_task].strip()
        task_name = c[self.i_name].strip()
        if (
            not legacy_id
            or len(legacy_id) > LEGACY_ID_MAX
            or len(task_legacy_id) > LEGACY_ID_MAX
            or len(task_name) > TASK_NAME_MAX
        ):
            raise Fallback
        version = _VERSIONS.get(c[self.i_version].strip())
        if version is None:
            raise Fallback
        stamp = self._stamp
        created_text = c[self.i_created]
        created = stamp(created_text)
        initialized_text = c[self.i_initialized]
        if initialized_text == created_text:
            initialized = created
        else:
            initialized = stamp(initialized_text) or created
        if initialized is None:
            raise Fallback
        started = stamp(c[self.i_started])
        completed = stamp(c[self.i_completed])
        cancelled = stamp(c[self.i_cancelled])
        # orjson reads what json.dumps wrote, faster; it refuses NaN and a few other
        # things the standard module accepts, which then take the precise path.
        try:
            text = c[self.i_predicted]
            predicted = orjson.loads(text) if text else {}
            text = c[self.i_actual]
            actual = orjson.loads(text) if text else {}
        except orjson.JSONDecodeError:
            raise Fallback from None
        if type(predicted) is not dict or type(actual) is not dict:
            raise Fallback
        # Other keys (the later export's pauses, postponements, categories, notes and
        # intensities, or keys the report names as not imported): the precise path.
        if not _PREDICTED_KEYS.issuperset(predicted) or not _ACTUAL_KEYS.issuperset(actual):
            raise Fallback

        get = predicted.get
        value = get("expected_cognitive_load")
        cognitive = _score(get("expected_cognitive") if value is None else value)
        value = get("expected_emotional_load")
        emotional = _score(get("expected_emotional") if value is None else value)
        expected_relief = _score(get("expected_relief"))
        physical = _score(get("expected_physical_load"))
        motivation = _score(get("motivation"))
        aversion = _score(get("expected_aversion"))
        value = get("time_estimate_minutes")
        estimate = self._minutes_of(get("estimate") if value is None else value)
        context = get("physical_context")
        if context is not None:
            context = _text(context, CONTEXT_MAX)
            if context in _NONE_CONTEXTS:
                context = None
        description = get("description")
        if description is not None:
            description = _text(description, DESCRIPTION_MAX)
        description = description or ""
        emotions = get("emotions")
        before = _emotion_names(names_from_json(emotions), "emotions") if emotions else []

        after: list[str] = []
        extra: dict[str, Any] = {}
        if actual:
            get = actual.get
            relief = _score(get("actual_relief"))
            actual_cognitive = _score(get("actual_cognitive"))
            actual_emotional = _score(get("actual_emotional"))
            actual_physical = _score(get("actual_physical"))
            completion = _score(get("completion_percent"), 200)
            value = get("time_actual_minutes")
            if value is None:
                value = get("actual_time")
                if value is None:
                    value = get("duration_minutes")
            spent = self._minutes_of(value)
            notes = get("notes")
            notes = _text(notes, NOTES_MAX) if notes is not None else ""
            reason = get("reason_for_canceling")
            if reason is not None:
                reason = _text(reason, NOTES_MAX)
            emotions = get("emotions")
            if emotions:
                after = _emotion_names(names_from_json(emotions), "emotions")
            if get("extra"):
                # Kept as read, so the precise path's json module reads it (orjson
                # reads integers beyond 64 bits as floats).
                raise Fallback
        else:
            relief = actual_cognitive = actual_emotional = actual_physical = None
            completion = spent = reason = None
            notes = ""

        deleted = _BOOLS.get(c[self.i_is_deleted].strip(), self)
        is_completed = _BOOLS.get(c[self.i_is_completed].strip(), self)
        if deleted is self or is_completed is self:
            raise Fallback
        status = _status(c[self.i_status], is_completed, actual, cancelled)  # type: ignore[arg-type]
        if status in _LATE_STATUSES:
            raise Fallback
        due = stamp(c[self.i_due])
        if spent is None:
            spent = 0.0
        completed_at = cancelled_at = None
        measures = _NO_MEASURES
        if status == "completed":
            completed_at = completed or started or initialized
            reason = None
            measures = _measures(
                relief,
                expected_relief,
                actual_cognitive,
                actual_emotional,
                actual_physical,
                completion,
                spent,
                estimate,
                # delay_minutes: the difference of the two instants.
                (started[0] - initialized[0]).total_seconds() / 60 if started else None,
            )
        elif status == "active":
            status = "paused" if started else "initialized"
            reason = None
        else:
            cancelled_at = cancelled or completed or started or initialized
            reason = reason or NO_CANCEL_REASON

        flat = False
        for text, outcome in (
            (c[self.i_relief], relief),
            (c[self.i_cognitive], actual_cognitive),
            (c[self.i_emotional], actual_emotional),
        ):
            if outcome is None or not text:
                continue
            number = self._flat_number(text)
            if number is not None and abs(number - outcome) > 0.5:
                flat = True
                break
        if measures is _NO_MEASURES:
            tail = _NO_MEASURES_TEXT
        else:
            tail = "\t".join([_NULL if m is None else repr(m) for m in measures])
        # The fields of ATTEMPT_VALUE_COLUMNS in COPY text (see copy_fields).
        text = (
            f"{version}\t{status}\t{initialized[1]}\t"
            f"{started[1] if started else _NULL}\t"
            f"{completed_at[1] if completed_at else _NULL}\t"
            f"{cancelled_at[1] if cancelled_at else _NULL}\t"
            f"{spent!r}\t"
            f"{_NULL if aversion is None else aversion}\t"
            f"{_NULL if expected_relief is None else expected_relief}\t"
            f"{_NULL if cognitive is None else cognitive}\t"
            f"{_NULL if emotional is None else emotional}\t"
            f"{_NULL if physical is None else physical}\t"
            f"{_NULL if motivation is None else motivation}\t"
            f"{_NULL if estimate is None else repr(estimate)}\t"
            f"{_NULL if context is None else copy_text(context)}\t"
            f"{copy_text(description)}\t"
            f"{_NULL if relief is None else relief}\t"
            f"{_NULL if actual_cognitive is None else actual_cognitive}\t"
            f"{_NULL if actual_emotional is None else actual_emotional}\t"
            f"{_NULL if actual_physical is None else actual_physical}\t"
            f"{_NULL if completion is None else completion}\t"
            f"{copy_text(notes)}\t"
            f"{_NULL if reason is None else copy_text(reason)}\t"
            f"{tail}\t"
            # due_at, cancel_category, postponed_at, postponed_until
            f"{due[1] if due else _NULL}{_LATE_TAIL}"
        )
        return (
            legacy_id,
            task_legacy_id,
            task_name,
            text,
            before,
            after,
            extra,
            deleted or False,
            flat,
        )


def _measures(
    relief: int | None,
    expected_relief: int | None,
    cognitive: int | None,
    emotional: int | None,
    physical: int | None,
    completion: int | None,
    spent: float,
    estimate: float | None,
    delay: float | None,
) -> tuple[Any, ...]:
    """:func:`db.measures.compute_measures`, in the order of MEASURE_COLUMNS."""
    loads = [v for v in (cognitive, emotional, physical) if v is not None]
    stress = sum(loads) / len(loads) if loads else None
    net = relief - stress if relief is not None and stress is not None else None
    proc = procrastination(delay, estimate)
    return (
        stress,
        net,
        50 + net / 2 if net is not None else None,
        relief / stress if relief is not None and stress else None,
        relief - expected_relief if relief is not None and expected_relief is not None else None,
        delay,
        proc,
        proactive(delay, estimate),
        spent / estimate if spent and estimate and spent > 0 else None,
        behavioral_score(completion, estimate, spent, proc),
        relief * spent if relief is not None else None,
    )


def row_values(row: AttemptRow) -> tuple[Any, ...]:
    """The values of a row read by the precise parser, in the fast path's order."""
    values = row.values
    return tuple([values[c] for c in ATTEMPT_VALUE_COLUMNS])


def copy_text(value: str) -> str:
    """A string in COPY's text format (backslash escapes for the characters it uses)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


def _field(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return copy_text(value)
    if value is None:
        return "\\N"
    if kind is float or kind is int:
        return repr(value)  # exact; PostgreSQL reads nan and inf too
    return str(value)  # an aware datetime: ISO 8601 with its offset


def copy_fields(values: tuple[Any, ...]) -> str:
    """Values as tab-separated COPY text fields (no line end)."""
    return "\t".join(map(_field, values))

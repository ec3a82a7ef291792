"""What the import does with the files and columns of the old app's later export.

The later export (``docs/legacy-csv.md``, "The later export") brought files and columns
the web app has no home for yet. Nothing of it is dropped in silence: each is named in
the report, either as "read but not imported yet" (with what it holds) or as not
imported by design (with the reason). The tables below decide which; giving one of them
a home is one small change:

- a file: a step in :data:`db.legacy.importer.FILE_STEPS` (and out of
  :data:`PENDING_FILES`);
- a ``tasks.csv`` column: a function in :data:`db.legacy.rows.TASK_COLUMN_HANDLERS` that
  reads the cell into the :class:`~db.legacy.rows.TaskRow` (and out of
  :data:`PENDING_TASK_COLUMNS`);
- an attempt's JSON key: read in :mod:`db.legacy.rows` (and out of
  :data:`PENDING_ATTEMPT_KEYS`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from db.legacy.groups import JOB_COLUMNS_NOT_IMPORTED
from db.legacy.reader import CsvFile
from db.legacy.reader import FileUnreadable

# Files read (their rows counted) but not imported yet: what they hold.
PENDING_FILES: dict[str, str] = {}
# Files of features the web version does not have (listed as skipped).
UNSUPPORTED_FILES = (
    "user_preferences.csv",
    "survey_responses.csv",
    "popup_triggers.csv",
    "popup_responses.csv",
)

# tasks.csv columns read but not imported yet: column → what it holds.
PENDING_TASK_COLUMNS: dict[str, str] = {
    "task_type": "area of life (Work, Play, Self care, Sleep)",
    "default_initial_aversion": "default aversion for a task's first attempt",
    "completion_window_hours": "routine: completion window",
    "completion_window_days": "routine: completion window",
}
# Cells that say "nothing set" in a pending column: such a column has nothing to lose.
_UNSET: dict[str, frozenset[str]] = {}
# Attempt JSON keys read but not imported yet: key → what it holds.
PENDING_ATTEMPT_KEYS: dict[str, str] = {}

# Columns not imported by design, per file: column → why.
_OWNER = "the rows belong to the importing person"
_DERIVED = "a flat copy or a derived value: taken from the JSON details or recomputed"
NOT_IMPORTED_COLUMNS: dict[str, dict[str, str]] = {
    "tasks.csv": {
        "user_id": _OWNER,
        **dict.fromkeys(
            ("times_logged", "avg_aversion", "avg_relief", "last_logged"),
            "the prototype's running means, derived from logs.csv (imported itself)",
        ),
        "category": "the web app has no place for the prototype's category",
    },
    "task_instances.csv": {
        "user_id": _OWNER,
        **dict.fromkeys(
            (
                "procrastination_score",
                "proactive_score",
                "behavioral_score",
                "net_relief",
                "net_emotional",
                "behavioral_deviation",
                "duration_minutes",
                "delay_minutes",
                "relief_score",
                "cognitive_load",
                "mental_energy_needed",
                "task_difficulty",
                "emotional_load",
                "environmental_effect",
                "skills_improved",
                "serendipity_factor",
                "disappointment_factor",
            ),
            _DERIVED,
        ),
    },
    "emotions.csv": {"user_id": _OWNER},
    "notes.csv": {"user_id": _OWNER, "note_id": "the web app numbers notes itself"},
    "jobs.csv": JOB_COLUMNS_NOT_IMPORTED,
    "job_task_mapping.csv": {"created_at": "a task is in a group or not: no date is kept"},
}


def has_value(column: str, cell: str) -> bool:
    """Whether a pending column's cell holds something (not empty, not its default)."""
    value = cell.strip()
    return bool(value) and value.lower() not in _UNSET.get(column, frozenset())


class PendingTally:
    """Counts, per pending column or key, the rows that hold something in it."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def add(self, name: str) -> None:
        self.rows[name] = self.rows.get(name, 0) + 1

    def lines(self, filename: str, what: dict[str, str]) -> list[str]:
        return [
            f"{filename}: {name} ({what[name]}) on {count} row(s)"
            for name, count in self.rows.items()
        ]


def column_notes(filename: str, names: tuple[str, ...], used: set[str]) -> list[str]:
    """Report lines for the columns of a header the import does not read, and why."""
    reasons = NOT_IMPORTED_COLUMNS.get(filename, {})
    by_reason: dict[str, list[str]] = {}
    for name in names:
        if name in used or not name:
            continue
        by_reason.setdefault(reasons.get(name, "not a column of the old app"), []).append(name)
    return [
        f"{filename}: column(s) {', '.join(columns)} not imported: {reason}."
        for reason, columns in by_reason.items()
    ]


PREFERENCES = "user_preferences.csv"


def _cells(path: Path) -> Iterator[dict[str, str]]:
    """The rows of a small file by column name; nothing if it cannot be read."""
    try:
        records = CsvFile(path).records()
        header = next(records, None)
        if header is None:
            return
        names = [name.strip() for name in header.cells]
        for record in records:
            yield dict(zip(names, record.cells, strict=False))
    except (FileUnreadable, OSError):
        return


def preferences_zone(folder: Path) -> str | None:
    """The person's time zone as ``user_preferences.csv`` of a later export has it.

    The file holds the install's every row (``default``, anonymous browser ids, other
    accounts): the person's row is the one of the account number their tasks carry in
    ``user_id``, else the only row with an account number. ``auto`` means the zone the
    browser detected. None when there is no such row or no valid zone.
    """
    if not (folder / PREFERENCES).is_file():
        return None
    accounts = {row.get("user_id", "").strip() for row in _cells(folder / "tasks.csv")} - {""}
    rows = [row for row in _cells(folder / PREFERENCES) if row.get("user_id", "").strip().isdigit()]
    mine = [row for row in rows if row["user_id"].strip() in accounts] or rows
    if len(mine) != 1:
        return None
    name = mine[0].get("timezone", "").strip()
    if not name or name == "auto":
        name = mine[0].get("detected_tz", "").strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name

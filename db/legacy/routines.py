"""The old app's routine columns on ``tasks.csv`` (its later export), read and written.

``routine_frequency`` is ``none``, ``daily`` or ``weekly``; ``routine_days_of_week`` a JSON
list of weekdays (0 = Monday … 6 = Sunday), ``[]`` with ``daily`` meaning every day;
``routine_time`` the local time of day as ``HH:MM`` (``00:00`` by default). The old app
repeated a routine on the listed weekdays only, also a ``daily`` one with days listed: that
becomes a weekday schedule here. A routine's schedule counts from its import (see
``tasks.routine_since``): occurrences before it neither fall due nor count as missed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable

from db.legacy.cells import CellError
from db.legacy.cells import shorten
from db.models import EVERY_DAY

_TIME = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])(?::[0-5][0-9])?")
COLUMNS = ("routine_frequency", "routine_days_of_week", "routine_time")
# (frequency, weekday bits with Monday = 1, "HH:MM"), as ``tasks`` holds them.
Routine = tuple[str, int, str]


def _weekdays(text: str) -> list[int]:
    try:
        days = json.loads(text) if text.strip() else []
    except (ValueError, RecursionError):
        raise CellError("not a valid JSON list", "routine_days_of_week") from None
    if not isinstance(days, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days
    ):
        raise CellError(
            f"{shorten(text)} is not a list of weekdays 0 (Monday) to 6 (Sunday)",
            "routine_days_of_week",
        )
    return days


def parse_routine(get: Callable[[str], str]) -> Routine | None:
    """The schedule of a task row (``get`` reads a cell by column name; a column the
    file lacks reads as empty), or none if the task does not repeat."""
    frequency = get("routine_frequency").strip().lower()
    if frequency in ("", "none"):
        return None
    if frequency not in ("daily", "weekly"):
        raise CellError(f"{shorten(frequency)} is not one of none, daily, weekly", COLUMNS[0])
    days = _weekdays(get("routine_days_of_week"))
    if frequency == "weekly" and not days:
        raise CellError("a weekly routine lists at least one weekday", COLUMNS[1])
    time = get("routine_time").strip() or "00:00"
    match = _TIME.fullmatch(time)
    if match is None:
        raise CellError(f"{shorten(time)} is not a time of day HH:MM", COLUMNS[2])
    at = f"{int(match.group(1)):02d}:{match.group(2)}"
    mask = 0
    for day in days:
        mask |= 1 << day
    if not days or mask == EVERY_DAY and frequency == "daily":
        return ("daily", EVERY_DAY, at)
    return ("weekdays", mask, at)


def routine_cells(frequency: str | None, mask: int | None, time: dt.time | None) -> list[str]:
    """The three columns for a task's schedule, as the old app wrote them."""
    if frequency is None or mask is None or time is None:
        return ["none", "[]", "00:00"]
    if frequency == "daily":
        return ["daily", "[]", f"{time:%H:%M}"]
    days = [day for day in range(7) if mask & (1 << day)]
    return ["weekly", json.dumps(days), f"{time:%H:%M}"]

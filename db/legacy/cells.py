"""Parsers for single cells of the old app's CSV files.

Each parser takes the raw cell text and returns a Python value, or raises
:class:`CellError` with a reason a person can act on. They are deliberately strict:
a value the old app could not have written is refused rather than guessed at.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc

# pandas writes numbers like 180.0, 3.417, 60; float() alone would also accept "1_000",
# "inf" and surrounding whitespace, none of which the old app ever wrote.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?")
_NAN = frozenset({"nan", "NaN", "NAN"})


class CellError(ValueError):
    """A cell that cannot be read; ``column`` names where (set by the caller if empty)."""

    def __init__(self, reason: str, column: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.column = column


# --- spreadsheet formulas --------------------------------------------------------------
#
# A spreadsheet opening a CSV file runs a cell that starts with = + - @ (or a tab or a
# carriage return) as a formula: a task named =HYPERLINK("http://x","y") became a link.
# The CSV files this app writes (the export, the refused rows of an import) put a single
# quote before such a cell (OWASP's advice): spreadsheets then show it as text. The import
# takes it off again, so export → import gives back every value. The exact rule:
#
# - Writing: a value that starts with any number of ' followed by one of = + - @ tab CR
#   gets one more ' in front ("=x" → "'=x", "'=x" → "''=x"), unless the whole value is a
#   plain number ("-5", "+2.5", "-1e3"): a spreadsheet reads that as a number, never as a
#   formula, and a numeric column (a negative delay) must stay a number.
# - Reading (every cell of every file): a cell that starts with one or more ' followed by
#   one of those characters loses one '. Nothing else changes.
#
# Reading undoes exactly what writing does, for any value. Files of the old app never had
# the quote and read as before, with one exception no real folder is known to have: a
# text the person began with ' and one of those characters (it loses the ').
_FORMULA = re.compile(r"'*[=+\-@\t\r]")
_GUARDED = re.compile(r"'+[=+\-@\t\r]")
_FORMULA_FIRST = frozenset("'=+-@\t\r")


def guard_formula(value: str) -> str:
    """The cell to write for ``value`` so a spreadsheet shows it as text (rule above)."""
    if value[:1] in _FORMULA_FIRST and _FORMULA.match(value) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def guard_row(cells: list[str]) -> list[str]:
    return [guard_formula(cell) for cell in cells]


def unguard_formula(cell: str) -> str:
    """The value a cell written by :func:`guard_formula` stands for."""
    return cell[1:] if _GUARDED.match(cell) else cell


def shorten(value: str, limit: int = 40) -> str:
    """The value quoted for a message, cut so one bad cell cannot flood the report."""
    flat = value.replace("\r", "\\r").replace("\n", "\\n")
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return repr(flat)


def parse_number(text: str) -> float | None:
    """A pandas-style number; empty (or pandas' NaN) means unknown."""
    if not text:
        return None
    if _NUMBER.fullmatch(text):
        number = float(text)
        if math.isinf(number):  # "1e999": a float can't hold it
            raise CellError(f"{shorten(text)} is too large a number")
        return number
    if text in _NAN:
        return None
    raise CellError(f"{shorten(text)} is not a number")


def parse_bool(text: str) -> bool | None:
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if not text:
        return None
    raise CellError(f"{shorten(text)} is not True or False")


def parse_int(text: str) -> int | None:
    """An integer written as ``2`` or ``2.0`` (pandas turns int columns with gaps to float)."""
    value = parse_number(text)
    if value is None:
        return None
    if not value.is_integer():
        raise CellError(f"{shorten(text)} is not a whole number")
    return int(value)


def parse_timestamp(text: str, tz: ZoneInfo) -> dt.datetime | None:
    """Naive local ``YYYY-MM-DD HH:MM[:SS]`` in ``tz`` → an aware UTC datetime.

    Local times that fall into a daylight-saving gap or fold resolve like
    ``zoneinfo`` does by default (``fold=0``: the first of two, the offset before a gap).
    """
    if not text:
        return None
    if not _TIMESTAMP.fullmatch(text):
        raise CellError(f"{shorten(text)} is not a time like 2025-11-21 14:03")
    try:
        naive = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise CellError(f"{shorten(text)} is not a valid date and time ({exc})") from None
    return naive.replace(tzinfo=tz).astimezone(UTC)


def looks_like_timestamp(text: str) -> bool:
    return bool(_TIMESTAMP.fullmatch(text))


def parse_json_object(text: str) -> dict[str, Any]:
    """A JSON object written by Python's ``json.dumps``; an empty cell is ``{}``."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "too deeply nested"
        raise CellError(f"not valid JSON ({reason})") from None
    if not isinstance(value, dict):
        raise CellError(f"JSON is a {type(value).__name__}, expected an object {{...}}")
    return value


def parse_json_list_of_names(text: str) -> list[str]:
    """A JSON list of strings (``categories``: emotion names); an empty cell is ``[]``."""
    if not text:
        return []
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise CellError("not a valid JSON list") from None
    return names_from_json(value)


def names_from_json(value: Any) -> list[str]:
    """Validate a decoded list of names: strings, stripped, empty ones dropped."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise CellError(f"expected a list of names, got {type(value).__name__}")
    names = []
    for item in value:
        if not isinstance(item, str):
            raise CellError(f"expected a list of names, found {item!r}")
        name = item.strip()
        if name:
            names.append(name)
    return names


def json_number(value: Any, key: str) -> float | None:
    """A number inside a JSON cell: a number or a numeric string; null/NaN/"" = unknown."""
    if value is None:
        return None
    # bool is an int subclass; True is never a valid measurement.
    if isinstance(value, bool):
        raise CellError(f"{key} is {value!r}, expected a number")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        stripped = value.strip()
        try:
            parsed = parse_number(stripped)
        except CellError:
            raise CellError(f"{key} is {shorten(value)}, expected a number") from None
        if parsed is None:
            return None
        number = parsed
    else:
        raise CellError(f"{key} is a {type(value).__name__}, expected a number")
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise CellError(f"{key} is infinite")
    return number


def round_half_up(value: float) -> int:
    # round() rounds halves to even (44.5 → 44); people expect 44.5 → 45.
    return math.floor(value + 0.5)


def scale_value(value: float | None, key: str, high: float = 100) -> int | None:
    """A 0–``high`` score stored as an integer; outside the range is invalid."""
    if value is None:
        return None
    if not 0 <= value <= high:
        raise CellError(f"{key} is {value:g}, outside 0–{high:g}")
    return round_half_up(value)


def minutes_value(value: float | None, key: str) -> float | None:
    if value is not None and value < 0:
        raise CellError(f"{key} is {value:g}, minutes cannot be negative")
    return value


def text_value(value: Any, key: str, limit: int) -> str | None:
    """A free-text JSON value; ``None``/null means nothing was written."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise CellError(f"{key} is a {type(value).__name__}, expected text")
    text = str(value)
    if len(text) > limit:
        raise CellError(f"{key} is {len(text)} characters long, at most {limit} allowed")
    if "\x00" in text:  # PostgreSQL text can't hold NUL: refuse here, with the line
        raise CellError(f"{key} contains a NUL character")
    return text

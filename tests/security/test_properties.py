"""Property-based tests: whatever text arrives, the answer is a clear refusal or a valid row.

The legacy CSV row parsers for attempts and log entries already have such tests in
tests/unit/test_legacy_parsing.py; here are the form parsers (over HTTP), the emotion list
parser, the legacy task and emotion parsers and the CSV reader on arbitrary bytes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from hypothesis import HealthCheck
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy import text

from db.legacy.cells import CellError
from db.legacy.reader import CsvFile
from db.legacy.reader import FileUnreadable
from db.legacy.reader import Header
from db.legacy.rows import parse_emotion
from db.legacy.rows import parse_task
from db.models import EMOTION_NAME_MAX
from db.models import PREDICTION_SCALES
from db.models import TASK_KINDS
from db.models import TASK_NAME_MAX
from service.forms import parse_new_emotions
from tests.conftest import Browser
from tests.security import web
from tests.unit.test_legacy_parsing import instance as legacy_instance
from tests.unit.test_legacy_parsing import parse as parse_legacy_instance

UTC = ZoneInfo("UTC")
FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# What people (and attackers) type into number boxes.
number_text = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=8),
    st.sampled_from(["sNaN", "1e999", "9" * 50, "\u0663", " 7 ", "0x1", "1_000", "+5", "-0"]),
)


@given(st.text())
def test_new_emotions_parse_into_clean_distinct_names(raw: str) -> None:
    names = parse_new_emotions(raw)
    lowered = [n.lower() for n in names]
    assert len(set(lowered)) == len(lowered)
    for name in names:
        assert name and name == " ".join(name.split()) and "," not in name
        assert all(part in raw for part in name.split())
    assert parse_new_emotions(", ".join(names)) == names


@pytest.fixture(scope="module")
def person(module_app: Flask) -> Browser:
    someone = Browser(module_app.test_client())
    someone.signup("prop")
    someone.create_task("Property task")
    return someone


def _latest_attempt(app: Flask) -> dict[str, Any] | None:
    with app.extensions["db_engine"].connect() as conn:
        row = conn.execute(text("SELECT * FROM attempts ORDER BY id DESC LIMIT 1")).mappings()
        found = row.first()
        return dict(found) if found else None


@FAST
@given(
    scales=st.lists(number_text, min_size=len(PREDICTION_SCALES), max_size=len(PREDICTION_SCALES)),
    estimate=number_text,
    context=st.text(max_size=250),
)
@example(scales=["50"] * 6, estimate="sNaN", context="Home")
def test_the_prediction_form_stores_a_valid_row_or_refuses_clearly(
    module_app: Flask, person: Browser, scales: list[str], estimate: str, context: str
) -> None:
    task_id = person.latest_id("tasks")
    data = dict(zip(PREDICTION_SCALES, scales, strict=True))
    data.update(time_estimate_minutes=estimate, physical_context=context)
    before = web.snapshot(module_app)
    response = person.post(f"/tasks/{task_id}/initialize", data)
    assert response.status_code in (302, 400), response.status_code
    if response.status_code == 400:
        assert 'class="error"' in response.get_data(as_text=True)
        assert web.snapshot(module_app) == before
        return
    row = _latest_attempt(module_app)
    assert row is not None and row["status"] == "initialized"
    for name, typed in zip(PREDICTION_SCALES, scales, strict=True):
        assert row[name] == int(typed.strip()) and 0 <= int(typed.strip()) <= 100
    minutes = row["time_estimate_minutes"]
    assert minutes is None or (math.isfinite(minutes) and 0 <= minutes <= 100_000)
    assert (row["physical_context"] or "") == context.strip()


@FAST
@given(
    relief=number_text,
    percent=number_text,
    minutes=number_text,
    notes=st.text(max_size=100),
)
@example(relief="50", percent="200", minutes="1e999", notes="")
def test_the_outcome_form_stores_a_valid_row_or_refuses_clearly(
    module_app: Flask, person: Browser, relief: str, percent: str, minutes: str, notes: str
) -> None:
    task_id = person.latest_id("tasks")
    person.post(f"/tasks/{task_id}/quick-initialize")
    attempt_id = person.latest_id("attempts")
    data = {
        "actual_relief": relief,
        "actual_cognitive_load": "10",
        "actual_emotional_load": "20",
        "actual_physical_load": "30",
        "completion_percent": percent,
        "minutes_spent": minutes,
        "notes": notes,
    }
    before = web.snapshot(module_app)
    response = person.post(f"/attempts/{attempt_id}/complete", data)
    assert response.status_code in (302, 400), response.status_code
    row = _latest_attempt(module_app)
    assert row is not None
    if response.status_code == 400:
        assert web.snapshot(module_app) == before and row["status"] == "initialized"
        return
    assert row["status"] == "completed"
    assert row["actual_relief"] == int(relief.strip())
    assert 0 <= row["completion_percent"] <= 200
    assert math.isfinite(row["minutes_spent"]) and 0 <= row["minutes_spent"] <= 100_000
    assert row["notes"] == notes.strip()


# --- the legacy CSV parser (db/legacy) ---------------------------------------------------

TASK_HEADER = [
    "task_id",
    "name",
    "description",
    "type",
    "version",
    "created_at",
    "is_recurring",
    "categories",
    "default_estimate_minutes",
    "task_type",
    "routine_frequency",
]
cell = st.text(max_size=15) | st.sampled_from(
    ["", "True", "False", "2025-11-21 14:03", "45.0", "-3", "[]", '["Calm"]', "recurring", "nan"]
)


@settings(max_examples=150, deadline=None)
@given(
    header=st.permutations(TASK_HEADER).map(list),
    cells=st.lists(cell, max_size=len(TASK_HEADER) + 2),
)
def test_legacy_task_rows_are_valid_or_a_clear_cell_error(
    header: list[str], cells: list[str]
) -> None:
    try:
        row = parse_task(Header.from_cells(header), cells, 2, UTC)
    except CellError as exc:
        assert exc.reason and (exc.column in header or exc.column == "")
        return
    assert 1 <= len(row.name) <= TASK_NAME_MAX and row.name == row.name.strip()
    assert row.kind in TASK_KINDS and row.version >= 1
    assert row.default_estimate_minutes is None or row.default_estimate_minutes >= 0
    assert all(0 < len(e) <= EMOTION_NAME_MAX for e in row.emotions)


@given(st.lists(st.text(max_size=80), max_size=3))
def test_legacy_emotion_rows_are_a_name_or_a_clear_cell_error(cells: list[str]) -> None:
    try:
        name = parse_emotion(Header.from_cells(["emotion"]), cells)
    except CellError as exc:
        assert exc.column == "emotion" and exc.reason
        return
    assert name == name.strip() and len(name) <= EMOTION_NAME_MAX


@settings(max_examples=60, deadline=None)
@given(
    st.binary(max_size=300)
    | st.lists(st.text(max_size=20), max_size=8).map(lambda c: ",".join(c).encode())
)
def test_the_legacy_csv_reader_reads_records_or_says_the_file_is_unreadable(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("csv") / "tasks.csv"
    path.write_bytes(data)
    try:
        records = list(CsvFile(Path(path)).records())
    except FileUnreadable as exc:
        assert str(exc)
        return
    for record in records:
        assert record.line >= 1 and all(isinstance(c, str) for c in record.cells)


# Found by this suite: both used to pass as "valid" and failed later, in PostgreSQL or in a
# chart; the parser now refuses them with the line and column like any other bad cell.


def test_legacy_numbers_too_large_for_a_float_are_refused() -> None:
    header = Header.from_cells(["task_id", "name", "default_estimate_minutes"])
    with pytest.raises(CellError):
        parse_task(header, ["t1", "Gym", "1e999"], 2, UTC)


def test_legacy_json_cells_with_nul_characters_are_refused() -> None:
    # PostgreSQL text can't hold NUL: such a row fails at insert time instead of here.
    actual = json.dumps({"actual_relief": 50, "notes": "a\u0000b"})
    with pytest.raises(CellError):
        parse_legacy_instance(legacy_instance(actual=actual))

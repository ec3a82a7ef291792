"""The fast path for attempt rows agrees with the precise parser on every row it reads."""

from __future__ import annotations

import datetime as dt
import json
import math
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from db.legacy.cells import CellError
from db.legacy.fast import Fallback
from db.legacy.fast import FastInstances
from db.legacy.fast import copy_fields
from db.legacy.fast import row_values
from db.legacy.reader import Header
from db.legacy.rows import ATTEMPT_VALUE_COLUMNS
from db.legacy.rows import parse_instance
from tests.unit.test_legacy_parsing import V1
from tests.unit.test_legacy_parsing import V4

TIMES = [c for c in ATTEMPT_VALUE_COLUMNS if c.endswith("_at")]
ZONES = [ZoneInfo(z) for z in ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")]

numbers = st.one_of(
    st.integers(min_value=-5, max_value=205),
    st.floats(min_value=-5, max_value=205),
    st.sampled_from([float("nan"), 0.5, 44.5, 99.5, 100.0, "20", " 7.5 ", "", "x", True, None]),
    # Integers beyond 64 bits: orjson reads them as floats, json exactly.
    st.sampled_from([10**30, 2**64 + 1, -(10**30)]),
)
stamps = st.one_of(
    st.just(""),
    st.sampled_from(
        [
            "2025-03-30 02:30",  # in Berlin's spring gap
            "2025-10-26 02:30",  # twice in Berlin's autumn fold
            "2025-11-21 16:51:07",
            "2025-11-21T16:51:07.25",
            "1850-01-01 12:00",  # local mean time: offsets with seconds
            "2025-02-30 10:00",
            "2025-11-21 16:51 ",
        ]
    ),
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2030, 1, 1)).map(
        lambda d: d.strftime("%Y-%m-%d %H:%M")
    ),
)
names = st.lists(st.sampled_from(["Dread", "dread", " Calm ", "", "x" * 80, 3]), max_size=3)
predicted = st.fixed_dictionaries(
    {},
    optional={
        "expected_relief": numbers,
        "expected_cognitive_load": numbers,
        "expected_cognitive": numbers,
        "expected_emotional": numbers,
        "expected_physical_load": numbers,
        "motivation": numbers,
        "expected_aversion": numbers,
        "time_estimate_minutes": numbers,
        "estimate": numbers,
        "physical_context": st.sampled_from(["None", "", "desk", 5, None, ["x"]]),
        "description": st.sampled_from(["", "a\tb\\c\nd", None, 1.5]),
        "emotions": names,
    },
)
actual = st.fixed_dictionaries(
    {},
    optional={
        "actual_relief": numbers,
        "actual_cognitive": numbers,
        "actual_emotional": numbers,
        "actual_physical": numbers,
        "completion_percent": numbers,
        "time_actual_minutes": numbers,
        "actual_time": numbers,
        "duration_minutes": numbers,
        "notes": st.sampled_from(["", "ok", "line\r\nbreak", None, 7, 10**30, "\ud800"]),
        "reason_for_canceling": st.sampled_from(["", "tired", None]),
        "cancelled": st.sampled_from([True, False, "yes"]),
        "emotions": names,
        "extra": st.sampled_from([{}, {"k": "v"}, [], None, {"n": 10**30}]),
    },
)
rows = st.fixed_dictionaries(
    {
        "instance_id": st.sampled_from(["i1", " i2 ", "", "i" * 70]),
        "task_id": st.sampled_from(["t1", "", " t2"]),
        "task_name": st.sampled_from(["Gym", " Walk ", ""]),
        "task_version": st.sampled_from(["1", "2.0", "", "0", "1.5", "x"]),
        "created_at": stamps,
        "initialized_at": stamps,
        "started_at": stamps,
        "completed_at": stamps,
        "cancelled_at": stamps,
        "predicted": st.one_of(predicted.map(json.dumps), st.sampled_from(["", "[1]", "{"])),
        "actual": st.one_of(actual.map(json.dumps), st.sampled_from(["", "null"])),
        "is_completed": st.sampled_from(["True", "False", "", "TRUE", "yes"]),
        "is_deleted": st.sampled_from(["False", "", "True"]),
        "status": st.sampled_from(["completed", "active", "cancelled", "", " Completed", "done"]),
        "relief_score": st.sampled_from(["", "40", "40.0", "x", "nan"]),
        "cognitive_load": st.sampled_from(["", "10"]),
        "emotional_load": st.sampled_from(["", "90.5"]),
    }
)


def instants(fields: list[str]) -> list[object]:
    """COPY text fields with the times read as instants (the fast path keeps the zone)."""
    out: list[object] = []
    for column, value in zip(ATTEMPT_VALUE_COLUMNS, fields, strict=True):
        if column in TIMES and value != "\\N":
            out.append(dt.datetime.fromisoformat(value).astimezone(dt.timezone.utc))
        else:
            out.append(value)
    return out


def check_agrees(header_names: list[str], cells: list[str], tz: ZoneInfo) -> bool:
    """True if the fast path read the row (and agreed with the precise parser)."""
    header = Header.from_cells(header_names)
    try:
        fast = FastInstances(header, tz).parse(cells)
    except Fallback:
        return False
    except (CellError, ValueError, TypeError, OverflowError, RecursionError):
        return False
    row = parse_instance(header, cells, 2, tz)  # a row the fast path reads is valid
    expected_fields = copy_fields(row_values(row)).split("\t")
    assert instants(fast[3].split("\t")) == instants(expected_fields)
    assert fast[:3] == (row.legacy_id, row.task_legacy_id, row.task_name)
    assert fast[4:] == (
        row.emotions_before,
        row.emotions_after,
        row.extra,
        row.deleted,
        row.flat_disagrees,
    )
    return True


@settings(max_examples=400, deadline=None)
@given(
    values=rows,
    header=st.sampled_from([V1, V4]),
    tz=st.sampled_from(ZONES),
    cut=st.integers(0, 3),
)
def test_fast_path_agrees_with_the_precise_parser(values, header, tz, cut):
    cells = [values.get(name, "") for name in header]
    check_agrees(header, cells[: len(cells) - cut] if cut < 3 else [*cells, ""], tz)


def test_common_rows_take_the_fast_path_in_every_zone():
    predicted = json.dumps(
        {"time_estimate_minutes": "20", "expected_relief": 2.0, "emotions": ["Dread"]}
    )
    actual = json.dumps({"actual_relief": 20, "actual_cognitive": 96, "notes": "a\nb"})
    for tz in ZONES:
        for stamp in ("2025-03-30 02:30", "2025-10-26 02:30", "2024-06-01 08:00:59.5"):
            values = {
                "instance_id": "i1",
                "task_id": "t1",
                "task_name": "Gym",
                "task_version": "1",
                "created_at": stamp,
                "started_at": "2025-11-21 16:51",
                "completed_at": stamp,
                "predicted": predicted,
                "actual": actual,
                "is_completed": "True",
                "is_deleted": "False",
                "status": "completed",
                "relief_score": "2.0",
            }
            assert check_agrees(V4, [values.get(name, "") for name in V4], tz)


@pytest.mark.parametrize("value", [0.0, -0.0, 1e-7, 3.25, 1 / 3, 1e20, math.inf, math.nan])
def test_copy_text_of_numbers_is_exact(value):
    text = copy_fields((value, None, "a\\b\tc", 7))
    number, null, escaped, integer = text.split("\t")
    assert (float(number) == value) or (math.isnan(value) and number == "nan")
    assert (null, escaped, integer) == ("\\N", "a\\\\b\\tc", "7")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("time_actual_minutes", float("nan")),  # json.dumps writes NaN; orjson refuses it
        ("time_actual_minutes", 10**30),  # orjson would read a float
        ("notes", 10**30),  # as text: 1000…0, not 1e+30
        ("notes", "\ud800"),  # a lone surrogate: orjson refuses it
        ("extra", {"blocker_type": "tired", "n": 2**70}),
    ],
)
def test_values_orjson_reads_differently_take_the_precise_path(key, value):
    values = {
        "instance_id": "i1",
        "task_id": "t1",
        "task_name": "Gym",
        "task_version": "1",
        "created_at": "2025-11-21 16:51",
        "predicted": json.dumps({"expected_relief": 20}),
        "actual": json.dumps({"actual_relief": 40, key: value}),
        "is_completed": "True",
        "is_deleted": "False",
        "status": "completed",
    }
    cells = [values.get(name, "") for name in V4]
    header = Header.from_cells(V4)
    with pytest.raises(Fallback):
        FastInstances(header, ZONES[0]).parse(cells)
    row = parse_instance(header, cells, 2, ZONES[0])  # and the precise path reads it
    if key == "notes" and isinstance(value, int):
        assert row.values["notes"] == str(value)
    if key == "extra":
        assert row.extra == value


def test_a_due_date_takes_the_fast_path_and_later_details_the_precise_one():
    header = [*V4, "due_at"]
    base = {
        "instance_id": "i1",
        "task_id": "t1",
        "task_name": "Gym",
        "created_at": "2026-03-03 09:00",
        "predicted": json.dumps({"expected_relief": 40}),
        "actual": "{}",
        "is_completed": "False",
        "is_deleted": "False",
        "status": "active",
        "due_at": "2026-03-04 23:59",
    }
    tz = ZoneInfo("America/Chicago")
    assert check_agrees(header, [base.get(name, "") for name in header], tz)
    # A date alone, the later statuses and the later keys of `actual`: the precise path.
    for change in (
        {"due_at": "2026-03-04"},
        {"status": "draft"},
        {"status": "initialized"},
        {"actual": json.dumps({"paused": True, "pause_reason": "call"})},
        {"predicted": json.dumps({"emotion_values": {"Dread": 40}})},
    ):
        assert not check_agrees(header, [{**base, **change}.get(n, "") for n in header], tz)
    row = parse_instance(
        Header.from_cells(header),
        [{**base, "due_at": "2026-03-04"}.get(n, "") for n in header],
        2,
        tz,
    )
    assert row.values["due_at"] == dt.datetime(2026, 3, 5, 5, 59, tzinfo=dt.timezone.utc)

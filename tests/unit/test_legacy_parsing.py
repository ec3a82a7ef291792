"""The legacy CSV parsers: cells, records with line numbers, rows of every file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from db.legacy.cells import CellError
from db.legacy.cells import guard_formula
from db.legacy.cells import parse_bool
from db.legacy.cells import parse_number
from db.legacy.cells import parse_timestamp
from db.legacy.cells import unguard_formula
from db.legacy.reader import CsvFile
from db.legacy.reader import FileUnreadable
from db.legacy.reader import Header
from db.legacy.report import ImportReport
from db.legacy.rows import ATTEMPT_VALUE_COLUMNS
from db.legacy.rows import LOG_COLUMNS
from db.legacy.rows import parse_instance
from db.legacy.rows import parse_log
from db.legacy.rows import parse_task

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
V1 = (
    "instance_id,task_id,task_name,task_version,created_at,initialized_at,started_at,"
    "completed_at,predicted,actual,procrastination_score,proactive_score,is_completed,is_deleted"
).split(",")
V4 = V1 + (
    "cancelled_at,status,duration_minutes,relief_score,cognitive_load,emotional_load,"
    "environmental_effect,skills_improved,behavioral_deviation,net_relief,delay_minutes"
).split(",")


def instance(header: list[str] = V4, **cells: str) -> list[str]:
    values = {
        "instance_id": "i1",
        "task_id": "t1",
        "task_name": "Gym",
        "task_version": "1",
        "created_at": "2025-11-21 16:51",
        "initialized_at": "2025-11-21 16:51",
        "completed_at": "2025-11-21 17:23",
        "predicted": json.dumps({"time_estimate_minutes": "45", "expected_relief": 45.0}),
        "actual": json.dumps({"actual_relief": 50, "completion_percent": 75}),
        "is_completed": "True",
        "is_deleted": "False",
        "status": "completed",
    }
    values.update(cells)
    return [values.get(name, "") for name in header]


def parse(cells: list[str], header: list[str] = V4, tz: ZoneInfo = UTC):  # noqa: ANN201
    return parse_instance(Header.from_cells(header), cells, 2, tz)


def test_numbers_are_read_pandas_style_and_empty_means_unknown():
    assert parse_number("180.0") == 180.0
    assert parse_number("3.417") == 3.417
    assert parse_number("60") == 60
    assert parse_number("") is None
    with pytest.raises(CellError, match="not a number"):
        parse_number("1_000")


def test_booleans_ignore_letter_case():
    assert parse_bool("True") is True
    assert parse_bool("false") is False
    assert parse_bool("TRUE") is True
    with pytest.raises(CellError):
        parse_bool("yes")


def test_naive_local_times_become_utc_in_the_given_zone():
    winter = parse_timestamp("2025-11-21 08:00", BERLIN)
    summer = parse_timestamp("2025-07-01 08:00:30", BERLIN)
    assert winter == dt.datetime(2025, 11, 21, 7, 0, tzinfo=dt.timezone.utc)
    assert summer == dt.datetime(2025, 7, 1, 6, 0, 30, tzinfo=dt.timezone.utc)
    with pytest.raises(CellError, match="not a time"):
        parse_timestamp("yesterday", BERLIN)


def test_outcome_comes_from_actual_and_prediction_from_predicted_never_the_flat_copies():
    cells = instance(relief_score="45.0", cognitive_load="69.0")
    row = parse(cells)
    assert row.values["actual_relief"] == 50
    assert row.values["expected_relief"] == 45
    assert row.values["time_estimate_minutes"] == 45.0  # a numeric string in the JSON
    assert row.flat_disagrees


def test_prediction_aliases_and_old_estimate_key_are_understood():
    predicted = {"estimate": 30, "expected_cognitive": 20, "expected_emotional": 40.4}
    row = parse(instance(predicted=json.dumps(predicted)))
    assert row.values["time_estimate_minutes"] == 30
    assert row.values["expected_cognitive_load"] == 20
    assert row.values["expected_emotional_load"] == 40


def test_outcome_time_aliases_are_understood():
    row = parse(instance(actual=json.dumps({"actual_time": 12, "actual_relief": 1})))
    assert row.values["minutes_spent"] == 12
    row = parse(instance(actual=json.dumps({"duration_minutes": 7})))
    assert row.values["minutes_spent"] == 7


def test_cancelled_rows_keep_their_reason_and_count_as_closed():
    actual = {"completion_percent": 20, "reason_for_canceling": "bank form", "cancelled": True}
    cells = instance(status="cancelled", cancelled_at="2025-12-03 09:40", actual=json.dumps(actual))
    row = parse(cells)
    assert row.values["status"] == "cancelled"
    assert row.values["cancel_reason"] == "bank form"
    assert row.values["cancelled_at"] == dt.datetime(2025, 12, 3, 9, 40, tzinfo=dt.timezone.utc)
    assert row.values["stress"] is None  # measures belong to completed attempts


def test_active_rows_are_initialized_or_paused_when_they_were_started():
    waiting = parse(instance(status="active", completed_at="", actual="{}", is_completed="False"))
    started = parse(
        instance(status="active", started_at="2025-11-21 17:00", actual="{}", is_completed="False")
    )
    assert waiting.values["status"] == "initialized"
    assert started.values["status"] == "paused"


def test_v1_rows_without_status_derive_it_from_is_completed():
    done = parse(instance(V1), header=V1)
    cancelled = parse(instance(V1, actual=json.dumps({"cancelled": True})), header=V1)
    open_ = parse(instance(V1, is_completed="False", actual="{}"), header=V1)
    assert (done.values["status"], cancelled.values["status"]) == ("completed", "cancelled")
    assert open_.values["status"] == "initialized"


def test_completed_rows_get_their_measures_computed():
    actual = {"actual_relief": 60, "actual_cognitive": 30, "actual_emotional": 0}
    row = parse(instance(actual=json.dumps({**actual, "actual_physical": 30})))
    assert row.values["stress"] == 20
    assert row.values["net_wellbeing"] == 40
    assert row.values["relief_surprise"] == 15


def test_negative_delays_are_kept():
    row = parse(instance(started_at="2025-11-21 16:36"))
    assert row.values["delay_minutes"] == -15


@pytest.mark.parametrize(
    ("cells", "column", "reason"),
    [
        ({"actual": '{"actual_relief": 101}'}, "actual", "actual_relief is 101, outside 0–100"),
        ({"actual": '{"completion_percent": 201}'}, "actual", "outside 0–200"),
        ({"predicted": '{"motivation": -1}'}, "predicted", "outside 0–100"),
        ({"predicted": '{"time_estimate_minutes": -5}'}, "predicted", "cannot be negative"),
        ({"predicted": "[1, 2]"}, "predicted", "expected an object"),
        ({"status": "sleeping"}, "status", "not one of active"),
        ({"is_completed": "maybe"}, "is_completed", "not True or False"),
        ({"instance_id": ""}, "instance_id", "empty"),
        ({"created_at": "", "initialized_at": ""}, "initialized_at", "empty"),
        ({"started_at": "2025-13-01 10:00"}, "started_at", "not a valid date"),
    ],
)
def test_invalid_cells_name_their_column_and_reason(cells, column, reason):
    with pytest.raises(CellError) as caught:
        parse(instance(**cells))
    assert caught.value.column == column
    assert reason in caught.value.reason


def test_missing_trailing_cells_read_as_empty_but_missing_required_ones_are_invalid():
    trimmed = instance()[: V4.index("status") + 1]  # the optional v3/v4 columns are gone
    assert parse(trimmed).values["status"] == "completed"
    with pytest.raises(CellError, match="ends after 5 cells") as caught:
        parse(instance()[:5])
    assert caught.value.column == "initialized_at"


def test_tasks_of_both_headers_and_prototype_rows_are_read():
    merged = Header.from_cells(
        "task,category,times_logged,avg_aversion,avg_relief,last_logged,version,task_id,name,"
        "description,type,created_at,is_recurring,categories,default_estimate_minutes".split(",")
    )
    app = parse_task(
        merged,
        ',,,,,,2,t9,Gym,,,2025-11-21 08:02,True,"[""Tired""]",45'.split(",")[:13]
        + ['["Tired"]', "45"],
        2,
        UTC,
    )
    assert (app.legacy_id, app.kind, app.version, app.emotions) == ("t9", "recurring", 2, ["Tired"])
    prototype = parse_task(merged, ["Inbox zero", "General", "2", "6.5", "5.0", ""], 3, UTC)
    assert prototype.legacy_id.startswith("proto:")
    assert prototype.name == "Inbox zero"


def test_log_entries_are_scaled_by_ten_and_keep_comment_and_blocker():
    header = Header.from_cells(list(LOG_COLUMNS))
    cells = "2025-11-21 08:10,Tax return,9,8.0,,30.0,6.0,120.0,40.0,stuck,Confusion".split(",")
    row = parse_log(header, cells, 3, UTC)
    assert row.values["expected_aversion"] == 90
    assert row.values["expected_relief"] == 80
    assert row.values["completion_percent"] == 30
    assert row.values["notes"] == "stuck"
    assert row.extra == {"blocker_type": "Confusion", "perceived_overextension": 60}
    assert row.legacy_id == parse_log(header, cells, 9, UTC).legacy_id  # stable


def test_log_rows_with_shifted_cells_are_invalid():
    header = Header.from_cells(list(LOG_COLUMNS))
    shifted = "Tax return,9,8.0,,30.0,6.0,120.0,40.0,stuck,Confusion,2025-11-21 08:10".split(",")
    with pytest.raises(CellError, match="shifted") as caught:
        parse_log(header, shifted, 4, UTC)
    assert caught.value.column == "blocker_type"


def test_records_report_the_line_they_start_on_with_embedded_newlines(tmp_path: Path):
    path = tmp_path / "x.csv"
    path.write_text('a,b\n1,"one\ntwo\nthree"\n\n2,x\r\n3,"y"\n', encoding="utf-8")
    records = list(CsvFile(path).records())
    assert [(r.line, r.cells[0]) for r in records] == [(1, "a"), (2, "1"), (6, "2"), (7, "3")]


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path):
    path = tmp_path / "x.csv"
    path.write_bytes("\ufeffemotion\nTired\n".encode())
    assert next(CsvFile(path).records()).cells == ["emotion"]


def test_a_file_that_is_not_utf8_is_reported_at_its_line(tmp_path: Path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"emotion\nTired\n\xff\xfe\n")
    with pytest.raises(FileUnreadable) as caught:
        list(CsvFile(path).records())
    assert "not UTF-8" in caught.value.reason


def test_report_renders_counts_problems_and_a_json_dict():
    report = ImportReport("/data", 1, "alice", "UTC", dry_run=False, skip_invalid=False)
    report.counts("tasks.csv").created = 3
    report.problem("task_instances.csv", 7, "status", "'x' is not one of active")
    report.status = "refused"
    text = report.render_text()
    assert "tasks.csv                     3" in text
    assert "task_instances.csv:7: status: 'x' is not one of active" in text
    assert "Refused" in text
    assert json.loads(json.dumps(report.as_dict()))["files"]["tasks.csv"]["created"] == 3


# --- properties: the parsers never crash, they refuse with a reason or return a valid row


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
json_keys = st.sampled_from(
    [
        "time_estimate_minutes",
        "estimate",
        "expected_relief",
        "expected_cognitive",
        "motivation",
        "emotions",
        "physical_context",
        "description",
        "actual_relief",
        "actual_cognitive",
        "completion_percent",
        "time_actual_minutes",
        "notes",
        "reason_for_canceling",
        "cancelled",
        "extra",
    ]
)
json_cells = st.dictionaries(json_keys, json_values, max_size=6).map(json.dumps) | st.text(
    max_size=20
)
cell_text = st.text(max_size=12) | st.sampled_from(
    ["", "True", "false", "2025-11-21 14:03", "2025-11-21 14:03:59", "45.0", "-3", "active"]
)


def _check_row_is_valid(row) -> None:  # noqa: ANN001
    values = row.values
    assert set(ATTEMPT_VALUE_COLUMNS) <= set(values)
    assert values["status"] in ("initialized", "paused", "completed", "cancelled")
    for column in (
        "expected_relief",
        "expected_cognitive_load",
        "motivation",
        "actual_relief",
        "actual_cognitive_load",
    ):
        assert values[column] is None or 0 <= values[column] <= 100
    assert values["completion_percent"] is None or 0 <= values["completion_percent"] <= 200
    assert values["minutes_spent"] >= 0
    assert values["initialized_at"].tzinfo is not None


@settings(max_examples=120, deadline=None)
@given(
    cells=st.fixed_dictionaries(
        {name: cell_text for name in V4},
        optional={},
    ),
    predicted=json_cells,
    actual=json_cells,
    width=st.integers(min_value=0, max_value=len(V4) + 2),
)
def test_instance_parser_returns_a_valid_row_or_a_clear_error(cells, predicted, actual, width):
    cells.update(predicted=predicted, actual=actual)
    row_cells = [cells[name] for name in V4] + ["", "x"]
    try:
        row = parse(row_cells[:width])
    except CellError as exc:
        assert exc.column in V4 or exc.column == ""
        assert exc.reason
        return
    _check_row_is_valid(row)


@settings(max_examples=100, deadline=None)
@given(cells=st.lists(cell_text, max_size=len(LOG_COLUMNS) + 2))
def test_log_parser_returns_a_valid_row_or_a_clear_error(cells):
    header = Header.from_cells(list(LOG_COLUMNS))
    try:
        row = parse_log(header, cells, 2, UTC)
    except CellError as exc:
        assert exc.reason
        return
    _check_row_is_valid(row)


# Texts near the rule's edges: quotes, formula starts and numbers, in any mix.
formula_texts = st.text(alphabet=st.sampled_from("'=+-@\t\r5.e x"), max_size=8) | st.text()


@settings(max_examples=300, deadline=None)
@given(value=formula_texts)
def test_a_guarded_cell_is_never_a_formula_and_reads_back_as_the_value(value):
    cell = guard_formula(value)
    assert unguard_formula(cell) == value
    if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
        assert parse_number(cell) is not None, f"{cell!r} would run as a formula"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1 for the plan", "'+1 for the plan"),
        ("@home", "'@home"),
        ("\tindented", "'\tindented"),
        ("-5", "-5"),  # a number: a spreadsheet reads it as one, a numeric column needs it
        ("-2.5e3", "-2.5e3"),
        ("'=typed with a quote", "''=typed with a quote"),
        ("'quoted", "'quoted"),
        ("Water the plants", "Water the plants"),
    ],
)
def test_the_guard_rule(value, cell):
    assert guard_formula(value) == cell

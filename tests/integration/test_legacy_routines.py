"""The old app's routines (its later export's ``tasks.csv`` columns) imported as schedules,
exported in the same layout, and imported again unchanged; a bad routine cell refuses the
row with its reason and imports nothing of it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy import text

from db.engine import make_engine
from db.legacy import export_folder
from db.legacy import import_legacy_folder
from tests.integration.test_legacy_export import make_user

HEADER = (
    "task_id,name,description,type,version,created_at,is_recurring,categories,"
    "default_estimate_minutes,task_type,default_initial_aversion,routine_frequency,"
    "routine_days_of_week,routine_time,completion_window_hours,completion_window_days,"
    "notes,user_id"
)
TASKS = [
    # a daily routine, a Mon/Wed/Fri one, a "daily" one listing days (those days only), none
    "t1,Water the plants,,routine,1,2026-01-05 08:00,True,[],10,Self care,,daily,[],07:30,,,,1",
    't2,Cello,,one-time,1,2026-01-05 08:00,False,[],20,Play,50,weekly,"[0, 2, 4]",18:00,,,,1',
    't3,Gym,,one-time,1,2026-01-05 08:00,False,[],60,Self care,50,daily,"[5, 6]",9:05,,,,1',
    "t4,Taxes,,one-time,1,2026-01-05 08:00,False,[],90,Work,50,none,[],00:00,,,,1",
]
EXPECTED = {
    "t1": ("daily", 0b1111111, dt.time(7, 30)),
    "t2": ("weekdays", 0b10101, dt.time(18, 0)),
    "t3": ("weekdays", 0b1100000, dt.time(9, 5)),
    "t4": (None, None, None),
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _write(folder: Path, rows: list[str]) -> Path:
    folder.mkdir()
    (folder / "tasks.csv").write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return folder


def _schedules(engine: Engine, user_id: int) -> dict[str, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT legacy_id, routine_frequency, routine_weekdays, routine_time,"
                " routine_since FROM tasks WHERE user_id = :u"
            ),
            {"u": user_id},
        )
        return {row[0]: tuple(row[1:]) for row in rows}


def test_routines_import_as_schedules_export_and_import_again(engine, tmp_path):
    first = make_user(engine, "first")
    report = import_legacy_folder(engine, _write(tmp_path / "late", TASKS), user_id=first)
    assert report.status == "imported", report.render_text()
    schedules = _schedules(engine, first)
    assert {k: v[:3] for k, v in schedules.items()} == EXPECTED
    # A schedule counts from its import: no flood of attempts or missed days from 2026-01.
    assert all((v[3] is not None) == (v[0] is not None) for v in schedules.values())

    exported = tmp_path / "exported"
    export_folder(engine, exported, user_id=first)
    lines = (exported / "tasks.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(",archived_at,routine_frequency,routine_days_of_week,routine_time")
    by_id = {line.split(",", 1)[0]: line for line in lines[1:]}
    assert by_id["t1"].endswith(",daily,[],07:30")
    assert by_id["t2"].endswith(',weekly,"[0, 2, 4]",18:00')
    assert by_id["t3"].endswith(',weekly,"[5, 6]",09:05')
    assert by_id["t4"].endswith(",none,[],00:00")

    second = make_user(engine, "second")
    report = import_legacy_folder(engine, exported, user_id=second)
    assert report.status == "imported", report.render_text()
    assert {k: v[:3] for k, v in _schedules(engine, second).items()} == EXPECTED
    # The same export into the first account again changes nothing: same fingerprints.
    again = import_legacy_folder(engine, exported, user_id=first)
    assert again.files["tasks.csv"].skipped == 4, again.render_text()


def test_a_changed_routine_in_the_old_app_updates_the_schedule(engine, tmp_path):
    user = make_user(engine, "alice")
    import_legacy_folder(engine, _write(tmp_path / "before", TASKS), user_id=user)
    changed = [TASKS[0].replace(",daily,[],07:30,", ",weekly,[6],20:00,"), *TASKS[1:]]
    report = import_legacy_folder(engine, _write(tmp_path / "after", changed), user_id=user)
    assert report.files["tasks.csv"].updated == 1, report.render_text()
    assert _schedules(engine, user)["t1"][:3] == ("weekdays", 0b1000000, dt.time(20, 0))


def test_a_bad_routine_cell_refuses_its_row_with_the_reason(engine, tmp_path):
    user = make_user(engine, "alice")
    bad = [
        TASKS[0].replace(",daily,", ",hourly,"),
        TASKS[1].replace('"[0, 2, 4]"', '"[0, 9]"'),
        TASKS[2].replace(",9:05,", ",25:00,"),
        TASKS[3].replace(",none,[],", ",weekly,[],"),
    ]
    report = import_legacy_folder(engine, _write(tmp_path / "bad", bad), user_id=user)
    text_report = report.render_text()
    assert report.files["tasks.csv"].refused == 4, text_report
    for reason in (
        "tasks.csv:2: routine_frequency: 'hourly' is not one of none, daily, weekly",
        "tasks.csv:3: routine_days_of_week: '[0, 9]' is not a list of weekdays 0 (Monday)",
        "tasks.csv:4: routine_time: '25:00' is not a time of day HH:MM",
        "tasks.csv:5: routine_days_of_week: a weekly routine lists at least one weekday",
    ):
        assert reason in text_report
    assert _schedules(engine, user) == {}

"""Importing legacy data folders into a real PostgreSQL, as an operator would."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlalchemy import text

import db.legacy
from db.engine import make_engine
from db.legacy import LegacyImportError
from db.legacy import import_legacy_folder
from db.legacy.backup import read_manifest

EXAMPLES = Path(db.legacy.__file__).parent / "examples"
TABLES = ("tasks", "attempts", "emotions", "attempt_emotions", "task_emotions", "import_runs")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def make_user(engine: Engine, username: str = "alice", timezone: str = "Europe/Berlin") -> int:
    with engine.begin() as conn:
        user_id: int = conn.execute(
            text(
                "INSERT INTO users (username, timezone, signin_key_hash)"
                " VALUES (:u, :tz, 'x') RETURNING id"
            ),
            {"u": username, "tz": timezone},
        ).scalar_one()
    return user_id


def example(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(EXAMPLES / name, target)
    return target


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def attempts_by_legacy_id(engine: Engine, user_id: int) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.*, t.name AS task_name, t.legacy_id AS task_legacy_id,"
                " t.archived_at IS NOT NULL AS task_archived,"
                " array(SELECT e.name FROM attempt_emotions ae JOIN emotions e"
                "       ON e.id = ae.emotion_id WHERE ae.attempt_id = a.id"
                "       AND ae.phase = 'before' ORDER BY e.name) AS before"
                " FROM attempts a JOIN tasks t ON t.id = a.task_id WHERE a.user_id = :u"
            ),
            {"u": user_id},
        ).mappings()
        return {row["legacy_id"]: dict(row) for row in rows}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def local_to_utc(value: str, zone: str) -> dt.datetime | None:
    if not value:
        return None
    naive = dt.datetime.fromisoformat(value)
    return naive.replace(tzinfo=ZoneInfo(zone)).astimezone(dt.timezone.utc)


def assert_attempts_match_csv(engine: Engine, user_id: int, folder: Path, zone: str) -> None:
    """Every attempt holds what its CSV row says (outcome from `actual`, etc.)."""
    attempts = attempts_by_legacy_id(engine, user_id)
    for row in read_csv(folder / "task_instances.csv"):
        attempt = attempts[row["instance_id"]]
        predicted, actual = json.loads(row["predicted"]), json.loads(row["actual"])
        assert attempt["initialized_at"] == local_to_utc(
            row["initialized_at"] or row["created_at"], zone
        )
        assert attempt["started_at"] == local_to_utc(row["started_at"], zone)
        done = row.get("status") == "completed" or (
            "status" not in row and row["is_completed"] == "True"
        )
        if done:
            assert attempt["status"] == "completed"
            assert attempt["completed_at"] == local_to_utc(row["completed_at"], zone)
            assert attempt["stress"] is not None or actual.get("actual_cognitive") is None
        assert attempt["actual_relief"] == actual.get("actual_relief")
        assert attempt["actual_cognitive_load"] == actual.get("actual_cognitive")
        assert attempt["completion_percent"] == actual.get("completion_percent")
        assert attempt["minutes_spent"] == float(actual.get("time_actual_minutes", 0))
        assert attempt["notes"] == actual.get("notes", "")
        assert attempt["expected_relief"] == predicted.get("expected_relief")
        estimate = predicted.get("time_estimate_minutes")
        assert attempt["time_estimate_minutes"] == (float(estimate) if estimate else None)
        assert sorted(attempt["before"]) == sorted(predicted.get("emotions", []))
        if row["task_name"]:
            assert attempt["task_name"] == row["task_name"]


def test_v4_folder_is_imported_with_the_values_of_its_csv_files(engine, tmp_path):
    user = make_user(engine)
    folder = example("v4-basic", tmp_path)
    report = import_legacy_folder(engine, folder, user_id=user)

    assert report.status == "imported", report.render_text()
    assert {name: c.created for name, c in report.files.items()} == {
        "emotions.csv": 6,
        "tasks.csv": 6,
        "task_instances.csv": 48,
        "logs.csv": 2,
    }
    assert_attempts_match_csv(engine, user, folder, "Europe/Berlin")
    attempts = attempts_by_legacy_id(engine, user)
    cancelled = attempts["i1765000001"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancel_reason"] == "missing a form from the bank"
    assert attempts["i1765000002"]["status"] == "initialized"
    assert attempts["i1765000003"]["status"] == "paused"
    # A deleted template and an empty task id: kept on archived stand-in tasks.
    assert attempts["i1765000004"]["task_name"] == "Old deleted task"
    assert attempts["i1765000004"]["task_archived"]
    assert attempts["i1765000005"]["task_archived"]
    # Delays are recomputed from the times, not copied from the flat column (-15.0).
    assert attempts["i1765000006"]["delay_minutes"] == 10
    # The flat copies disagree with `actual` and were ignored, with a warning.
    assert "relief_score/cognitive_load/emotional_load disagree" in report.warnings[0]


def test_v4_prototype_logs_become_completed_attempts_scaled_to_0_100(engine, tmp_path):
    user = make_user(engine)
    import_legacy_folder(engine, example("v4-basic", tmp_path), user_id=user)
    logs = {
        a["notes"]: a
        for legacy_id, a in attempts_by_legacy_id(engine, user).items()
        if legacy_id.startswith("log:")
    }
    first, second = logs["faster than I thought"], logs["stuck on the forms"]
    assert (first["task_name"], first["expected_aversion"], first["actual_relief"]) == (
        "Inbox zero",
        70,
        60,
    )
    assert first["completion_percent"] == 100
    assert second["extra"] == {"blocker_type": "Confusion", "perceived_overextension": 60}
    assert second["status"] == "completed"


def test_v4_emotions_are_deduplicated_and_merged_case_insensitively(engine, tmp_path):
    user = make_user(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO emotions (user_id, name) VALUES (:u, 'TIRED')"), {"u": user})
    report = import_legacy_folder(engine, example("v4-basic", tmp_path), user_id=user)
    with engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM emotions ORDER BY id")).scalars().all()
    assert names == ["TIRED", "excited", "bored", "Anxiety", "Dread", "Gung-Ho", "Excitement"]
    assert report.files["emotions.csv"].skipped == 1


def test_v1_folder_with_prototype_tasks_is_imported(engine, tmp_path):
    user = make_user(engine, timezone="UTC")
    folder = example("v1-early", tmp_path)
    report = import_legacy_folder(engine, folder, user_id=user)
    assert report.status == "imported", report.render_text()
    assert_attempts_match_csv(engine, user, folder, "UTC")
    with engine.connect() as conn:
        tasks = conn.execute(
            text("SELECT name, archived_at IS NOT NULL, legacy_id FROM tasks ORDER BY id")
        ).all()
    assert [(name, archived) for name, archived, _ in tasks] == [
        ("Inbox zero", False),
        ("Tax return", False),
        ("Inbox zero", True),  # the deleted template t1763599990 the attempts point at
    ]
    assert tasks[2][2] == "t1763599990"
    attempts = attempts_by_legacy_id(engine, user)
    assert attempts["i1763600300"]["status"] == "initialized"
    assert attempts["i1763600000"]["actual_relief"] == 6  # stored as is: no rescaling


def test_clean_header_folder_is_imported_with_task_fields(engine, tmp_path):
    user = make_user(engine)
    folder = example("clean-header", tmp_path)
    report = import_legacy_folder(engine, folder, user_id=user)
    assert report.status == "imported", report.render_text()
    assert_attempts_match_csv(engine, user, folder, "Europe/Berlin")
    with engine.connect() as conn:
        tasks = conn.execute(
            text(
                "SELECT t.legacy_id, t.name, t.description, t.kind, t.default_estimate_minutes,"
                " t.created_at, array(SELECT e.name FROM task_emotions te JOIN emotions e"
                " ON e.id = te.emotion_id WHERE te.task_id = t.id) FROM tasks t ORDER BY t.id"
            )
        ).all()
    for (legacy_id, name, description, kind, estimate, created, emotions), row in zip(
        tasks, read_csv(folder / "tasks.csv"), strict=True
    ):
        assert (legacy_id, name, description, kind) == (
            row["task_id"],
            row["name"],
            row["description"],
            row["type"],
        )
        assert estimate == float(row["default_estimate_minutes"])
        assert created == local_to_utc(row["created_at"], "Europe/Berlin")
        assert emotions == json.loads(row["categories"])


def test_broken_folder_is_refused_line_by_line_and_nothing_is_written(engine, tmp_path):
    user = make_user(engine)
    before = row_counts(engine)
    report = import_legacy_folder(engine, example("broken", tmp_path), user_id=user)

    assert report.status == "refused"
    assert report.problems == [
        "task_instances.csv:2: predicted: not valid JSON (Expecting ',' delimiter)",
        "task_instances.csv:3: actual: actual_relief is 'lots', expected a number",
        "task_instances.csv:4: created_at: 'yesterday' is not a time like 2025-11-21 14:03",
        "task_instances.csv:5: actual: actual_relief is 250, outside 0–100",
        "task_instances.csv:6: instance_id: i1766000004 appears twice in the file",
        "task_instances.csv:7: status: 'sleeping' is not one of active, completed, cancelled, "
        "draft, initialized",
        "task_instances.csv:8: initialized_at: the row ends after 5 cells; the required "
        "columns from here on are missing",
    ]
    assert row_counts(engine) == before
    assert not (tmp_path / "tas-import-backups").exists() or not any(
        (tmp_path / "tas-import-backups").iterdir()
    )


# --- a folder with every quirk of the format, written here ------------------------------

V4_REORDERED = (
    "status,instance_id,task_name,task_id,task_version,created_at,initialized_at,started_at,"
    "completed_at,predicted,actual,procrastination_score,proactive_score,is_completed,"
    "is_deleted,cancelled_at,duration_minutes,relief_score,cognitive_load,emotional_load,"
    "environmental_effect,skills_improved,behavioral_deviation,net_relief,delay_minutes,"
    "behavioral_score"
).split(",")


def write_csv(path: Path, header: list[str], rows: list[dict[str, Any]] | list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(c, "") for c in header] if isinstance(row, dict) else row)


def attempt(instance_id: str, **cells: Any) -> dict[str, Any]:
    row = {
        "instance_id": instance_id,
        "task_id": "t1",
        "task_name": 'Write 📝, "quoted"',
        "task_version": "1",
        "created_at": "2025-11-21 09:00",
        "initialized_at": "2025-11-21 09:00",
        "completed_at": "2025-11-21 10:00",
        "predicted": {"time_estimate_minutes": "30.0", "expected_relief": 40.0},
        "actual": {"actual_relief": 70, "completion_percent": 100, "time_actual_minutes": 45},
        "is_completed": "True",
        "is_deleted": "False",
        "status": "completed",
    }
    row.update(cells)
    for key in ("predicted", "actual"):
        if isinstance(row[key], dict):
            row[key] = json.dumps(row[key])
    return row


def write_quirky_folder(folder: Path) -> None:
    folder.mkdir()
    (folder / "emotions.csv").write_text("emotion\nTired\ntired\n\nDread\n", encoding="utf-8")
    write_csv(
        folder / "tasks.csv",
        "task,category,times_logged,avg_aversion,avg_relief,last_logged,version,task_id,name,"
        "description,type,created_at,is_recurring,categories,default_estimate_minutes".split(","),
        [
            ["Stretch", "General", "3", "4.5", "6", "2025-11-20 17:00"],  # prototype only
            [
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "t1",
                'Write 📝, "quoted"',
                "line one\nline two",
                "project",
                "2025-11-21 08:00",
                "true",
                '["Dread", "Focus"]',
                "90",
            ],  # fmt: skip
            [
                "",
                "",
                "",
                "",
                "",
                "",
                "2.0",
                "t2",
                "Call",
                "",
                "",
                "2025-11-21 08:00",
                "FALSE",
                "[]",
                "10.5",
            ],  # fmt: skip
        ],
    )
    rows = [
        attempt("i1", predicted={"time_estimate_minutes": "30.0", "emotions": ["tired", "New"]}),
        attempt("i2", task_id="t999", task_name="Gone"),  # deleted template
        attempt("i3", task_id="t999", task_name="Gone"),  # ... the same one
        attempt("i4", task_id="", task_name="Nameless"),  # empty task id
        attempt("i5", task_id="", task_name="Nameless"),
        attempt("i6", started_at="2025-11-21 08:45"),  # started before it was initialized
        attempt("i7", actual={"actual_relief": 60, "notes": 'first\nsecond, "third"'}),
        attempt("i8", status="", is_completed="true"),  # derived: completed
        attempt(
            "i9",
            status="active",
            is_completed="False",
            actual="{}",
            started_at="2025-11-21 09:30",
            completed_at="",
        ),  # fmt: skip
        attempt("i10", status="cancelled", cancelled_at="", actual={"cancelled": True}),
        attempt("i11", is_deleted="TRUE"),
        attempt("i12", predicted={"expected_relief": float("nan"), "physical_context": "None"}),
        attempt("i13", task_id="t2", task_name="Call"),
    ]
    write_csv(folder / "task_instances.csv", V4_REORDERED, rows)
    # A ragged row: the trailing optional cells are missing altogether.
    ragged = [attempt("i14").get(c, "") for c in V4_REORDERED][:16]
    with open(folder / "task_instances.csv", "a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerow(ragged)
    write_csv(
        folder / "logs.csv",
        "timestamp,task,aversion_level,relief_prediction,relief_actual,completion_percent,"
        "perceived_overextension,time_estimate_minutes,time_actual_minutes,comment,"
        "blocker_type".split(","),
        [
            "2025-11-19 10:00:05,Stretch,3,5,7,100,,10,12,,None".split(","),
            "2025-11-19 10:00:05,Stretch,3,5,7,100,,10,12,,None".split(","),  # exact duplicate
            "2025-11-19 11:00,Brand new,1,2,3,50,1,5,5,hm,Tired".split(","),
        ],
    )
    (folder / "user_preferences.csv").write_text("key,value\n", encoding="utf-8")
    (folder / "notes.txt").write_text("not a csv", encoding="utf-8")


def test_a_folder_with_every_quirk_of_the_format_is_imported(engine, tmp_path):
    user = make_user(engine, timezone="UTC")
    folder = tmp_path / "quirks"
    write_quirky_folder(folder)
    report = import_legacy_folder(engine, folder, user_id=user)

    assert report.status == "imported", report.render_text()
    assert report.files["task_instances.csv"].created == 13
    assert report.files["task_instances.csv"].skipped == 1  # i11, deleted in the old app
    assert report.files["logs.csv"].created == 2
    assert report.files["logs.csv"].skipped == 1
    assert report.skipped_files == ["user_preferences.csv"]
    assert report.ignored_files == ["notes.txt"]
    a = attempts_by_legacy_id(engine, user)
    assert a["i1"]["task_name"] == 'Write 📝, "quoted"'
    assert sorted(a["i1"]["before"]) == ["New", "Tired"]  # "tired" is the known "Tired"
    assert a["i2"]["task_id"] == a["i3"]["task_id"]
    assert a["i2"]["task_archived"] and a["i2"]["task_name"] == "Gone"
    assert a["i4"]["task_id"] == a["i5"]["task_id"] != a["i2"]["task_id"]
    assert a["i6"]["delay_minutes"] == -15
    assert a["i7"]["notes"] == 'first\nsecond, "third"'
    assert a["i8"]["status"] == "completed"
    assert a["i9"]["status"] == "paused"
    assert a["i10"]["status"] == "cancelled"
    assert a["i10"]["cancel_reason"] == "No reason was recorded in the old app."
    assert a["i10"]["cancelled_at"] == dt.datetime(2025, 11, 21, 10, 0, tzinfo=dt.timezone.utc)
    assert "i11" not in a
    assert a["i12"]["expected_relief"] is None and a["i12"]["physical_context"] is None
    assert a["i14"]["status"] == "completed"
    with engine.connect() as conn:
        tasks = {
            row.name: row
            for row in conn.execute(
                text("SELECT name, kind, version, description, default_estimate_minutes FROM tasks")
            )
        }
        emotions = conn.execute(text("SELECT name FROM emotions ORDER BY id")).scalars().all()
    assert tasks["Stretch"].kind == "one-time"
    assert tasks['Write 📝, "quoted"'].description == "line one\nline two"
    assert (tasks["Call"].kind, tasks["Call"].version) == ("one-time", 2)
    assert tasks["Call"].default_estimate_minutes == 10.5
    assert "Brand new" in tasks  # created for a log entry naming an unknown task
    assert emotions == ["Tired", "Dread", "Focus", "New"]
    stretch = [x for x in a.values() if x["task_name"] == "Stretch"]
    assert stretch[0]["completed_at"] == dt.datetime(2025, 11, 19, 10, 0, 5, tzinfo=dt.timezone.utc)


# --- idempotency, dry run, skip-invalid, backups, time zones -----------------------------


def table_snapshot(engine: Engine) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT * FROM {t} ORDER BY 1, 2")).all()
            for t in TABLES
            if t != "import_runs"
        }


def test_a_second_import_of_the_same_folder_changes_nothing(engine, tmp_path):
    user = make_user(engine)
    folder = example("v4-basic", tmp_path)
    import_legacy_folder(engine, folder, user_id=user)
    before = table_snapshot(engine)
    report = import_legacy_folder(engine, folder, user_id=user)
    assert table_snapshot(engine) == before
    assert all(c.created == c.updated == 0 for c in report.files.values())
    assert report.files["task_instances.csv"].skipped == 48
    assert report.files["logs.csv"].skipped == 2


def test_a_later_folder_adds_new_rows_and_brings_changed_ones_up_to_date(engine, tmp_path):
    user = make_user(engine)
    folder = example("v4-basic", tmp_path)
    import_legacy_folder(engine, folder, user_id=user)
    rows = read_csv(folder / "task_instances.csv")
    header = list(rows[0])
    for row in rows:
        if row["instance_id"] == "i1765000002":  # open, then completed in the old app
            row.update(
                status="completed",
                is_completed="True",
                completed_at="2025-12-04 10:30",
                actual=json.dumps({"actual_relief": 80, "time_actual_minutes": 12}),
            )
    rows.append({**rows[0], "instance_id": "i1799999999"})
    write_csv(folder / "task_instances.csv", header, rows)
    tasks = (folder / "tasks.csv").read_text(encoding="utf-8")
    (folder / "tasks.csv").write_text(tasks.replace("Gym,,", "Gym,Leg day,"), encoding="utf-8")

    report = import_legacy_folder(engine, folder, user_id=user)
    instances = report.files["task_instances.csv"]
    assert (instances.created, instances.updated, instances.skipped) == (1, 1, 47)
    assert (report.files["tasks.csv"].updated, report.files["tasks.csv"].skipped) == (1, 5)
    updated = attempts_by_legacy_id(engine, user)["i1765000002"]
    assert (updated["status"], updated["actual_relief"]) == ("completed", 80)
    with engine.connect() as conn:
        gym = conn.execute(text("SELECT description FROM tasks WHERE name = 'Gym'")).scalar_one()
    assert gym == "Leg day"


def test_a_dry_run_reports_what_would_happen_and_changes_nothing(engine, tmp_path):
    user = make_user(engine)
    folder = example("v4-basic", tmp_path)
    before = row_counts(engine)
    dry = import_legacy_folder(engine, folder, user_id=user, dry_run=True)
    assert row_counts(engine) == before
    assert dry.status == "dry-run"
    assert not (tmp_path / "tas-import-backups").exists()
    real = import_legacy_folder(engine, folder, user_id=user)
    assert {n: c.as_dict() for n, c in dry.files.items()} == {
        n: c.as_dict() for n, c in real.files.items()
    }


def test_skip_invalid_imports_the_valid_rows_and_writes_the_refused_ones(engine, tmp_path):
    user = make_user(engine)
    folder = example("v4-basic", tmp_path)
    broken = (EXAMPLES / "broken" / "task_instances.csv").read_text(encoding="utf-8")
    with open(folder / "task_instances.csv", "a", encoding="utf-8") as handle:
        handle.write("".join(broken.splitlines(keepends=True)[1:]))
    report = import_legacy_folder(engine, folder, user_id=user, skip_invalid=True)

    assert report.status == "imported"
    counts = report.files["task_instances.csv"]
    assert (counts.created, counts.refused) == (48, 7)
    assert report.problems[0] == (
        "task_instances.csv:50: predicted: not valid JSON (Expecting ',' delimiter)"
    )
    refused_path = Path(report.refused_files[0])
    assert refused_path.parent == Path(report.backup_dir or "")
    refused = read_csv(refused_path)
    assert [r["instance_id"] for r in refused] == [
        "i1766000001",
        "i1766000002",
        "i1766000003",
        "i1766000004",
        "i1766000004",
        "i1766000006",
        "i1766000007",
    ]
    assert refused[1]["actual"].startswith('{"actual_relief": "lots"')
    assert refused[4]["import_problem"] == (
        "line 54: instance_id: i1766000004 appears twice in the file"
    )
    assert (refused_path.parent / "report.txt").exists()


def test_files_are_backed_up_with_a_sha256_manifest_before_writing(engine, tmp_path):
    user = make_user(engine)
    folder = example("v4-basic", tmp_path)
    report = import_legacy_folder(engine, folder, user_id=user, backup_dir=tmp_path / "safe")
    backup = Path(report.backup_dir or "")
    assert backup.parent == tmp_path / "safe"
    manifest = read_manifest(backup)
    assert sorted(manifest) == sorted(p.name for p in folder.iterdir())
    for name, digest in manifest.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
        assert (backup / name).read_bytes() == (folder / name).read_bytes()
    assert json.loads((backup / "report.json").read_text())["status"] == "imported"


def test_the_default_backup_folder_is_beside_the_data_folder(engine, tmp_path):
    user = make_user(engine)
    report = import_legacy_folder(engine, example("clean-header", tmp_path), user_id=user)
    assert Path(report.backup_dir or "").parent == tmp_path / "tas-import-backups"


def test_legacy_times_are_read_in_the_given_zone_or_the_accounts(engine, tmp_path):
    berlin = make_user(engine, "berlin", "Europe/Berlin")
    york = make_user(engine, "york", "Europe/Berlin")
    folder = example("clean-header", tmp_path)
    import_legacy_folder(engine, folder, user_id=berlin)
    import_legacy_folder(engine, folder, user_id=york, timezone="America/New_York")
    local = dt.datetime(2025, 11, 21, 16, 51)
    assert attempts_by_legacy_id(engine, berlin)["i1763724709"]["initialized_at"] == (
        local.replace(tzinfo=ZoneInfo("Europe/Berlin"))
    )
    assert attempts_by_legacy_id(engine, york)["i1763724709"]["initialized_at"] == (
        local.replace(tzinfo=ZoneInfo("America/New_York"))
    )


def test_each_real_import_is_recorded_with_its_report(engine, tmp_path):
    user = make_user(engine)
    folder = example("v4-basic", tmp_path)
    import_legacy_folder(engine, folder, user_id=user, dry_run=True)
    import_legacy_folder(engine, folder, user_id=user)
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT dry_run, report FROM import_runs")).all()
    assert len(runs) == 1
    assert runs[0].report["files"]["task_instances.csv"]["created"] == 48


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ({"data_dir": "missing"}, "is not a folder"),
        ({"timezone": "Mars/Base"}, "unknown time zone"),
        ({"empty": True}, "holds none of the old app's files"),
    ],
)
def test_operator_mistakes_get_a_clear_message(engine, tmp_path, setup, message):
    user = make_user(engine)
    folder = tmp_path / setup.get("data_dir", "data")
    if "data_dir" not in setup:
        folder.mkdir()
        if not setup.get("empty"):
            shutil.copy(EXAMPLES / "v1-early" / "tasks.csv", folder)
    with pytest.raises(LegacyImportError, match=message):
        import_legacy_folder(engine, folder, user_id=user, timezone=setup.get("timezone"))

"""Export in the legacy layout, and import → export → import into another account."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy import text

import db.legacy
from db.engine import make_engine
from db.legacy import export_folder
from db.legacy import export_zip
from db.legacy import import_legacy_folder
from tests.integration.test_attempts import OUTCOME
from tests.integration.test_attempts import PREDICTION

EXAMPLES = Path(db.legacy.__file__).parent / "examples"
# What differs between two accounts holding the same data: surrogate keys and owners,
# and when the rows were written.
IGNORED = {"id", "user_id", "task_id", "emotion_id", "attempt_id", "updated_at", "archived_at"}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def make_user(engine: Engine, username: str, timezone: str = "Europe/Berlin") -> int:
    with engine.begin() as conn:
        user_id: int = conn.execute(
            text(
                "INSERT INTO users (username, timezone, signin_key_hash)"
                " VALUES (:u, :tz, 'x') RETURNING id"
            ),
            {"u": username, "tz": timezone},
        ).scalar_one()
    return user_id


def account_data(engine: Engine, user_id: int) -> dict[str, Any]:
    """Everything the person owns, keyed by what is stable across accounts."""
    with engine.connect() as conn:
        tasks = {
            r["legacy_id"]: {k: v for k, v in r.items() if k not in IGNORED}
            | {"archived": r["archived_at"] is not None}
            for r in conn.execute(
                text(
                    "SELECT t.*, array(SELECT e.name FROM task_emotions te JOIN emotions e"
                    " ON e.id = te.emotion_id WHERE te.task_id = t.id ORDER BY e.name)"
                    " AS emotions FROM tasks t WHERE t.user_id = :u"
                ),
                {"u": user_id},
            ).mappings()
        }
        attempts = {
            r["legacy_id"]: {k: v for k, v in r.items() if k not in IGNORED}
            for r in conn.execute(
                text(
                    "SELECT a.*, t.legacy_id AS task, array(SELECT ae.phase || ':' || e.name"
                    " FROM attempt_emotions ae JOIN emotions e ON e.id = ae.emotion_id"
                    " WHERE ae.attempt_id = a.id ORDER BY 1) AS emotions"
                    " FROM attempts a JOIN tasks t ON t.id = a.task_id WHERE a.user_id = :u"
                ),
                {"u": user_id},
            ).mappings()
        }
        emotions = (
            conn.execute(
                text("SELECT name FROM emotions WHERE user_id = :u ORDER BY id"), {"u": user_id}
            )
            .scalars()
            .all()
        )
    return {"tasks": tasks, "attempts": attempts, "emotions": emotions}


@pytest.mark.parametrize("name", ["v4-basic", "v1-early"])
def test_export_then_import_into_a_new_account_yields_the_same_data(engine, tmp_path, name):
    first = make_user(engine, "first")
    second = make_user(engine, "second")
    source = tmp_path / name
    shutil.copytree(EXAMPLES / name, source)
    assert import_legacy_folder(engine, source, user_id=first).status == "imported"

    exported = tmp_path / "exported"
    export_folder(engine, exported, user_id=first)
    report = import_legacy_folder(engine, exported, user_id=second)
    assert report.status == "imported", report.render_text()
    assert not report.warnings  # the export's flat copies agree with the outcome

    original, copy = account_data(engine, first), account_data(engine, second)
    assert copy["emotions"] == original["emotions"]
    assert copy["tasks"].keys() == original["tasks"].keys()
    for legacy_id, task in original["tasks"].items():
        assert copy["tasks"][legacy_id] == task, legacy_id
    assert copy["attempts"].keys() == original["attempts"].keys()
    for legacy_id, attempt in original["attempts"].items():
        assert copy["attempts"][legacy_id] == attempt, legacy_id


def test_the_export_uses_the_legacy_headers_and_local_times(engine, tmp_path):
    user = make_user(engine, "alice")
    source = tmp_path / "clean"
    shutil.copytree(EXAMPLES / "clean-header", source)
    import_legacy_folder(engine, source, user_id=user)
    paths = export_folder(engine, tmp_path / "out", user_id=user)
    assert [p.name for p in paths] == [
        "emotions.csv",
        "tasks.csv",
        "task_instances.csv",
        "notes.csv",
        "jobs.csv",
        "job_task_mapping.csv",
    ]
    tasks = (tmp_path / "out" / "tasks.csv").read_text(encoding="utf-8").splitlines()
    assert tasks[0].startswith(
        "task_id,name,description,type,version,created_at,is_recurring,categories,"
        "default_estimate_minutes"
    )
    assert tasks[1].startswith("t1763712000,Inbox zero,Answer or archive every email,routine,1,")
    assert "2025-11-21 08:00" in tasks[1]  # the account's local time, as the old app wrote
    instances = (tmp_path / "out" / "task_instances.csv").read_text(encoding="utf-8")
    assert instances.startswith("instance_id,task_id,task_name,task_version,created_at,")
    assert "2025-11-21 16:51" in instances


def test_the_zip_export_holds_the_same_files(engine, tmp_path):
    user = make_user(engine, "alice")
    source = tmp_path / "v4"
    shutil.copytree(EXAMPLES / "v4-basic", source)
    import_legacy_folder(engine, source, user_id=user)
    export_folder(engine, tmp_path / "out", user_id=user)
    buffer = io.BytesIO()
    export_zip(engine, buffer, user_id=user)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        assert archive.namelist() == [
            "emotions.csv",
            "tasks.csv",
            "task_instances.csv",
            "notes.csv",
            "jobs.csv",
            "job_task_mapping.csv",
        ]
        for member in archive.namelist():
            assert archive.read(member) == (tmp_path / "out" / member).read_bytes()


FORMULA_NAME = '=HYPERLINK("http://x","y")'
RISKY_FIRST = ("=", "+", "-", "@", "\t", "\r")


def _cells(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_cells_a_spreadsheet_would_run_as_formulas_are_written_as_text_and_read_back(
    browser, engine, tmp_path
):
    person = make_user(engine, "bob")
    browser.create_task(FORMULA_NAME, description="+1 for the plan", new_emotions="@home")
    browser.create_task("-5")  # a name that is a number: a spreadsheet shows it as one
    browser.create_task("'=quoted by hand")
    task = browser.latest_id("tasks") - 2
    browser.post(f"/tasks/{task}/initialize", {**PREDICTION, "description": "-do it now"})
    attempt = browser.latest_id("attempts")
    browser.post(f"/attempts/{attempt}/start")
    browser.post(f"/attempts/{attempt}/complete", {**OUTCOME, "notes": "+call them back"})
    with engine.begin() as conn:  # a negative delay, as real data has
        conn.execute(text("UPDATE attempts SET delay_minutes = -5 WHERE id = :a"), {"a": attempt})
        alice = conn.execute(text("SELECT id FROM users WHERE username = 'alice'")).scalar_one()

    export_folder(engine, tmp_path / "out", user_id=alice)
    emotions, tasks, instances = (
        _cells(tmp_path / "out" / name)
        for name in ("emotions.csv", "tasks.csv", "task_instances.csv")
    )
    names = {row[1]: row for row in tasks[1:]}
    assert set(names) == {"'" + FORMULA_NAME, "-5", "''=quoted by hand"}
    assert names["'" + FORMULA_NAME][2] == "'+1 for the plan"
    assert ["'@home"] in emotions
    (row,) = instances[1:]
    columns = dict(zip(instances[0], row, strict=True))
    assert columns["task_name"] == "'" + FORMULA_NAME
    assert columns["delay_minutes"] == "-5.0"  # a number stays a number
    assert json.loads(columns["actual"])["notes"] == "+call them back"  # inside a JSON cell
    assert json.loads(columns["predicted"])["description"] == "-do it now"
    for cell in (cell for rows in (emotions, tasks, instances) for row in rows for cell in row):
        assert not cell.startswith(RISKY_FIRST) or cell == "-5" or cell == "-5.0", cell

    report = import_legacy_folder(engine, tmp_path / "out", user_id=person)
    assert report.status == "imported", report.render_text()
    original, copy = _what_people_see(engine, alice), _what_people_see(engine, person)
    assert sorted(copy["tasks"]) == [
        ("'=quoted by hand", ""),
        ("-5", ""),
        (FORMULA_NAME, "+1 for the plan"),
    ]
    assert copy["attempts"] == [(FORMULA_NAME, "-do it now", "+call them back", 90)]
    assert ("@home",) in copy["emotions"]
    assert copy == original


def _what_people_see(engine: Engine, user_id: int) -> dict[str, list[Any]]:
    """The texts of an account, without ids (rows made in the web app have no legacy id)."""
    with engine.connect() as conn:
        rows = {
            "emotions": "SELECT name FROM emotions WHERE user_id = :u",
            "tasks": "SELECT name, description FROM tasks WHERE user_id = :u",
            "attempts": "SELECT t.name, a.description, a.notes, a.actual_relief"
            " FROM attempts a JOIN tasks t ON t.id = a.task_id WHERE a.user_id = :u",
        }
        return {
            table: sorted(tuple(row) for row in conn.execute(text(sql), {"u": user_id}))
            for table, sql in rows.items()
        }


def test_a_refused_row_written_back_for_fixing_keeps_formulas_as_text(engine, tmp_path):
    person = make_user(engine, "carol")
    source = tmp_path / "source"
    source.mkdir()
    (source / "tasks.csv").write_text(
        "task_id,name,description,type,version,created_at,is_recurring,categories,"
        "default_estimate_minutes\n"
        f't1,"{FORMULA_NAME.replace(chr(34), chr(34) * 2)}",@note,sometimes,1,,False,[],10\n'
    )
    report = import_legacy_folder(
        engine, source, user_id=person, skip_invalid=True, backup_dir=tmp_path / "backups"
    )
    assert report.files["tasks.csv"].refused == 1  # "sometimes" is not a task type
    (written,) = report.refused_files
    row = _cells(Path(written))[1]
    assert row[1:3] == ["'" + FORMULA_NAME, "'@note"]

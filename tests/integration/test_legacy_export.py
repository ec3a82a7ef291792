"""Export in the legacy layout, and import → export → import into another account."""

from __future__ import annotations

import io
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
    assert [p.name for p in paths] == ["emotions.csv", "tasks.csv", "task_instances.csv"]
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
        assert archive.namelist() == ["emotions.csv", "tasks.csv", "task_instances.csv"]
        for member in archive.namelist():
            assert archive.read(member) == (tmp_path / "out" / member).read_bytes()

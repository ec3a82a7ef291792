"""Big attempt files are sorted in a worker process: same report, same rows as without."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy import text

from db.engine import make_engine
from db.legacy import import_legacy_folder
from db.legacy import importer
from tests.integration.test_legacy_import import example
from tests.integration.test_legacy_import import make_user
from tests.integration.test_legacy_import import write_quirky_folder


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def attempts_of(engine: Engine, user_id: int) -> list[tuple[Any, ...]]:
    """Every attempt of one person with its task and emotions, without database ids."""
    with engine.connect() as conn:
        columns = [
            c
            for c in conn.execute(text("SELECT * FROM attempts LIMIT 0")).keys()
            if c not in ("id", "user_id", "task_id")
        ]
        rows = conn.execute(
            text(
                f"SELECT {', '.join('a.' + c for c in columns)}, t.legacy_id, t.name,"
                " array(SELECT e.name || ':' || ae.phase FROM attempt_emotions ae"
                "       JOIN emotions e ON e.id = ae.emotion_id WHERE ae.attempt_id = a.id"
                "       ORDER BY 1)"
                " FROM attempts a JOIN tasks t ON t.id = a.task_id WHERE a.user_id = :u"
                " ORDER BY a.legacy_id"
            ),
            {"u": user_id},
        ).all()
    return [tuple(row) for row in rows]


def imported(
    engine: Engine, folder: Path, monkeypatch: pytest.MonkeyPatch, *, parallel: bool, **options
) -> tuple[str, list[tuple[Any, ...]]]:
    """The report (without its timing and folders) and the attempts of one import."""
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0 if parallel else 1 << 60)
    # Tiny segments: several COPY rounds even for a small file.
    monkeypatch.setattr(importer, "SEGMENT_ROWS", 3 if parallel else 20_000)
    name = f"{'parallel' if parallel else 'serial'}-{uuid.uuid4().hex[:8]}"
    user = make_user(engine, username=name, timezone="UTC")
    report = import_legacy_folder(
        engine, folder, user_id=user, backup_dir=folder.parent / "backups", **options
    )
    text_ = re.sub(r"Imported in .*", "", report.render_text())
    text_ = text_.replace(str(folder.parent), "<tmp>").replace(name, "<user>")
    return text_, attempts_of(engine, user)


@pytest.mark.parametrize(
    "name", ["v4-basic", "v1-early", "clean-header", "broken", "quirks", "late-export"]
)
@pytest.mark.parametrize(
    "options",
    [{}, {"dry_run": True}, {"skip_invalid": True}],
    ids=["strict", "dry-run", "skip-invalid"],
)
def test_parallel_sorting_gives_the_same_report_and_rows(
    engine, tmp_path, monkeypatch, name, options
):
    if name == "quirks":
        folder = tmp_path / name
        write_quirky_folder(folder)
    else:
        folder = example(name, tmp_path)
    serial = imported(engine, folder, monkeypatch, parallel=False, **options)
    parallel = imported(engine, folder, monkeypatch, parallel=True, **options)
    assert parallel[0] == serial[0]
    assert parallel[1] == serial[1]


HEADER = (
    "instance_id,task_id,task_name,task_version,created_at,initialized_at,started_at,"
    "completed_at,predicted,actual,is_completed,is_deleted,status\n"
)


def attempt_line(i: int, *, status: str = "completed", relief: str = "40") -> str:
    predicted = '"{""expected_relief"": 30, ""emotions"": [""Calm"", ""calm"", ""Tense""]}"'
    actual = f'"{{""actual_relief"": {relief}, ""time_actual_minutes"": ""12""}}"'
    return (
        f"i{1000 + i},t1,Walk,1,2025-03-30 0{i % 10}:30,,2025-03-30 0{i % 10}:45,"
        f"2025-03-30 0{i % 10}:59,{predicted},{actual},True,False,{status}\n"
    )


def test_problems_keep_their_order_up_to_an_unreadable_line(engine, tmp_path, monkeypatch):
    """Refused rows, then the line where reading stopped; in a DST gap the times agree."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "tasks.csv").write_text("task_id,name\nt1,Walk\n", encoding="utf-8")
    lines = [attempt_line(i) for i in range(600)]
    lines[3] = attempt_line(3, relief="140")
    lines[17] = attempt_line(17, status="done")
    lines[25] = lines[24]  # the same instance_id twice
    with open(folder / "task_instances.csv", "wb") as out:
        out.write(HEADER.encode())
        out.write("".join(lines).encode())
        out.write(b"i9999,t1,Caf\xe9,1,2025-03-30 01:00,,,,,,False,False,active\n")
    for options in ({}, {"skip_invalid": True}):
        serial = imported(engine, folder, monkeypatch, parallel=False, **options)
        parallel = imported(engine, folder, monkeypatch, parallel=True, **options)
        assert parallel == serial
        problems = serial[0].split("Problems (4):\n", 1)[1].splitlines()
        assert [p.split(":")[1] for p in problems[:3]] == ["5", "19", "27"]
        # Text is decoded in blocks: reading stops at the block with the bad byte.
        assert "not UTF-8" in problems[3]


def test_zoned_times_go_in_as_the_same_instants(engine, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "tasks.csv").write_text("task_id,name\nt1,Walk\n", encoding="utf-8")
    # 2025-03-30 02:30 does not exist in Berlin; 2025-10-26 02:30 exists twice.
    with open(folder / "task_instances.csv", "w", encoding="utf-8") as out:
        out.write(HEADER)
        out.writelines(attempt_line(i) for i in range(10))
        out.write(attempt_line(12).replace("2025-03-30", "2025-10-26"))
    for parallel in (False, True):
        monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0 if parallel else 1 << 60)
        user = make_user(engine, username=f"zoned{parallel}", timezone="Europe/Berlin")
        import_legacy_folder(engine, folder, user_id=user, dry_run=False)
    with engine.connect() as conn:
        times = conn.execute(
            text(
                "SELECT u.username, a.legacy_id, a.initialized_at, a.started_at,"
                " a.completed_at, a.delay_minutes FROM attempts a JOIN users u"
                " ON u.id = a.user_id ORDER BY a.legacy_id, u.username"
            )
        ).all()
    serial = [row[1:] for row in times if row[0] == "zonedFalse"]
    parallel = [row[1:] for row in times if row[0] == "zonedTrue"]
    assert len(serial) == 11
    assert parallel == serial

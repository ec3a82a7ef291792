"""The later export's jobs and emotion intensities into the database, and out and back in
(real PostgreSQL; the pieces the importer calls once it reads the later layout)."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy import text

from db.engine import make_engine
from db.legacy import export_folder
from db.legacy import import_legacy_folder
from db.legacy.groups import apply_intensities
from db.legacy.groups import felt_emotions
from db.legacy.groups import import_groups
from db.legacy.groups import read_job_tasks
from db.legacy.groups import read_jobs
from tests.integration.test_legacy_export import EXAMPLES
from tests.integration.test_legacy_export import make_user

GYM, INBOX, TAXES = "t1763712122", "t1763712000", "t1763712061"
GYM_ATTEMPT = "i1763724709"
JOBS = [
    {"job_id": "j1772676600042", "name": "Health", "created_at": "2026-03-05T02:10:00.512904"},
    {"job_id": "j1772676720718", "name": "Admin", "created_at": "2026-03-05T02:12:00"},
]
MAPPING = [
    {"job_id": "j1772676600042", "task_id": GYM},
    {"job_id": "j1772676720718", "task_id": INBOX},
    {"job_id": "j1772676720718", "task_id": TAXES},
    {"job_id": "j1772676720718", "task_id": "t999"},  # a task the old app had deleted
]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _jobs():
    return read_job_tasks(MAPPING, read_jobs(JOBS))


def _groups(engine, user: int) -> dict[str, list[str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT g.name, array(SELECT t.legacy_id FROM task_group_tasks m"
                " JOIN tasks t ON t.id = m.task_id WHERE m.group_id = g.id ORDER BY 1)"
                " FROM task_groups g WHERE g.user_id = :u ORDER BY g.name"
            ),
            {"u": user},
        )
        return {name: list(tasks) for name, tasks in rows}


def _intensities(engine, user: int) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.legacy_id, ae.phase, e.name, ae.intensity FROM attempt_emotions ae"
                " JOIN attempts a ON a.id = ae.attempt_id JOIN emotions e ON e.id = ae.emotion_id"
                " WHERE ae.user_id = :u ORDER BY 1, 2 DESC, 3"
            ),
            {"u": user},
        )
        return [tuple(row) for row in rows]


def _imported(engine, tmp_path: Path, username: str) -> int:
    user = make_user(engine, username)
    source = tmp_path / f"{username}-source"
    shutil.copytree(EXAMPLES / "clean-header", source)
    assert import_legacy_folder(engine, source, user_id=user).status == "imported"
    return user


def _feel(engine, user: int) -> None:
    """Emotions on an imported attempt, as the importer makes them (no intensity yet)."""
    with engine.begin() as conn:
        for name in ("Restless", "Calm"):
            conn.execute(
                text("INSERT INTO emotions (user_id, name) VALUES (:u, :n) ON CONFLICT DO NOTHING"),
                {"u": user, "n": name},
            )
        conn.execute(
            text(
                "INSERT INTO attempt_emotions (attempt_id, emotion_id, phase, user_id)"
                " SELECT a.id, e.id, p.phase, :u FROM attempts a, emotions e,"
                " (VALUES ('before'), ('after')) AS p(phase)"
                " WHERE a.user_id = :u AND a.legacy_id = :a AND e.user_id = :u"
                " AND e.name IN ('Restless', 'Calm')"
            ),
            {"u": user, "a": GYM_ATTEMPT},
        )


def test_jobs_become_groups_once_and_intensities_land_on_the_imported_emotions(engine, tmp_path):
    user = _imported(engine, tmp_path, "alice")
    _feel(engine, user)
    predicted = {"emotions": ["restless"], "emotion_values": {"restless": 39, "Calm": 0}}
    actual = {"emotion_values": {"Restless": 19}}
    with engine.begin() as conn:
        felt = [
            (GYM_ATTEMPT, "before", felt_emotions(predicted)),
            (GYM_ATTEMPT, "after", felt_emotions(actual)),
            ("i-not-imported", "before", {"Restless": 5}),
        ]
        assert apply_intensities(conn, user, felt) == 3
    assert [row for row in _intensities(engine, user) if row[0] == GYM_ATTEMPT] == [
        (GYM_ATTEMPT, "before", "Calm", 0),
        (GYM_ATTEMPT, "before", "Restless", 39),
        (GYM_ATTEMPT, "after", "Calm", None),
        (GYM_ATTEMPT, "after", "Restless", 19),
    ]

    with engine.begin() as conn:
        done = import_groups(conn, user, _jobs())
    assert (done.groups_added, done.groups_matched, done.tasks_added) == (2, 0, 3)
    assert done.problems == ["job_task_mapping.csv: no task t999 (job j1772676720718) was imported"]
    assert _groups(engine, user) == {"Admin": [INBOX, TAXES], "Health": [GYM]}

    # Importing again adds nothing; a group of the same name made in the app is used.
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO task_groups (user_id, name) VALUES (:u, 'hobbies')"), {"u": user}
        )
        again = import_groups(conn, user, _jobs())
        more = read_job_tasks(
            [{"job_id": "j3", "task_id": GYM}], read_jobs([{"job_id": "j3", "name": "Hobbies"}])
        )
        hobbies = import_groups(conn, user, more)
    assert (again.groups_added, again.groups_matched, again.tasks_added) == (0, 2, 0)
    assert (hobbies.groups_added, hobbies.groups_matched, hobbies.tasks_added) == (0, 1, 1)
    assert _groups(engine, user) == {"Admin": [INBOX, TAXES], "Health": [GYM], "hobbies": [GYM]}


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_groups_and_intensities_go_out_and_back_in_unchanged(engine, tmp_path):
    first = _imported(engine, tmp_path, "first")
    _feel(engine, first)
    with engine.begin() as conn:
        import_groups(conn, first, _jobs())
        apply_intensities(conn, first, [(GYM_ATTEMPT, "before", {"Restless": 39, "Calm": 70})])
        apply_intensities(conn, first, [(GYM_ATTEMPT, "after", {"Restless": 10})])
    out = tmp_path / "out"
    export_folder(engine, out, user_id=first)
    jobs = _csv(out / "jobs.csv")
    assert [row["name"] for row in jobs] == ["Health", "Admin"]
    assert jobs[0]["job_id"] == "j1772676600042"  # the old app's id, kept
    assert jobs[0]["created_at"] == "2026-03-05T02:10:00.512904"

    second = make_user(engine, "second")
    assert import_legacy_folder(engine, out, user_id=second).status == "imported"
    felt = []
    for row in _csv(out / "task_instances.csv"):
        felt.append((row["instance_id"], "before", felt_emotions(json.loads(row["predicted"]))))
        felt.append((row["instance_id"], "after", felt_emotions(json.loads(row["actual"]))))
    with engine.begin() as conn:
        apply_intensities(conn, second, felt)
        import_groups(
            conn, second, read_job_tasks(_csv(out / "job_task_mapping.csv"), read_jobs(jobs))
        )
    assert _groups(engine, second) == _groups(engine, first)
    assert _intensities(engine, second) == _intensities(engine, first)
    assert (GYM_ATTEMPT, "after", "Calm", None) in _intensities(engine, second)

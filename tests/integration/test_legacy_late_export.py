"""The old app's later export (notes, due dates, statuses, jobs...): imported, round-tripped."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy import text

from db.engine import make_engine
from db.legacy import export_folder
from db.legacy import import_legacy_folder
from tests.integration.test_legacy_export import account_data
from tests.integration.test_legacy_import import attempts_by_legacy_id
from tests.integration.test_legacy_import import example
from tests.integration.test_legacy_import import make_user
from tests.integration.test_legacy_import import row_counts

UTC = dt.timezone.utc
CHICAGO = "America/Chicago"  # where the imagined install of the example ran


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def notes_of(engine: Engine, user_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT n.body, n.created_at, a.legacy_id AS attempt FROM notes n"
                " LEFT JOIN attempts a ON a.id = n.attempt_id"
                " WHERE n.user_id = :u ORDER BY n.created_at, n.body"
            ),
            {"u": user_id},
        ).mappings()
        return [dict(row) for row in rows]


def count_notes(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM notes")).scalar_one()


def imported_late_export(engine: Engine, tmp_path: Path) -> tuple[int, Any]:
    user = make_user(engine, timezone=CHICAGO)
    report = import_legacy_folder(engine, example("late-export", tmp_path), user_id=user)
    assert report.status == "imported", report.render_text()
    return user, report


def test_the_later_export_is_imported_and_what_has_no_home_yet_is_named(engine, tmp_path):
    user, report = imported_late_export(engine, tmp_path)

    counts = {name: c.as_dict() for name, c in report.files.items()}
    assert counts["tasks.csv"]["created"] == 6
    assert counts["task_instances.csv"]["created"] == 41
    assert counts["notes.csv"]["created"] == 5
    assert counts["emotions.csv"]["created"] == 7
    # Nothing of the old app is called "not a file of the old app" any more.
    assert report.ignored_files == []
    assert report.skipped_files == [
        "popup_responses.csv",
        "popup_triggers.csv",
        "survey_responses.csv",
        "user_preferences.csv",
    ]
    pending = "\n".join(report.pending)
    # The jobs are the person's task groups now, with their tasks.
    assert "jobs.csv" not in pending and "job_task_mapping.csv" not in pending
    assert report.files["jobs.csv"].created == 2
    assert report.files["job_task_mapping.csv"].created == 6
    with engine.connect() as conn:
        groups = conn.execute(
            text(
                "SELECT g.name, count(m.task_id) FROM task_groups g"
                " LEFT JOIN task_group_tasks m ON m.group_id = g.id"
                " WHERE g.user_id = :user GROUP BY g.name ORDER BY g.name"
            ),
            {"user": user},
        ).all()
    assert len(groups) == 2 and sum(count for _name, count in groups) == 6
    for column in ("task_type", "default_initial_aversion"):
        assert f"tasks.csv: {column} (" in pending
    # The routine columns have their home: the task's schedule.
    assert "routine" not in pending
    assert not [n for n in report.notes if "routine" in n]
    # The emotions' intensities are the attempt emotions' now, out of the attempts' data.
    assert "emotion_values" not in pending
    with engine.connect() as conn:
        felt, left_in_data = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM attempt_emotions"
                "        WHERE user_id = :user AND intensity IS NOT NULL),"
                " (SELECT count(*) FROM attempts WHERE user_id = :user"
                "        AND (extra ? 'emotion_values_before' OR extra ? 'emotion_values_after'))"
            ),
            {"user": user},
        ).one()
    assert felt > 0 and left_in_data == 0
    text_report = report.render_text()
    assert "Read but not imported yet:" in text_report
    assert "not a file of the old app" not in text_report
    # Columns left out by design are named with the reason.
    assert any("net_emotional" in n and "derived" in n for n in report.notes)
    assert any("user_id" in n and "importing person" in n for n in report.notes)


def test_notes_keep_their_utc_timestamps_and_multi_line_text(engine, tmp_path):
    user, _report = imported_late_export(engine, tmp_path)
    notes = [n for n in notes_of(engine, user) if n["body"] != "Events list is late again"]
    notes = [n for n in notes if "newsletter" not in n["body"]]  # a task's running notes
    assert len(notes) == 5
    assert notes[0] == {
        "body": "Mornings are easier than evenings for admin.",
        "created_at": dt.datetime(2026, 2, 17, 4, 5, 0, 104233, tzinfo=UTC),
        "attempt": None,
    }
    assert notes[2]["body"] == 'Pattern: I postpone things that need a "yes" from someone else.'
    assert notes[3]["body"] == (
        "Slept badly.\nStill did the plants; relief was bigger than expected."
    )


def test_a_tasks_running_notes_become_notes_on_the_attempt_open_then(engine, tmp_path):
    user, report = imported_late_export(engine, tmp_path)
    notes = [n for n in notes_of(engine, user) if n["created_at"].month in (2, 3)]
    # Local times of the install (Chicago, UTC-6).
    free = {
        "body": "Draft the community newsletter: Ask the bakery for a quote",
        "created_at": dt.datetime(2026, 2, 24, 17, 2, tzinfo=UTC),
        "attempt": None,  # its attempt was done the day before
    }
    on_attempt = {
        "body": "Events list is late again",
        "created_at": dt.datetime(2026, 3, 3, 17, 16, tzinfo=UTC),
        "attempt": "i1772463609",  # open (paused) at the time
    }
    assert free in notes and on_attempt in notes
    assert len(notes) == 7
    assert any("2 running note(s) of tasks became notes (1 on" in n for n in report.notes)
    assert not any(p.startswith("tasks.csv: notes") for p in report.pending)


def test_attempts_get_due_dates_statuses_categories_pauses_and_postponements(engine, tmp_path):
    user, _report = imported_late_export(engine, tmp_path)
    attempts = attempts_by_legacy_id(engine, user)

    # Due dates: the install's local time (Chicago, UTC-6 in March) → UTC.
    postponed = attempts["i1772380826"]
    assert postponed["due_at"] == dt.datetime(2026, 3, 5, 5, 59, tzinfo=UTC)
    assert postponed["status"] == "initialized"
    assert postponed["postponed_at"] == dt.datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    assert postponed["extra"]["postponements"] == [
        {"at": "2026-03-03T15:00:00+00:00", "reason": "Library closed on Tuesdays"}
    ]
    twice = attempts["i1772668801"]
    assert [p["reason"] for p in twice["extra"]["postponements"]] == [
        "Neighbours asleep",
        "Sore wrist",
    ]
    assert twice["postponed_at"] == dt.datetime(2026, 3, 6, 0, 20, tzinfo=UTC)

    # Paused (status initialized + paused in `actual`) and paused-then-resumed.
    paused = attempts["i1772841601"]
    assert paused["status"] == "paused"
    assert paused["minutes_spent"] == 22.0
    assert paused["extra"]["pauses"] == [{"reason": "Phone call"}]
    resumed = attempts["i1772463609"]
    assert resumed["status"] == "paused"  # was running in the old app: its clock stopped
    assert resumed["minutes_spent"] == 75.0
    assert resumed["due_at"] == dt.datetime(2026, 3, 10, 4, 59, tzinfo=UTC)  # CDT by then

    draft = attempts["i1772803834"]
    assert (draft["status"], draft["extra"]["legacy_status"]) == ("initialized", "draft")

    # Cancellation categories, the old app's and its person's own, with the reasons.
    assert attempts["i1771459222"]["cancel_category"] == "deferred_to_plan"
    assert attempts["i1771459222"]["cancel_reason"] == "Wrote a practice plan instead"
    assert attempts["i1772331038"]["cancel_category"] == "too_tired"
    assert attempts["i1771611643"]["cancel_reason"] == "No reason was recorded in the old app."

    # completion_notes (the later name of notes) and over-completion.
    over = attempts["i1771812022"]
    assert over["completion_percent"] == 130
    assert over["notes"].startswith("Good session.")
    # Each emotion's intensity is its attempt emotion's.
    with engine.connect() as conn:
        felt = conn.execute(
            text(
                "SELECT e.name, ae.intensity FROM attempt_emotions ae"
                " JOIN emotions e ON e.id = ae.emotion_id"
                " JOIN attempts a ON a.id = ae.attempt_id"
                " WHERE a.user_id = :user AND a.legacy_id = 'i1771286409' AND ae.phase = 'before'"
            ),
            {"user": user},
        ).all()
    assert dict(felt) == {"Restless": 39, "Overwhelmed": 78, "Hopeful": 86}
    # The attempt of a deleted task sits on an archived stand-in.
    assert sum(a["task_archived"] for a in attempts.values()) >= 1


def test_a_second_import_of_the_later_export_changes_nothing(engine, tmp_path):
    user, _report = imported_late_export(engine, tmp_path)
    before = row_counts(engine), count_notes(engine)
    again = import_legacy_folder(engine, example("late-export", tmp_path / "again"), user_id=user)
    assert again.status == "imported"
    after = row_counts(engine), count_notes(engine)
    assert after[1] == before[1]
    assert {k: v for k, v in after[0].items() if k != "import_runs"} == {
        k: v for k, v in before[0].items() if k != "import_runs"
    }
    assert again.files["notes.csv"].skipped == 5
    assert again.files["task_instances.csv"].created == 0


def _late_folder(tmp_path: Path) -> Path:
    return example("late-export", tmp_path)


def _replace(path: Path, old: str, new: str) -> None:
    content = path.read_text(encoding="utf-8")
    assert old in content
    path.write_text(content.replace(old, new, 1), encoding="utf-8")


def test_a_due_date_without_a_time_is_due_at_2359_local(engine, tmp_path):
    folder = _late_folder(tmp_path)
    _replace(folder / "task_instances.csv", ",2026-03-04 23:59,", ",2026-03-04,")
    user = make_user(engine, timezone=CHICAGO)
    assert import_legacy_folder(engine, folder, user_id=user).status == "imported"
    due = attempts_by_legacy_id(engine, user)["i1772380826"]["due_at"]
    assert due == dt.datetime(2026, 3, 5, 5, 59, tzinfo=UTC)


def test_bad_due_dates_and_note_times_are_refused_per_row_and_nothing_is_written(engine, tmp_path):
    folder = _late_folder(tmp_path)
    _replace(folder / "task_instances.csv", ",2026-03-04 23:59,", ",next friday,")
    _replace(folder / "notes.csv", "2026-02-21T15:12:00.105344", "21/02/2026 15:12")
    user = make_user(engine, timezone=CHICAGO)
    before = row_counts(engine), count_notes(engine)

    report = import_legacy_folder(engine, folder, user_id=user)

    assert report.status == "refused"
    lines = (folder / "task_instances.csv").read_text(encoding="utf-8").splitlines()
    due_line = next(i for i, line in enumerate(lines, 1) if ",next friday," in line)
    assert report.problems == [
        f"task_instances.csv:{due_line}: due_at: 'next friday' is not a time like 2025-11-21 14:03",
        "notes.csv:3: timestamp: '21/02/2026 15:12' is not a time like 2025-11-21 14:03",
    ]
    assert (row_counts(engine), count_notes(engine)) == before
    assert not list((tmp_path / "tas-import-backups").glob("*"))  # no backup kept

    # With skip-invalid, everything else goes in.
    partial = import_legacy_folder(engine, folder, user_id=user, skip_invalid=True)
    assert partial.status == "imported"
    assert partial.files["notes.csv"].created == 4
    assert partial.files["task_instances.csv"].created == 40


def test_a_note_with_a_repeated_id_or_too_long_is_refused_with_its_line(engine, tmp_path):
    folder = _late_folder(tmp_path)
    with open(folder / "notes.csv", "a", encoding="utf-8") as out:
        out.write("note-1771322700104,Again,2026-02-18T04:05:00,1\n")
        out.write(f"note-1,{'x' * 10001},2026-02-18T04:05:00,1\n")
    user = make_user(engine, timezone=CHICAGO)
    report = import_legacy_folder(engine, folder, user_id=user, dry_run=True)
    assert report.problems == [
        "notes.csv:8: note_id: same note as line 2",
        "notes.csv:9: content: content is 10001 characters long, at most 10000 allowed",
    ]


def test_an_unreadable_jobs_file_is_named_and_refuses_a_strict_import_only(engine, tmp_path):
    folder = _late_folder(tmp_path)
    (folder / "jobs.csv").write_bytes(b"job_id,name\nj1,Caf\xe9\n")
    user = make_user(engine, timezone=CHICAGO)
    strict = import_legacy_folder(engine, folder, user_id=user)
    assert strict.status == "refused"
    assert any(p.startswith("jobs.csv:") for p in strict.problems)
    partial = import_legacy_folder(engine, folder, user_id=user, skip_invalid=True)
    assert partial.status == "imported" and partial.files["tasks.csv"].created > 0


def test_import_export_import_round_trips_the_later_export(engine, tmp_path):
    first, _report = imported_late_export(engine, tmp_path)
    second = make_user(engine, "second", timezone=CHICAGO)
    exported = tmp_path / "exported"
    export_folder(engine, exported, user_id=first)

    report = import_legacy_folder(engine, exported, user_id=second)
    assert report.status == "imported", report.render_text()
    assert not report.warnings

    original, copy = account_data(engine, first), account_data(engine, second)
    assert copy["emotions"] == original["emotions"]
    assert copy["attempts"].keys() == original["attempts"].keys()
    for legacy_id, attempt in original["attempts"].items():
        assert copy["attempts"][legacy_id] == attempt, legacy_id
    assert notes_of(engine, second) == notes_of(engine, first)
    # Something to compare: due dates, categories and postponements came through.
    attempts = original["attempts"]
    assert sum(a["due_at"] is not None for a in attempts.values()) == 3
    assert sum(a["postponed_at"] is not None for a in attempts.values()) == 2
    assert sum(a["cancel_category"] is not None for a in attempts.values()) == 5

    # The export read back into the same account adds nothing.
    again = import_legacy_folder(engine, exported, user_id=first)
    assert again.files["notes.csv"].created == 0
    assert again.files["task_instances.csv"].created == 0


def test_notes_on_attempts_come_back_on_the_same_attempt(engine, tmp_path):
    first, _report = imported_late_export(engine, tmp_path)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO notes (user_id, attempt_id, body, created_at)"
                " SELECT :u, id, 'Felt easier after the first five minutes',"
                " '2026-03-06 12:00:00.5+00' FROM attempts"
                " WHERE user_id = :u AND legacy_id = 'i1772841601'"
            ),
            {"u": first},
        )
    exported = tmp_path / "exported"
    export_folder(engine, exported, user_id=first)
    header = (exported / "notes.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "note_id,content,timestamp,user_id,instance_id"
    second = make_user(engine, "second", timezone=CHICAGO)
    import_legacy_folder(engine, exported, user_id=second)
    on_attempt = [n for n in notes_of(engine, second) if n["attempt"] == "i1772841601"]
    assert on_attempt == [
        {
            "body": "Felt easier after the first five minutes",
            "created_at": dt.datetime(2026, 3, 6, 12, 0, 0, 500000, tzinfo=UTC),
            "attempt": "i1772841601",
        }
    ]


def test_the_export_writes_due_dates_in_local_time_and_the_later_statuses(engine, tmp_path):
    first, _report = imported_late_export(engine, tmp_path)
    exported = tmp_path / "exported"
    export_folder(engine, exported, user_id=first)
    with open(exported / "task_instances.csv", encoding="utf-8", newline="") as handle:
        rows = {row["instance_id"]: row for row in csv.DictReader(handle)}
    assert rows["i1772380826"]["due_at"] == "2026-03-04 23:59"
    assert rows["i1772841601"]["status"] == "initialized"
    assert '"paused": true' in rows["i1772841601"]["actual"]
    assert '"cancellation_category": "too_tired"' in rows["i1772331038"]["actual"]


def test_the_report_warns_when_the_old_apps_zone_differs_from_the_one_used(engine, tmp_path):
    user = make_user(engine, timezone="Europe/Berlin")
    report = import_legacy_folder(
        engine, example("late-export", tmp_path), user_id=user, dry_run=True
    )
    assert any("America/Chicago" in w and "read as Europe/Berlin" in w for w in report.warnings), (
        report.warnings
    )
    same = import_legacy_folder(
        engine, example("late-export", tmp_path / "2"), user_id=user, timezone=CHICAGO
    )
    assert not [w for w in same.warnings if "user_preferences.csv" in w]


def test_bad_later_details_are_refused_with_their_column_and_reason(engine, tmp_path):
    folder = _late_folder(tmp_path)
    instances = folder / "task_instances.csv"
    _replace(instances, '""at"": ""2026-03-03 09:00""', '""at"": ""Tuesday""')
    _replace(
        instances,
        '""cancellation_category"": ""too_tired""',
        f'""cancellation_category"": ""{"x" * 61}""',
    )
    _replace(folder / "tasks.csv", "[2026-03-03 11:16]", "[2026-13-03 11:16]")
    user = make_user(engine, timezone=CHICAGO)
    report = import_legacy_folder(engine, folder, user_id=user, dry_run=True)
    assert report.status == "dry-run"
    problems = "\n".join(report.problems)
    assert "tasks.csv:5: notes: '2026-13-03 11:16' is not a valid date and time" in problems
    assert (
        "task_instances.csv:27: actual: cancellation_category is 61 characters long, "
        "at most 60 allowed" in problems
    )
    assert (
        "task_instances.csv:30: actual: postpone_history: 'Tuesday' is not a time like "
        "2025-11-21 14:03" in problems
    )
    assert report.problem_count == 3


def test_an_export_written_on_windows_with_crlf_line_ends_imports_the_same(engine, tmp_path):
    folder = _late_folder(tmp_path)
    for path in folder.glob("*.csv"):
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    user = make_user(engine, timezone=CHICAGO)
    report = import_legacy_folder(engine, folder, user_id=user)
    assert report.status == "imported", report.render_text()
    assert report.files["task_instances.csv"].created == 41
    assert report.files["notes.csv"].created == 5
    notes = notes_of(engine, user)
    assert {"Events list is late again", "Mornings are easier than evenings for admin."} <= {
        n["body"] for n in notes
    }
    assert len(notes) == 7

"""Reading the old app's later export: emotion intensities and jobs (no database)."""

from __future__ import annotations

import csv
import io
import json

from db.legacy.groups import Jobs
from db.legacy.groups import emotion_values
from db.legacy.groups import felt_emotions
from db.legacy.groups import read_job_tasks
from db.legacy.groups import read_jobs

# As the later export writes them (docs/legacy-csv.md, "The later export").
JOBS_CSV = """job_id,name,task_type,description,created_at,updated_at
j1772676600042,Household upkeep,Self care,Small,2026-03-05T02:10:00.512904,2026-03-05T02:10:00
j1772676720718,  Creative   projects ,Play,,2026-03-05T02:12:00.088310,2026-03-05T02:15:00.004571
,No id,Play,,2026-03-05T02:12:00,2026-03-05T02:12:00
j1772676720999,,Play,,2026-03-05T02:12:00,2026-03-05T02:12:00
j1772676720718,Listed twice,Play,,2026-03-05T02:12:00,2026-03-05T02:12:00
"""
MAPPING_CSV = """job_id,task_id,created_at
j1772676600042,t1764684600,2026-03-05T02:17:00.001200
j1772676600042,t1771611300,2026-03-05T02:17:00.002200
j1772676720718,t1771611300,2026-03-05T02:17:00.004200
j1772676600042,t1764684600,2026-03-05T02:18:00.001200
j0000000000000,t1764684600,2026-03-05T02:17:00.001200
"""


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_intensities_come_from_emotion_values_before_and_after():
    predicted = json.loads(
        '{"emotions": ["Restless", "Overwhelmed", "Hopeful"],'
        ' "emotion_values": {"Restless": 39, "Overwhelmed": 78, "Hopeful": 86}}'
    )
    assert felt_emotions(predicted) == {"Restless": 39, "Overwhelmed": 78, "Hopeful": 86}
    # After a task the old app wrote only emotion_values: its keys are the emotions felt.
    actual = {"actual_relief": 56, "emotion_values": {"Restless": 19, "Calm": 98}}
    assert felt_emotions(actual) == {"Restless": 19, "Calm": 98}


def test_older_and_odd_emotion_cells_keep_the_emotions_without_a_wrong_intensity():
    # Older rows: a list of names, or either as a JSON string.
    assert felt_emotions({"emotion_values": ["Tired", "Calm"]}) == {"Tired": None, "Calm": None}
    assert felt_emotions({"emotion_values": '{"Tired": 40}'}) == {"Tired": 40}
    assert felt_emotions({"emotions": '["Tired"]'}) == {"Tired": None}
    odd = {
        "emotions": ["tired", "  Calm  ", "", 5, "x" * 61],
        "emotion_values": {"Tired": 40.0, "Calm": 101, "Sad": -1, "Glad": 2.5, "Bold": True},
    }
    # One emotion per name whatever the capitals; an intensity outside 0–100 is left out.
    assert felt_emotions(odd) == {
        "tired": 40,
        "Calm": None,
        "Sad": None,
        "Glad": None,
        "Bold": None,
    }
    assert felt_emotions(None) == {} and felt_emotions({"emotion_values": "not json"}) == {}


def test_jobs_and_their_tasks_are_read_with_a_sentence_per_row_left_out():
    jobs = read_jobs(_rows(JOBS_CSV))
    assert jobs.names == {
        "j1772676600042": "Household upkeep",
        "j1772676720718": "Creative projects",
    }
    assert jobs.created["j1772676600042"].isoformat() == "2026-03-05T02:10:00.512904+00:00"
    read_job_tasks(_rows(MAPPING_CSV), jobs)
    assert jobs.pairs == [
        ("j1772676600042", "t1764684600"),
        ("j1772676600042", "t1771611300"),
        ("j1772676720718", "t1771611300"),
    ]
    assert jobs.problems == [
        "jobs.csv line 4: no job_id",
        "jobs.csv line 5: job j1772676720999 has no name",
        "jobs.csv line 6: job j1772676720718 is listed twice",
        "job_task_mapping.csv line 6: no job j0000000000000 in jobs.csv",
    ]


def test_a_job_name_too_long_for_a_group_is_left_out_with_a_reason():
    jobs = read_jobs([{"job_id": "j1", "name": "x" * 101, "created_at": "not a time"}], Jobs())
    assert jobs.names == {}
    assert jobs.problems == ["jobs.csv line 2: the name of job j1 is longer than 100 characters"]


def test_the_export_writes_only_the_intensities_given():
    assert emotion_values(["Calm", "Tired"], [None, 30]) == {"Tired": 30}
    assert emotion_values([], []) == {}

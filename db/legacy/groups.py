"""The old app's later export: emotion intensities and jobs (task groups), in and out.

Self-contained pieces the importer calls once it reads the later layout
(docs/legacy-csv.md, "The later export"):

- :func:`felt_emotions` reads the emotions of one phase of an attempt from its ``predicted``
  (before) or ``actual`` (after) JSON: the names in ``emotions`` and the keys of
  ``emotion_values`` (name → intensity 1–100; older rows: a list of names, or either as a
  JSON string). :func:`apply_intensities` then writes the intensities onto the attempt
  emotions the import made (one statement for a whole batch).
- :func:`read_jobs` and :func:`read_job_tasks` read ``jobs.csv`` and
  ``job_task_mapping.csv`` rows (dicts by column name); :func:`import_groups` makes them the
  person's task groups (matched by the job id, else by name: a re-import adds only what is
  new) and puts the tasks in them.
- :func:`jobs_rows` and :func:`job_task_rows` write them back in the same layout.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import text

from db.models import EMOTION_NAME_MAX
from db.models import GROUP_NAME_MAX

JOBS = "jobs.csv"
JOB_TASKS = "job_task_mapping.csv"
JOB_HEADER = ("job_id", "name", "task_type", "description", "created_at", "updated_at")
JOB_TASK_HEADER = ("job_id", "task_id", "created_at")
# What the report names as not imported, and why.
JOB_COLUMNS_NOT_IMPORTED = {
    "task_type": "a job's area of life has no place in a group",
    "description": "groups have a name only",
    "updated_at": "groups keep when they were made only",
}
INTENSITY_MAX = 100


def _decoded(value: Any) -> Any:
    """A JSON string decoded (older rows stored some values as JSON text), else as is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    name = " ".join(value.split())
    return name if 0 < len(name) <= EMOTION_NAME_MAX else None


def _intensity(value: Any) -> int | None:
    """An intensity 0–100 (whole; a float like 40.0 too); anything else: none."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    number = int(value)
    return number if 0 <= number <= INTENSITY_MAX else None


def felt_emotions(details: Mapping[str, Any] | None) -> dict[str, int | None]:
    """The emotions of one phase (``predicted`` or ``actual``) and their intensities.

    Names from ``emotions`` and from the keys of ``emotion_values``, in that order, one
    per name whatever its capitals (the first spelling kept); an intensity that isn't a
    whole number from 0 to 100 is left out (the emotion stays). Names longer than an
    emotion may be are left out.
    """
    if not details:
        return {}
    felt: dict[str, int | None] = {}
    seen: dict[str, str] = {}

    def add(raw: Any, intensity: int | None) -> None:
        name = _name(raw)
        if name is None:
            return
        key = seen.setdefault(name.lower(), name)
        if intensity is not None or key not in felt:
            felt[key] = intensity if intensity is not None else felt.get(key)

    names = _decoded(details.get("emotions"))
    if isinstance(names, list):
        for raw in names:
            add(raw, None)
    values = _decoded(details.get("emotion_values"))
    if isinstance(values, dict):
        for raw, value in values.items():
            add(raw, _intensity(value))
    elif isinstance(values, list):
        for raw in values:
            add(raw, None)
    return felt


_APPLY = text(
    """
    UPDATE attempt_emotions ae SET intensity = v.intensity
    FROM unnest(CAST(:legacy_ids AS text[]), CAST(:phases AS text[]),
                CAST(:names AS text[]), CAST(:intensities AS smallint[]))
         AS v(legacy_id, phase, name, intensity)
    JOIN attempts a ON a.user_id = :user_id AND a.legacy_id = v.legacy_id
    JOIN emotions e ON e.user_id = :user_id AND lower(e.name) = lower(v.name)
    WHERE ae.user_id = :user_id AND ae.attempt_id = a.id AND ae.emotion_id = e.id
      AND ae.phase = v.phase AND ae.intensity IS DISTINCT FROM v.intensity
    """
)


def apply_intensities(
    conn: Connection,
    user_id: int,
    felt: Iterable[tuple[str, str, Mapping[str, int | None]]],
) -> int:
    """Write intensities onto the person's attempt emotions already imported: ``felt``
    holds (attempt legacy id, phase, :func:`felt_emotions` of it). One statement; returns
    how many emotions got an intensity."""
    columns: tuple[list[Any], list[Any], list[Any], list[Any]] = ([], [], [], [])
    for legacy_id, phase, emotions in felt:
        for name, intensity in emotions.items():
            if intensity is not None:
                for column, value in zip(columns, (legacy_id, phase, name, intensity), strict=True):
                    column.append(value)
    if not columns[0]:
        return 0
    result = conn.execute(
        _APPLY,
        {
            "user_id": user_id,
            "legacy_ids": columns[0],
            "phases": columns[1],
            "names": columns[2],
            "intensities": columns[3],
        },
    )
    return int(result.rowcount)


@dataclass
class Jobs:
    """``jobs.csv`` and ``job_task_mapping.csv`` as read: jobs by id (their tidied names),
    the (job id, task id) pairs, and a sentence per row left out."""

    names: dict[str, str] = field(default_factory=dict)
    created: dict[str, dt.datetime] = field(default_factory=dict)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _utc(value: str) -> dt.datetime | None:
    """The later export's ISO times, in UTC without a zone."""
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment


def read_jobs(rows: Iterable[Mapping[str, str]], jobs: Jobs | None = None) -> Jobs:
    """Jobs from ``jobs.csv`` rows (line numbers count the header as line 1)."""
    jobs = jobs or Jobs()
    for line, row in enumerate(rows, start=2):
        job_id = (row.get("job_id") or "").strip()
        name = " ".join((row.get("name") or "").split())
        if not job_id:
            jobs.problems.append(f"{JOBS} line {line}: no job_id")
        elif not name:
            jobs.problems.append(f"{JOBS} line {line}: job {job_id} has no name")
        elif len(name) > GROUP_NAME_MAX:
            jobs.problems.append(
                f"{JOBS} line {line}: the name of job {job_id} is longer than "
                f"{GROUP_NAME_MAX} characters"
            )
        elif job_id in jobs.names:
            jobs.problems.append(f"{JOBS} line {line}: job {job_id} is listed twice")
        else:
            jobs.names[job_id] = name
            created = _utc(row.get("created_at") or "")
            if created is not None:
                jobs.created[job_id] = created
    return jobs


def read_job_tasks(rows: Iterable[Mapping[str, str]], jobs: Jobs) -> Jobs:
    """The job ↔ task pairs of ``job_task_mapping.csv`` rows, for the jobs read before."""
    seen = set(jobs.pairs)
    for line, row in enumerate(rows, start=2):
        job_id = (row.get("job_id") or "").strip()
        task_id = (row.get("task_id") or "").strip()
        if job_id not in jobs.names:
            jobs.problems.append(f"{JOB_TASKS} line {line}: no job {job_id or '(empty)'} in {JOBS}")
        elif not task_id:
            jobs.problems.append(f"{JOB_TASKS} line {line}: no task_id")
        elif (job_id, task_id) not in seen:
            seen.add((job_id, task_id))
            jobs.pairs.append((job_id, task_id))
    return jobs


_GROUP_BY_LEGACY_ID = text(
    "SELECT legacy_id, id FROM task_groups WHERE user_id = :user_id AND legacy_id IS NOT NULL"
)
_GROUP_BY_NAME = text("SELECT lower(name), id FROM task_groups WHERE user_id = :user_id")
_NEW_GROUP = text(
    "INSERT INTO task_groups (user_id, name, legacy_id, created_at)"
    " VALUES (:user_id, :name, :legacy_id, coalesce(:created_at, now()))"
    " ON CONFLICT DO NOTHING RETURNING id"
)
_TASKS_BY_LEGACY_ID = text(
    "SELECT legacy_id, id FROM tasks WHERE user_id = :user_id AND legacy_id = ANY(:ids)"
)
_ADD_TASKS = text(
    """
    INSERT INTO task_group_tasks (group_id, task_id, user_id)
    SELECT g, t, :user_id
    FROM unnest(CAST(:groups AS bigint[]), CAST(:tasks AS bigint[])) AS p(g, t)
    ON CONFLICT DO NOTHING
    """
)


@dataclass
class GroupsImported:
    groups_added: int = 0
    groups_matched: int = 0
    tasks_added: int = 0
    problems: list[str] = field(default_factory=list)


def _pairs(rows: Iterable[Any]) -> dict[str, int]:
    return {str(key): int(value) for key, value in rows}


def import_groups(conn: Connection, user_id: int, jobs: Jobs) -> GroupsImported:
    """Make the jobs the person's groups and put their tasks in them (tasks imported
    before, by their old ids). A job already imported (same job id), or a group of the
    same name, is used as it is: importing again adds only what is new."""
    done = GroupsImported(problems=list(jobs.problems))
    by_legacy = _pairs(conn.execute(_GROUP_BY_LEGACY_ID, {"user_id": user_id}))
    by_name = _pairs(conn.execute(_GROUP_BY_NAME, {"user_id": user_id}))
    group_of: dict[str, int] = {}
    for job_id, name in jobs.names.items():
        existing = by_legacy.get(job_id) or by_name.get(name.lower())
        if existing is None:
            params = {
                "user_id": user_id,
                "name": name,
                "legacy_id": job_id,
                "created_at": jobs.created.get(job_id),
            }
            existing = conn.execute(_NEW_GROUP, params).scalar_one_or_none()
            if existing is None:  # made at this moment by someone else's request
                existing = _pairs(conn.execute(_GROUP_BY_NAME, {"user_id": user_id}))[name.lower()]
            else:
                done.groups_added += 1
            by_name[name.lower()] = existing
        else:
            done.groups_matched += 1
        group_of[job_id] = int(existing)
    task_ids = sorted({task_id for _job, task_id in jobs.pairs})
    tasks = _pairs(conn.execute(_TASKS_BY_LEGACY_ID, {"user_id": user_id, "ids": task_ids}))
    groups: list[int] = []
    members: list[int] = []
    for job_id, task_id in jobs.pairs:
        if task_id not in tasks:
            done.problems.append(f"{JOB_TASKS}: no task {task_id} (job {job_id}) was imported")
            continue
        groups.append(group_of[job_id])
        members.append(int(tasks[task_id]))
    if groups:
        result = conn.execute(_ADD_TASKS, {"user_id": user_id, "groups": groups, "tasks": members})
        done.tasks_added = int(result.rowcount)
    return done


# --- export -------------------------------------------------------------------------------

_GROUPS_SQL = text(
    "SELECT id, legacy_id, name, created_at FROM task_groups WHERE user_id = :user_id ORDER BY id"
)
_GROUP_TASKS_SQL = text(
    """
    SELECT g.id AS group_id, g.legacy_id AS group_legacy_id, t.id AS task_id,
           t.legacy_id AS task_legacy_id, g.created_at
    FROM task_group_tasks m
    JOIN task_groups g ON g.id = m.group_id AND g.user_id = m.user_id
    JOIN tasks t ON t.id = m.task_id AND t.user_id = m.user_id
    WHERE m.user_id = :user_id AND NOT (t.extra ? 'placeholder')
    ORDER BY g.id, t.id
    """
)


def group_export_id(group_id: int, legacy_id: str | None) -> str:
    # Groups made in the web app get an id that cannot collide with the old app's j<secs>.
    return legacy_id or f"tas-group-{group_id}"


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat()


def jobs_rows(conn: Connection, user_id: int) -> list[list[str]]:
    """The person's groups as ``jobs.csv`` rows (times in UTC, as the old app wrote them)."""
    rows = []
    for group in conn.execute(_GROUPS_SQL, {"user_id": user_id}):
        at = _iso(group.created_at)
        rows.append([group_export_id(group.id, group.legacy_id), group.name, "", "", at, at])
    return rows


def job_task_rows(conn: Connection, user_id: int, task_export_id: Any) -> list[list[str]]:
    """The tasks in each group as ``job_task_mapping.csv`` rows; ``task_export_id`` names a
    task as ``tasks.csv`` does."""
    return [
        [
            group_export_id(row.group_id, row.group_legacy_id),
            task_export_id(row.task_id, row.task_legacy_id),
            _iso(row.created_at),
        ]
        for row in conn.execute(_GROUP_TASKS_SQL, {"user_id": user_id})
    ]


def emotion_values(names: Iterable[str], intensities: Iterable[int | None]) -> dict[str, int]:
    """An attempt phase's ``emotion_values`` for the export: name → intensity, the ones
    without an intensity left out (as the old app left out zero)."""
    return {
        name: intensity
        for name, intensity in zip(names, intensities, strict=True)
        if intensity is not None
    }

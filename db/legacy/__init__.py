"""Import the old app's CSV data folder into Postgres, and export it back.

The format is described in ``docs/legacy-csv.md``. Public entry points:
:func:`import_legacy_folder`, :func:`import_uploaded_zip`, :func:`export_folder`,
:func:`export_zip`, :func:`user_id_for_username`; errors an operator must fix are
:class:`LegacyImportError`.

Choices where the format or the web model left a gap
----------------------------------------------------

Identity and idempotency
    ``tasks.legacy_id`` is the ``task_id`` (``t1763738425``); ``attempts.legacy_id`` the
    ``instance_id``. Rows without an id get a stable one from their content:
    prototype tasks ``proto:<sha256(name)>`` (the prototype keyed tasks by name, and so
    do the log entries that name them), log entries ``log:<sha256(cells)>``, stand-ins
    for nameless missing tasks ``missing:<sha256(task_name)>``. A stand-in for a missing
    ``task_id`` takes that id as its legacy id.

What "updated" means
    A task is *updated* when its legacy row differs from the one imported last time
    (a fingerprint of the parsed values is kept in ``tasks.extra``): its fields and
    emotions are replaced and its version becomes the larger of the two. An attempt is
    *updated* only when it was imported open (initialized or paused), is still open in
    the web app, and the old app has since completed or cancelled it. Anything else
    already imported is *skipped*: once imported, attempts belong to the web app.

Statuses
    ``active`` without ``started_at`` → ``initialized``; ``active`` with ``started_at``
    → ``paused`` (the web app allows one running attempt per person, and an attempt
    left running in an old export is not running now); ``completed`` → ``completed``;
    ``cancelled`` → ``cancelled``. A blank status is derived from ``is_completed`` (a
    cancelled row is recognised by ``actual.cancelled`` or ``cancelled_at``). Rows with
    ``is_deleted`` True are skipped (counted, noted in the report). The later export's
    ``draft`` → ``initialized`` (``extra.legacy_status``), ``initialized`` → ``paused``
    when it was paused or started, else ``initialized``.

The later export
    Notes, due dates, pauses, postponements, cancellation categories and a task's running
    notes are carried over; what has no home yet (jobs, routines, intensities) is named
    in the report as read but not imported yet. ``db.legacy.late`` holds the tables that
    decide, and ``docs/legacy-csv.md`` ("What this project's import does with it") the
    details. Notes have no legacy id: a note the person already has (same time, same
    text) is skipped.

Defaults for what legacy rows lack
    ``initialized_at``: ``created_at`` when empty. ``completed_at`` of a completed row:
    ``started_at``, else ``initialized_at``. ``cancelled_at``: the column, else
    ``completed_at``, ``started_at``, ``initialized_at``. ``cancel_reason`` (required by
    the web form): "No reason was recorded in the old app.". ``minutes_spent``: 0 when
    ``actual`` has no time. ``task_version``: 1. Task ``type`` empty: ``recurring`` if
    ``is_recurring`` else ``one-time``; ``version`` 1; estimate 0; a nameless stand-in
    task is "Unnamed task (imported)". Stand-in tasks are archived and dated by their
    first attempt. Prototype tasks are ``one-time`` tasks; their running means
    (``times_logged``, ``avg_*``, ``last_logged``) are derived from ``logs.csv``, which
    is imported itself, and ``category`` has no place in the web model: they are not
    kept. Scores are rounded half up to whole numbers (the columns are integers).

Prototype logs
    Each row is a completed attempt of the oldest active task with that exact name (a
    new task is created when there is none), initialized and completed at its
    ``timestamp``. Aversion, relief and overextension are ×10 (0–10 scale). The
    prototype already stored ``completion_percent`` as a percent (its 0–10 slider × 10,
    as the v4 example shows with 100.0 and 30.0), so it is taken as is. ``comment`` →
    notes; ``blocker_type`` (unless "None") and ``perceived_overextension`` →
    ``attempts.extra``. A row with a time in any column but ``timestamp``, or with more
    cells than the header, is shifted and refused. An exact duplicate entry is skipped.

Values
    Outcomes come only from ``actual``, predictions only from ``predicted``; the flat
    ``relief_score``/``cognitive_load``/``emotional_load`` copies are only compared
    (one warning with the count). Measures are recomputed with
    :func:`db.measures.compute_measures` for completed attempts. Times are naive local
    times in the given zone (default: the account's); a time in a daylight-saving gap
    or fold resolves like ``zoneinfo`` with ``fold=0``. JSON ``NaN`` and numeric strings
    are accepted; ``physical_context`` "None" means none. This project's export adds
    ``emotions`` (felt after) and ``extra`` keys to ``actual`` and an ``archived_at``
    column to ``tasks.csv``; the importer reads them so an export re-imports whole.

Reporting
    One line per invalid record, ``file:line: column: reason``, for its first problem;
    ``line`` is where the record starts in the file. At most 1,000 lines are listed (the
    count is exact; ``--skip-invalid`` writes every refused row to
    ``refused-<file>.csv``, original cells plus an ``import_problem`` column, in the
    backup folder beside ``report.txt`` and ``report.json``). A refused or dry-run
    import leaves no backup folder behind.
"""

from __future__ import annotations

from db.legacy.export import export_folder
from db.legacy.export import export_zip
from db.legacy.importer import LegacyImportError
from db.legacy.importer import import_legacy_folder
from db.legacy.importer import user_id_for_username
from db.legacy.report import ImportReport
from db.legacy.upload import UploadLimits
from db.legacy.upload import import_uploaded_zip

__all__ = [
    "ImportReport",
    "LegacyImportError",
    "UploadLimits",
    "export_folder",
    "export_zip",
    "import_legacy_folder",
    "import_uploaded_zip",
    "user_id_for_username",
]

"""``GET /healthz``: is this release up, is its database reachable and migrated far enough?

On the server it also reports ``backup_age_hours``: the age of the last good nightly
backup (``BACKUP_STATUS_FILE``; null when none is recorded). The deploy's health gate
warns when it is over 36 hours.

``GET /healthz/live`` only says the process answers (no database, no session): what a
liveness probe asks, and the smallest page there is, so the load test's baseline measures
the path to the app (nginx, TLS, gunicorn) and nothing of the app's own work.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from db import migrate
from service import database

bp = Blueprint("health", __name__)

_revisions: dict[str, Any] = {}


def _shipped_revisions() -> tuple[str, set[str]]:
    # Read once per process: the migration scripts don't change under a running release.
    if not _revisions:
        _revisions["head"] = migrate.head_revision()
        _revisions["known"] = migrate.known_revisions()
    return _revisions["head"], _revisions["known"]


def schema_state(revision: str | None) -> tuple[bool, str]:
    """Whether this release can serve a database at ``revision``, and why not if not.

    A revision this release does not know is newer than its code: migrations are written
    to stay compatible with the previous release, so that is fine (it is exactly the
    state during a code-only rollback).
    """
    head, known = _shipped_revisions()
    if revision is None:
        return False, f"database is not migrated (this release needs {head})"
    if revision == head:
        return True, "current"
    if revision in known:
        return False, f"database schema {revision} is older than this release needs ({head})"
    return True, "ahead"


def backup_age_hours(status_file: str) -> float | None:
    """Hours since the last good nightly backup (both copies), from the status file the
    backup script writes; None when there is none or it cannot be read. Only the age is
    reported: /healthz is public, the file's path and the dump's name are not."""
    try:
        with open(status_file) as handle:
            finished_at = float(json.load(handle)["finished_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return round(max(0.0, time.time() - finished_at) / 3600, 1)


@bp.get("/healthz")
def healthz() -> tuple[dict[str, Any], int]:
    body: dict[str, Any] = {"version": current_app.config["VERSION"]}
    status_file = current_app.config.get("BACKUP_STATUS_FILE")
    if status_file:
        body["backup_age_hours"] = backup_age_hours(status_file)
    try:
        with database.engine().connect() as connection:
            revision = migrate.current_revision(connection)
    except SQLAlchemyError as exc:
        current_app.logger.warning("healthz: database unreachable: %s", exc)
        body.update(status="error", db="unreachable", reason="database unreachable")
        return body, 503
    serviceable, note = schema_state(revision)
    body.update(db="ok", schema=revision, expected_schema=_shipped_revisions()[0])
    if not serviceable:
        body.update(status="error", reason=note)
        return body, 503
    body.update(status="ok", schema_state=note)
    return body, 200


@bp.get("/healthz/live")
def live() -> tuple[dict[str, Any], int]:
    return {"status": "ok", "version": current_app.config["VERSION"]}, 200

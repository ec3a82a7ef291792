"""/healthz and the 503 page: what an operator and a health gate see."""

from __future__ import annotations

import json
import re
import socket
import time

from flask import Blueprint
from sqlalchemy import text

from db import migrate
from service import create_app
from service import database
from tests.conftest import app_config


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_reports_version_database_and_schema(client, app):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["db"] == "ok"
    assert body["version"] == app.config["VERSION"]
    assert body["schema"] == migrate.head_revision()


def test_healthz_is_503_when_the_database_is_unreachable():
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/nothing"
    app = create_app(app_config(url))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["db"] == "unreachable"


def test_the_liveness_page_answers_without_the_database_or_a_session():
    """/healthz/live: the process answers, whatever the database does (the load test's
    baseline and a liveness probe); a signed-in visitor's session is not even looked up."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/nothing"
    app = create_app(app_config(url))
    client = app.test_client()
    with client.session_transaction() as session:
        session["sid"] = "a-session-that-would-need-the-database"
    response = client.get("/healthz/live")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "version": app.config["VERSION"]}
    assert client.get("/healthz").status_code == 503  # the readiness check still tells


def test_healthz_is_503_when_the_schema_is_not_migrated(empty_database_url):
    app = create_app(app_config(empty_database_url))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert "not migrated" in response.get_json()["reason"]
    app.extensions["db_engine"].dispose()


def test_healthz_accepts_a_newer_schema_written_by_a_later_release(app, client):
    # A code-only rollback leaves the database at a revision this release doesn't know.
    with app.extensions["db_engine"].begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffffnewer'")
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["schema_state"] == "ahead"


def test_a_page_that_needs_the_database_answers_503_page_when_it_is_down():
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/nothing"
    app = create_app(app_config(url))
    bp = Blueprint("probe", __name__)

    @bp.get("/probe")
    def probe() -> str:
        database.session().execute(text("SELECT 1"))
        return "unreachable"

    app.register_blueprint(bp)
    response = app.test_client().get("/probe", headers={"Accept": "text/html"})
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "Temporarily unavailable" in page
    assert "Traceback" not in page and "psycopg" not in page


def test_static_urls_carry_a_content_fingerprint_for_long_caching(client):
    page = client.get("/signin").get_data(as_text=True)
    css = re.search(r'href="(/static/css/app\.css\?v=[0-9a-f]{12})"', page)
    assert css, "stylesheet URL has no ?v= fingerprint"
    assert client.get(css.group(1)).status_code == 200


def test_page_links_are_remembered_per_mount_path_and_keep_their_fingerprint(client):
    """The navigation and static URLs a template builds are remembered per process: the
    same page from the app mounted elsewhere (a SCRIPT_NAME) still links within it."""
    links = re.compile(r'(?:href|action|src)="(/[^"]*)"')
    first = links.findall(client.get("/signin").get_data(as_text=True))
    again = links.findall(client.get("/signin").get_data(as_text=True))
    mounted = client.get("/signin", environ_overrides={"SCRIPT_NAME": "/tas"})
    moved = links.findall(mounted.get_data(as_text=True))
    assert "/signup" in first and any(u.startswith("/static/css/app.css?v=") for u in first)
    assert again == first
    assert [u for u in moved if u != "/"] == [f"/tas{u}" for u in first if u != "/"]
    for url in first:
        if url.startswith("/static/"):
            assert client.get(url).status_code == 200, url


def test_healthz_reports_the_age_of_the_last_good_backup_and_nothing_of_its_file(
    database_url, tmp_path
):
    status = tmp_path / "last-ok"
    status.write_text(
        json.dumps(
            {
                "finished_at": int(time.time()) - 40 * 3600,
                "dump": "tas-20261201T031700Z.dump",
                "offsite_snapshot": "3282ea75",
            }
        )
    )
    app = create_app(app_config(database_url, BACKUP_STATUS_FILE=str(status)))
    client = app.test_client()

    body = client.get("/healthz").get_json()

    assert body["status"] == "ok"
    assert 39.9 <= body["backup_age_hours"] <= 40.1
    # Public page: the age only, never where backups live or what they are called.
    assert "last-ok" not in json.dumps(body) and "tas-2026" not in json.dumps(body)
    assert "3282ea75" not in json.dumps(body)

    status.unlink()  # no good backup recorded (a new server, or the file lost)
    assert client.get("/healthz").get_json()["backup_age_hours"] is None
    app.extensions["db_engine"].dispose()


def test_healthz_has_no_backup_field_where_no_status_file_is_configured(client):
    assert "backup_age_hours" not in client.get("/healthz").get_json()

"""Export everything as a zip of CSVs, and import an old data folder from the account page."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.integration.test_attempts import OUTCOME
from tests.integration.test_attempts import PREDICTION

# Copies of the shared legacy-data examples kept in the repository (db/legacy/examples).
FIXTURES = Path(__file__).resolve().parents[2] / "db" / "legacy" / "examples"


def _zip_folder(folder: Path, prefix: str = "") -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.glob("*.csv")):
            archive.write(path, prefix + path.name)
    buffer.seek(0)
    return buffer


def _count(app, table: str) -> int:
    with app.extensions["db_engine"].connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def _upload(browser, archive: io.BytesIO, **fields):
    data = {"archive": (archive, "data.zip"), "timezone": "Europe/Berlin", **fields}
    return browser.post("/account/import", data, content_type="multipart/form-data")


@pytest.fixture
def fixtures_present():
    if not FIXTURES.is_dir():
        pytest.skip(f"legacy fixtures not found at {FIXTURES}")


def test_export_downloads_a_zip_in_the_legacy_layout(browser):
    task_id = browser.create_task("Tax return")
    browser.post(f"/tasks/{task_id}/initialize", PREDICTION)
    attempt_id = browser.latest_id("attempts")
    browser.post(f"/attempts/{attempt_id}/complete", OUTCOME)
    response = browser.client.get("/account/export.zip")
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        names = set(archive.namelist())
        assert {"tasks.csv", "task_instances.csv", "emotions.csv"} <= names
        tasks = list(csv.DictReader(io.TextIOWrapper(archive.open("tasks.csv"), "utf-8")))
        instances = list(
            csv.DictReader(io.TextIOWrapper(archive.open("task_instances.csv"), "utf-8"))
        )
    assert [t["name"] for t in tasks] == ["Tax return"]
    assert instances[0]["status"] == "completed"
    assert '"actual_relief": 90' in instances[0]["actual"]


def test_import_shows_a_dry_run_and_imports_only_after_confirmation(browser, app, fixtures_present):
    response = _upload(browser, _zip_folder(FIXTURES / "v4-basic", "data/"))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "What an import would do" in page and "task_instances.csv" in page
    assert _count(app, "attempts") == 0  # the dry run changed nothing
    done = browser.post("/account/import/confirm").get_data(as_text=True)
    assert "Import done" in done
    imported = _count(app, "attempts")
    assert imported > 0
    # Importing the same folder again adds nothing.
    _upload(browser, _zip_folder(FIXTURES / "v4-basic"))
    browser.post("/account/import/confirm")
    assert _count(app, "attempts") == imported


def test_a_broken_folder_is_refused_with_line_numbers_and_nothing_changes(
    browser, app, fixtures_present
):
    page = _upload(browser, _zip_folder(FIXTURES / "broken")).get_data(as_text=True)
    assert "task_instances.csv:" in page and "Problems (" in page
    refused = browser.post("/account/import/confirm").get_data(as_text=True)
    assert "Import refused" in refused
    assert _count(app, "attempts") == 0


def test_an_upload_that_is_not_a_zip_gets_a_clear_message(browser, app):
    response = _upload(browser, io.BytesIO(b"not a zip at all"))
    assert response.status_code == 400
    assert "not a readable zip file" in response.get_data(as_text=True)
    wrong_type = browser.post(
        "/account/import",
        {"archive": (io.BytesIO(b"x"), "data.csv"), "timezone": "UTC"},
        content_type="multipart/form-data",
    )
    assert "Upload a .zip file." in wrong_type.get_data(as_text=True)


def test_confirming_without_an_upload_explains_what_to_do(browser):
    response = browser.post("/account/import/confirm")
    assert response.status_code == 400
    assert "Please upload it again" in response.get_data(as_text=True)


def test_another_person_cannot_confirm_someone_elses_upload(
    browser, other_browser, app, fixtures_present
):
    _upload(browser, _zip_folder(FIXTURES / "v4-basic"))
    response = other_browser.post("/account/import/confirm")
    assert response.status_code == 400
    assert _count(app, "attempts") == 0


def test_the_later_export_is_imported_and_the_report_names_what_waits_for_a_home(
    browser, app, fixtures_present
):
    page = _upload(browser, _zip_folder(FIXTURES / "late-export")).get_data(as_text=True)
    assert "What an import would do" in page
    assert "Read but not imported yet" in page
    assert "jobs.csv: 2 row(s)" not in page and "task_type" in page  # jobs have a home
    assert "not files of the old app" not in page
    assert _count(app, "notes") == 0  # the dry run changed nothing
    done = browser.post("/account/import/confirm").get_data(as_text=True)
    assert "Import done" in done
    assert _count(app, "notes") == 7  # notes.csv's 5 and a task's 2 running notes
    assert _count(app, "attempts") == 41

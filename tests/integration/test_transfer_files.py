"""The web import's files: where they live, how long, and the limits that keep imports short.

Every test gets a DATA_DIR of its own (production refuses to start without one).
"""

from __future__ import annotations

import io
import os
import re
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text

from service import create_app
from service.transfer import views
from tests.conftest import Browser
from tests.conftest import app_config
from tests.integration.test_transfer import FIXTURES
from tests.integration.test_transfer import _count
from tests.integration.test_transfer import _upload
from tests.integration.test_transfer import _zip_folder


def _app(database_url: str, data_dir: Path, **overrides: object) -> Iterator[Flask]:
    app = create_app(app_config(database_url, DATA_DIR=str(data_dir), **overrides))
    yield app
    app.extensions["db_engine"].dispose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def files_app(database_url: str, data_dir: Path) -> Iterator[Flask]:
    yield from _app(database_url, data_dir, IMPORT_BACKUPS_KEEP=2)


def _person(app: Flask, name: str) -> Browser:
    person = Browser(app.test_client())
    assert person.signup(name).status_code == 200 and person.key
    return person


def _user_id(app: Flask, name: str) -> int:
    with app.extensions["db_engine"].connect() as conn:
        query = text("SELECT id FROM users WHERE username = :name")
        return int(conn.execute(query, {"name": name}).scalar_one())


def _import(person: Browser) -> str:
    assert _upload(person, _zip_folder(FIXTURES / "v4-basic")).status_code == 200
    done = person.post("/account/import/confirm")
    assert done.status_code == 200
    return str(done.get_data(as_text=True))


def _backups(data_dir: Path, user_id: int) -> list[str]:
    folder = data_dir / "import-backups" / str(user_id)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_an_imports_backup_is_kept_in_data_dir_and_goes_with_the_account(files_app, data_dir):
    alice, mallory = _person(files_app, "alice"), _person(files_app, "mallory")
    page = _import(alice)
    _import(mallory)
    alice_id, mallory_id = _user_id(files_app, "alice"), _user_id(files_app, "mallory")
    [stamp] = _backups(data_dir, alice_id)
    backup = data_dir / "import-backups" / str(alice_id) / stamp
    assert f"Original files backed up in {backup}" in page
    assert {"SHA256SUMS", "report.json", "tasks.csv", "task_instances.csv"} <= {
        p.name for p in backup.iterdir()
    }
    # An upload waiting for its confirmation is hers too.
    assert _upload(alice, _zip_folder(FIXTURES / "v4-basic")).status_code == 200
    assert len(list((data_dir / "uploads").glob(f"{alice_id}-*.zip"))) == 1

    gone = alice.post("/account/delete", {"confirm": "alice"})
    assert gone.status_code == 302
    assert not (data_dir / "import-backups" / str(alice_id)).exists()
    assert list((data_dir / "uploads").glob(f"{alice_id}-*.zip")) == []
    assert len(_backups(data_dir, mallory_id)) == 1, "someone else's backups stay"


def test_a_refused_account_deletion_keeps_the_backups(files_app, data_dir):
    alice = _person(files_app, "alice")
    _import(alice)
    refused = alice.post("/account/delete", {"confirm": "not-alice"})
    assert refused.status_code == 400
    assert len(_backups(data_dir, _user_id(files_app, "alice"))) == 1


def test_only_the_newest_backups_are_kept_per_person(files_app, data_dir):
    alice = _person(files_app, "alice")
    alice_id = _user_id(files_app, "alice")
    folders = []
    for _ in range(4):
        page = _import(alice)
        folders.append(Path(re.search(r"Original files backed up in (\S+)\.", page).group(1)))
        assert len(_backups(data_dir, alice_id)) == min(len(folders), 2)  # IMPORT_BACKUPS_KEEP
        # The import just made is always among the kept, with its files and report.
        assert (folders[-1] / "report.json").exists() and (folders[-1] / "SHA256SUMS").exists()
    assert {
        data_dir / "import-backups" / str(alice_id) / n for n in _backups(data_dir, alice_id)
    } == {*folders[-2:]}


@contextmanager
def running_import(app: Flask, user_id: int) -> Iterator[None]:
    """Hold a person's import slot, as a running import does, from another thread (its
    own app context and database connection) until the block ends."""
    held, done = threading.Event(), threading.Event()
    outcome: list[bool] = []

    def hold() -> None:
        with app.app_context(), views.import_slot(user_id) as free:
            outcome.append(free)
            held.set()
            done.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30) and outcome == [True]
        yield
    finally:
        done.set()
        holder.join(30)


def test_a_second_import_while_one_runs_is_told_to_wait_and_changes_nothing(files_app, data_dir):
    alice, mallory = _person(files_app, "alice"), _person(files_app, "mallory")
    alice_id = _user_id(files_app, "alice")
    assert _upload(alice, _zip_folder(FIXTURES / "v4-basic")).status_code == 200
    with running_import(files_app, alice_id):
        again = _upload(alice, _zip_folder(FIXTURES / "v4-basic"))
        assert again.status_code == 409
        assert "Another import of yours is still running" in again.get_data(as_text=True)
        confirm = alice.post("/account/import/confirm")
        assert confirm.status_code == 409
        assert _count(files_app, "attempts") == 0
        # Someone else imports meanwhile.
        assert _upload(mallory, _zip_folder(FIXTURES / "v4-basic")).status_code == 200
    assert len(list((data_dir / "uploads").glob(f"{alice_id}-*.zip"))) == 1
    # Once the other import ends, her waiting upload can still be confirmed.
    done = alice.post("/account/import/confirm")
    assert done.status_code == 200 and "Import done" in done.get_data(as_text=True)
    assert _count(files_app, "attempts") > 0


def test_uploads_are_rate_limited_per_person(database_url, data_dir):
    for app in _app(database_url, data_dir, RATELIMIT_ENABLED=True):
        alice, bob = _person(app, "alice"), _person(app, "bob")
        statuses = [_upload(alice, io.BytesIO(b"not a zip")).status_code for _ in range(6)]
        assert statuses == [400] * 5 + [429], statuses
        limited = _upload(alice, _zip_folder(FIXTURES / "v4-basic"))
        assert "Slow down" in limited.get_data(as_text=True)
        assert list((data_dir / "uploads").glob("*.zip")) == []
        # The limit is hers, not her address's: bob (same address) still uploads.
        assert _upload(bob, _zip_folder(FIXTURES / "v4-basic")).status_code == 200


def test_a_zip_inflating_beyond_max_import_mb_is_refused_and_nothing_is_kept(
    database_url, data_dir
):
    for app in _app(database_url, data_dir, MAX_IMPORT_MB=1):
        alice = _person(app, "alice")
        form = alice.client.get("/account/import").get_data(as_text=True)
        assert re.search(r"hold up to\s+1 MiB of CSV files", form), "the page states the limit"
        header = (FIXTURES / "v4-basic" / "tasks.csv").read_text().splitlines()[0]
        filler = os.urandom(700 * 1024).hex()  # 1.4 MB of text, about 2:1 compressed
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("tasks.csv", f"{header}\n{filler}\n")
        buffer.seek(0)
        response = _upload(alice, buffer)
        assert response.status_code == 400
        assert "tasks.csv is larger than 1 MiB" in response.get_data(as_text=True)
        assert list((data_dir / "uploads").glob("*.zip")) == []
        assert _count(app, "tasks") == 0


def test_an_unwritable_data_dir_gets_a_clear_message_not_a_500(database_url, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where DATA_DIR should be")
    for app in _app(database_url, blocker):
        alice = _person(app, "alice")
        response = _upload(alice, _zip_folder(FIXTURES / "v4-basic"))
        assert response.status_code == 503
        assert "cannot store uploads right now; nothing was imported" in response.get_data(
            as_text=True
        )
        assert _count(app, "tasks") == 0

"""Importing an uploaded zip (the account page), safely."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy import text

import db.legacy
from db.engine import make_engine
from db.legacy import LegacyImportError
from db.legacy import UploadLimits
from db.legacy import import_uploaded_zip
from db.legacy.upload import extract_legacy_zip

EXAMPLES = Path(db.legacy.__file__).parent / "examples"


def make_zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def example_members(prefix: str = "") -> dict[str, bytes]:
    return {prefix + p.name: p.read_bytes() for p in (EXAMPLES / "v4-basic").iterdir()}


def test_files_at_the_top_or_in_one_folder_are_extracted_and_junk_is_left(tmp_path):
    members = example_members("legacy/") | {
        "__MACOSX/legacy/._tasks.csv": b"junk",
        "legacy/readme.txt": b"hello",
    }
    names = extract_legacy_zip(make_zip(members), tmp_path)
    assert sorted(names) == ["emotions.csv", "logs.csv", "task_instances.csv", "tasks.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"../evil.csv": b"x"}, "unsafe path"),
        ({"/etc/evil.csv": b"x"}, "unsafe path"),
        ({"a/b/tasks.csv": b"x"}, "nested too deep"),
        ({"a/tasks.csv": b"x", "b/logs.csv": b"x"}, "one single folder"),
        ({"readme.txt": b"x"}, "no CSV files"),
        ({"tasks.csv": b"x", "d/tasks.csv": b"x"}, "holds tasks.csv twice"),
    ],
)
def test_unsafe_or_odd_zips_are_refused(tmp_path, members, message):
    with pytest.raises(LegacyImportError, match=message):
        extract_legacy_zip(make_zip(members), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_zip_bomb_is_refused_before_it_fills_the_disk(tmp_path):
    bomb = make_zip({"tasks.csv": b"0" * (20 * 1024 * 1024)})
    with pytest.raises(LegacyImportError, match="zip bomb"):
        extract_legacy_zip(bomb, tmp_path)
    small = UploadLimits(max_total_bytes=1024, max_ratio=10**6)
    with pytest.raises(LegacyImportError, match="inflates beyond"):
        extract_legacy_zip(make_zip({"tasks.csv": b"1" * 4096}), tmp_path, small)


def test_something_that_is_not_a_zip_is_refused(tmp_path):
    with pytest.raises(LegacyImportError, match="not a readable zip"):
        extract_legacy_zip(io.BytesIO(b"PK not really"), tmp_path)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_an_uploaded_zip_is_dry_run_then_imported(engine, tmp_path):
    with engine.begin() as conn:
        user = conn.execute(
            text("INSERT INTO users (username, signin_key_hash) VALUES ('up', 'x') RETURNING id")
        ).scalar_one()
    upload = make_zip(example_members("my data/"))
    dry = import_uploaded_zip(engine, upload, user_id=user, backup_dir=tmp_path, dry_run=True)
    assert dry.status == "dry-run"
    assert dry.files["task_instances.csv"].created == 48
    upload.seek(0)
    real = import_uploaded_zip(engine, upload, user_id=user, backup_dir=tmp_path)
    assert real.status == "imported"
    assert Path(real.backup_dir or "").parent == tmp_path
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM attempts")).scalar_one() == 50

"""The deploy lock's server-side script, run by a real ``sh`` here (item 7 of issue 14):
only "the lock directory exists" means held; any other failure is an error, not a wait."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from releases import scripts


def acquire(lock: Path, info: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", scripts.text("lock_acquire.sh"), "lock", str(lock)],
        input=json.dumps(info),
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_free_lock_is_taken_with_its_holder_recorded(tmp_path: Path):
    lock = tmp_path / "deploy.lock"
    result = acquire(lock, {"who": "ana@laptop"})
    assert result.returncode == 0, result.stderr
    assert json.loads((lock / "info.json").read_text()) == {"who": "ana@laptop"}
    assert len((lock / "session").read_text().split()) == 2


def test_a_held_lock_says_held_and_keeps_its_holder(tmp_path: Path):
    lock = tmp_path / "deploy.lock"
    acquire(lock, {"who": "ana@laptop"})
    second = acquire(lock, {"who": "bo@desk"})
    assert second.returncode == 75
    assert json.loads((lock / "info.json").read_text()) == {"who": "ana@laptop"}


def test_a_missing_folder_is_an_error_with_the_reason_not_a_held_lock(tmp_path: Path):
    result = acquire(tmp_path / "no-such-folder" / "deploy.lock", {"who": "ana@laptop"})
    assert result.returncode == 1
    assert "No such file or directory" in result.stderr


def test_a_read_only_folder_is_an_error_too(tmp_path: Path):
    folder = tmp_path / "shared"
    folder.mkdir()
    # A file where the folder should be: mkdir fails with "Not a directory", as on a
    # broken disk; root ignores permission bits, so this is the failure a test can make.
    blocked = tmp_path / "blocked"
    blocked.write_text("")
    result = acquire(blocked / "deploy.lock", {"who": "ana@laptop"})
    assert result.returncode == 1
    assert "Not a directory" in result.stderr


def renew(lock: Path, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", scripts.text("lock_acquire.sh"), "lock", str(lock), "--renew", token],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_holder_records_its_new_session_after_a_reconnect(tmp_path: Path):
    lock = tmp_path / "deploy.lock"
    acquire(lock, {"who": "ana@laptop", "token": "t-ana"})
    (lock / "session").write_text("999999 1\n")  # the SSH session that dropped
    result = renew(lock, "t-ana")
    assert result.returncode == 0, result.stderr
    assert (lock / "session").read_text() != "999999 1\n"
    assert len((lock / "session").read_text().split()) == 2
    assert json.loads((lock / "info.json").read_text())["who"] == "ana@laptop"


def test_only_the_holder_renews_and_a_freed_lock_stays_free(tmp_path: Path):
    lock = tmp_path / "deploy.lock"
    acquire(lock, {"who": "bo@desk", "token": "t-bo"})
    (lock / "session").write_text("999999 1\n")
    assert renew(lock, "t-ana").returncode == 75
    assert (lock / "session").read_text() == "999999 1\n"
    freed = tmp_path / "freed.lock"
    assert renew(freed, "t-ana").returncode == 75
    assert not freed.exists()

"""The import/export command lines: invoke tasks and the server's flask commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy import text

import db.legacy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = Path(db.legacy.__file__).parent / "examples"
INVOKE = str(Path(sys.executable).with_name("invoke"))


def add_user(database_url: str, username: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (username, signin_key_hash) VALUES (:u, 'x')"), {"u": username}
        )
    engine.dispose()


def invoke(*args: str, database_url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [INVOKE, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def test_invoke_import_and_export_exit_codes(database_url, tmp_path):
    add_user(database_url, "alice")
    broken = invoke(
        "import-csv",
        "--data-dir",
        str(EXAMPLES / "broken"),
        "--username",
        "Alice",
        "--dry-run",
        database_url=database_url,
    )
    assert broken.returncode == 1
    assert "task_instances.csv:6: instance_id: i1766000004 appears twice" in broken.stdout
    assert "Traceback" not in broken.stderr

    good = invoke(
        "import-csv",
        "--data-dir",
        str(EXAMPLES / "clean-header"),
        "--username",
        "alice",
        "--backup-dir",
        str(tmp_path / "backups"),
        database_url=database_url,
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert re.search(r"task_instances\.csv +10 +0 +0 +0", good.stdout), good.stdout

    export = invoke(
        "export-csv",
        "--username",
        "alice",
        "--out",
        str(tmp_path / "out"),
        database_url=database_url,
    )
    assert export.returncode == 0, export.stderr
    assert (tmp_path / "out" / "task_instances.csv").exists()


def test_invoke_explains_a_missing_database_url_or_account(database_url, tmp_path):
    unset = invoke("export-csv", "--username", "x", "--out", str(tmp_path), database_url=None)
    assert unset.returncode != 0
    assert "DATABASE_URL is not set" in unset.stderr
    unknown = invoke(
        "export-csv", "--username", "nobody", "--out", str(tmp_path), database_url=database_url
    )
    assert unknown.returncode != 0
    assert "no account with the username 'nobody'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_flask_commands_import_and_export(app, database_url, tmp_path):
    add_user(database_url, "bob")
    runner = app.test_cli_runner()
    refused = runner.invoke(
        args=["import-csv", "--data-dir", str(EXAMPLES / "broken"), "--username", "bob"]
    )
    assert refused.exit_code == 1
    assert "Refused: nothing was imported" in refused.output
    done = runner.invoke(
        args=[
            "import-csv",
            "--data-dir",
            str(EXAMPLES / "v1-early"),
            "--username",
            "bob",
            "--backup-dir",
            str(tmp_path / "b"),
        ]
    )
    assert done.exit_code == 0, done.output
    exported = runner.invoke(args=["export-csv", "--username", "bob", "--out", str(tmp_path / "o")])
    assert exported.exit_code == 0, exported.output
    missing = runner.invoke(args=["export-csv", "--username", "ghost", "--out", str(tmp_path)])
    assert missing.exit_code == 1
    assert "no account with the username 'ghost'" in missing.output

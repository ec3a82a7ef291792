"""`invoke dev` picks up a developer's edits: code restarts the server, templates show at once."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
VENDORED = Path("service/static/vendor/chart.umd.min.js")
pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _checkout(target: Path) -> None:
    """A copy of the project's tracked files as they are now, plus the vendored library."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / name)
    (target / VENDORED).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / VENDORED, target / VENDORED)


def _wait_for(
    url: str,
    wanted: str,
    process: subprocess.Popen[bytes],
    log: Path,
    save_again: Callable[[], None] = lambda: None,
) -> str:
    """Poll until the page contains ``wanted`` (the server may be restarting meanwhile)."""
    for attempt in range(300):
        if attempt % 10 == 9:
            # The reloader notes the files' times once it runs: an edit made before that
            # is only seen when saved again (as a developer would, after another change).
            save_again()
        try:
            text = requests.get(url, timeout=5).text
            if wanted in text:
                return text
        except requests.RequestException:
            pass
        assert process.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"{url} never showed {wanted!r}:\n{log.read_text()[-3000:]}")


def test_invoke_dev_reloads_edited_code_and_templates(database_url, tmp_path):
    project = tmp_path / "project"
    _checkout(project)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "dev.log"
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(project)}
    env.pop("WERKZEUG_RUN_MAIN", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "invoke", "dev", "--port", str(port)],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert '"status":"ok"' in _wait_for(base + "/healthz", '"status"', process, log).replace(
            " ", ""
        )

        health = project / "service" / "health.py"
        source = health.read_text()
        marker = 'body: dict[str, Any] = {"version": current_app.config["VERSION"]}'
        assert marker in source
        edited = source.replace(marker, marker + '\n    body["edited"] = "yes"')
        health.write_text(edited)
        _wait_for(base + "/healthz", '"edited"', process, log, lambda: health.write_text(edited))
        assert "Detected change" in log.read_text()

        signin = project / "service" / "templates" / "accounts" / "signin.html"
        signin.write_text(signin.read_text().replace("<h1>Sign in</h1>", "<h1>Sign in here</h1>"))
        _wait_for(base + "/signin", "Sign in here", process, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)

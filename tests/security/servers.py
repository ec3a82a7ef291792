"""A private PostgreSQL and a real gunicorn for the fault tests.

The host's PostgreSQL is shared with every other test run, so the tests that stop the
database stop one of their own: initialised with the binaries of the ``pgserver`` wheel
in a temporary directory, listening on a free loopback port.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivatePostgres:
    """A PostgreSQL server of our own that the tests may stop and start at will."""

    def __init__(self) -> None:
        from pgserver import _commands  # noqa: PLC0415 - development dependency
        from pgserver import utils  # noqa: PLC0415

        self._commands: Any = _commands
        self.base = Path(tempfile.mkdtemp(prefix="tas-faults-"))
        self.base.chmod(0o755)
        self.pgdata = self.base / "pgdata"
        self.pgdata.mkdir()
        self.log = self.base / "postgres.log"
        self.port = free_port()
        # PostgreSQL refuses to run as root: run it as pgserver's own system user then.
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "pgserver"
            entry = utils.ensure_user_exists(self.user)
            assert entry is not None
            utils.ensure_prefix_permissions(self.pgdata)
            for path in (self.base, self.pgdata):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(self._commands.initdb, ["--auth=trust", "--encoding=utf8", "-U", "postgres"])

    def _run(self, command: Any, args: list[str], timeout: float = 60) -> None:
        command(args, pgdata=self.pgdata, user=self.user, timeout=timeout)

    def libpq_url(self, name: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}"
        self._run(self._commands.pg_ctl, ["-w", "-o", options, "-l", str(self.log), "start"])

    def stop(self) -> None:
        # "fast": what a restart does to the sessions of a busy server (they are cut off).
        self._run(self._commands.pg_ctl, ["-w", "-m", "fast", "stop"])

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class Gunicorn:
    """The app served the way production serves it (python -m gunicorn, 2 workers)."""

    def __init__(self, database_url: str, workers: int = 2) -> None:
        self.worker_count = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = tempfile.TemporaryFile()
        env = {
            **os.environ,
            "APP_ENV": "production",
            "SECRET_KEY": secrets.token_hex(32),
            "DATABASE_URL": database_url,
            "PROXY_COUNT": "0",
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "LOG_LEVEL": "WARNING",
            # Production needs one; nothing here imports.
            "DATA_DIR": os.path.join(tempfile.gettempdir(), "tas"),
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "python:service.gunicorn_conf",
                "service.wsgi:app",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_ready()

    def _wait_until_ready(self, limit: float = 30) -> None:
        """Until it answers and every worker is up (the first answers before the last forks)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                requests.get(self.url + "/signin", timeout=5)
            except requests.ConnectionError:
                time.sleep(0.2)
                continue
            if len(self.workers()) == self.worker_count:
                return
            time.sleep(0.1)
        started = f"{len(self.workers())} of {self.worker_count} workers"
        raise AssertionError(f"gunicorn did not start ({started}):\n{self.log()}")

    def workers(self) -> list[int]:
        import psutil  # noqa: PLC0415 - comes with pgserver (development dependency)

        return sorted(child.pid for child in psutil.Process(self.process.pid).children())

    def log(self) -> str:
        self.output.seek(0)
        return self.output.read().decode(errors="replace")[-5000:]

    def errors(self) -> str:
        """The first unexpected error in the server's output (traceback included), if any."""
        self.output.seek(0)
        text = self.output.read().decode(errors="replace")
        first = text.find("ERROR:")
        return text[first : first + 6000] if first >= 0 else "(no error logged)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.close()

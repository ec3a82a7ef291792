"""``invoke smoke`` against the real app served over HTTP on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from invoke.context import Context
from invoke.exceptions import Exit
from sqlalchemy.engine import make_url
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

from releases.loadtest_smoke import run_smoke
from service import create_app
from tests.conftest import app_config

pytestmark = pytest.mark.integration


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextlib.contextmanager
def served(database_url: str, **overrides: Any) -> Iterator[tuple[str, str]]:
    """The app on a free loopback port: (base URL, its version)."""
    app = create_app(app_config(database_url, **overrides))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app.config["VERSION"]
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["db_engine"].dispose()


def _user_count(database_url: str) -> int:
    url = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM users").fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def live(database_url: str) -> Iterator[tuple[str, str]]:
    with served(database_url) as server:
        yield server


def test_smoke_walks_every_step_and_leaves_no_account_behind(live, database_url):
    url, version = live
    lines: list[str] = []
    result = run_smoke(url, expect_version=version, echo=lines.append)
    assert result.passed, "\n".join(lines)
    names = [step.name for step in result.steps]
    assert names == [
        "healthz",
        "signup",
        "dashboard",
        "create task",
        "initialize",
        "start",
        "complete",
        "analytics",
        "account",
        "key sign-in",
        "delete",
    ]
    assert len(lines) == len(names) and all(line.startswith("ok") for line in lines)
    assert _user_count(database_url) == 0


def test_smoke_task_exits_zero_and_prints_a_line_per_step(live, capsys):
    from tasks import smoke

    url, version = live
    smoke(Context(), url=url, expect_version=version)
    out = capsys.readouterr().out
    assert "smoke: passed" in out
    assert out.count("\nok") >= 10


def test_smoke_fails_on_a_wrong_version(live, database_url, capsys):
    from tasks import smoke

    url, _version = live
    with pytest.raises(Exit) as failed:
        smoke(Context(), url=url, expect_version="9.9.9-not-deployed")
    assert failed.value.code != 0
    out = capsys.readouterr().out
    assert "FAIL healthz" in out and "expected 9.9.9-not-deployed" in out
    assert _user_count(database_url) == 0


def test_smoke_fails_and_says_so_when_signup_is_closed(database_url):
    with served(database_url, MAX_USERS=0) as (url, version):
        lines: list[str] = []
        result = run_smoke(url, expect_version=version, echo=lines.append)
    assert not result.passed
    assert lines[-1].startswith("FAIL signup") and "closed" in lines[-1]


def test_smoke_fails_when_nothing_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lines: list[str] = []
    result = run_smoke(f"http://127.0.0.1:{port}", echo=lines.append)
    assert not result.passed and lines[0].startswith("FAIL healthz")


def test_smoke_says_why_a_production_server_fails_over_plain_http(database_url):
    # Production's cookies are Secure: a client keeps them but never sends them over http://.
    with served(database_url, SESSION_COOKIE_SECURE=True) as (url, version):
        lines: list[str] = []
        result = run_smoke(url, expect_version=version, echo=lines.append)
    assert not result.passed
    failed = lines[-1]
    assert failed.startswith("FAIL signup") and "POST /signup: 400" in failed
    assert "Secure" in failed and "https://" in failed, failed
    assert _user_count(database_url) == 0


def test_smoke_help_says_a_production_server_needs_https():
    from tasks import smoke

    assert "https://" in smoke.help["url"] and "Secure" in smoke.help["url"]
    assert "https://" in (smoke.__doc__ or "")

"""A page missing from a release is a failure, never a skip (issue 18, "Guards").

The app is served with ``/analytics`` answering 404, as a release without the page would:
the smoke walk, the load test's users and the navigation must all notice.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.exceptions import NotFound
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

from db import load_accounts
from db.engine import make_engine
from releases.loadtest import LoadSettings
from releases.loadtest_smoke import run_smoke
from service import create_app
from tests.conftest import app_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _without_analytics(app: WSGIApp) -> WSGIApp:
    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/analytics"):
            return NotFound()(environ, start_response)
        return app(environ, start_response)

    return wsgi


@contextlib.contextmanager
def served_without_analytics(database_url: str) -> Iterator[str]:
    app = create_app(app_config(database_url))
    server = make_server(
        "127.0.0.1", 0, _without_analytics(app), threaded=True, request_handler=_Quiet
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["db_engine"].dispose()


def test_smoke_fails_at_analytics_when_the_page_is_missing(database_url):
    with served_without_analytics(database_url) as url:
        lines: list[str] = []
        result = run_smoke(url, echo=lines.append)
    assert not result.passed
    failed = [step.name for step in result.steps if not step.ok]
    assert failed == ["analytics"], "\n".join(lines)
    assert any(line.startswith("FAIL analytics") and "404" in line for line in lines)


# The locust user runs in its own process: importing locust monkey-patches the standard
# library with gevent, which the rest of the test session must not inherit.
_ONE_LOCUST_USER = """
import json, sys
from locust.env import Environment
sys.path.insert(0, "tests/load")
import locustfile

locustfile.LightUser.host = sys.argv[1]
env = Environment(user_classes=[locustfile.LightUser])
env.create_local_runner()  # it is the runner that records the requests' statistics
user = locustfile.LightUser(env)
user.fill_in = lambda: None  # think time needs a running locust; it is not the point here
user.on_start()
user.analytics()
failures = {f"{e.method} {e.name}": e.occurrences for e in env.stats.errors.values()}
print(json.dumps({"analytics_requests": env.stats.get("/analytics", "GET").num_requests,
                  "failures": failures}))
"""


def test_a_load_test_user_counts_a_missing_analytics_page_as_a_failure(database_url):
    settings = LoadSettings(
        steps=(1,), step_seconds=2, settle_seconds=1, think_min=0, think_max=0,
        prefix=load_accounts.run_prefix("miss1"), secret="s", pool=1,
    )  # fmt: skip
    engine = make_engine(database_url)
    try:
        assert load_accounts.seed(engine, run="miss1", count=1, secret="s", history=2) == 1
    finally:
        engine.dispose()
    with served_without_analytics(database_url) as url:
        result = subprocess.run(
            [sys.executable, "-c", _ONE_LOCUST_USER, url],
            cwd=ROOT,
            env={**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["analytics_requests"] == 1
    assert seen["failures"] == {"GET /analytics": 1}

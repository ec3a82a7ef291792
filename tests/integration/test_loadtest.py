"""A short real locust run against gunicorn (production settings) on loopback."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from invoke.context import Context
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def gunicorn(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The app as production runs it: gunicorn, APP_ENV=production, secure cookies."""
    port = _free_port()
    env = {
        **os.environ,
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": database_url,
        # The load generator stands where nginx stands: one trusted proxy hop.
        "PROXY_COUNT": "1",
        "MAX_USERS": "5",
        "GUNICORN_WORKERS": "2",
        "DATA_DIR": str(tmp_path / "data"),
    }
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]
        + ["--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null", "service.wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/healthz", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "gunicorn.log").read_text()[-2000:])
            time.sleep(0.3)
        yield url
    finally:
        process.send_signal(signal.SIGQUIT)  # gunicorn's quick shutdown
        process.wait(timeout=30)
        log.close()


def _users(database_url: str) -> int:
    url = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM users").fetchone()
        assert row is not None
        return int(row[0])


def test_seeded_accounts_come_with_statistics_for_the_planner(database_url):
    from db import load_accounts
    from db.engine import make_engine

    engine = make_engine(database_url)
    try:
        assert load_accounts.seed(engine, run="stats1", count=3, secret="s", history=12) == 3
    finally:
        engine.dispose()
    url = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, reltuples FROM pg_class"
            " WHERE relname IN ('users', 'tasks', 'attempts') AND relkind = 'r'"
        ).fetchall()
    # What the planner believes: 3 people, 6 tasks each, 2 attempts per task.
    assert dict(rows) == {"users": 3, "tasks": 18, "attempts": 36}


def test_a_short_step_run_reports_each_step_on_its_own_with_no_errors(
    gunicorn, database_url, tmp_path, capsys
):
    from tasks import loadtest

    loadtest(
        Context(),
        url=gunicorn,
        steps="2,4",
        step_seconds=6.0,
        settle_seconds=1.5,
        think_min=0.2,
        think_max=0.6,
        # No timing gate in a test: this checks the machinery, not this machine's speed.
        p95_ms=60_000.0,
        max_error_rate=0.0,
        database_url=database_url,
        out=str(tmp_path),
        baseline_seconds=3.0,
    )
    out = capsys.readouterr().out
    (report_file,) = tmp_path.glob("capacity-*.json")
    report = json.loads(report_file.read_text())
    steps = report["steps"]
    assert [s["users"] for s in steps] == [2, 4]
    assert all(s["requests"] > 0 and s["failures"] == 0 for s in steps)
    assert all(s["p50_ms"] is not None and s["p95_ms"] is not None for s in steps)
    assert all(s["passed"] for s in steps)
    assert report["highest_passing_users"] == 4 and report["recommended_cap"] == 3
    assert report["version"] == requests.get(gunicorn + "/healthz", timeout=5).json()["version"]
    assert report["machine"]["cpus"] and len(report["machine"]["load_avg"]) == 3
    # Per step, not cumulative: the second step's count is not the run's total.
    snapshots = json.loads(next(tmp_path.glob("run-*.snapshots.json")).read_text())
    assert steps[1]["requests"] < snapshots[-1]["requests"]
    assert (tmp_path / report["files"]["html"]).exists()
    assert (tmp_path / report["files"]["locust_html"]).exists()
    assert "capacity: 4 users pass" in out and "recommended cap 3" in out
    # The baseline from the same run and machine: the smallest page at full speed.
    baseline = report["baseline"]
    assert baseline["path"] == "/healthz/live" and baseline["failures"] == 0
    assert baseline["requests"] > 0 and baseline["rps"] > steps[-1]["rps"]
    assert "baseline: " in out and "req/s on /healthz/live" in out
    assert report["target"] == {"kind": "local", "url": gunicorn}
    # And what the journey mix costs on this machine, measured in process: a figure that
    # tells machines apart.
    cpu = report["machine"]["cpu_per_request"]
    assert cpu["app_ms"] > 0 and cpu["postgresql_ms"] > 0 and cpu["requests"] > 100
    assert "journey mix costs" in out
    # Part of the arrivals were new people who signed up through the pages (and then made
    # tasks and completed an attempt, with no failed request).
    assert report["run"]["newcomers"] == 0.4 and report["run"]["signups"] >= 1
    assert snapshots[-1]["failures"] == 0  # the whole run, arrivals included
    # The seeded accounts and the newcomers' are gone again; the cap (5) never stood in
    # the way.
    assert _users(database_url) == 0

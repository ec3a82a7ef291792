"""Faults, against the app served by gunicorn the way production serves it:

- PostgreSQL restarted under load: requests fail fast with the 503 page, the app
  recovers by itself, and every write that was confirmed to the person is kept;
- PostgreSQL restarted while nobody asked for anything: no request fails afterwards;
- a gunicorn worker killed: the service keeps answering and the worker is replaced;
- the database unreachable at start-up: the service starts anyway, /healthz says 503
  until the database is there and then 200, without restarting anything.

The database here is a private server (see servers.py), never the host's shared one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import requests

from db import migrate
from db.engine import PING_AFTER_IDLE_SECONDS
from releases.loadtest import CSRF
from tests.security.servers import Gunicorn
from tests.security.servers import PrivatePostgres

pytest.importorskip("pgserver")

# A correctness bound, not a benchmark: a request must never hang while the database is
# away (connect_timeout=3 and pool_timeout=5 in db/engine.py).
MAX_SECONDS = 10


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        with psycopg.connect(server.libpq_url(), autocommit=True) as conn:
            conn.execute('CREATE DATABASE "tas"')
        migrate.upgrade(server.database_url("tas"))
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def served(postgres: PrivatePostgres) -> Iterator[Gunicorn]:
    app = Gunicorn(postgres.database_url("tas"))
    yield app
    app.stop()


class HttpPerson:
    """A browser over real HTTP. The production cookie is Secure, so it is sent by hand."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookie = ""

    def _remember(self, response: requests.Response) -> None:
        if "session" in response.cookies:
            self.cookie = response.cookies["session"] or ""

    def get(self, path: str) -> requests.Response:
        response = requests.get(
            self.base + path,
            headers={"Cookie": f"session={self.cookie}"},
            allow_redirects=False,
            timeout=MAX_SECONDS * 2,
        )
        self._remember(response)
        return response

    def token(self, path: str) -> str:
        match = CSRF.search(self.get(path).text)
        assert match, path
        return match.group(1)

    def post(self, path: str, data: dict[str, str], token: str) -> requests.Response:
        response = requests.post(
            self.base + path,
            data={"csrf_token": token, **data},
            headers={"Cookie": f"session={self.cookie}"},
            allow_redirects=False,
            timeout=MAX_SECONDS * 2,
        )
        self._remember(response)
        return response

    def signup(self, username: str) -> None:
        token = self.token("/signup")
        response = self.post("/signup", {"username": username, "timezone": "UTC"}, token)
        assert response.status_code == 200 and "signin-key" in response.text, response.text


@dataclass
class Outcome:
    name: str
    started: float
    seconds: float
    status: int  # 0: no HTTP answer at all


def _task_names(postgres: PrivatePostgres) -> set[str]:
    with psycopg.connect(postgres.libpq_url("tas")) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM tasks")}


def _load(
    person: HttpPerson, token: str, label: str, stop: threading.Event, outcomes: list[Outcome]
) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        name = f"{label}-{n}"
        started = time.monotonic()
        try:
            status = person.post(
                "/tasks/new", {"name": name, "kind": "one-time"}, token
            ).status_code
        except requests.RequestException:
            status = 0
        outcomes.append(Outcome(name, started, time.monotonic() - started, status))
        try:
            person.get("/")
        except requests.RequestException:
            pass
        time.sleep(0.05)


def test_a_database_restart_under_load_fails_fast_recovers_and_loses_no_write(
    served: Gunicorn, postgres: PrivatePostgres
) -> None:
    person = HttpPerson(served.url)
    person.signup("loaded")
    token = person.token("/tasks/new")
    stop = threading.Event()
    outcomes: list[Outcome] = []
    threads = [
        threading.Thread(target=_load, args=(person, token, f"t{i}", stop, outcomes))
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        postgres.stop()
        down_at = time.monotonic()
        time.sleep(3)
        restarting_at = time.monotonic()
        postgres.start()
        back_at = time.monotonic()
        time.sleep(5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    statuses = {o.status for o in outcomes}
    # A redirect after saving, or the 503 page; the server log shows any other answer's cause.
    assert statuses <= {302, 503}, f"{statuses}\n{served.errors()}"
    slowest = max(o.seconds for o in outcomes)
    assert slowest < MAX_SECONDS, f"a request took {slowest:.1f} s"
    during = [o for o in outcomes if down_at < o.started < restarting_at]
    assert during and all(o.status == 503 for o in during), "no fail-fast 503 while down"
    # Recovery by itself: requests started a few seconds after the restart succeed again.
    late = [o for o in outcomes if o.started > back_at + 3]
    assert late and all(o.status == 302 for o in late), [o.status for o in late]
    # Nothing confirmed is lost; nothing appears that was never sent.
    saved = _task_names(postgres)
    confirmed = {o.name for o in outcomes if o.status == 302}
    assert confirmed <= saved
    assert saved <= {o.name for o in outcomes}
    assert person.get("/").status_code == 200
    print(f"{len(outcomes)} requests, {len(confirmed)} saved, slowest {slowest:.2f} s")


def test_a_quiet_database_restart_costs_no_request(
    served: Gunicorn, postgres: PrivatePostgres
) -> None:
    person = HttpPerson(served.url)
    person.signup("quiet")
    for _ in range(10):  # every worker has a pooled connection by now
        assert person.get("/").status_code == 200
    postgres.stop()
    postgres.start()  # nothing asked for a page meanwhile: the pooled connections are dead
    time.sleep(PING_AFTER_IDLE_SECONDS + 0.5)
    # Each worker notices before using its connection, not by failing a person's request.
    answers = [person.get("/").status_code for _ in range(10)]
    assert answers == [200] * 10, answers


def test_the_app_logs_what_it_says_not_a_line_per_request(postgres: PrivatePostgres) -> None:
    """On a server nginx logs every request; the unit's journal (the app's output) keeps
    what the app and gunicorn say, whose last lines a failed restart reports."""
    served = Gunicorn(postgres.database_url("tas"))
    try:
        answers = [
            requests.get(served.url + "/signin?from=log-test", timeout=MAX_SECONDS).status_code
            for _ in range(20)
        ]
        assert answers == [200] * 20
        log = served.log()
    finally:
        served.stop()
    assert "Booting worker" in log  # gunicorn's own messages are there
    assert "log-test" not in log  # the requests are not


def test_a_killed_worker_is_replaced_and_the_service_keeps_answering(served: Gunicorn) -> None:
    workers = served.workers()
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)  # a worker of the gunicorn this test started
    answers = [
        requests.get(served.url + "/healthz", timeout=MAX_SECONDS).status_code for _ in range(20)
    ]
    assert answers == [200] * 20
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = served.workers()
        if len(now) == 2 and workers[0] not in now:
            break
        time.sleep(0.2)
    now = served.workers()
    assert len(now) == 2 and workers[0] not in now and workers[1] in now


def test_the_service_starts_without_its_database_and_heals_when_it_appears(
    postgres: PrivatePostgres,
) -> None:
    postgres.stop()
    app = Gunicorn(postgres.database_url("tas"))
    try:
        workers = app.workers()
        for _ in range(3):
            started = time.monotonic()
            health = requests.get(app.url + "/healthz", timeout=MAX_SECONDS * 2)
            assert time.monotonic() - started < MAX_SECONDS
            assert health.status_code == 503
            assert health.json()["db"] == "unreachable"
        page = requests.get(app.url + "/signin", timeout=MAX_SECONDS)
        assert page.status_code == 200  # pages that need no database still work
        postgres.start()
        deadline = time.monotonic() + 20
        status = 0
        while time.monotonic() < deadline and status != 200:
            status = requests.get(app.url + "/healthz", timeout=MAX_SECONDS * 2).status_code
            time.sleep(0.3)
        assert status == 200
        assert app.workers() == workers, app.log()  # healed in place: nothing was restarted
        assert app.process.poll() is None
    finally:
        app.stop()
        if not postgres.running():
            postgres.start()

"""CPU per request for the load test's journey steps, measured in process (issue 7).

    .venv/bin/python tests/load/profile_requests.py [--users 20] [--rounds 5] [--profile OUT]

Seeds ``--users`` accounts like ``invoke loadtest`` does (six tasks, ~42 completed
attempts each) in a scratch database on 127.0.0.1:5432, then, for every account in turn,
replays the locustfile's steps through Flask's test client with production-like settings
(CSRF on, rate limits on, secure cookies, proxy headers): sign-in form and POST, dashboard,
initialize form and POST, start, complete form and POST, analytics, task edit form and POST,
account, sign out. For every step it reports the median app CPU (``process_time``) and the
PostgreSQL backend's CPU (from ``/proc``) per request, so a change in the request path can be
compared on a machine shared with others (CPU, unlike wall time, barely moves with load),
and their mean weighted like the load test's traffic (``LOAD_MIX``).

``--profile OUT`` also writes a cProfile of all requests to OUT (``python -m pstats OUT``).
Not collected by pytest; numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "load"))

from bench_pages import _backend_pids  # noqa: E402
from bench_pages import _process_cpu_seconds  # noqa: E402
from bench_pages import scratch_database  # noqa: E402
from werkzeug.datastructures import Headers  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

from db import load_accounts  # noqa: E402
from db import migrate  # noqa: E402
from db.engine import make_engine  # noqa: E402
from db.models import OUTCOME_SCALES  # noqa: E402
from db.models import PREDICTION_SCALES  # noqa: E402
from releases.loadtest import COMPLETABLE  # noqa: E402
from releases.loadtest import CSRF  # noqa: E402
from releases.loadtest import SESSION_COOKIE  # noqa: E402
from releases.loadtest import STARTABLE  # noqa: E402
from releases.loadtest import TASK_IDS  # noqa: E402
from releases.loadtest import address_for  # noqa: E402
from releases.loadtest import load_user_key  # noqa: E402
from releases.loadtest import load_username  # noqa: E402
from service import create_app  # noqa: E402

RUN = "prof0"
PREFIX = load_accounts.run_prefix(RUN)
# How often each step comes up in the load test's traffic: requests per 22 actions of the
# locustfile's task weights (dashboard 10, initialize 3, start 2, complete 2, analytics 2,
# edit 1, account 1, sign out and in 1; each POST followed by the dashboard it redirects to).
# Analytics is counted half after a write, half repeated. A dashboard after initializing or
# starting recomputes its open attempts only; after completing or editing, all of it.
LOAD_MIX = {
    "GET /signin": 1,
    "POST /signin": 1,
    "GET / (after init or start)": 5,
    "GET / (after complete or edit)": 3,
    "GET / (repeated)": 11,
    "GET initialize": 3,
    "POST initialize": 3,
    "POST start": 2,
    "GET complete": 2,
    "POST complete": 2,
    "GET /analytics (after a write)": 1,
    "GET /analytics (repeated)": 1,
    "GET edit": 1,
    "POST edit": 1,
    "GET /account": 1,
    "POST /signout": 1,
}


class Client:
    """Calls the WSGI app the way gunicorn does, timing only the app's own work.

    Flask's test client costs as much CPU as a cheap page itself (building the request,
    cookie jar, response wrapper); here the request's environ is built before the timer
    starts and the body is only joined, so the figures are the app's, plus PostgreSQL's.
    """

    def __init__(self, app: Any, backend_pids: Callable[[], list[int]], headers: dict[str, str]):
        self.app = app
        self.backend_pids = backend_pids
        self.headers = headers
        self.cookie = ""
        self.token = ""  # the CSRF token of the last form page seen
        self.app_cpu: dict[str, list[float]] = defaultdict(list)
        self.server_cpu: dict[str, list[float]] = defaultdict(list)

    def _server(self) -> float:
        return sum(_process_cpu_seconds(pid) for pid in self.backend_pids())

    def request(self, name: str, method: str, path: str, data: dict[str, str] | None = None):
        headers = dict(self.headers)
        if self.cookie:
            headers["Cookie"] = f"session={self.cookie}"
        environ = EnvironBuilder(
            path=path, method=method, data=data, headers=headers, base_url="https://localhost"
        ).get_environ()
        seen: list[Any] = []

        def start_response(status: str, response_headers: Any, exc_info: Any = None) -> None:
            seen.extend((status, response_headers))

        server = self._server()
        app = time.process_time()
        body = b"".join(self.app(environ, start_response))
        self.app_cpu[name].append(time.process_time() - app)
        self.server_cpu[name].append(self._server() - server)
        status, response_headers = int(seen[0].split()[0]), Headers(seen[1])
        for value in response_headers.getlist("Set-Cookie"):
            found = SESSION_COOKIE.search(value)
            if found:
                self.cookie = found.group(1)
        return status, body.decode()

    def page(self, path: str, name: str) -> str:
        """GET a page that must answer 200; keeps its CSRF token for the next post."""
        status, text = self.request(name, "GET", path)
        assert status == 200, (name, status)
        found = CSRF.search(text)
        if found:
            self.token = found.group(1)
        return text

    def post(self, path: str, name: str, data: dict[str, str], expect: int = 302) -> None:
        status, _ = self.request(name, "POST", path, {"csrf_token": self.token, **data})
        assert status == expect, (name, status)


def _headers(address: str) -> dict[str, str]:
    return {
        "X-Forwarded-For": address,
        "X-Forwarded-Proto": "https",
        # Flask-WTF checks the referrer of HTTPS form posts, as browsers send it.
        "Referer": "https://localhost/",
    }


def attempt_cycle(client: Client, task_id: str, prefix: str, last_dashboard: str) -> None:
    """Initialize, start and complete an attempt of the task, each POST followed by the
    dashboard it redirects to; step names start with ``prefix``."""
    client.page(f"/tasks/{task_id}/initialize", f"{prefix}GET initialize")
    scales = {name: "50" for name in PREDICTION_SCALES}
    client.post(
        f"/tasks/{task_id}/initialize",
        f"{prefix}POST initialize",
        {**scales, "time_estimate_minutes": "25", "physical_context": "Home", "description": ""},
    )
    dashboard = client.page("/", f"{prefix}GET / (after init or start)")
    client.post(f"/attempts/{STARTABLE.findall(dashboard)[0]}/start", f"{prefix}POST start", {})
    dashboard = client.page("/", f"{prefix}GET / (after init or start)")
    attempt = COMPLETABLE.findall(dashboard)[0]
    client.page(f"/attempts/{attempt}/complete", f"{prefix}GET complete")
    outcome = {name: "60" for name in OUTCOME_SCALES}
    client.post(
        f"/attempts/{attempt}/complete",
        f"{prefix}POST complete",
        {**outcome, "completion_percent": "100", "minutes_spent": "20", "notes": ""},
    )
    client.page("/", last_dashboard)


def journey(
    app: Any,
    backend_pids: Callable[[], list[int]],
    number: int,
    secret: str,
    clients: dict[int, Client],
) -> None:
    username = load_username(PREFIX, number)
    client = clients.setdefault(number, Client(app, backend_pids, _headers(address_for(number))))
    client.page("/signin", "GET /signin")
    key = load_user_key(secret, username)
    client.post("/signin", "POST /signin", {"username": username, "key": key})
    client.page("/", "GET / (after complete or edit)")  # the last round's edit
    dashboard = client.page("/", "GET / (repeated)")
    task_id = TASK_IDS.findall(dashboard)[0]
    attempt_cycle(client, task_id, "", "GET / (after complete or edit)")
    client.page("/analytics", "GET /analytics (after a write)")
    client.page("/analytics", "GET /analytics (repeated)")
    client.page(f"/tasks/{task_id}/edit", "GET edit")
    client.post(
        f"/tasks/{task_id}/edit",
        "POST edit",
        {
            "name": "Answer email",
            "kind": "routine",
            "default_estimate_minutes": "20",
            "description": f"edited {secrets.token_hex(4)}",
        },
    )
    client.page("/account", "GET /account")
    client.post("/signout", "POST /signout", {})


def newcomer(
    app: Any, backend_pids: Callable[[], list[int]], number: int, clients: dict[int, Client]
) -> None:
    """A stranger's first visit, as the locustfile's newcomers make it: sign up, make two
    tasks, then initialize, start and complete a first attempt (each POST followed by the
    page it redirects to)."""
    headers = _headers(address_for(100_000 + number))
    client = clients.setdefault(-1 - number, Client(app, backend_pids, headers))
    client.page("/signup", "new: GET /signup")
    username = f"{PREFIX}n{number:05d}"
    signup = {"username": username, "timezone": "Europe/Berlin"}
    client.post("/signup", "new: POST /signup", signup, expect=200)
    for name in ("Reply to the landlord", "Book the car service"):
        client.page("/tasks/new", "new: GET /tasks/new")
        task = {"name": name, "kind": "one-time", "default_estimate_minutes": "20"}
        client.post("/tasks/new", "new: POST /tasks/new", {**task, "description": ""})
        dashboard = client.page("/", "new: GET / (after a new task)")
    attempt_cycle(client, TASK_IDS.findall(dashboard)[0], "new: ", "new: GET / (after complete)")


@contextlib.contextmanager
def scratch_app(server: str, users: int, secret: str, room: int) -> Iterator[tuple[str, Any]]:
    """A scratch database seeded with ``users`` load-test accounts and the app on it.

    The app runs with production settings; the sign-up cap leaves ``room`` for more
    people. Yields the database's URL and the app; the database is dropped afterwards.
    """
    with scratch_database(server, keep=False) as url:
        sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        migrate.upgrade(sa_url)
        seeding = make_engine(sa_url)
        load_accounts.seed(seeding, run=RUN, count=users, secret=secret, history=42)
        seeding.dispose()
        os.environ.update(
            APP_ENV="production",
            SECRET_KEY=secrets.token_hex(32),
            DATABASE_URL=sa_url,
            PROXY_COUNT="1",
            MAX_USERS=str(users + room),
            LOG_LEVEL="WARNING",
            DATA_DIR=os.path.join(tempfile.gettempdir(), "tas"),
        )
        app = create_app()
        try:
            yield url, app
        finally:
            app.extensions["db_engine"].dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", help="write a cProfile of every request to this file")
    parser.add_argument("--json", help="also write the mix's figures to this file (as JSON)")
    parser.add_argument(
        "--newcomers", type=int, default=0, help="also profile this many first visits (sign-ups)"
    )
    args = parser.parse_args()

    secret = secrets.token_hex(16)
    with scratch_app(args.server, args.users, secret, room=args.newcomers + 10) as (url, app):
        pids: list[int] = []

        def backend_pids() -> list[int]:
            if not pids:
                pids.extend(_backend_pids(url))
            return pids

        clients: dict[int, Client] = {}
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        for round_number in range(args.rounds):
            if profiler and round_number == 1:  # the first round warms caches up
                profiler.enable()
            for number in range(args.users):
                journey(app, backend_pids, number, secret, clients)
                if round_number == 0 and number == 0:
                    pids.clear()  # the pool has opened its connection by now
        for number in range(args.newcomers):
            newcomer(app, backend_pids, number, clients)
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        with psycopg.connect(url) as conn:
            attempts = conn.execute("SELECT count(*) FROM attempts").fetchone()
    count = attempts[0] if attempts else 0
    print(f"{args.users} accounts x {args.rounds} rounds, {count} attempts")
    print(f"{'step':34} {'app CPU ms':>10} {'PG CPU ms':>10} {'total':>8}  (app: median, PG: mean)")
    total_app = total_server = 0.0
    app_cpu: dict[str, list[float]] = defaultdict(list)
    server_cpu: dict[str, list[float]] = defaultdict(list)
    for client in clients.values():
        for name, values in client.app_cpu.items():
            app_cpu[name] += values
            server_cpu[name] += client.server_cpu[name]
    for name in app_cpu:
        app_ms = statistics.median(app_cpu[name]) * 1000
        server_ms = statistics.mean(server_cpu[name]) * 1000
        total_app += sum(app_cpu[name])
        total_server += sum(server_cpu[name])
        print(f"{name:34} {app_ms:10.2f} {server_ms:10.2f} {app_ms + server_ms:8.2f}")
    count = sum(len(v) for v in app_cpu.values())
    print(
        f"all {count} requests: app {total_app / count * 1000:.2f} ms,"
        f" PostgreSQL {total_server / count * 1000:.2f} ms per request (means)"
    )
    first_visit = [k for k in app_cpu if k.startswith("new: ")]
    if first_visit:
        per_visit = sum(sum(app_cpu[k]) for k in first_visit) / args.newcomers
        pg_visit = sum(sum(server_cpu[k]) for k in first_visit) / args.newcomers
        print(
            f"a first visit ({args.newcomers} measured): app {per_visit * 1000:.1f} ms,"
            f" PostgreSQL {pg_visit * 1000:.1f} ms of CPU in all"
        )
    weight = sum(LOAD_MIX.values())
    mix_app = sum(statistics.median(app_cpu[k]) * w for k, w in LOAD_MIX.items()) / weight
    mix_server = sum(statistics.mean(server_cpu[k]) * w for k, w in LOAD_MIX.items()) / weight
    print(
        f"in the load test's mix: app {mix_app * 1000:.2f} ms,"
        f" PostgreSQL {mix_server * 1000:.2f} ms per request"
    )
    if args.json:
        figures = {
            "app_ms": round(mix_app * 1000, 2),
            "postgresql_ms": round(mix_server * 1000, 2),
            "requests": count,
            "how": f"tests/load/profile_requests.py --users {args.users} --rounds {args.rounds}",
        }
        Path(args.json).write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

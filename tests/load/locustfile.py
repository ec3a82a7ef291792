"""Light users of the Task Aversion System, for ``invoke loadtest`` (not collected by pytest).

Each virtual user is one seeded account (``releases.loadtest.seed_users``): it signs in once
with its key, then, with 5–15 s of think time between actions (``TAS_LOAD_THINK_*``) and
again while it fills in a form (between loading the form and sending it: nobody submits six
sliders in no time), does what a person does, weighted like real use: looks at the dashboard
most, then initializes, starts and completes attempts, reads analytics, edits a task, visits
the account page, and now and then signs out and in again. A share of each step's arrivals
(``TAS_LOAD_NEWCOMERS``) are new people instead: they sign up through the pages, make two
tasks and complete a first attempt, then do the same. Every page is checked for its
status and content; a POST must answer with the redirect the browser follows (the follow-up
dashboard is its own request, as in a browser).

The step shape follows ``TAS_LOAD_STEPS`` and writes a snapshot of locust's cumulative
totals at each step's measuring marks into ``TAS_LOAD_SNAPSHOTS_FILE``; the per-step
figures are their differences (``releases.capacity``).

Run by hand: ``TAS_LOAD_SECRET=... locust -f tests/load/locustfile.py --host URL`` after
seeding; normally ``invoke loadtest`` does all of it.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.parse import urlsplit

from geventhttpclient.connectionpool import ConnectionPool
from locust import LoadTestShape
from locust import between
from locust import events
from locust import task
from locust.contrib.fasthttp import FastHttpUser
from locust.runners import WorkerRunner

from db.models import OUTCOME_SCALES
from db.models import PREDICTION_SCALES
from releases.loadtest import COMPLETABLE
from releases.loadtest import CSRF
from releases.loadtest import SESSION_COOKIE
from releases.loadtest import STARTABLE
from releases.loadtest import TASK_IDS
from releases.loadtest import LoadSettings
from releases.loadtest import address_for
from releases.loadtest import load_user_key
from releases.loadtest import load_username
from releases.loadtest import marks
from releases.loadtest import target_users

SETTINGS = LoadSettings.from_env()
SIGNED_IN = 'action="/signout"'
SIGNIN_KEY = re.compile(r'id="signin-key" value="([^"]+)"')
# A GET is sent with this body: geventhttpclient 2.4 sends one without a body (None, as locust
# passes it) as "Transfer-Encoding: chunked" with the empty last chunk in a second write,
# which TCP holds back until the first is acknowledged (Nagle and delayed ACKs): every GET
# waited 40 ms at nginx before it was even passed on. An empty body is no body: the request
# goes as a browser sends it, its headers in one write, no Content-Length.
NO_BODY = b""
_numbers = itertools.count()
_newcomers = itertools.count()


def _scale() -> str:
    return str(random.randint(0, 100))


def _trusting_context(cafile: str | None = None, **_: Any) -> Any:
    """TLS as a browser does it: the certificate is checked (against ``--ca-file`` when
    given: a test CA), and so is the host name."""
    import gevent.ssl  # after locust's monkey-patching (it imports gevent first)

    return gevent.ssl.create_default_context(cafile=SETTINGS.ca_file or cafile)


_looks_idle = ConnectionPool._is_socket_alive


def _keeps_connection(pool: Any, sock: Any) -> bool:
    """Whether a kept-alive connection can take the next request, as a browser judges it.

    geventhttpclient 2.4 drops a pooled connection that has anything to read while idle.
    Over TLS that can be records with no data in them, which a browser reads and moves on:
    under load, about half of nginx's connections had such bytes waiting after an answer
    (9,969 connections dropped in 70 s at 2,000 users, none of them holding data), and each
    of those people opened a new connection, with a full TLS handshake, for every page: a
    third of all requests, CPU for nginx and the generator no visitor costs them. So this
    reads without waiting; only data or the end of the connection (nothing a server sends
    unasked on an idle HTTP/1.1 connection) make the next request go on a new connection.
    """
    if _looks_idle(pool, sock):
        return True
    import ssl  # the standard library's exceptions, which gevent's SSL sockets raise

    if not hasattr(sock, "pending") or sock.fileno() < 0:  # not TLS, or closed
        return False
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        sock.recv(1)  # data, or b"" for the end: not a connection to send a request on
    except ssl.SSLWantReadError:
        return True  # the records held no data
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)
    return False


ConnectionPool._is_socket_alive = _keeps_connection  # type: ignore[method-assign]


@events.spawning_complete.add_listener
def _settle_memory(**_: Any) -> None:
    """Once a step's people have all arrived, what they hold (connections, TLS state,
    pools) lives until the run ends: the garbage collector stops going through it
    (``gc.freeze``). Each full collection walked all of it again with every virtual user
    paused, its answers timed late and its next requests sent together: in 80 s of 2,000
    users, four full collections took 0.80 s, the longest 428 ms; frozen, two (before the
    users had all arrived) took 0.16 s, the longest 114 ms."""
    gc.freeze()


if SETTINGS.connect_to:
    # Reach the site's host name at this address (a test box, DNS not moved yet); the
    # certificate is still checked for the name. Only this load generator's lookups change.
    import gevent.socket

    _lookup = gevent.socket.getaddrinfo
    _site_host = urlsplit(os.environ.get("TAS_LOAD_URL", "")).hostname

    def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return _lookup(SETTINGS.connect_to if host == _site_host else host, *args, **kwargs)

    gevent.socket.getaddrinfo = _getaddrinfo


class LightUser(FastHttpUser):
    wait_time = between(SETTINGS.think_min, SETTINGS.think_max)
    # A person has one browser; one connection is plenty (and keeps the socket count sane).
    concurrency = 1
    insecure = False
    ssl_context_factory = staticmethod(_trusting_context)

    def on_start(self) -> None:
        self.number = (self._worker() + SETTINGS.processes * next(_numbers)) % SETTINGS.accounts
        self.username = load_username(SETTINGS.prefix, self.number)
        self.key = load_user_key(SETTINGS.secret, self.username)
        self._prepare()
        self.sign_in()
        self.dashboard()

    def _worker(self) -> int:
        runner = self.environment.runner
        return runner.worker_index if isinstance(runner, WorkerRunner) else 0

    def _prepare(self) -> None:
        # Every request here is sent with allow_redirects=False: a POST must answer with the
        # redirect itself. locust 2.46 turns redirects off through an attribute name that
        # geventhttpclient 2.4 (the newest for Python 3.10) does not read, so they would be
        # followed and a failed form (200) could not be told from a good one: turn them off
        # in the agent itself.
        self.client.client.redirect_response_codes = frozenset()
        self.headers = (
            {"X-Forwarded-For": address_for(self.number)} if SETTINGS.spread_addresses else {}
        )
        if self.host.startswith("https://"):
            # Flask-WTF checks that a form posted over HTTPS comes from the site itself, by
            # its Referer, as a browser sends it.
            self.headers["Referer"] = self.host.rstrip("/") + "/"
        if SETTINGS.load_key:
            # The live site's nginx lets this run (and only it) through its sign-in limit,
            # and passes on the address above (releases/loadtest_host.py).
            self.headers["X-TAS-Load-Key"] = SETTINGS.load_key
        if SETTINGS.run:
            # Whom this run's sign-ups belong to (the live site's nginx sets it itself).
            self.headers["X-TAS-Load-Run"] = SETTINGS.run
        self.token = ""
        self.tasks_ids: list[str] = []
        self.startable: list[str] = []
        self.completable: list[str] = []

    # --- helpers ------------------------------------------------------------------------

    def _keep_session(self, response: Any) -> None:
        """Carry the session cookie by hand.

        The app marks it Secure (production settings), and the benchmark talks plain HTTP
        to gunicorn (TLS ends at nginx in production), so a cookie jar would rightly refuse
        to send it back. One code path for HTTP and HTTPS: the jar is never used.
        """
        self.client.cookiejar.clear()
        found = SESSION_COOKIE.search(response.headers.get("Set-Cookie") or "")
        if found is not None:
            if found.group(1):
                self.headers["Cookie"] = f"session={found.group(1)}"
            else:
                self.headers.pop("Cookie", None)

    def _page(self, path: str, name: str, must_contain: str = SIGNED_IN) -> str:
        with self.client.get(
            path,
            name=name,
            headers=self.headers,
            data=NO_BODY,
            allow_redirects=False,
            catch_response=True,
        ) as response:
            self._keep_session(response)
            text = response.text or ""
            if response.status_code != 200:
                response.failure(f"{name}: status {response.status_code}")
            elif must_contain not in text:
                response.failure(f"{name}: page lacks {must_contain!r}")
            match = CSRF.search(text)
            if match:
                self.token = match.group(1)
            return text

    def _post(self, path: str, name: str, data: dict[str, str]) -> bool:
        payload = {"csrf_token": self.token, **data}
        # Encoded here, with its type, as a browser sends a form: geventhttpclient 2.4 (the
        # newest for Python 3.10) sends a dict without a Content-Type, and the app then
        # sees no form at all.
        with self.client.post(
            path,
            name=name,
            data=urlencode(payload),
            headers={**self.headers, "Content-Type": "application/x-www-form-urlencoded"},
            allow_redirects=False,
            catch_response=True,
        ) as response:
            self._keep_session(response)
            if response.status_code != 302:
                response.failure(f"{name}: status {response.status_code}, expected a redirect")
                return False
            return True

    def fill_in(self) -> None:
        """A person reading and filling in the form just loaded: think time."""
        self.wait()

    def sign_in(self) -> None:
        self._page("/signin", "/signin", must_contain='name="key"')
        self.fill_in()
        data = {"username": self.username, "key": self.key}
        if not self._post("/signin", "/signin [POST]", data):
            raise RuntimeError(f"{self.username} could not sign in")

    # --- what people do ---------------------------------------------------------------------

    @task(10)
    def dashboard(self) -> None:
        page = self._page("/", "/")
        self.tasks_ids = TASK_IDS.findall(page)
        self.startable = STARTABLE.findall(page)
        self.completable = COMPLETABLE.findall(page)

    @task(3)
    def initialize(self) -> None:
        if not self.tasks_ids or len(self.completable) >= 3:
            return self.complete()
        task_id = random.choice(self.tasks_ids)
        path = f"/tasks/{task_id}/initialize"
        self._page(path, "/tasks/[id]/initialize", must_contain="expected_aversion")
        prediction = {name: _scale() for name in PREDICTION_SCALES}
        prediction.update(time_estimate_minutes="25", physical_context="Home", description="")
        self.fill_in()
        if self._post(path, "/tasks/[id]/initialize [POST]", prediction):
            self.dashboard()

    @task(2)
    def start_attempt(self) -> None:
        if not self.startable:
            return self.initialize()
        attempt = self.startable[0]
        if self._post(f"/attempts/{attempt}/start", "/attempts/[id]/start [POST]", {}):
            self.dashboard()

    @task(2)
    def complete(self) -> None:
        if not self.completable:
            return self.dashboard()
        attempt = self.completable[0]
        path = f"/attempts/{attempt}/complete"
        self._page(path, "/attempts/[id]/complete", must_contain="actual_relief")
        outcome = {name: _scale() for name in OUTCOME_SCALES}
        outcome.update(completion_percent="100", minutes_spent="20", notes="")
        self.fill_in()
        if self._post(path, "/attempts/[id]/complete [POST]", outcome):
            self.dashboard()

    @task(2)
    def analytics(self) -> None:
        with self.client.get(
            "/analytics",
            headers=self.headers,
            data=NO_BODY,
            allow_redirects=False,
            catch_response=True,
        ) as response:
            self._keep_session(response)
            if response.status_code != 200 or SIGNED_IN not in (response.text or ""):
                response.failure(f"/analytics: status {response.status_code}")

    @task(1)
    def edit_task(self) -> None:
        if not self.tasks_ids:
            return self.dashboard()
        task_id = random.choice(self.tasks_ids)
        path = f"/tasks/{task_id}/edit"
        page = self._page(path, "/tasks/[id]/edit", must_contain='name="name"')
        name = re.search(r'name="name"[^>]*value="([^"]*)"', page)
        data = {
            "name": name.group(1) if name else "Answer email",
            "kind": "routine",
            "default_estimate_minutes": str(random.choice((15, 20, 25, 30))),
            "description": f"edited by the load test {random.randint(1, 9999)}",
        }
        self.fill_in()
        if self._post(path, "/tasks/[id]/edit [POST]", data):
            self.dashboard()

    @task(1)
    def account(self) -> None:
        self._page("/account", "/account", must_contain=self.username)

    @task(1)
    def sign_out_and_in(self) -> None:
        if self._post("/signout", "/signout [POST]", {}):
            self.sign_in()
            self.dashboard()


class NewcomerUser(LightUser):
    """A stranger arriving while a step fills: signs up through the pages, makes two tasks
    and completes a first attempt, with think time at every page as the others, then uses
    the site like them. Its account is one of the run's (the sign-up names the run), so the
    run's clean-up removes it. ``TAS_LOAD_NEWCOMERS`` is their share of the arrivals."""

    def on_start(self) -> None:
        self.number = SETTINGS.accounts + self._worker() + SETTINGS.processes * next(_newcomers)
        self.username = f"{SETTINGS.prefix}n{self.number:05d}"
        self._prepare()
        self.sign_up()
        for name in ("Reply to the landlord", "Book the car service"):
            self.new_task(name)
        self.dashboard()
        self.initialize()  # then start and complete it: the first attempt
        self.start_attempt()
        self.complete()

    def sign_up(self) -> None:
        self._page("/signup", "/signup", must_contain='name="username"')
        self.fill_in()
        payload = {"csrf_token": self.token, "username": self.username, "timezone": "Europe/Berlin"}
        with self.client.post(
            "/signup",
            name="/signup [POST]",
            data=urlencode(payload),
            headers={**self.headers, "Content-Type": "application/x-www-form-urlencoded"},
            allow_redirects=False,
            catch_response=True,
        ) as response:
            self._keep_session(response)
            key = SIGNIN_KEY.search(response.text or "")
            if response.status_code != 200 or key is None:
                response.failure(f"/signup [POST]: status {response.status_code}, no key shown")
                raise RuntimeError(f"{self.username} could not sign up")
            self.key = key.group(1)

    def new_task(self, name: str) -> None:
        self._page("/tasks/new", "/tasks/new", must_contain='name="name"')
        self.fill_in()
        data = {"name": name, "kind": "one-time", "default_estimate_minutes": "20"}
        self._post("/tasks/new", "/tasks/new [POST]", {**data, "description": ""})


if SETTINGS.newcomers > 0:
    NewcomerUser.weight = round(100 * SETTINGS.newcomers)
    LightUser.weight = 100 - NewcomerUser.weight
else:
    NewcomerUser.abstract = True


def _succeeded(entry: Any) -> int:
    return 0 if entry is None else int(entry.num_requests - entry.num_failures)


class StepShape(LoadTestShape):
    """``TAS_LOAD_STEPS`` users, each for ``TAS_LOAD_STEP_SECONDS``, snapshotting at each mark."""

    def __init__(self) -> None:
        super().__init__()
        self.pending = marks(SETTINGS)
        self.taken: list[dict[str, Any]] = []

    def _snapshot(self, step: int, opens: bool) -> None:
        assert self.runner is not None
        total = self.runner.stats.total
        self.taken.append(
            {
                "step": step,
                "opens": opens,
                "time": time.time(),
                "users": self.runner.user_count,
                "requests": total.num_requests,
                "failures": total.num_failures,
                "signups": _succeeded(self.runner.stats.entries.get(("/signup [POST]", "POST"))),
                "response_times": {str(k): v for k, v in total.response_times.items()},
            }
        )
        if SETTINGS.snapshots_file:
            Path(SETTINGS.snapshots_file).write_text(json.dumps(self.taken))

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        while self.pending and self.pending[0].at <= elapsed:
            mark = self.pending.pop(0)
            self._snapshot(mark.step, mark.opens)
        users = target_users(SETTINGS, elapsed)
        if not self.pending or users is None:
            return None
        return users, SETTINGS.effective_spawn_rate

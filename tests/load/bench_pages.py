"""Benchmark the analytics page and the dashboard for one person with 10,000 attempts.

    .venv/bin/python tests/load/bench_pages.py [--attempts 10000] [--tasks 60] [--runs 30]
                                               [--server URL] [--no-browser] [--keep]

Issue 3's goals, for one person with 10,000 attempts over 60 tasks:

- server side, median: analytics < 100 ms, dashboard < 30 ms. Measured in-process with
  Flask's test client (routing, session lookup, queries, templates; no network), and
  also over HTTP through a real gunicorn (2 sync workers) on 127.0.0.1 for comparison.
  Repeated views are served from the per-person page cache; "after a change" views
  follow a bump of the person's data version (what any write does), so the page's
  figures are recomputed and stored again;
- in headless Chromium, median: analytics with every chart drawn < 400 ms, dashboard
  fully rendered < 200 ms, both from navigation start, with a warm HTTP cache: static
  files revalidated (gunicorn alone sends them without a max-age), and again with them
  cached as nginx serves them in production (versioned URLs: a year, immutable).

The data set goes into a fresh scratch database on the server (default
127.0.0.1:5432): the person signs up through the real form, then 60 tasks and the
attempts (87 % completed, 13 % cancelled, 5 still open, over two years) are written with
one COPY each; the measures are computed by ``db.measures.compute_measures``, the same
function the app uses. Not collected by pytest (tests/load is excluded). ``invoke bench``
runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import io
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from db import migrate  # noqa: E402
from db.measures import MEASURE_COLUMNS  # noqa: E402
from db.measures import AttemptFacts  # noqa: E402
from db.measures import compute_measures  # noqa: E402
from releases.loadtest import CSRF  # noqa: E402
from service import create_app  # noqa: E402

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
USERNAME = "bench"
TIMEZONE = "Europe/Berlin"
TARGETS_MS = {
    ("server", "/analytics"): 100,
    ("server", "/"): 30,
    ("server", "/history"): 50,
    ("browser", "/analytics"): 400,
    ("browser", "/"): 200,
}
KEY = re.compile(r'id="signin-key" value="([^"]+)"')
ATTEMPT_COLUMNS = (
    "user_id",
    "task_id",
    "task_version",
    "status",
    "initialized_at",
    "started_at",
    "completed_at",
    "cancelled_at",
    "minutes_spent",
    "expected_aversion",
    "expected_relief",
    "expected_cognitive_load",
    "expected_emotional_load",
    "expected_physical_load",
    "motivation",
    "time_estimate_minutes",
    "actual_relief",
    "actual_cognitive_load",
    "actual_emotional_load",
    "actual_physical_load",
    "completion_percent",
    "cancel_reason",
    *MEASURE_COLUMNS,
)

# In the page: the moments (ms since navigation start) every chart was drawn, and every chart
# of the first screen (the part of the page shown before any scrolling). A canvas (Chart.js,
# the dashboard) is drawn once it has data-drawn="true"; an analytics chart is inline SVG
# written by the server (svg[data-chart]), drawn as soon as it is in the document. The first
# screen counts once the HTML parsed so far reaches past it (or is complete), so that a chart
# of the first screen still to come is waited for.
DRAWN_OBSERVER = """
(() => {
  const drawn = (c) => c.tagName !== "CANVAS" || c.dataset.drawn === "true";
  const check = () => {
    const charts = [...document.querySelectorAll("canvas, svg[data-chart]")];
    if (!charts.length) return;
    const parsed = document.readyState !== "loading";
    if (window.__firstScreenAt === undefined) {
      const tops = charts.map((c) => c.getBoundingClientRect().top);
      const past = parsed || tops.some((top) => top >= window.innerHeight);
      const first = charts.filter((c, i) => tops[i] < window.innerHeight);
      if (past && first.every(drawn)) window.__firstScreenAt = performance.now();
    }
    if (window.__allDrawnAt === undefined && parsed && charts.every(drawn)) {
      window.__allDrawnAt = performance.now();
    }
  };
  new MutationObserver(check).observe(document, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-drawn"],
  });
  document.addEventListener("readystatechange", check);
})();
"""

# When each phase ended, in ms since navigation start: the HTML received, the DOM parsed,
# the deferred scripts run (DOMContentLoaded), and everything (load + all charts drawn).
PHASES = """
() => {
  const nav = performance.getEntriesByType("navigation")[0];
  return {
    response: nav.responseEnd,
    dom: nav.domInteractive,
    scripts: nav.domContentLoadedEventEnd,
    first: window.__firstScreenAt === undefined ? nav.loadEventEnd : window.__firstScreenAt,
    done: Math.max(window.__allDrawnAt, nav.loadEventEnd),
  };
}
"""


# --- the data set ---------------------------------------------------------------------------


def _libpq(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@contextlib.contextmanager
def scratch_database(server: str, keep: bool) -> Iterator[str]:
    name = f"tas_bench_pages_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(server), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _libpq(server, name)
    try:
        yield url
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(_libpq(server), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _clamp(value: float, low: float = 0, high: float = 100) -> int:
    return int(max(low, min(high, round(value))))


def _attempt_rows(
    user_id: int, tasks: list[tuple[int, float]], count: int, now: dt.datetime
) -> Iterator[tuple[Any, ...]]:
    """Plausible attempts: relief tracks expectations loosely; dread often overstates."""
    import random

    rng = random.Random(3)
    open_left = 5
    for index in range(count):
        task_id, estimate = tasks[index % len(tasks)]
        initialized = now - dt.timedelta(minutes=rng.uniform(60, 730 * 24 * 60))
        aversion = _clamp(rng.gauss(45, 25))
        expected = _clamp(rng.gauss(55, 20))
        loads = [_clamp(rng.gauss(40, 20)) for _ in range(3)]
        prediction = (aversion, expected, *loads, _clamp(rng.gauss(55, 20)), estimate)
        if open_left and index >= count - 5:
            open_left -= 1
            yield (user_id, task_id, 1, "initialized", initialized, None, None, None, 0.0,
                   *prediction, *(None,) * 6, *(None,) * len(MEASURE_COLUMNS))  # fmt: skip
            continue
        started = initialized + dt.timedelta(minutes=rng.expovariate(1 / 90))
        spent = round(max(1.0, rng.gauss(estimate * 1.2, estimate * 0.4)), 1)
        ended = started + dt.timedelta(minutes=spent)
        if rng.random() < 0.13:
            yield (user_id, task_id, 1, "cancelled", initialized, started, None, ended,
                   round(spent / 3, 1), *prediction, None, None, None, None,
                   _clamp(rng.uniform(0, 80)), "Ran out of time",
                   *(None,) * len(MEASURE_COLUMNS))  # fmt: skip
            continue
        relief = _clamp(0.5 * expected + 0.3 * aversion + rng.gauss(15, 15))
        actual_loads = [_clamp(load + rng.gauss(-5, 12)) for load in loads]
        completion = _clamp(rng.gauss(100, 10), 0, 200)
        facts = AttemptFacts(
            actual_relief=relief,
            expected_relief=expected,
            actual_cognitive_load=actual_loads[0],
            actual_emotional_load=actual_loads[1],
            actual_physical_load=actual_loads[2],
            completion_percent=completion,
            minutes_spent=spent,
            time_estimate_minutes=estimate,
            initialized_at=initialized,
            started_at=started,
        )
        measures = compute_measures(facts)
        yield (user_id, task_id, 1, "completed", initialized, started, ended, None, spent,
               *prediction, relief, *actual_loads, completion, None,
               *(measures[name] for name in MEASURE_COLUMNS))  # fmt: skip


def generate(url: str, user_id: int, attempts: int, tasks: int) -> float:
    started = time.perf_counter()
    now = dt.datetime.now(dt.timezone.utc)
    with psycopg.connect(url) as conn:
        task_rows = [(user_id, f"Task {n:02d}", float(10 + (n * 7) % 80)) for n in range(tasks)]
        with conn.cursor().copy(
            "COPY tasks (user_id, name, default_estimate_minutes) FROM STDIN"
        ) as copy:
            for row in task_rows:
                copy.write_row(row)
        ids = conn.execute(
            "SELECT id, default_estimate_minutes FROM tasks WHERE user_id = %s ORDER BY id",
            (user_id,),
        ).fetchall()
        columns = ", ".join(ATTEMPT_COLUMNS)
        with conn.cursor().copy(f"COPY attempts ({columns}) FROM STDIN") as copy:
            for row in _attempt_rows(user_id, [(i, e) for i, e in ids], attempts, now):
                copy.write_row(row)
        conn.execute("ANALYZE tasks")
        conn.execute("ANALYZE attempts")
    return time.perf_counter() - started


# --- timing -----------------------------------------------------------------------------------


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "min": ordered[0],
    }


def _time(
    call: Callable[[], Any],
    runs: int,
    cpu: Callable[[], float] | None = None,
    warmup: int = 3,
    before: Callable[[], Any] | None = None,
) -> dict[str, float]:
    """Wall-clock summary of ``runs`` calls, and the mean CPU per call when ``cpu`` is given.

    CPU time (of the app and of its PostgreSQL backends) hardly moves when other jobs
    share the machine, unlike wall-clock time: it is what a request costs on an idle one.
    ``before`` runs ahead of each call, outside the wall-clock time (its CPU, if any, is
    in the CPU figure).
    """
    for _ in range(warmup):
        if before:
            before()
        call()
    samples = []
    cpu_before = cpu() if cpu else 0.0
    for _ in range(runs):
        if before:
            before()
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    result = _summary(samples)
    if cpu:
        result["cpu"] = (cpu() - cpu_before) / runs * 1000
    return result


def _process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc (both in clock ticks)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # ended meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backend_pids(url: str) -> list[int]:
    """The PostgreSQL server processes serving the app's connections to this database."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(row[0]) for row in rows]


def _cpu_meter(pids: list[int], include_self: bool = False) -> Callable[[], float]:
    def total() -> float:
        own = time.process_time() if include_self else 0.0
        return own + sum(_process_cpu_seconds(pid) for pid in pids)

    return total


def app_config(url: str) -> dict[str, Any]:
    return {
        "APP_ENV": "testing",
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": make_url(url).set(drivername="postgresql+psycopg").render_as_string(False),
        "SESSION_COOKIE_SECURE": False,
        "RATELIMIT_ENABLED": False,
        "LOG_LEVEL": "WARNING",
    }


def sign_up(client: Any) -> str:
    page = client.get("/signup").get_data(as_text=True)
    token = CSRF.search(page)
    assert token, "no CSRF token on /signup"
    response = client.post(
        "/signup",
        data={"csrf_token": token.group(1), "username": USERNAME, "timezone": TIMEZONE},
    )
    key = KEY.search(response.get_data(as_text=True))
    assert key, f"sign-up failed ({response.status_code})"
    return key.group(1)


def count_statements(app: Any, client: Any, path: str) -> int:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    engine = app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(seen)


def history_paths(url: str) -> list[str]:
    """History's first page, a page filtered by a task, and a search for a word of a task's
    name, cut short as people type it (partial words find things too)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id, name FROM tasks ORDER BY id LIMIT 1").fetchone()
    assert row is not None
    task_id, name = row
    word = name.split()[0][:4].lower()
    return ["/history", f"/history?task={task_id}", f"/history?q={word}"]


def server_side(app: Any, client: Any, url: str, runs: int) -> dict[str, dict[str, float]]:
    """Each page viewed again and again (its figures cached after the first view), and
    each page viewed right after a change to the person's data (figures recomputed);
    history as it is (it keeps nothing)."""
    results = {}
    for path in history_paths(url):
        client.get(path)
        cpu = _cpu_meter(_backend_pids(url), include_self=True)

        def view(path: str = path) -> None:
            response = client.get(path)
            assert response.status_code == 200, response.status_code

        results[path] = _time(view, runs, cpu)
        results[path]["statements"] = count_statements(app, client, path)
    for path in ("/analytics", "/"):

        def get(path: str = path) -> None:
            response = client.get(path)
            assert response.status_code == 200, response.status_code

        get()  # opens the pool's connection, so that its backend can be metered
        cpu = _cpu_meter(_backend_pids(url), include_self=True)
        results[path] = _time(get, runs, cpu)
        results[path]["statements"] = count_statements(app, client, path)
        with psycopg.connect(url, autocommit=True) as writer:
            # What any write to the person's tasks or attempts does (the triggers' bump).
            def change() -> None:
                writer.execute("UPDATE users SET data_version = data_version + 1")

            results[f"{path} after a change"] = _time(get, runs, cpu, before=change)
            change()
            results[f"{path} after a change"]["statements"] = count_statements(app, client, path)
    return results


# --- gunicorn and the browser ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def gunicorn(url: str, app_spec: str = "service.wsgi:app") -> Iterator[tuple[str, int]]:
    port = _free_port()
    env = {
        **os.environ,
        "APP_ENV": "development",  # plain-HTTP cookies on 127.0.0.1, no proxy in front
        "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_hex(32),
        "LOG_LEVEL": "WARNING",
        "GUNICORN_WORKERS": "2",
    }
    args = [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]
    args += ["--bind", f"127.0.0.1:{port}", "--no-control-socket"]
    args += ["--pythonpath", str(Path(__file__).parent), app_spec]
    process = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("gunicorn did not become healthy")
            time.sleep(0.2)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def nginx_cached_static() -> Any:
    """The app with nginx's caching of versioned static URLs (releases/templates/
    nginx-site.conf): a year, immutable, so a returning browser doesn't revalidate them.

    Served by gunicorn alone, Flask sends them without a max-age and the browser asks
    again (304) for each on every page; in production nginx answers from disk and the
    browser doesn't ask at all. ``gunicorn ... 'bench_pages:nginx_cached_static()'``.
    """
    from service.wsgi import app

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        versioned = environ.get("PATH_INFO", "").startswith("/static/") and "v=" in environ.get(
            "QUERY_STRING", ""
        )
        if not versioned:
            return app(environ, start_response)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(k, v) for k, v in headers if k.lower() != "cache-control"]
            kept.append(("Cache-Control", "public, max-age=31536000, immutable"))
            return start_response(status, kept, exc_info)

        return app(environ, start)

    return wsgi


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def http_round_trips(
    base: str, master: int, url: str, cookie: str, runs: int
) -> dict[str, dict[str, float]]:
    """GET over one keep-alive connection to gunicorn: app time plus loopback HTTP."""
    parsed = urllib.parse.urlsplit(base)
    results = {}
    for path in ("/analytics", "/"):
        connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=30)

        def get(path: str = path, connection: Any = connection) -> None:
            connection.request("GET", path, headers={"Cookie": cookie})
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status

        get()
        cpu = _cpu_meter(_children(master) + _backend_pids(url))
        results[path] = _time(get, runs, cpu)
        connection.close()
    return results


def browser_timings(base: str, key: str, runs: int) -> tuple[dict[str, Any], str]:
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        # A person's window (1600 x 1000); each view in a new tab, as someone opening the
        # page meets it (a tab reused from the last view would keep its compiled scripts).
        context = browser.new_context(
            base_url=base,
            timezone_id=TIMEZONE,
            locale="en-GB",
            viewport={"width": 1600, "height": 1000},
            # Playwright polls its wait condition with eval, which the site's CSP forbids
            # (a page whose charts are all drawn at load never needed a second poll).
            bypass_csp=True,
        )
        context.add_init_script(DRAWN_OBSERVER)
        page = context.new_page()
        errors: list[str] = []
        page.goto("/signin")
        page.fill("#username", USERNAME)
        page.fill("#key", key)
        page.click("form button[type=submit]")
        page.wait_for_url(re.compile(r"/$"))
        page.close()
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in context.cookies())
        for path in ("/analytics", "/"):
            samples = []
            for run in range(runs + 3):
                tab = context.new_page()
                tab.on("pageerror", lambda error: errors.append(str(error)))
                tab.goto(path, wait_until="load")
                tab.wait_for_function("window.__allDrawnAt !== undefined")
                moments = tab.evaluate(PHASES)
                charts = tab.locator("canvas[data-drawn=true], svg[data-chart]").count()
                tab.close()
                if run >= 3:  # the first ones warm the HTTP cache
                    samples.append(moments)
            results[path] = _summary([m["done"] for m in samples])
            for phase in ("response", "dom", "scripts", "first"):
                results[path][phase] = statistics.median(m[phase] for m in samples)
            results[path]["charts"] = charts
        page = context.new_page()
        page.goto("/analytics", wait_until="load")
        page.wait_for_function("window.__allDrawnAt !== undefined")
        page.screenshot(path=str(Path("/tmp") / "bench_analytics.png"), full_page=True)
        browser.close()
    if errors:
        raise RuntimeError("script errors in the browser: " + "; ".join(errors))
    return results, cookie


# --- report -----------------------------------------------------------------------------------


def _load() -> str:
    """The 1-minute load average: on a shared machine it explains noisy figures."""
    return f"{os.getloadavg()[0]:.1f}"


def _line(kind: str, path: str, figures: dict[str, float]) -> str:
    target = TARGETS_MS.get((kind, path.split("?")[0]))
    verdict = ""
    if target is not None:
        verdict = f"  target < {target} ms: {'met' if figures['median'] < target else 'MISSED'}"
    extra = "".join(
        f", {name} {int(figures[name])}" for name in ("statements", "charts") if name in figures
    )
    if "cpu" in figures:
        extra += f", CPU {figures['cpu']:.1f} ms/request (app + its PostgreSQL backends)"
    if "response" in figures:
        extra += (
            f"\n{'':27}(medians: HTML received {figures['response']:.0f} ms, DOM parsed "
            f"{figures['dom']:.0f} ms, scripts run {figures['scripts']:.0f} ms, first screen "
            f"drawn {figures['first']:.0f} ms)"
        )
    return (
        f"  {path:<24} median {figures['median']:7.1f} ms  p90 {figures['p90']:7.1f} ms"
        f"  min {figures['min']:7.1f} ms{extra}{verdict}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attempts", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--server", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER))
    parser.add_argument("--no-browser", action="store_true", help="server-side timings only")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    options = parser.parse_args()

    print(f"machine: {os.cpu_count()} CPUs, load average {_load()} at the start")
    with scratch_database(options.server, options.keep) as url:
        migrate.upgrade(make_url(url).set(drivername="postgresql+psycopg").render_as_string(False))
        app = create_app(app_config(url))
        client = app.test_client()
        key = sign_up(client)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT id FROM users WHERE username = %s", (USERNAME,)).fetchone()
        assert row is not None
        seconds = generate(url, int(row[0]), options.attempts, options.tasks)
        print(
            f"data: {options.attempts:,} attempts over {options.tasks} tasks for one person, "
            f"generated in {seconds:.1f} s"
        )
        print(f"server side, Flask test client in-process ({options.runs} runs after 3 warm-ups):")
        for path, figures in server_side(app, client, url, options.runs).items():
            print(_line("server", path, figures))
        app.extensions["db_engine"].dispose()
        if options.no_browser:
            print(f"machine: load average {_load()} at the end")
            return 0
        if not Path(CHROMIUM).exists():
            print(f"browser: skipped, no Chromium at {CHROMIUM}")
            return 0
        with gunicorn(url) as (base, master):
            browser, cookie = browser_timings(base, key, options.runs)
            print(f"over HTTP, gunicorn 2 sync workers, keep-alive ({options.runs} runs):")
            http_figures = http_round_trips(base, master, url, cookie, options.runs)
            for path, figures in http_figures.items():
                print(_line("http", path, figures))
            print(
                f"headless Chromium, 1600 x 1000, a new tab per view, navigation start to "
                f"load + all charts drawn ({options.runs} runs after 3 warm-ups):"
            )
            for path, figures in browser.items():
                print(_line("browser", path, figures))
        with gunicorn(url, "bench_pages:nginx_cached_static()") as (base, _master):
            browser, _cookie = browser_timings(base, key, options.runs)
            print(
                "headless Chromium, static files cached as nginx serves them (a year, "
                "immutable: no revalidation), same measure:"
            )
            for path, figures in browser.items():
                print(_line("browser", path, figures))
    print(f"machine: load average {_load()} at the end")
    return 0


if __name__ == "__main__":
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True)
    sys.exit(main())

"""Run the step load test (``invoke loadtest``): make accounts, run locust, judge each step.

The journeys live in ``tests/load/locustfile.py``; this module gives them their settings
(environment variables, so ``--processes`` workers see them too), the accounts they sign
in to, and the step plan. The run is a locust subprocess; the locustfile's shape writes a
snapshot of locust's cumulative totals at every step mark into a JSON file, and
:mod:`releases.capacity` turns the differences into per-step figures.

Two ways to run it:

* ``--url``: against an app on this machine (gunicorn directly, the benchmark); the
  accounts are made through ``--database-url``, and the load generator stands where nginx
  stands in production: it reports each virtual user's own address in ``X-Forwarded-For``.
* ``--host`` (:mod:`releases.loadtest_host`): against the deployed site, through its
  domain, nginx and TLS; the accounts are made on the server over SSH, and nginx lets this
  run (and nobody else) through its sign-in limit for the run's duration.

Why accounts are made beforehand: sign-up and sign-in are rate limited per client address
(10 a minute in the app and in nginx). Creating 2,500 accounts over HTTP from one machine
would take hours and would measure the limiter, not the app. So the accounts (with tasks
and 90 days of history, so pages do real work) are inserted with SQL (db/load_accounts.py),
each with a sign-in key derived from a per-run secret, and every virtual user signs in once
with its key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from db.load_accounts import load_user_key as load_user_key
from db.load_accounts import load_username as load_username
from db.load_accounts import run_prefix
from releases.capacity import REPORTS_DIR
from releases.capacity import Gates
from releases.capacity import Report
from releases.capacity import Snapshot
from releases.capacity import build_report
from releases.capacity import write_report

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "tests" / "load" / "locustfile.py"
BASELINE_LOCUSTFILE = ROOT / "tests" / "load" / "baseline_locustfile.py"
BASELINE_USERS = 20
ENV_PREFIX = "TAS_LOAD_"

# What the load tools read from the app's pages and answers (smoke, locustfile, profiler).
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
TASK_IDS = re.compile(r'href="/tasks/(\d+)/initialize"')
STARTABLE = re.compile(r'action="/attempts/(\d+)/start"')
COMPLETABLE = re.compile(r'href="/attempts/(\d+)/complete"')
SESSION_COOKIE = re.compile(r"(?:^|,\s*)session=([^;,]*)")


# --- the accounts (db/load_accounts.py makes and removes them) -------------------------------


def new_run_name() -> str:
    """A fresh name per run: accounts of an interrupted run never collide with these."""
    return secrets.token_hex(4)


# --- the plan the locustfile follows ---------------------------------------------------------


_TEXT_FIELDS = ("prefix", "secret", "snapshots_file", "ca_file", "connect_to", "load_key", "run")


@dataclass(frozen=True)
class LoadSettings:
    """Everything the locustfile needs, passed through ``TAS_LOAD_*`` environment variables."""

    steps: tuple[int, ...] = (20, 30, 40, 50)
    step_seconds: float = 60
    # The start of each step is not measured: users are still arriving and signing in.
    settle_seconds: float = 15
    spawn_rate: float = 0  # 0: fast enough to reach each step within its settle time
    think_min: float = 5
    think_max: float = 15
    prefix: str = "load-"
    secret: str = ""
    # The run's name: its newcomers' sign-ups say it (X-TAS-Load-Run) to be listed as its
    # accounts; on the live site nginx says it for them, from the run's key.
    run: str = ""
    # The share of each step's arriving users who are new: they sign up through the pages,
    # make two tasks and complete a first attempt before they use the site like the others.
    newcomers: float = 0.4
    pool: int = 0  # seeded accounts (0: the largest step)
    processes: int = 1
    spread_addresses: bool = True
    snapshots_file: str = ""
    # The live site: the CA to trust (a test CA), the address to reach the URL's host at
    # (DNS not pointing there yet, or a test box), the run's key nginx lets through.
    ca_file: str = ""
    connect_to: str = ""
    load_key: str = ""

    def __post_init__(self) -> None:
        if not self.steps or any(s <= 0 for s in self.steps):
            raise ValueError("steps must be positive user counts")
        if list(self.steps) != sorted(self.steps):
            raise ValueError("steps must go up")
        if self.settle_seconds >= self.step_seconds:
            raise ValueError("settle time must be shorter than a step")
        if not 0 <= self.think_min <= self.think_max:
            raise ValueError("think time must satisfy 0 <= min <= max")
        if not 0 <= self.newcomers < 1:
            raise ValueError("the newcomers' share must be at least 0 and below 1")

    @property
    def effective_spawn_rate(self) -> float:
        if self.spawn_rate > 0:
            return self.spawn_rate
        increments = [b - a for a, b in zip((0, *self.steps), self.steps, strict=False)]
        window = max(1.0, self.settle_seconds * 0.6)
        return max(1.0, math.ceil(max(increments) / window))

    @property
    def accounts(self) -> int:
        return self.pool or max(self.steps) + self.processes + 5

    def to_env(self) -> dict[str, str]:
        values = dataclasses.asdict(self)
        values["steps"] = ",".join(str(s) for s in self.steps)
        return {
            ENV_PREFIX + k.upper(): (str(int(v)) if isinstance(v, bool) else str(v))
            for k, v in values.items()
        }

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> LoadSettings:
        env = dict(os.environ if env is None else env)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            if f.name == "steps":
                kwargs[f.name] = tuple(int(s) for s in raw.split(",") if s.strip())
            elif f.name == "spread_addresses":
                kwargs[f.name] = raw not in ("0", "", "false", "False")
            elif f.name in ("pool", "processes"):
                kwargs[f.name] = int(raw)
            elif f.name in _TEXT_FIELDS:
                kwargs[f.name] = raw
            else:
                kwargs[f.name] = float(raw)
        return cls(**kwargs)


@dataclass(frozen=True)
class Mark:
    """When to take a snapshot: ``step`` index, and whether it opens or closes the window."""

    at: float
    step: int
    opens: bool


def marks(settings: LoadSettings) -> list[Mark]:
    out = []
    for i in range(len(settings.steps)):
        start = i * settings.step_seconds
        out.append(Mark(start + settings.settle_seconds, i, True))
        out.append(Mark(start + settings.step_seconds, i, False))
    return out


def target_users(settings: LoadSettings, elapsed: float) -> int | None:
    """The step's user count at ``elapsed`` seconds into the run (None: the run is over)."""
    index = int(elapsed // settings.step_seconds)
    return settings.steps[index] if index < len(settings.steps) else None


def address_for(number: int) -> str:
    """A distinct private client address per virtual user (10.0.0.1 onwards)."""
    n = number + 1
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def _paired(snapshots: list[dict[str, Any]]) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """Each step's opening and closing snapshot rows (as the locustfile wrote them), by step
    index in step order; a step whose window never closed is left out."""
    opened: dict[int, dict[str, Any]] = {}
    pairs: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for row in snapshots:
        step = int(row["step"])
        if row["opens"]:
            opened[step] = row
        elif step in opened:
            pairs[step] = (opened[step], row)
    return {step: pairs[step] for step in sorted(pairs)}


def windows(snapshots: list[dict[str, Any]]) -> list[tuple[Snapshot, Snapshot]]:
    """Pair each step's opening and closing snapshots, in step order."""
    return [
        (Snapshot.from_json(first), Snapshot.from_json(last))
        for first, last in _paired(snapshots).values()
    ]


def window_times(snapshots: list[dict[str, Any]]) -> dict[int, tuple[float, float]]:
    """Each step's measured window, by step index in step order: when it opened and closed
    (the times the server's own figures are read between)."""
    return {
        step: (float(first["time"]), float(last["time"]))
        for step, (first, last) in _paired(snapshots).items()
    }


# --- running it ------------------------------------------------------------------------------


def machine_load() -> dict[str, Any]:
    one, five, fifteen = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_avg": [round(one, 2), round(five, 2), round(fifteen, 2)]}


@contextlib.contextmanager
def resolving(host: str, address: str) -> Iterator[None]:
    """In this process, ``host`` resolves to ``address`` (like curl's ``--connect-to``);
    TLS still checks the certificate for ``host``. Nothing changes when ``address`` is ''."""
    if not address:
        yield
        return
    original = socket.getaddrinfo

    def getaddrinfo(name: Any, *args: Any, **kwargs: Any) -> Any:
        return original(address if name == host else name, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.getaddrinfo = original


def healthz(url: str, ca_file: str | None = None, timeout: float = 10) -> dict[str, Any]:
    import requests

    verify: bool | str = ca_file or True
    response = requests.get(url.rstrip("/") + "/healthz", timeout=timeout, verify=verify)
    response.raise_for_status()
    return dict(response.json())


def git_commit(root: Path = ROOT) -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return sha + ("-dirty" if dirty else "")


def _locust(
    locustfile: Path, url: str, settings: LoadSettings, args: list[str], **env: str
) -> subprocess.CompletedProcess[str]:
    """locust, headless, against ``url``, with ``settings`` in its environment."""
    command = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless"]
    command += ["--host", url.rstrip("/"), "--only-summary", "--loglevel", "WARNING", *args]
    environment = {
        **os.environ,
        **settings.to_env(),
        "PYTHONPATH": str(ROOT),
        "TAS_LOAD_URL": url,
        **env,
    }
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)


def run_locust(
    url: str,
    settings: LoadSettings,
    out_dir: Path,
    *,
    stem: str,
    echo: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], Path]:
    """Run the locustfile headless; return its snapshots and the path of locust's HTML."""
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshots = out_dir / f"{stem}.snapshots.json"
    html = out_dir / f"{stem}.locust.html"
    settings = dataclasses.replace(settings, snapshots_file=str(snapshots))
    total = len(settings.steps) * settings.step_seconds
    args = ["--html", str(html), "--stop-timeout", "5"]
    if settings.processes > 1:
        args += ["--processes", str(settings.processes)]
    echo(
        f"loadtest: steps {list(settings.steps)} x {settings.step_seconds:g}s "
        f"(first {settings.settle_seconds:g}s of each not measured), "
        f"think {settings.think_min:g}-{settings.think_max:g}s, "
        f"{settings.processes} locust process(es), about {total:.0f}s"
    )
    started = time.monotonic()
    result = _locust(LOCUSTFILE, url, settings, args)
    if not snapshots.exists():
        raise RuntimeError(
            f"locust exited {result.returncode} without step figures:\n{result.stderr[-3000:]}"
        )
    echo(f"loadtest: locust finished in {time.monotonic() - started:.0f}s")
    return json.loads(snapshots.read_text()), html


def run_baseline(
    url: str,
    settings: LoadSettings,
    out_dir: Path,
    *,
    stem: str,
    seconds: float,
    users: int = BASELINE_USERS,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The smallest page (``/healthz/live``) as fast as ``users`` can ask, for ``seconds``:
    the req/s this path and machine allow, next to which a report's figures are judged."""
    out = out_dir / f"{stem}.baseline.json"
    args = ["--users", str(users), "--spawn-rate", str(users), "--run-time", f"{seconds:g}s"]
    result = _locust(
        BASELINE_LOCUSTFILE, url, settings, [*args, "--stop-timeout", "2"],
        TAS_BASELINE_OUT=str(out),
    )  # fmt: skip
    if not out.exists():
        raise RuntimeError(
            f"the baseline run exited {result.returncode} without figures:\n{result.stderr[-3000:]}"
        )
    figures: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    echo(
        f"loadtest: baseline {figures['rps']:g} req/s on /healthz/live "
        f"({users} users, no think time, {figures['failures']} failed)"
    )
    return figures


@dataclass(frozen=True)
class Measured:
    """What one run gave: locust's snapshots and page, the baseline, the machine before."""

    snapshots: list[dict[str, Any]]
    locust_html: Path
    baseline: dict[str, Any]
    load_before: list[float]
    started: float  # time.time() when the load began


def measure(
    url: str,
    settings: LoadSettings,
    out_dir: Path,
    *,
    stem: str,
    baseline_seconds: float,
    echo: Callable[[str], None] = print,
) -> Measured:
    """The steps, then (unless ``baseline_seconds`` is 0) the baseline, on the same path."""
    load_before = machine_load()["load_avg"]
    started = time.time()
    snapshots, html = run_locust(url, settings, out_dir, stem=stem, echo=echo)
    baseline = (
        run_baseline(url, settings, out_dir, stem=stem, seconds=baseline_seconds, echo=echo)
        if baseline_seconds > 0
        else {}
    )
    return Measured(snapshots, html, baseline, load_before, started)


def profile_cpu(database_url: str, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """The app's and PostgreSQL's CPU per request of the load test's journey mix, measured
    in process on this machine (``tests/load/profile_requests.py``, in a scratch database
    on the same server): a figure that tells machines apart, next to the run's own."""
    from sqlalchemy.engine import make_url

    server = make_url(database_url).set(drivername="postgresql", database="postgres")
    script = ROOT / "tests" / "load" / "profile_requests.py"
    with tempfile.TemporaryDirectory(prefix="tas-cpu-") as tmp:
        out = Path(tmp) / "cpu.json"
        command = [sys.executable, str(script), "--server", server.render_as_string(False)]
        result = subprocess.run(
            [*command, "--users", "10", "--rounds", "3", "--json", str(out)],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if result.returncode != 0 or not out.exists():
            why = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            echo(f"loadtest: the in-process CPU per request could not be measured: {why[0]}")
            return {"error": why[0]}
        figures: dict[str, Any] = json.loads(out.read_text())
    echo(
        f"loadtest: in process, the journey mix costs {figures['app_ms']} ms of the app's CPU "
        f"and {figures['postgresql_ms']} ms of PostgreSQL's per request on this machine"
    )
    return figures


def run_loadtest(
    url: str,
    settings: LoadSettings,
    gates: Gates,
    *,
    database_url: str,
    out_dir: Path = REPORTS_DIR,
    keep_users: bool = False,
    ca_file: str | None = None,
    baseline_seconds: float = 10,
    run: str = "",
    cpu_profile: bool = True,
    echo: Callable[[str], None] = print,
) -> tuple[Report, Path, Path]:
    """The local run (``--url``): make the accounts in ``database_url``, run the steps,
    judge them, write the report (JSON + HTML). ``run``: the run's name (default: a new
    one), for a front that must know it beforehand (a local nginx naming it from a key)."""
    from db import load_accounts
    from db.engine import make_engine

    with resolving(urlsplit(url).hostname or "", settings.connect_to):
        version = str(healthz(url, ca_file)["version"])
    run = run or new_run_name()
    settings = dataclasses.replace(
        settings,
        secret=settings.secret or secrets.token_hex(16),
        prefix=run_prefix(run),
        run=run,
    )
    engine = make_engine(database_url)
    try:
        started = time.monotonic()
        created = load_accounts.seed(
            engine, run=run, count=settings.accounts, secret=settings.secret
        )
        echo(
            f"loadtest: made {created} accounts {settings.prefix}* with history "
            f"in {time.monotonic() - started:.0f}s"
        )
        try:
            measured = measure(
                url,
                settings,
                out_dir,
                stem=f"run-{_stamp()}",
                baseline_seconds=baseline_seconds,
                echo=echo,
            )
        finally:
            if not keep_users:
                removed = load_accounts.remove_run(engine, run)
                echo(f"loadtest: removed {removed} accounts")
    finally:
        engine.dispose()
    report = judge(
        settings, gates, measured, version=version, url=url, target={"kind": "local", "url": url}
    )
    if cpu_profile:
        report.machine["cpu_per_request"] = profile_cpu(database_url, echo)
    json_path, html_path = write_report(report, out_dir)
    return report, json_path, html_path


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime())


def judge(
    settings: LoadSettings,
    gates: Gates,
    measured: Measured,
    *,
    version: str,
    url: str,
    target: dict[str, Any],
) -> Report:
    """The report of a run from what it measured."""
    report = build_report(
        version=version,
        url=url,
        commit=git_commit(),
        steps=list(settings.steps),
        windows=windows(measured.snapshots),
        gates=gates,
        think_time_s=(settings.think_min, settings.think_max),
        machine={**machine_load(), "load_avg_before": measured.load_before},
        run={
            "step_seconds": settings.step_seconds,
            "settle_seconds": settings.settle_seconds,
            "spawn_rate": settings.effective_spawn_rate,
            "processes": settings.processes,
            "accounts": settings.accounts,
            "newcomers": settings.newcomers,
            "newcomers_per_s": round(settings.newcomers * settings.effective_spawn_rate, 1),
            "signups": measured.snapshots[-1].get("signups", 0) if measured.snapshots else 0,
        },
    )
    report.target = target
    report.baseline = measured.baseline
    report.files["locust_html"] = measured.locust_html.name
    return report

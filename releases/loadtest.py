"""Run the step load test (``invoke loadtest``): seed users, run locust, judge each step.

The journeys live in ``tests/load/locustfile.py``; this module gives them their settings
(environment variables, so ``--processes`` workers see them too), the accounts they sign
in to, and the step plan. The run is a locust subprocess; the locustfile's shape writes a
snapshot of locust's cumulative totals at every step mark into a JSON file, and
:mod:`releases.capacity` turns the differences into per-step figures.

Why users are seeded: sign-up and sign-in are rate limited per client address (10 a
minute in the app and in nginx). Creating 2,500 accounts over HTTP from one machine would
take hours and would measure the limiter, not the app. So the accounts (with tasks and
90 days of history, so pages do real work) are inserted with SQL beforehand, each with a
sign-in key derived from a per-run secret, and every virtual user signs in once with its
key. Each virtual user also presents its own client address in ``X-Forwarded-For``: the
benchmark runs gunicorn with ``PROXY_COUNT=1`` and the load generator stands where nginx
stands in production, reporting each person's address as nginx would. Behind the real
nginx that header is overwritten, so the limiter can't be bypassed from outside.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releases.capacity import REPORTS_DIR
from releases.capacity import Gates
from releases.capacity import Report
from releases.capacity import Snapshot
from releases.capacity import build_report
from releases.capacity import write_report

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "tests" / "load" / "locustfile.py"
KEY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
ENV_PREFIX = "TAS_LOAD_"

# What the load tools read from the app's pages and answers (smoke, locustfile, profiler).
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
TASK_IDS = re.compile(r'href="/tasks/(\d+)/initialize"')
STARTABLE = re.compile(r'action="/attempts/(\d+)/start"')
COMPLETABLE = re.compile(r'href="/attempts/(\d+)/complete"')
SESSION_COOKIE = re.compile(r"(?:^|,\s*)session=([^;,]*)")


# --- the accounts ----------------------------------------------------------------------------


def load_username(prefix: str, number: int) -> str:
    return f"{prefix}{number:05d}"


def load_user_key(secret: str, username: str) -> str:
    """The sign-in key of a seeded account: derived, so no key list needs to be shipped.

    Same shape as the app's keys (5 groups of 5 from its alphabet).
    """
    digest = hmac.new(secret.encode(), username.lower().encode(), hashlib.sha256).digest()
    raw = "".join(KEY_ALPHABET[b % len(KEY_ALPHABET)] for b in digest[:25])
    return "-".join(raw[i : i + 5] for i in range(0, 25, 5))


def key_hash(key: str) -> str:
    """What the app stores for a key (service.accounts.services.key_hash, kept in step)."""
    return hashlib.sha256(key.strip().lower().replace(" ", "").encode()).hexdigest()


TASK_NAMES = (
    ("Answer email", "routine", 20),
    ("Write weekly report", "recurring", 45),
    ("Tidy the kitchen", "routine", 15),
    ("Go for a run", "recurring", 30),
    ("File taxes", "project", 120),
    ("Call the dentist", "one-time", 10),
)


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def seed_users(
    database_url: str, *, prefix: str, count: int, secret: str, history: int = 40
) -> int:
    """Insert ``count`` accounts named ``<prefix>00000``…, each with six tasks and
    ``history`` completed attempts spread over the last 90 days. Returns how many were new.
    """
    import psycopg

    rows = []
    for number in range(count):
        name = load_username(prefix, number)
        rows.append((name, key_hash(load_user_key(secret, name))))
    with psycopg.connect(_libpq_url(database_url)) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE load_seed (username text, key_hash text)")
            with cur.copy("COPY load_seed (username, key_hash) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                """
                INSERT INTO users (username, timezone, signin_key_hash)
                SELECT s.username, 'Europe/Berlin', s.key_hash FROM load_seed s
                WHERE NOT EXISTS (
                    SELECT 1 FROM users u WHERE lower(u.username) = lower(s.username))
                RETURNING id
                """
            )
            new_ids = [r[0] for r in cur.fetchall()]
            if not new_ids:
                return 0
            cur.execute(
                """
                INSERT INTO tasks (user_id, name, kind, default_estimate_minutes)
                SELECT u.id, t.name, t.kind, t.estimate
                FROM unnest(%s::bigint[]) AS u(id),
                     jsonb_to_recordset(%s::jsonb) AS t(name text, kind text, estimate float)
                """,
                (
                    new_ids,
                    json.dumps([{"name": n, "kind": k, "estimate": e} for n, k, e in TASK_NAMES]),
                ),
            )
            cur.execute(
                """
                INSERT INTO attempts (
                    user_id, task_id, task_version, status, initialized_at, started_at,
                    completed_at, minutes_spent, expected_aversion, expected_relief,
                    expected_cognitive_load, expected_emotional_load, expected_physical_load,
                    motivation, time_estimate_minutes, actual_relief, actual_cognitive_load,
                    actual_emotional_load, actual_physical_load, completion_percent,
                    stress, net_wellbeing, relief_duration_score, behavioral_score)
                SELECT t.user_id, t.id, 1, 'completed', h.done - interval '2 hours',
                       h.done - make_interval(mins => h.minutes), h.done, h.minutes,
                       h.a, h.r, h.c, h.e, h.p, h.m, t.default_estimate_minutes,
                       h.r2, h.c, h.e, h.p, 100,
                       (h.c + h.e + h.p) / 3.0, h.r2 - (h.c + h.e + h.p) / 3.0,
                       h.r2 * h.minutes / 60.0, 50
                FROM tasks t
                JOIN unnest(%s::bigint[]) AS u(id) ON u.id = t.user_id
                CROSS JOIN LATERAL (
                    SELECT now() - random() * interval '90 days' AS done,
                           (5 + random() * 60)::int AS minutes,
                           (random() * 100)::int AS a, (random() * 100)::int AS r,
                           (random() * 100)::int AS r2, (random() * 100)::int AS c,
                           (random() * 100)::int AS e, (random() * 100)::int AS p,
                           (random() * 100)::int AS m, t.id AS task
                    FROM generate_series(1, %s)
                ) h
                """,
                (new_ids, max(1, math.ceil(history / len(TASK_NAMES)))),
            )
        conn.commit()
    # Statistics for the rows just written, as autovacuum gives them on a server that runs it
    # (it is off on some, this benchmark machine's among them). Without them the run measures
    # the planner's guesses for tables it believes empty, and the dead rows of earlier runs.
    with psycopg.connect(_libpq_url(database_url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) users, tasks, attempts")
    return len(new_ids)


def remove_users(database_url: str, prefix: str) -> int:
    """Delete the seeded accounts (everything they own cascades)."""
    import psycopg

    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    # Requests still in flight when locust stops can write for these accounts; their
    # triggers and the cascading delete may then deadlock. PostgreSQL aborts one side:
    # wait for the stragglers and try again.
    for attempt in range(5):
        try:
            with psycopg.connect(_libpq_url(database_url)) as conn:
                deleted = conn.execute(
                    "DELETE FROM users WHERE username LIKE %s", (pattern,)
                ).rowcount
                conn.commit()
            return deleted
        except psycopg.errors.DeadlockDetected:
            if attempt == 4:
                raise
            time.sleep(2)
    return 0


# --- the plan the locustfile follows ---------------------------------------------------------


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
    pool: int = 0  # seeded accounts (0: the largest step)
    processes: int = 1
    spread_addresses: bool = True
    snapshots_file: str = ""

    def __post_init__(self) -> None:
        if not self.steps or any(s <= 0 for s in self.steps):
            raise ValueError("steps must be positive user counts")
        if list(self.steps) != sorted(self.steps):
            raise ValueError("steps must go up")
        if self.settle_seconds >= self.step_seconds:
            raise ValueError("settle time must be shorter than a step")
        if not 0 <= self.think_min <= self.think_max:
            raise ValueError("think time must satisfy 0 <= min <= max")

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
            elif f.name in ("prefix", "secret", "snapshots_file"):
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


def windows(snapshots: list[dict[str, Any]]) -> list[tuple[Snapshot, Snapshot]]:
    """Pair each step's opening and closing snapshots (as the locustfile wrote them)."""
    opened: dict[int, Snapshot] = {}
    pairs: dict[int, tuple[Snapshot, Snapshot]] = {}
    for row in snapshots:
        snap = Snapshot.from_json(row)
        if row["opens"]:
            opened[int(row["step"])] = snap
        elif int(row["step"]) in opened:
            pairs[int(row["step"])] = (opened[int(row["step"])], snap)
    return [pairs[i] for i in sorted(pairs)]


# --- running it ------------------------------------------------------------------------------


def machine_load() -> dict[str, Any]:
    one, five, fifteen = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_avg": [round(one, 2), round(five, 2), round(fifteen, 2)]}


def healthz_version(url: str, ca_file: str | None = None, timeout: float = 10) -> str:
    import requests

    verify: bool | str = ca_file or True
    response = requests.get(url.rstrip("/") + "/healthz", timeout=timeout, verify=verify)
    response.raise_for_status()
    return str(response.json()["version"])


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
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        url.rstrip("/"),
        "--html",
        str(html),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--stop-timeout",
        "5",
    ]
    if settings.processes > 1:
        command += ["--processes", str(settings.processes)]
    env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)}
    echo(
        f"loadtest: steps {list(settings.steps)} x {settings.step_seconds:g}s "
        f"(first {settings.settle_seconds:g}s of each not measured), "
        f"think {settings.think_min:g}-{settings.think_max:g}s, "
        f"{settings.processes} locust process(es), about {total:.0f}s"
    )
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if not snapshots.exists():
        raise RuntimeError(
            f"locust exited {result.returncode} without step figures:\n{result.stderr[-3000:]}"
        )
    echo(f"loadtest: locust finished in {time.monotonic() - started:.0f}s")
    return json.loads(snapshots.read_text()), html


def run_loadtest(
    url: str,
    settings: LoadSettings,
    gates: Gates,
    *,
    database_url: str,
    out_dir: Path = REPORTS_DIR,
    keep_users: bool = False,
    ca_file: str | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[Report, Path, Path]:
    """Seed the accounts, run the steps, judge them, write the report (JSON + HTML)."""
    version = healthz_version(url, ca_file)
    if not settings.secret:
        settings = dataclasses.replace(settings, secret=secrets.token_hex(16))
    if settings.prefix == LoadSettings.prefix:
        # A fresh prefix per run: accounts of an interrupted run never collide with these.
        settings = dataclasses.replace(settings, prefix=f"load-{secrets.token_hex(3)}-")
    started = time.monotonic()
    created = seed_users(
        database_url, prefix=settings.prefix, count=settings.accounts, secret=settings.secret
    )
    echo(
        f"loadtest: seeded {created} accounts {settings.prefix}* with history "
        f"in {time.monotonic() - started:.0f}s"
    )
    load_before = machine_load()
    try:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        snapshots, locust_html = run_locust(url, settings, out_dir, stem=f"run-{stamp}", echo=echo)
    finally:
        if not keep_users:
            removed = remove_users(database_url, settings.prefix)
            echo(f"loadtest: removed {removed} seeded accounts")
    machine = {**machine_load(), "load_avg_before": load_before["load_avg"]}
    report = build_report(
        version=version,
        url=url,
        commit=git_commit(),
        steps=list(settings.steps),
        windows=windows(snapshots),
        gates=gates,
        think_time_s=(settings.think_min, settings.think_max),
        machine=machine,
        run={
            "step_seconds": settings.step_seconds,
            "settle_seconds": settings.settle_seconds,
            "spawn_rate": settings.effective_spawn_rate,
            "processes": settings.processes,
            "accounts": settings.accounts,
        },
    )
    report.files["locust_html"] = locust_html.name
    json_path, html_path = write_report(report, out_dir)
    return report, json_path, html_path

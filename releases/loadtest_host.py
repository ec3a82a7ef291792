"""``invoke loadtest --host``: the step load test against the deployed site, through its front.

The load goes where people's requests go: the site's domain, nginx, TLS, gunicorn. What it
needs on the server is set up over SSH for the run and taken away after it; no port is
opened for it.

1. **Read the server**: the release ``current`` points at (and that the app answers with
   it), the machine's id, the domain nginx serves. Refused when the app answers with another
   version (a deploy in progress) or the nginx site predates load tests.
2. **A safety timer first** (``tas-load-cleanup-<run>.timer``): whatever happens to this
   process or its connection later, the server removes the run's key and accounts by
   itself when the run's time (plus a margin) is over. The accounts also carry an expiry
   that the nightly clean-up honours.
3. **The run's key into nginx** (``/etc/nginx/tas-load-keys/<run>.conf``, root only): the
   virtual users send it in ``X-TAS-Load-Key``; for them nginx skips its sign-in limit and
   passes on their own ``X-Forwarded-For``, so the app's per-address limit counts each one
   apart. Requests without the key, everyone else's, are limited as always.
4. **The accounts**, made on the server by ``flask load-accounts create`` as the app's user
   with its env file (the run's secret on standard input).
5. **A sampler** (``tas-load-sample-<run>``) writes the server's CPU (steal too), memory,
   load and the app's and PostgreSQL's CPU every 2 s; a few seconds are sampled before the
   load starts.
6. **The steps**: locust from this machine to ``https://<domain>``.
7. **Clean-up**, also after Ctrl-C or a failure: the sampler's figures and nginx's timing
   of the run's requests (its timed log, ``releases.front_log``) are fetched, then
   ``load_cleanup.sh`` removes the key (nginx reloaded), stops the sampler, deletes the
   run's accounts and stops the safety timer. A second Ctrl-C is ignored meanwhile. When
   the server cannot be reached, the timer does it; the message says when.

What each fault does: the local process killed (SIGKILL) or the connection lost during the
run: locust stops or runs on, the timer cleans up at its time (fetching the sampler's
figures and nginx's log only reads: a connection lost there leaves the report without them,
and the clean-up goes on); Ctrl-C: clean-up at once; PostgreSQL restarted: requests fail
for a moment (they count as errors in that step), the accounts are removed afterwards as
usual.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import secrets
import shlex
import signal
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releases import capacity
from releases import front_log
from releases import scripts
from releases.capacity import Gates
from releases.capacity import Report
from releases.loadtest import LoadSettings
from releases.loadtest import healthz
from releases.loadtest import judge
from releases.loadtest import measure
from releases.loadtest import new_run_name
from releases.loadtest import resolving
from releases.loadtest import run_prefix
from releases.loadtest import window_times
from releases.provision import NGINX_WORKER_CONNECTIONS
from releases.provision import nginx_directive
from releases.remote import Remote
from releases.remote import SshTarget
from releases.remote import deferred_interrupts
from releases.remote import open_remote
from releases.steps import NGINX_SITE
from releases.steps import site_domain

LOAD_DIR = f"{capacity.APP_ROOT}/shared/loadtest"
KEYS_DIR = "/etc/nginx/tas-load-keys"
KEY_HEADER = "X-TAS-Load-Key"
FLASK = (
    "systemd-run --wait --pipe --quiet --collect --uid=tas --gid=tas "
    f"-p EnvironmentFile={capacity.ENV_FILE} -p WorkingDirectory={capacity.APP_ROOT}/current "
    f"{capacity.APP_ROOT}/current/venv/bin/python -m flask --app service.wsgi"
)
SAMPLE_SECONDS = 2.0
BEFORE_SECONDS = 6.0
RATE_LIMITS = (
    "nginx's and the app's limits stayed on for everyone; this run's requests carried a "
    f"per-run key ({KEY_HEADER}) that nginx knew only for the run's duration: for them nginx "
    "skipped its sign-in limit and passed each virtual user's own X-Forwarded-For to the app, "
    "whose per-address limit then counted each virtual user apart"
)


@dataclass(frozen=True)
class HostOptions:
    target: SshTarget
    domain: str = ""  # default: the domain the server's nginx site serves
    connect_to: str = ""  # reach the domain at this address instead of its DNS answer
    ca_file: str = ""
    out_dir: Path = capacity.REPORTS_DIR
    margin_seconds: float = 300  # the safety timer fires this long after the run should end
    baseline_seconds: float = 10  # the smallest page at full speed after the steps (0: none)


@dataclass
class Run:
    name: str
    secret: str
    key: str
    domain: str
    release: str
    version: str
    machine_id: str
    seconds: float  # how long until the safety timer fires
    # Set once the server accepted the safety timer; everything the run makes on the
    # server comes after it, so before it nothing needs cleaning up but the timer itself.
    timer_started: bool = False

    @property
    def url(self) -> str:
        return f"https://{self.domain}"

    @property
    def samples(self) -> str:
        return f"{LOAD_DIR}/{self.name}.samples.jsonl"


def run_host_loadtest(
    options: HostOptions,
    settings: LoadSettings,
    gates: Gates,
    *,
    echo: Callable[[str], None] = print,
) -> tuple[Report, Path, Path]:
    """The whole of ``invoke loadtest --host``: set up, run the steps, clean up, report."""
    with open_remote(options.target) as remote:
        run = _read_server(remote, options, settings)
        settings = dataclasses.replace(
            settings,
            secret=run.secret,
            prefix=run_prefix(run.name),
            run=run.name,
            ca_file=options.ca_file,
            connect_to=options.connect_to,
            load_key=run.key,
            spread_addresses=True,
        )
        load_started = time.time()
        try:
            with deferred_interrupts():
                _set_up(remote, run, settings, echo)
            with resolving(run.domain, options.connect_to):
                answered = healthz(run.url, options.ca_file or None)
            if answered.get("version") != run.version:
                raise RuntimeError(
                    f"{run.url} answers {answered.get('version')}, the server runs {run.version}"
                )
            measured = measure(
                run.url,
                settings,
                options.out_dir,
                stem=f"run-{run.name}",
                baseline_seconds=options.baseline_seconds,
                echo=echo,
            )
        finally:
            samples = _fetch_samples(remote, run, echo)
            front = _fetch_front_log(remote, load_started, echo)
            cleaned = _clean_up(remote, run, echo)
        after = capacity.server_state(remote).deployed.release
    report = judge(
        settings,
        gates,
        measured,
        version=run.version,
        url=run.url,
        target={
            "kind": "host",
            "host": options.target.host,
            "machine_id": run.machine_id,
            "domain": run.domain,
            "release": run.release,
            "release_after": after,
            "healthz": answered,
            "path": f"{run.url} -> nginx (TLS) -> gunicorn (unix socket) -> PostgreSQL",
            "rate_limits": RATE_LIMITS,
            "run": run.name,
            "cleaned_up": cleaned,
        },
    )
    report.server = server_figures(samples, measured.snapshots, list(settings.steps))
    add_app_cpu_per_request(report)
    front_log.add_to_steps(
        report.server, front, measured.snapshots, settings.settle_seconds, gates.p95_ms
    )
    report.target["server_before"] = before_figures(samples, measured.started)
    json_path, html_path = capacity.write_report(report, options.out_dir)
    return report, json_path, html_path


def nginx_connections_problem(config: str, settings: LoadSettings) -> str | None:
    """Why the server's nginx (its whole configuration, ``nginx -T``) would not hold the
    run's top step, or None. Each virtual user keeps a connection open, as a browser does;
    past its limit nginx closes idle ones, and the report would measure new handshakes."""
    allowed = nginx_directive(config, "worker_connections") or 512  # 512: nginx's default
    if allowed < NGINX_WORKER_CONNECTIONS:
        return (
            f"the server's nginx allows {allowed} connections per worker, fewer than "
            f"provisioning sets ({NGINX_WORKER_CONNECTIONS}): run `invoke provision` again first"
        )
    users = max(settings.steps)
    if users > allowed:
        return (
            f"the top step's {users} users keep a connection open each, and the server's nginx "
            f"allows {allowed} per worker: raise worker_connections in /etc/nginx/nginx.conf "
            "(provisioning keeps a higher value) or test fewer users"
        )
    return None


# --- the steps on the server ------------------------------------------------------------------


def _read_server(remote: Remote, options: HostOptions, settings: LoadSettings) -> Run:
    state = capacity.server_state(remote)
    if state.healthz_version != state.deployed_version:
        raise RuntimeError(
            f"the app answers {state.healthz_version or 'nothing'} but {capacity.APP_ROOT}/"
            f"current is {state.deployed_version}: finish or roll back the deploy first"
        )
    if KEYS_DIR not in (remote.read(NGINX_SITE) or ""):
        raise RuntimeError(
            f"the server's nginx site predates load tests (no {KEYS_DIR}): "
            "run `invoke provision` again first"
        )
    config = remote.sudo("nginx -T", warn=True)
    if config.exited != 0:
        raise RuntimeError(f"cannot read the server's nginx configuration: {config.stderr.strip()}")
    problem = nginx_connections_problem(config.stdout, settings)
    if problem:
        raise RuntimeError(problem)
    # Time to make the accounts (about 1,000 a second here, allow a tenth of that), the
    # steps, and the margin: then the safety timer fires.
    seconds = (
        30
        + settings.accounts / 100
        + len(settings.steps) * settings.step_seconds
        + options.baseline_seconds
        + options.margin_seconds
    )
    return Run(
        name=new_run_name(),
        secret=secrets.token_hex(16),
        key=secrets.token_urlsafe(32),
        domain=options.domain or site_domain(remote),
        release=state.deployed.release,
        version=state.deployed_version,
        machine_id=state.machine_id,
        seconds=math.ceil(seconds),
    )


def _set_up(remote: Remote, run: Run, settings: LoadSettings, echo: Callable[[str], None]) -> None:
    name = shlex.quote(run.name)
    remote.ensure_directory(LOAD_DIR)
    remote.ensure_file(f"{LOAD_DIR}/load_cleanup.sh", scripts.text("load_cleanup.sh"), mode="755")
    remote.ensure_file(f"{LOAD_DIR}/load_sampler.py", scripts.text("load_sampler.py"))
    fires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=run.seconds)
    remote.sudo(
        f"systemd-run --unit=tas-load-cleanup-{name} --on-active={int(run.seconds)}s "
        f"--timer-property=AccuracySec=1s --description='tas load test {name}: clean-up' "
        f"/bin/sh {LOAD_DIR}/load_cleanup.sh {name}"
    )
    run.timer_started = True
    echo(
        f"loadtest: run {run.name} on {run.release}; if this machine goes away, the server "
        f"cleans up by itself at {fires:%H:%M:%S} UTC (tas-load-cleanup-{run.name}.timer)"
    )
    key_file = f"{KEYS_DIR}/{run.name}.conf"
    remote.ensure_directory(KEYS_DIR, mode="700")
    remote.ensure_file(key_file, f'"{run.key}" {name};\n', mode="600")
    remote.sudo(f"if nginx -t -q; then systemctl reload nginx; else rm -f {key_file}; exit 1; fi")
    echo(f"loadtest: nginx lets this run's requests through its sign-in limit ({KEY_HEADER})")
    started = time.monotonic()
    made = remote.sudo(
        f"{FLASK} load-accounts create --run {name} --count {settings.accounts} "
        f"--ttl {int(run.seconds) + 600}",
        stdin=run.secret + "\n",
    )
    created = json.loads(made.stdout.strip().splitlines()[-1])["created"]
    echo(
        f"loadtest: made {created} accounts load-{run.name}-* with history on the server "
        f"in {time.monotonic() - started:.0f}s"
    )
    remote.sudo(
        f"systemd-run --unit=tas-load-sample-{name} -p RuntimeMaxSec={int(run.seconds)} "
        f"--description='tas load test {name}: sampler' "
        f"python3 {LOAD_DIR}/load_sampler.py {shlex.quote(run.samples)} {SAMPLE_SECONDS:g}"
    )
    time.sleep(BEFORE_SECONDS)  # the server at rest, before the load: the report's "before"


def _fetch_samples(remote: Remote, run: Run, echo: Callable[[str], None]) -> list[dict[str, Any]]:
    try:
        text = remote.sudo(f"cat {shlex.quote(run.samples)} 2>/dev/null || true").stdout
    except Exception as exc:  # noqa: BLE001 - the connection may be what failed
        echo(f"loadtest: could not read the server's figures: {exc}")
        return []
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # the line being written when the sampler stopped
    return rows


def _fetch_front_log(remote: Remote, since: float, echo: Callable[[str], None]) -> list[str]:
    """The lines of nginx's timed log (``front_log.FRONT_LOG``) written since the run began
    (by the server's clock, which the snapshots' must match closely: NTP keeps both within
    milliseconds). None from a site provisioned before the log existed."""
    try:
        text = remote.sudo(
            f"awk -v since={since:.3f} '$1 >= since' {front_log.FRONT_LOG} 2>/dev/null || true"
        ).stdout
    except Exception as exc:  # noqa: BLE001 - the connection may be what failed
        echo(f"loadtest: could not read nginx's timing: {exc}")
        return []
    return text.splitlines()


def _clean_up(remote: Remote, run: Run, echo: Callable[[str], None]) -> bool:
    """Key out of nginx, sampler stopped, accounts deleted, safety timer stopped.

    Ctrl-C is ignored meanwhile: half a clean-up helps nobody (the timer would finish it,
    but only later)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        done = remote.sudo(
            f"sh {LOAD_DIR}/load_cleanup.sh {shlex.quote(run.name)}; status=$?; "
            f"rm -f {shlex.quote(run.samples)}; exit $status",
            warn=True,
        )
        if done.exited == 0:
            echo(f"loadtest: cleaned up on the server (key, sampler, accounts of {run.name})")
            return True
        echo(f"loadtest: clean-up on the server failed ({done.stderr.strip()}); {_later(run)}")
    except Exception as exc:  # noqa: BLE001 - the connection may be what failed
        echo(f"loadtest: could not clean up over SSH ({exc}); {_later(run)}")
    finally:
        signal.signal(signal.SIGINT, previous)
    return False


def _later(run: Run) -> str:
    """What becomes of the run's leftovers when this machine could not clean up."""
    if run.timer_started:
        return (
            f"the server's timer tas-load-cleanup-{run.name} removes the key and the accounts "
            "when it fires"
        )
    return (
        f"the set-up stopped before the server confirmed the safety timer, so nothing of the "
        f"run should be there (the key and accounts come after it); check with `systemctl "
        f"list-timers 'tas-load-cleanup-*'` on the server, and if tas-load-cleanup-{run.name} "
        f"is listed, `sudo sh {LOAD_DIR}/load_cleanup.sh {run.name}` removes what it guards"
    )


# --- the server's figures per step -------------------------------------------------------------


def _pairs(samples: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (s for s in samples if "time" in s)


def _around(
    samples: list[dict[str, Any]], start: float, end: float
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]] | None:
    """The samples bracketing [start, end] (the last at or before start, the first at or
    after end) and those between; None when the window is not covered."""
    rows = sorted(_pairs(samples), key=lambda s: s["time"])
    before = [s for s in rows if s["time"] <= start]
    after = [s for s in rows if s["time"] >= end]
    if not before or not after:
        return None
    first, last = before[-1], after[0]
    inside = [s for s in rows if first["time"] <= s["time"] <= last["time"]]
    return first, last, inside


def _figures(
    first: Mapping[str, Any], last: Mapping[str, Any], inside: list[dict[str, Any]]
) -> dict[str, Any]:
    seconds = last["time"] - first["time"]
    jiffies = {k: last["cpu"][k] - first["cpu"].get(k, 0) for k in last["cpu"]}
    total = sum(jiffies.values()) or 1
    idle = jiffies.get("idle", 0) + jiffies.get("iowait", 0)

    def unit_cpu(name: str) -> float | None:
        a = first["units"].get(name, {}).get("cpu_usec")
        end = last
        # A benchmark's load generator ends with its last step, often before the sample
        # that closes that step's window: the sample before, inside the window, stands in.
        if name not in last["units"] and len(inside) > 2 and name in inside[-2]["units"]:
            end = inside[-2]
        b = end["units"].get(name, {}).get("cpu_usec")
        span = end["time"] - first["time"]
        # Nothing of it ran, or a process ended and took its CPU time with it: no figure.
        if a is None or b is None or span <= 0 or not b or b < a:
            return None
        return round(100 * (b - a) / (span * 1e6), 1)

    used = [s["memory"]["MemTotal"] - s["memory"]["MemAvailable"] for s in inside]
    app_mem = [s["units"].get("app", {}).get("memory_bytes", 0) for s in inside]
    return {
        "seconds": round(seconds, 1),
        "cpu_busy": round(100 * (total - idle) / total, 1),
        "cpu_steal": round(100 * jiffies.get("steal", 0) / total, 2),
        "app_cpu": unit_cpu("app"),
        "db_cpu": unit_cpu("postgresql"),
        "nginx_cpu": unit_cpu("nginx"),
        "generator_cpu": unit_cpu("generator"),
        "mem_used_mib": round(max(used) / 2**20) if used else None,
        "app_mem_mib": round(max(app_mem) / 2**20) if app_mem else None,
        "load1_max": round(max(s["load1"] for s in inside), 2) if inside else None,
    }


def server_figures(
    samples: list[dict[str, Any]], snapshots: list[dict[str, Any]], steps: list[int]
) -> list[dict[str, Any]]:
    """Per step (its measured window, as locust's snapshots mark it): the server's CPU
    (busy and steal, % of the whole machine), the app's, PostgreSQL's, nginx's and a load
    generator's on the same machine (% of one core), memory in use and the highest load
    average."""
    out = []
    for step, (opened, closed) in window_times(snapshots).items():
        found = _around(samples, opened, closed)
        figures: dict[str, Any] = {"users": steps[step] if step < len(steps) else None}
        if found is not None:
            figures.update(_figures(*found))
        out.append(figures)
    return out


def app_cpu_per_request(step: Mapping[str, Any], requests: int) -> float | None:
    """The app's CPU time per request in a step (ms): comparable across machines together
    with the machine's own speed, unlike users or req/s alone."""
    if step.get("app_cpu") is None or not step.get("seconds") or not requests:
        return None
    return round(step["app_cpu"] / 100 * step["seconds"] * 1000 / requests, 2)


def add_app_cpu_per_request(report: capacity.Report) -> None:
    """Each of the report's server steps gets the app's CPU per request of its step."""
    for step, verdict in zip(report.server, report.steps, strict=False):
        step["app_cpu_ms_per_request"] = app_cpu_per_request(step, verdict.figures.requests)


def before_figures(samples: list[dict[str, Any]], until: float) -> dict[str, Any] | None:
    """The server at rest: the samples taken before the load started at ``until``."""
    quiet = sorted((s for s in _pairs(samples) if s["time"] <= until), key=lambda s: s["time"])
    if len(quiet) < 2:
        return None
    return _figures(quiet[0], quiet[-1], quiet)

"""How many users a release can carry, and the gate that keeps ``MAX_USERS`` below it.

Three parts, read top to bottom:

1. **Per-step figures** from cumulative locust snapshots. Locust's end-of-run numbers are
   cumulative over the whole run, so a step's figures are the *difference* between the
   snapshot taken when the step began and the one taken when it ended (request and
   failure counts, and locust's response-time histogram, subtracted bucket by bucket).
2. **Gates and the capacity report**: each step passes when its p95 and error rate are
   within the limits; the capacity is the highest step that passed with every step below
   it passing too, and the recommended cap keeps 25 % headroom under it.
3. **The cap gate** (:func:`decide_cap`, pure) and the server side of ``invoke set-cap``
   (:func:`apply_cap`, which needs only a :class:`releases.remote.Remote`).

Nothing here imports the web service: the reports are JSON files, the server is reached
over SSH.
"""

from __future__ import annotations

import datetime as dt
import getpass
import html
import json
import math
import re
import shlex
import socket
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from releases import lock as deploy_lock

if TYPE_CHECKING:
    from releases.remote import Remote

REPORT_SCHEMA = 1
HEADROOM = 0.75
REPORTS_DIR = Path(__file__).resolve().parent / "capacity"
APP_ROOT = "/srv/tas"
ENV_FILE = f"{APP_ROOT}/shared/tas.env"
CAPACITY_LOG = f"{APP_ROOT}/shared/capacity.log"
APP_SOCKET = "/run/tas.sock"
# A release directory is "<version>-<UTC timestamp>" (releases/deploy.py).
_RELEASE_STAMP = re.compile(r"-\d{8}T\d{6}Z$")


# --- 1. per-step figures ----------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Locust's cumulative totals at one moment (one row of the run's stats history).

    ``response_times`` is locust's histogram: rounded milliseconds → number of requests.
    """

    time: float
    users: int
    requests: int
    failures: int
    response_times: Mapping[int, int]

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Snapshot:
        return cls(
            time=float(row["time"]),
            users=int(row["users"]),
            requests=int(row["requests"]),
            failures=int(row["failures"]),
            response_times={int(k): int(v) for k, v in row["response_times"].items()},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "users": self.users,
            "requests": self.requests,
            "failures": self.failures,
            "response_times": {str(k): v for k, v in sorted(self.response_times.items())},
        }


@dataclass(frozen=True)
class StepFigures:
    users: int  # the step's target
    users_reached: int  # what the load generator actually ran at the end of the step
    seconds: float
    requests: int
    failures: int
    rps: float
    error_rate: float
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None


def histogram_difference(later: Mapping[int, int], earlier: Mapping[int, int]) -> dict[int, int]:
    """The requests recorded between two cumulative histograms."""
    diff = {ms: later.get(ms, 0) - earlier.get(ms, 0) for ms in later}
    if any(count < 0 for count in diff.values()) or any(ms not in later for ms in earlier):
        raise ValueError("snapshots are not cumulative (were stats reset mid-run?)")
    return {ms: count for ms, count in diff.items() if count}


def percentile(histogram: Mapping[int, int], fraction: float) -> int | None:
    """Nearest-rank percentile of a histogram (None when it is empty)."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for ms in sorted(histogram):
        seen += histogram[ms]
        if seen >= rank:
            return ms
    raise AssertionError("unreachable: rank <= total")


def step_figures(users: int, start: Snapshot, end: Snapshot) -> StepFigures:
    """What happened between two snapshots: one step of the load shape."""
    seconds = end.time - start.time
    if seconds <= 0:
        raise ValueError("a step must end after it starts")
    requests = end.requests - start.requests
    failures = end.failures - start.failures
    if requests < 0 or failures < 0:
        raise ValueError("snapshots are not cumulative (were stats reset mid-run?)")
    times = histogram_difference(end.response_times, start.response_times)
    return StepFigures(
        users=users,
        users_reached=end.users,
        seconds=round(seconds, 1),
        requests=requests,
        failures=failures,
        rps=round(requests / seconds, 1),
        error_rate=failures / requests if requests else 0.0,
        p50_ms=percentile(times, 0.50),
        p95_ms=percentile(times, 0.95),
        p99_ms=percentile(times, 0.99),
    )


def figures_per_step(
    steps: list[int], windows: list[tuple[Snapshot, Snapshot]]
) -> list[StepFigures]:
    """Figures for each step from its measuring window: the snapshots taken when the step's
    measurement opened (after its users arrived) and when the step ended.

    A run stopped early has fewer windows than steps: only those steps get figures.
    """
    return [step_figures(users, *window) for users, window in zip(steps, windows, strict=False)]


# --- 2. gates and the report ------------------------------------------------------------------


@dataclass(frozen=True)
class Gates:
    p95_ms: float = 300
    max_error_rate: float = 0.001


@dataclass(frozen=True)
class StepVerdict:
    figures: StepFigures
    passed: bool
    reasons: tuple[str, ...]


def judge_step(figures: StepFigures, gates: Gates) -> StepVerdict:
    reasons = []
    if figures.requests == 0:
        reasons.append("no requests were measured")
    if figures.users_reached < figures.users:
        reasons.append(
            f"the load generator ran only {figures.users_reached} of {figures.users} users"
        )
    if figures.p95_ms is not None and figures.p95_ms > gates.p95_ms:
        reasons.append(f"p95 {figures.p95_ms} ms > {gates.p95_ms:g} ms")
    if figures.error_rate > gates.max_error_rate:
        reasons.append(
            f"error rate {figures.error_rate:.3%} > {gates.max_error_rate:.3%} "
            f"({figures.failures} of {figures.requests})"
        )
    return StepVerdict(figures, not reasons, tuple(reasons))


def highest_passing(verdicts: list[StepVerdict]) -> int | None:
    """Users at the highest step that passed with every lower step passing too.

    A step that passes above a failed one is noise, not capacity.
    """
    best = None
    for verdict in sorted(verdicts, key=lambda v: v.figures.users):
        if not verdict.passed:
            break
        best = verdict.figures.users
    return best


def recommended_cap(capacity: int | None, headroom: float = HEADROOM) -> int:
    """The user cap to set for a measured capacity: ``headroom`` of it, rounded down."""
    if capacity is None or capacity <= 0:
        return 0
    return int(math.floor(capacity * headroom + 1e-9))


@dataclass
class Report:
    version: str
    url: str
    commit: str
    date: str
    gates: Gates
    steps: list[StepVerdict]
    think_time_s: tuple[float, float] = (5.0, 15.0)
    headroom: float = HEADROOM
    machine: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    # What was measured: {"kind": "local", "url"} or, for `invoke loadtest --host`,
    # {"kind": "host", "host", "machine_id", "domain", "release", "path", "rate_limits", ...}.
    target: dict[str, Any] = field(default_factory=dict)
    # Per step, what the server spent meanwhile (read over SSH; host runs only).
    server: list[dict[str, Any]] = field(default_factory=list)
    # The smallest page's req/s through the same path, same run and machine (see
    # tests/load/baseline_locustfile.py): what the figures above are judged against.
    baseline: dict[str, Any] = field(default_factory=dict)

    @property
    def capacity(self) -> int | None:
        return highest_passing(self.steps)

    @property
    def recommended_cap(self) -> int:
        return recommended_cap(self.capacity, self.headroom)

    @property
    def passed(self) -> bool:
        return self.capacity is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "version": self.version,
            "commit": self.commit,
            "date": self.date,
            "url": self.url,
            "gates": asdict(self.gates),
            "think_time_s": list(self.think_time_s),
            "headroom": self.headroom,
            "steps": [
                {**asdict(v.figures), "passed": v.passed, "reasons": list(v.reasons)}
                for v in self.steps
            ],
            "passed": self.passed,
            "highest_passing_users": self.capacity,
            "recommended_cap": self.recommended_cap,
            "machine": self.machine,
            "run": self.run,
            "files": self.files,
            "target": self.target,
            "server": self.server,
            "baseline": self.baseline,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        if data.get("schema") != REPORT_SCHEMA:
            raise ValueError(f"unknown capacity report schema {data.get('schema')!r}")
        figure_names = set(StepFigures.__dataclass_fields__)
        steps = [
            StepVerdict(
                StepFigures(**{k: v for k, v in step.items() if k in figure_names}),
                bool(step["passed"]),
                tuple(step.get("reasons", ())),
            )
            for step in data["steps"]
        ]
        think = data.get("think_time_s", (5.0, 15.0))
        return cls(
            version=data["version"],
            url=data["url"],
            commit=data.get("commit", ""),
            date=data["date"],
            gates=Gates(**data["gates"]),
            steps=steps,
            think_time_s=(float(think[0]), float(think[1])),
            headroom=float(data.get("headroom", HEADROOM)),
            machine=dict(data.get("machine", {})),
            run=dict(data.get("run", {})),
            files=dict(data.get("files", {})),
            target=dict(data.get("target") or {"kind": "local", "url": data["url"]}),
            server=list(data.get("server", [])),
            baseline=dict(data.get("baseline", {})),
        )


def build_report(
    *,
    version: str,
    url: str,
    commit: str,
    steps: list[int],
    windows: list[tuple[Snapshot, Snapshot]],
    gates: Gates,
    think_time_s: tuple[float, float] = (5.0, 15.0),
    machine: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> Report:
    verdicts = [judge_step(f, gates) for f in figures_per_step(steps, windows)]
    # A step the run never reached counts as failed: it measured nothing.
    for users in steps[len(verdicts) :]:
        empty = StepFigures(users, 0, 0.0, 0, 0, 0.0, 0.0, None, None, None)
        verdicts.append(StepVerdict(empty, False, ("the run stopped before this step",)))
    stamp = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    return Report(
        version=version,
        url=url,
        commit=commit,
        date=stamp.isoformat(),
        gates=gates,
        steps=verdicts,
        think_time_s=think_time_s,
        machine=machine or {},
        run=run or {},
    )


def report_stem(report: Report) -> str:
    stamp = re.sub(r"[^0-9T]", "", report.date.split("+")[0])
    safe_version = re.sub(r"[^A-Za-z0-9.+_-]", "_", report.version)
    return f"capacity-{safe_version}-{stamp}"


def write_report(report: Report, directory: Path = REPORTS_DIR) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.html`` into ``directory``; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = report_stem(report)
    json_path = directory / f"{stem}.json"
    html_path = directory / f"{stem}.html"
    report.files.setdefault("html", html_path.name)
    json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    html_path.write_text(render_html(report))
    return json_path, html_path


def load_reports(directory: Path = REPORTS_DIR) -> list[Report]:
    """Every readable capacity report in ``directory``, oldest first (unreadable ones skipped)."""
    reports = []
    for path in sorted(directory.glob("capacity-*.json")):
        try:
            reports.append(Report.from_json(json.loads(path.read_text())))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(reports, key=lambda r: r.date)


def _ms(value: int | None) -> str:
    return "–" if value is None else str(value)


def _pct(value: float | None) -> str:
    return f"{'–':>6}" if value is None else f"{value:>5.0f}%"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def table(report: Report) -> list[str]:
    """The per-step table printed at the end of a run."""
    lines = [
        f"{'users':>6} {'req/s':>7} {'requests':>9} {'errors':>7} {'p50':>6} {'p95':>6} "
        f"{'p99':>6}  verdict"
    ]
    for v in report.steps:
        f = v.figures
        verdict = "pass" if v.passed else "FAIL: " + "; ".join(v.reasons)
        lines.append(
            f"{f.users:>6} {f.rps:>7.1f} {f.requests:>9} {f.error_rate:>7.2%} "
            f"{_ms(f.p50_ms):>6} {_ms(f.p95_ms):>6} {_ms(f.p99_ms):>6}  {verdict}"
        )
    if report.server:
        lines.append(
            f"{'server':>6} {'cpu':>6} {'steal':>6} {'app':>6} {'db':>6} {'nginx':>6} "
            f"{'gen':>6} {'mem MiB':>8} {'load':>5} {'app ms/req':>10}"
        )
        for step in report.server:
            lines.append(
                f"{step['users']:>6} {_pct(step.get('cpu_busy'))} {_pct(step.get('cpu_steal'))} "
                f"{_pct(step.get('app_cpu'))} {_pct(step.get('db_cpu'))} "
                f"{_pct(step.get('nginx_cpu'))} {_pct(step.get('generator_cpu'))} "
                f"{_num(step.get('mem_used_mib')):>8} {_num(step.get('load1_max')):>5} "
                f"{_num(step.get('app_cpu_ms_per_request')):>10}"
            )
    if any(step.get("front_p95_ms") is not None for step in report.server):
        # nginx's own timing (releases.front_log): the client's figures less its own waiting.
        lines.append(
            f"{'front':>6} {'p50':>6} {'p95':>6} {'p99':>6} {'app p95':>8} {'worst 5s':>9} "
            f"{'back under p95 gate after':>26}"
        )
        for step in report.server:
            recovered = step.get("recovered_after_s")
            lines.append(
                f"{step['users']:>6} {_ms(step.get('front_p50_ms')):>6} "
                f"{_ms(step.get('front_p95_ms')):>6} {_ms(step.get('front_p99_ms')):>6} "
                f"{_ms(step.get('app_p95_ms')):>8} {_ms(step.get('worst_5s_p95_ms')):>9} "
                f"{'never' if recovered is None else f'{recovered:g} s':>26}"
            )
    if report.baseline:
        top = max((v.figures.rps for v in report.steps if v.passed), default=0.0)
        share = f"; the top passing step's {top:.1f} req/s is {top / report.baseline['rps']:.1%}"
        lines.append(
            f"baseline: {report.baseline['rps']:g} req/s on {report.baseline['path']} "
            f"({report.baseline['users']} users, no think time, "
            f"{report.baseline['failures']} failed)"
            + (share if top and report.baseline.get("rps") else "")
        )
    if report.passed:
        lines.append(
            f"capacity: {report.capacity} users pass (p95 <= {report.gates.p95_ms:g} ms, "
            f"errors <= {report.gates.max_error_rate:.2%}); recommended cap "
            f"{report.recommended_cap} ({report.headroom:.0%})"
        )
    else:
        lines.append("capacity: no step passed; the cap cannot be raised on this report")
    return lines


def render_html(report: Report) -> str:
    """A small self-contained page: the run's settings and the per-step table."""
    e = html.escape
    rows = []
    for v in report.steps:
        f = v.figures
        verdict = "pass" if v.passed else "fail: " + "; ".join(v.reasons)
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{e(str(cell))}</td>"
                for cell in (
                    f.users,
                    f.users_reached,
                    f"{f.rps:.1f}",
                    f.requests,
                    f.failures,
                    f"{f.error_rate:.3%}",
                    _ms(f.p50_ms),
                    _ms(f.p95_ms),
                    _ms(f.p99_ms),
                    verdict,
                )
            )
            + "</tr>"
        )
    summary = (
        f"Capacity {report.capacity} users; recommended cap {report.recommended_cap}"
        if report.passed
        else "No step passed: the cap cannot be raised on this report."
    )
    locust = report.files.get("locust_html")
    locust_link = (
        f'<p><a href="{e(locust)}">Locust\'s own report</a> (cumulative).</p>' if locust else ""
    )
    headers = "".join(
        f"<th>{h}</th>"
        for h in (
            "users",
            "reached",
            "req/s",
            "requests",
            "failures",
            "error rate",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "verdict",
        )
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Capacity {e(report.version)} — {e(report.date)}</title>
<style>body{{font-family:sans-serif;margin:2rem}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:.3rem .6rem;text-align:right}}</style></head>
<body><h1>Capacity report: {e(report.version)}</h1>
<p>{e(report.url)} · {e(report.date)} · commit {e(report.commit or "unknown")}</p>
<p>Gates per step: p95 ≤ {report.gates.p95_ms:g} ms, error rate ≤ {report.gates.max_error_rate:.2%}.
Think time {report.think_time_s[0]:g}–{report.think_time_s[1]:g} s.</p>
<p><strong>{e(summary)}</strong></p>
<table><thead><tr>{headers}</tr></thead><tbody>{"".join(rows)}</tbody></table>
<p>Measured: {e(json.dumps(report.target))}</p>
<p>Baseline (the smallest page, no think time): {e(json.dumps(report.baseline))}</p>
<p>Server per step (CPU: % of the whole machine; app and db: % of one core):
{e(json.dumps(report.server))}</p>
<p>Run: {e(json.dumps(report.run))}</p>
<p>Machine: {e(json.dumps(report.machine))}</p>
{locust_link}
</body></html>
"""


# --- 3. the cap gate --------------------------------------------------------------------------


@dataclass(frozen=True)
class CapDecision:
    allowed: bool
    forced: bool
    message: str
    report_date: str | None = None
    report: Report | None = None


@dataclass(frozen=True)
class Deployed:
    """What a server runs: the release directory's name, its version, and the machine."""

    version: str
    release: str
    machine_id: str


def measured(report: Report, deployed: Deployed) -> bool:
    """Whether ``report`` is a load test of this server's deployed release, through its
    front (``invoke loadtest --host``), with that release answering the whole run."""
    target = report.target
    return (
        target.get("kind") == "host"
        and target.get("machine_id") == deployed.machine_id
        and target.get("release") == deployed.release
        and target.get("release_after") == deployed.release
    )


def _newest(reports: Iterable[Report]) -> Report:
    return max(reports, key=lambda r: r.date)


def _why_no_report(reports: list[Report], deployed: Deployed) -> str:
    here = [
        r
        for r in reports
        if r.target.get("kind") == "host" and r.target.get("machine_id") == deployed.machine_id
    ]
    changed = [r for r in here if r.target.get("release") == deployed.release]
    if changed:
        newest = _newest(changed)
        return (
            f"the release changed during the load test of {newest.date} "
            f"({newest.target.get('release')} -> {newest.target.get('release_after')}): "
            "run `invoke loadtest --host` again"
        )
    if here:
        newest = _newest(here)
        return (
            f"this server's newest capacity report ({newest.date}) measured release "
            f"{newest.target.get('release')}, but it runs {deployed.release}: "
            "run `invoke loadtest --host` against it again"
        )
    local = [r for r in reports if r.target.get("kind", "local") == "local"]
    same_version = [r for r in local if r.version == deployed.version]
    if same_version:
        newest = _newest(same_version)
        return (
            f"the only reports of {deployed.version} are of local runs ({newest.url}, "
            f"{newest.date}); a server's cap is raised only by `invoke loadtest --host` "
            "against that server's deployed release"
        )
    return (
        f"no capacity report for the deployed release {deployed.release} of this server: "
        "run `invoke loadtest --host` first"
    )


def decide_cap(
    requested: int,
    deployed: Deployed,
    current_cap: int | None,
    reports: Iterable[Report],
    *,
    force: bool = False,
    reason: str = "",
) -> CapDecision:
    """May ``MAX_USERS`` become ``requested`` on a server running ``deployed``?

    Lowering (or keeping) the cap is always allowed. Raising it needs a passing capacity
    report of a load test against this very server and release, through its domain, nginx
    and TLS (``invoke loadtest --host``); a local run, another server or another release
    does not count, and the message says which it was. The newest such report decides, so
    a later failing run is never hidden by an older passing one. ``force`` overrides the
    report, and only with a reason.
    """
    if requested < 0:
        return CapDecision(False, False, "the cap must be 0 or more")
    if force and not reason.strip():
        return CapDecision(False, False, "--force needs --reason: say why the gate is overridden")
    if current_cap is not None and requested <= current_cap:
        message = f"lowering or keeping the cap ({current_cap} -> {requested})"
        return CapDecision(True, False, message)
    reports = list(reports)
    mine = [r for r in reports if measured(r, deployed)]
    if not mine:
        return _refuse_or_force(_why_no_report(reports, deployed), force, reason, None)
    newest = _newest(mine)
    if not newest.passed:
        verdict = f"the newest capacity report for {deployed.release} ({newest.date}) failed"
        return _refuse_or_force(verdict, force, reason, newest.date, newest)
    if requested > newest.recommended_cap:
        verdict = (
            f"{requested} users is above the recommended cap {newest.recommended_cap} "
            f"({newest.headroom:.0%} of the {newest.capacity} users that passed on {newest.date})"
        )
        return _refuse_or_force(verdict, force, reason, newest.date, newest)
    return CapDecision(
        True,
        False,
        f"{requested} users is within the recommended cap {newest.recommended_cap} "
        f"(report of {newest.date})",
        newest.date,
        newest,
    )


def _refuse_or_force(
    verdict: str, force: bool, reason: str, date: str | None, report: Report | None = None
) -> CapDecision:
    if force:
        message = f"forced past the gate ({verdict}): {reason.strip()}"
        return CapDecision(True, True, message, date, report)
    return CapDecision(False, False, f"refused: {verdict}")


# --- the server side of set-cap ---------------------------------------------------------------


def version_from_release(path: str) -> str:
    """``/srv/tas/releases/0.2.0-20250101T120000Z`` → ``0.2.0``."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise ValueError(f"not a release path: {path!r}")
    return _RELEASE_STAMP.sub("", name)


def with_max_users(env_text: str, users: int) -> str:
    """The env file with ``MAX_USERS`` set, every other line kept as it was."""
    lines = env_text.splitlines()
    pattern = re.compile(r"^\s*MAX_USERS\s*=")
    replaced = False
    out = []
    for line in lines:
        if pattern.match(line):
            if not replaced:
                out.append(f"MAX_USERS={users}")
                replaced = True
            continue  # a duplicate would be confusing: the last one wins in systemd
        out.append(line)
    if not replaced:
        out.append(f"MAX_USERS={users}")
    return "\n".join(out) + "\n"


def max_users_in(env_text: str) -> int | None:
    value = None
    for line in env_text.splitlines():
        key, sep, raw = line.strip().partition("=")
        if sep and key.strip() == "MAX_USERS":
            try:
                value = int(raw.strip())
            except ValueError:
                value = None
    return value


@dataclass(frozen=True)
class ServerState:
    deployed_version: str
    release_path: str
    healthz_version: str | None
    current_cap: int | None
    machine_id: str = ""

    @property
    def deployed(self) -> Deployed:
        release = self.release_path.rstrip("/").rsplit("/", 1)[-1]
        return Deployed(self.deployed_version, release, self.machine_id)


def server_state(remote: Remote) -> ServerState:
    """What the server runs (the ``current`` link, confirmed by /healthz) and its cap."""
    link = remote.sudo(f"readlink -f {APP_ROOT}/current", warn=True)
    if link.exited != 0 or not link.stdout.strip():
        raise RuntimeError(f"{APP_ROOT}/current is missing: nothing is deployed")
    release = link.stdout.strip()
    healthz = remote.sudo(
        f"curl -fsS --max-time 10 --unix-socket {APP_SOCKET} http://localhost/healthz", warn=True
    )
    running = None
    if healthz.exited == 0:
        try:
            running = str(json.loads(healthz.stdout)["version"])
        except (ValueError, KeyError):
            running = None
    env_text = remote.read(ENV_FILE)
    if env_text is None:
        raise RuntimeError(f"{ENV_FILE} is missing: provision the server first")
    machine_id = (remote.read("/etc/machine-id") or "").strip()
    return ServerState(
        version_from_release(release), release, running, max_users_in(env_text), machine_id
    )


def _report_summary(report: Report | None) -> dict[str, Any] | None:
    """What the deploy log keeps of the report a cap change relied on."""
    if report is None:
        return None
    return {
        "date": report.date,
        "file": report.files.get("json", report_stem(report) + ".json"),
        "release": report.target.get("release"),
        "url": report.url,
        "capacity": report.capacity,
        "recommended_cap": report.recommended_cap,
        "steps": [v.figures.users for v in report.steps],
        "p95_ms": [v.figures.p95_ms for v in report.steps],
    }


class CapRefused(RuntimeError):
    """The gate said no; the message says why and what would make it say yes."""


def set_cap(
    remote: Remote,
    users: int,
    reports: Iterable[Report],
    *,
    force: bool = False,
    reason: str = "",
    who: str = "",
) -> tuple[CapDecision, list[str]]:
    """The whole of ``invoke set-cap`` on one server: read what it runs, decide, apply."""
    state = server_state(remote)
    if state.healthz_version is not None and state.healthz_version != state.deployed_version:
        raise CapRefused(
            f"refused: {APP_ROOT}/current is {state.deployed_version} but the running app "
            f"reports {state.healthz_version}; finish or roll back the deploy first"
        )
    decision = decide_cap(
        users, state.deployed, state.current_cap, reports, force=force, reason=reason
    )
    if not decision.allowed:
        raise CapRefused(decision.message)
    return decision, apply_cap(remote, users, decision, who=who, reason=reason)


def apply_cap(
    remote: Remote,
    users: int,
    decision: CapDecision,
    *,
    who: str = "",
    reason: str = "",
) -> list[str]:
    """Write ``MAX_USERS`` into the env file, restart the app, log the change.

    ``systemctl restart tas.service`` under socket activation keeps new connections queued
    in tas.socket while gunicorn restarts, so no request fails. In a dry run nothing
    changes and the returned lines say what would.
    """
    if not decision.allowed:
        raise RuntimeError(decision.message)
    state = server_state(remote)
    env_text = remote.read(ENV_FILE) or ""
    new_text = with_max_users(env_text, users)
    verb = "would" if remote.dry_run else "did"
    lines = [f"deployed {state.deployed_version}; MAX_USERS {state.current_cap} -> {users}"]
    # Each step below can be cut short (a dropped connection, a killed invoke): the env file
    # is replaced whole, so the server is left either with the old cap or the new one; a
    # following set-cap to the same N finds what the cut one did not finish (the log lines,
    # the restart) and finishes it, instead of saying "nothing to do" while the app still
    # runs the old cap.
    changed = new_text != env_text
    logged = not changed and _last_change_logged(remote, users, state.deployed_version)
    stale = not changed and _app_started_before_env_file(remote)
    if not changed and logged and not stale:
        lines.append("MAX_USERS already has that value: nothing to do")
        return lines
    if not changed:
        missing = " and ".join(
            words
            for words, needed in (("logging it", not logged), ("restarting the app", stale))
            if needed
        )
        lines.append(
            f"MAX_USERS={users} is already in {ENV_FILE}, but an earlier set-cap stopped "
            f"before {missing}: {'would finish' if remote.dry_run else 'finishing'} it"
        )
    entry = {
        "time": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "who": who or f"{getpass.getuser()}@{socket.gethostname()}",
        "version": state.deployed_version,
        "from": state.current_cap,
        "to": users,
        "forced": decision.forced,
        "reason": reason,
        "decision": decision.message,
        "report_date": decision.report_date,
        "report": _report_summary(decision.report),
    }
    if not changed:
        entry["finishes_interrupted"] = True  # "from" is then the cap it left in the env file
    if remote.dry_run:
        lines += [
            f"{verb} write MAX_USERS={users} into {ENV_FILE}" if changed else "",
            f"{verb} restart tas.service (connections queue in tas.socket meanwhile)"
            if changed or stale
            else "",
            f"{verb} append to {CAPACITY_LOG}: {json.dumps(entry)}"
            if changed or not logged
            else "",
        ]
        return [line for line in lines if line]
    if changed:
        remote.ensure_file(ENV_FILE, new_text, mode="600", owner="tas")
        lines.append(f"wrote MAX_USERS={users} into {ENV_FILE}")
    if changed or not logged:
        _log_change(remote, entry, state, decision, users, reason)
        lines.append(f"logged the change in {CAPACITY_LOG} and {deploy_lock.DEPLOY_LOG}")
    if changed or stale:
        lines += _restart_and_check(remote)
    return lines


def _last_change_logged(remote: Remote, users: int, version: str) -> bool:
    """Whether the capacity log's last line is a change to ``users`` on ``version``."""
    text = remote.read(CAPACITY_LOG) or ""
    last = text.strip().splitlines()[-1] if text.strip() else ""
    try:
        entry = json.loads(last) if last else {}
    except ValueError:
        return False
    return bool(entry.get("to") == users and entry.get("version") == version)


def _app_started_before_env_file(remote: Remote) -> bool:
    """Whether the running app was started before the env file was last written (so it
    runs with the cap that was there before). Not running: the socket starts it afresh."""
    started = remote.sudo(
        "systemctl is-active --quiet tas.service && "
        "systemctl show -p ActiveEnterTimestamp --value tas.service",
        warn=True,
    ).stdout.strip()
    if not started:
        return False
    check = remote.sudo(
        f'[ "$(stat -c %Y {ENV_FILE})" -ge "$(date -d {shlex.quote(started)} +%s)" ]', warn=True
    )
    return check.exited == 0


def _log_change(
    remote: Remote,
    entry: dict[str, Any],
    state: ServerState,
    decision: CapDecision,
    users: int,
    reason: str,
) -> None:
    log_line = shlex.quote(json.dumps(entry))
    remote.sudo(f"printf '%s\\n' {log_line} >> {CAPACITY_LOG} && chmod 640 {CAPACITY_LOG}")
    deploy_lock.append_log(
        remote,
        {
            "event": "set-cap",
            "time": entry["time"],
            "who": entry["who"],
            "served_release": state.deployed.release,
            "from": state.current_cap,
            "to": users,
            "forced": decision.forced,
            "reason": reason,
            "report": entry["report"],
        },
    )


def _restart_and_check(remote: Remote) -> list[str]:
    lines = []
    if remote.ok("systemctl is-active --quiet tas.service"):
        remote.sudo("systemctl restart tas.service")
        lines.append("restarted tas.service")
    else:
        lines.append("tas.service is not running: the socket starts it with the new cap")
    healthz = remote.sudo(
        f"curl -fsS --max-time 30 --retry 10 --retry-connrefused --retry-delay 1 "
        f"--unix-socket {APP_SOCKET} http://localhost/healthz",
        warn=True,
    )
    if healthz.exited != 0:
        raise RuntimeError(f"the app did not answer /healthz after the restart: {healthz.stderr}")
    lines.append("healthz answered after the restart")
    return lines

"""nginx's own timing of a load test's requests: where the time goes, and when a step's
arrivals stop hurting.

A load generator on the same machine as the server measures its own waiting for a core as
well as the server's answer. nginx's access log, written in :data:`LOG_FORMAT`, times each
request from its first byte to its last at the front (``$request_time``) and the app's part
of it, gunicorn's queue included (``$upstream_response_time``). Per step of a run
(:func:`step_latency`) that gives the front's and the app's p50/p95/p99 next to the
client's, and how long after the step began its 5-second p95 at the front came back under
the gate and stayed there (``recovered_after_s``): a burst of arrivals recovering within
the settle time, or not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from releases.loadtest import window_times

# Where the site's nginx writes it on a server (releases/templates/nginx-site.conf).
FRONT_LOG = "/var/log/nginx/tas-timed.log"
# Seconds since the epoch when the request ended, its time at nginx, the upstream's time
# ("-" for what nginx answers itself; several values when it tried several), the status.
LOG_FORMAT = "$msec $request_time $upstream_response_time $status"
BUCKET_SECONDS = 5.0


@dataclass(frozen=True)
class Entry:
    ended: float
    front_ms: float
    app_ms: float | None
    status: int


def _seconds(field: str) -> float | None:
    """``$upstream_response_time``: "-", one value, or values separated by ", " / " : "."""
    values = [v for v in field.replace(":", ",").split(",") if v.strip() not in ("", "-")]
    return sum(float(v) for v in values) if values else None


def parse(lines: Iterable[str]) -> list[Entry]:
    """The entries of an access log in :data:`LOG_FORMAT` (other lines are skipped)."""
    entries = []
    for line in lines:
        parts = line.split(" ")
        if len(parts) < 4:
            continue
        try:
            ended, front = float(parts[0]), float(parts[1])
            app = _seconds(" ".join(parts[2:-1]).replace(" ", ""))
            status = int(parts[-1])
        except ValueError:
            continue
        entries.append(Entry(ended, front * 1000, None if app is None else app * 1000, status))
    return entries


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` in 0..1) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


def step_latency(
    entries: Sequence[Entry],
    snapshots: list[dict[str, Any]],
    settle_seconds: float,
    gate_ms: float,
    bucket_seconds: float = BUCKET_SECONDS,
) -> dict[int, dict[str, Any]]:
    """Per step (by index, for the steps whose window the snapshots open and close): the
    front's and the app's percentiles over the measured window, the worst 5-second p95 at
    the front from the step's start to the window's end, and ``recovered_after_s``: the
    seconds from the step's start until the front's 5-second p95 was at or under
    ``gate_ms`` for the rest of the step (None: it never came back under)."""
    out: dict[int, dict[str, Any]] = {}
    for step, (window_from, window_to) in window_times(snapshots).items():
        start = window_from - settle_seconds
        measured = [e for e in entries if window_from <= e.ended < window_to]
        front = [e.front_ms for e in measured]
        app = [e.app_ms for e in measured if e.app_ms is not None]
        buckets: dict[int, list[float]] = {}
        for e in entries:
            if start <= e.ended < window_to:
                buckets.setdefault(int((e.ended - start) // bucket_seconds), []).append(e.front_ms)
        p95s = {i: percentile(v, 0.95) or 0.0 for i, v in sorted(buckets.items())}
        recovered: float | None = 0.0
        for i, p95 in p95s.items():
            if p95 > gate_ms:
                recovered = (i + 1) * bucket_seconds
        if recovered is not None and recovered >= window_to - start:
            recovered = None
        out[step] = {
            "front_requests": len(measured),
            "front_p50_ms": _rounded(percentile(front, 0.50)),
            "front_p95_ms": _rounded(percentile(front, 0.95)),
            "front_p99_ms": _rounded(percentile(front, 0.99)),
            "app_p95_ms": _rounded(percentile(app, 0.95)),
            "worst_5s_p95_ms": _rounded(max(p95s.values(), default=None)),
            "recovered_after_s": recovered,
        }
    return out


def add_to_steps(
    steps: Sequence[dict[str, Any]],
    lines: Iterable[str],
    snapshots: list[dict[str, Any]],
    settle_seconds: float,
    gate_ms: float,
) -> None:
    """Each of a report's per-step server figures (one per measured window, in step order,
    as ``loadtest_host.server_figures`` makes them) gets nginx's timing of its step
    (:func:`step_latency`) from the log's ``lines``."""
    figures = step_latency(parse(lines), snapshots, settle_seconds, gate_ms)
    for step, timing in zip(steps, figures.values(), strict=False):
        step.update(timing)

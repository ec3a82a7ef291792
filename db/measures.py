"""The per-attempt measures of docs/product.md, computed once when an outcome is saved.

Pure functions of one attempt's own values: scores are absolute, never rescaled against
the rest of the data (the old app min-max-normalised some of them, so old scores drifted
as new data arrived).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

MEASURE_COLUMNS = (
    "stress",
    "net_wellbeing",
    "net_wellbeing_normalized",
    "stress_efficiency",
    "relief_surprise",
    "delay_minutes",
    "procrastination_score",
    "proactive_score",
    "time_accuracy",
    "behavioral_score",
    "relief_duration_score",
)


@dataclass(frozen=True)
class AttemptFacts:
    """What the measures are computed from (``None`` = not recorded)."""

    actual_relief: float | None = None
    expected_relief: float | None = None
    actual_cognitive_load: float | None = None
    actual_emotional_load: float | None = None
    actual_physical_load: float | None = None
    completion_percent: float | None = None
    minutes_spent: float | None = None
    time_estimate_minutes: float | None = None
    initialized_at: dt.datetime | None = None
    started_at: dt.datetime | None = None


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def stress(facts: AttemptFacts) -> float | None:
    """Mean of the actual loads that were recorded (all three, normally)."""
    loads = [
        v
        for v in (
            facts.actual_cognitive_load,
            facts.actual_emotional_load,
            facts.actual_physical_load,
        )
        if v is not None
    ]
    return sum(loads) / len(loads) if loads else None


def delay_minutes(facts: AttemptFacts) -> float | None:
    if facts.initialized_at is None or facts.started_at is None:
        return None
    # Real data has starts before initialization (clock edits): negative delays are kept.
    return (facts.started_at - facts.initialized_at).total_seconds() / 60


def procrastination(delay: float | None, estimate: float | None) -> float | None:
    if delay is None:
        return None
    return min(delay / max(estimate or 0, 1), 10)


def proactive(delay: float | None, estimate: float | None) -> float | None:
    if delay is None:
        return None
    return 10 * max(0.0, 1 - delay / max(2 * (estimate or 0), 1))


def behavioral_score(
    completion: float | None,
    estimate: float | None,
    spent: float | None,
    procrastination_score: float | None,
) -> float:
    """clamp(50 + 5·d, 0, 100); a term whose inputs were not recorded contributes 0."""
    completion_term = clamp(5 * (completion - 100) / 100, -5, 5) if completion is not None else 0
    pace_term = (
        clamp(5 * (estimate / max(spent, 0.1) - 1), -5, 5)
        if estimate is not None and spent is not None and estimate > 0
        else 0
    )
    delay_term = (
        clamp(-procrastination_score / 2, -5, 0) if procrastination_score is not None else 0
    )
    d = 0.4 * completion_term + 0.4 * pace_term + 0.2 * delay_term
    return clamp(50 + 5 * d, 0, 100)


def compute_measures(facts: AttemptFacts) -> dict[str, Any]:
    """All measure columns for one attempt, ready to store."""
    relief = facts.actual_relief
    s = stress(facts)
    net = relief - s if relief is not None and s is not None else None
    delay = delay_minutes(facts)
    estimate = facts.time_estimate_minutes
    spent = facts.minutes_spent
    proc = procrastination(delay, estimate)
    return {
        "stress": s,
        "net_wellbeing": net,
        "net_wellbeing_normalized": 50 + net / 2 if net is not None else None,
        "stress_efficiency": relief / s if relief is not None and s else None,
        "relief_surprise": (
            relief - facts.expected_relief
            if relief is not None and facts.expected_relief is not None
            else None
        ),
        "delay_minutes": delay,
        "procrastination_score": proc,
        "proactive_score": proactive(delay, estimate),
        "time_accuracy": spent / estimate if spent and estimate and spent > 0 else None,
        "behavioral_score": behavioral_score(facts.completion_percent, estimate, spent, proc),
        "relief_duration_score": relief * spent
        if relief is not None and spent is not None
        else None,
    }

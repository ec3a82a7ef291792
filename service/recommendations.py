"""Which task to do next: a transparent score over the measures a person cares about.

Score = Σ over the chosen measures of v when higher is better, else max(0, 100 − v).
Tasks with no history count as 50 on every measure (duration: their default estimate).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# measure key → (label, higher is better)
MEASURES: dict[str, tuple[str, bool]] = {
    "relief": ("Relief", True),
    "cognitive_load": ("Mental load", False),
    "emotional_load": ("Emotional load", False),
    "physical_load": ("Physical load", False),
    "stress": ("Stress", False),
    "net_wellbeing": ("Net wellbeing", True),
    "behavioral_score": ("Behavioural score", True),
    "duration": ("Duration (minutes)", False),
    "aversion": ("Aversion", False),
}
DEFAULT_MEASURES = ("relief", "stress")
TOP = 3


@dataclass(frozen=True)
class Filter:
    measures: tuple[str, ...] = DEFAULT_MEASURES
    max_minutes: float | None = None

    @classmethod
    def from_preferences(cls, preferences: Mapping[str, Any]) -> Filter:
        saved = preferences.get("recommendations") or {}
        measures = tuple(m for m in saved.get("measures", DEFAULT_MEASURES) if m in MEASURES)
        max_minutes = saved.get("max_minutes")
        return cls(measures or DEFAULT_MEASURES, max_minutes)

    def as_preferences(self) -> dict[str, Any]:
        return {"measures": list(self.measures), "max_minutes": self.max_minutes}


@dataclass(frozen=True)
class Recommendation:
    task_id: int
    name: str
    score: float
    values: dict[str, float]
    has_history: bool


def task_values(row: Mapping[str, Any]) -> dict[str, float]:
    """The means of one task's completed attempts, with the no-history defaults."""
    values: dict[str, float] = {}
    for key in MEASURES:
        mean = row.get(f"avg_{key}")
        if mean is None:
            mean = row["default_estimate_minutes"] if key == "duration" else 50.0
        values[key] = float(mean)
    return values


def score(values: Mapping[str, float], measures: Iterable[str]) -> float:
    total = 0.0
    for key in measures:
        higher_is_better = MEASURES[key][1]
        total += values[key] if higher_is_better else max(0.0, 100 - values[key])
    return total


def recommend(rows: Iterable[Mapping[str, Any]], chosen: Filter) -> list[Recommendation]:
    ranked = []
    for row in rows:
        values = task_values(row)
        if chosen.max_minutes is not None and values["duration"] > chosen.max_minutes:
            continue
        ranked.append(
            Recommendation(
                task_id=row["id"],
                name=row["name"],
                score=score(values, chosen.measures),
                values=values,
                has_history=bool(row.get("completed_count")),
            )
        )
    ranked.sort(key=lambda r: (-r.score, r.name.lower()))
    return ranked[:TOP]

"""Turns the three queries' rows into what the analytics page shows and charts.

Everything here is plain Python over small aggregated rows (at most a few hundred per
chart) except the correlation pairs, which are one pair per completed attempt.

The page's figures are plain data (days as ISO dates, the charts as SVG geometry from
:mod:`service.analytics.charts`); the page rendered from them is kept whole in
:mod:`service.page_cache`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from service.analytics import charts
from service.analytics import queries
from service.analytics import stats
from service.templating import category_label

WINDOWS = (30, 60, 90)
RANKING_SIZE = 5
SCATTER_LIMIT = 1000
CORRELATION_BINS = 10
WEEK_DAYS = 7
# What only the charts draw: dropped from the figures once they are drawn (see :func:`build`).
SERIES = {
    "relief": ("labels", "per_day", "cumulative"),
    "trend": ("labels", "values"),
    "predictions": ("relief_grid", "aversion_grid"),
    "correlation": ("points", "bin_points"),
}


@dataclass(frozen=True)
class Choices:
    """What the person asked to see (already validated; defaults where not)."""

    measure: str = "relief"
    window: int = 30
    aggregation: str = "mean"
    x: str = "aversion"
    y: str = "relief"
    method: str = "pearson"


def local_today(timezone: str) -> dt.date:
    return dt.datetime.now(ZoneInfo(timezone)).date()


def week_start(timezone: str) -> dt.datetime:
    """Local midnight six days ago: "the last 7 days" as the dashboard counts them."""
    first_day = local_today(timezone) - dt.timedelta(days=WEEK_DAYS - 1)
    return dt.datetime.combine(first_day, dt.time(), ZoneInfo(timezone))


def build(
    db: Session, user_id: int, timezone: str, choices: Choices, group_id: int | None = None
) -> dict[str, Any]:
    """Everything the template needs (JSON data); three statements at most.

    ``group_id``: only the tasks of this group of the person's (and their attempts).
    """
    summary = queries.summary(db, user_id, week_start(timezone), group_id)
    tasks = summary.pop("tasks")
    by_category = summary.pop("cancellations")
    felt = summary.pop("emotions")
    groups = summary.pop("groups")
    page: dict[str, Any] = {
        "groups": groups,
        "kpis": kpis(summary),
        "empty": not summary["completed"],
        "cancellations": cancellations(by_category),
        "emotions": emotion_changes(felt),
    }
    if page["empty"]:
        return page
    today = local_today(timezone)
    days = queries.per_day(db, user_id, timezone, choices.measure, choices.aggregation, group_id)
    rows = queries.shapes(db, user_id, choices.x, choices.y, group_id)
    by_kind: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_kind[row.kind].append(row)
    page.update(
        relief=relief_over_time(days, today),
        trend=trend(days, today, choices),
        histograms=histograms(by_kind["hist"]),
        predictions=predictions(by_kind["grid"], summary),
        rankings=rankings(tasks),
        correlation=correlation(by_kind["pairs"], choices),
        bucket_labels=bucket_labels(queries.BUCKET, 10),
    )
    page["charts"] = charts.build(page)
    page["correlation"]["shown"] = len(page["correlation"]["points"])
    # The series are in the charts now: the cached figures needn't carry them twice (the
    # page reads back less), and the correlation keeps how many of its points were drawn.
    for part, keys in SERIES.items():
        for key in keys:
            del page[part][key]
    return page


def day_text(iso_day: str, fmt: str) -> str:
    """An ISO date from the figures, formatted for people (``strftime`` codes)."""
    return dt.date.fromisoformat(iso_day).strftime(fmt)


def emotion_changes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per emotion felt around completed attempts, the most frequent first: mean intensity
    before and after (none without intensities), their counts, and the change (after −
    before, when both are known)."""
    changes = []
    for row in rows:
        before, after = row["before"], row["after"]
        change = after - before if before is not None and after is not None else None
        changes.append({**row, "change": change})
    return sorted(changes, key=lambda e: (-e["attempts"], e["name"].lower()))


def kpis(summary: dict[str, Any]) -> dict[str, Any]:
    finished = summary["completed"] + summary["cancelled"]
    return {
        **summary,
        "completion_rate": 100 * summary["completed"] / finished if finished else None,
        "finished": finished,
    }


def cancellations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cancelled attempts per category, most frequent first (label, count)."""
    counted = [{"label": category_label(r["category"]), "count": r["count"]} for r in rows]
    return sorted(counted, key=lambda c: (-c["count"], c["label"].lower()))


def _series_days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def relief_over_time(days: list[dict[str, Any]], today: dt.date) -> dict[str, Any]:
    """Total relief per local day from the first completion to today, and its running sum."""
    by_day = {d["day"]: d for d in days}
    first = min(by_day)
    last = max(today, max(by_day))
    labels, per_day, cumulative = [], [], []
    running = 0.0
    for day in _series_days(first, last):
        value = float(by_day[day]["relief"]) if day in by_day else 0.0
        running += value
        labels.append(day.isoformat())
        per_day.append(value)
        cumulative.append(running)
    best = max(days, key=lambda d: (d["relief"], d["day"]))
    return {
        "labels": labels,
        "per_day": per_day,
        "cumulative": cumulative,
        "total": running,
        "first_day": first.isoformat(),
        "active_days": len(days),
        "best_day": best["day"].isoformat(),
        "best_relief": float(best["relief"]),
        "recent": [
            {"day": d["day"].isoformat(), "completed": d["completed"], "relief": float(d["relief"])}
            for d in days[-10:]
        ][::-1],
    }


def trend(days: list[dict[str, Any]], today: dt.date, choices: Choices) -> dict[str, Any]:
    """The chosen measure, aggregated per local day, over the last 30/60/90 days."""
    first = today - dt.timedelta(days=choices.window - 1)
    by_day = {d["day"]: d for d in days if first <= d["day"] <= today and d["trend_n"]}
    labels: list[str] = []
    values: list[float | None] = []
    for day in _series_days(first, today):
        row = by_day.get(day)
        labels.append(day.isoformat())
        if row is not None:
            values.append(float(row["trend"]))
        else:
            # No data that day: a sum is 0, a mean or median doesn't exist (a gap).
            values.append(0.0 if choices.aggregation == "sum" else None)
    with_data = [(day.isoformat(), float(row["trend"])) for day, row in sorted(by_day.items())]
    return {
        "labels": labels,
        "values": values,
        "label": queries.MEASURES[choices.measure].label,
        "aggregation": choices.aggregation,
        "window": choices.window,
        "rows": with_data,
        "highest": max(with_data, key=lambda item: item[1]) if with_data else None,
        "lowest": min(with_data, key=lambda item: item[1]) if with_data else None,
    }


def bucket_labels(size: int, count: int) -> list[str]:
    labels = [f"{i * size}–{(i + 1) * size - 1}" for i in range(count)]
    labels[-1] = f"{(count - 1) * size}–100"
    return labels


def histograms(rows: list[Any]) -> list[dict[str, Any]]:
    counts: dict[str, list[int]] = {key: [0] * 10 for key in queries.HISTOGRAM_MEASURES}
    for row in rows:
        counts[row.key][int(row.x)] = int(row.n)
    return [
        {"key": key, "label": queries.MEASURES[key].label, "counts": counts[key]}
        for key in queries.HISTOGRAM_MEASURES
    ]


def _grid(rows: list[Any]) -> list[dict[str, float]]:
    """Bubbles at the centre of each 5-point cell, sized in the browser by ``n``."""
    half = queries.GRID_CELL / 2
    return [
        {"x": row.x * queries.GRID_CELL + half, "y": row.y * queries.GRID_CELL + half, "n": row.n}
        for row in rows
    ]


def _bands(rows: list[Any]) -> list[dict[str, Any]]:
    """Mean actual relief per 10-point band of the prediction, from the 5-point cells."""
    cells_per_band = queries.BUCKET // queries.GRID_CELL
    counts: dict[int, int] = defaultdict(int)
    totals: dict[int, float] = defaultdict(float)
    for row in rows:
        band = int(row.x) // cells_per_band
        counts[band] += row.n
        totals[band] += row.total
    labels = bucket_labels(queries.BUCKET, 10)
    return [
        {
            "label": labels[band],
            "center": band * queries.BUCKET + queries.BUCKET / 2,
            "mean_relief": totals[band] / counts[band],
            "n": counts[band],
        }
        for band in sorted(counts)
    ]


def predictions(grid_rows: list[Any], summary: dict[str, Any]) -> dict[str, Any]:
    by_predictor: dict[str, list[Any]] = defaultdict(list)
    for row in grid_rows:
        by_predictor[row.key].append(row)
    expected, aversion = by_predictor["expected_relief"], by_predictor["aversion"]
    return {
        "relief_grid": _grid(expected),
        "relief_bands": _bands(expected),
        "aversion_grid": _grid(aversion),
        "aversion_bands": _bands(aversion),
        "dread_sentence": dread_sentence(summary),
        "surprise_sentence": surprise_sentence(summary),
    }


def dread_sentence(summary: dict[str, Any]) -> str:
    threshold = queries.DREAD_THRESHOLD
    dreaded, other = summary["dreaded_relief"], summary["other_relief"]
    if dreaded is None:
        return (
            f"None of your completed tasks had an aversion of {threshold} or more yet, "
            "so there is nothing to compare."
        )
    count = summary["dreaded_n"]
    plural = "task" if count == 1 else "tasks"
    if other is None:
        return (
            f"All your completed tasks were dreaded (aversion ≥ {threshold}); "
            f"they brought on average {dreaded:.0f} relief ({count} {plural})."
        )
    difference = float(dreaded) - float(other)
    if difference >= 5:
        verdict = "Dread overstates them: they turn out more relieving than the rest."
    elif difference <= -5:
        verdict = "They do turn out less relieving than the rest."
    else:
        verdict = "They turn out about as relieving as the rest."
    return (
        f"Tasks you dreaded (aversion ≥ {threshold}) brought on average {dreaded:.0f} relief "
        f"vs {other:.0f} for the rest ({count} dreaded {plural}, "
        f"{summary['other_n']} others). {verdict}"
    )


def surprise_sentence(summary: dict[str, Any]) -> str:
    surprise = summary["avg_relief_surprise"]
    if surprise is None:
        return "No completed task has both an expected and an actual relief yet."
    if surprise >= 0.5:
        meaning = "tasks turned out better than you expected"
    elif surprise <= -0.5:
        meaning = "tasks turned out less relieving than you expected"
    else:
        meaning = "your expectations were about right"
    return f"Relief surprise averaged {surprise:+.0f} (actual − expected relief): {meaning}."


def _top(tasks: list[dict[str, Any]], key: str, highest: bool) -> list[dict[str, Any]]:
    rated = [t for t in tasks if t[f"{key}_n"]]
    sign = -1 if highest else 1
    rated.sort(key=lambda t: (sign * t[key], -t["completed"], t["name"].lower()))
    return rated[:RANKING_SIZE]


def rankings(tasks: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {
        "relief": _top(tasks, "relief", highest=True),
        "stress_efficiency": _top(tasks, "stress_efficiency", highest=True),
        "stress": _top(tasks, "stress", highest=False),
    }


def number(value: float | None, digits: int = 0) -> str:
    """A figure for people: rounded to ``digits`` places, "—" when there is none."""
    if value is None:
        return "—"
    return f"{value:.{digits}f}"


def format_p(p: float | None) -> str:
    if p is None:
        return "—"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}"


def correlation(pairs: list[Any], choices: Choices) -> dict[str, Any]:
    xs: list[float] = pairs[0].xs or [] if pairs else []
    ys: list[float] = pairs[0].ys or [] if pairs else []
    result = stats.correlate(xs, ys, choices.method)
    bins = stats.bin_means(xs, ys, CORRELATION_BINS)
    x_label = queries.MEASURES[choices.x].label
    y_label = queries.MEASURES[choices.y].label
    return {
        "result": asdict(result),
        "p_text": format_p(result.p),
        "sentence": correlation_sentence(result, x_label, y_label),
        "x_label": x_label,
        "y_label": y_label,
        "bins": [asdict(b) for b in bins],
        "points": [
            {"x": x, "y": y}
            for x, y in stats.even_sample(list(zip(xs, ys, strict=True)), SCATTER_LIMIT)
        ],
        "bin_points": [{"x": b.center, "y": b.mean_y} for b in bins if b.mean_y is not None],
    }


def correlation_sentence(result: stats.Correlation, x_label: str, y_label: str) -> str:
    name = "Pearson r" if result.method == "pearson" else "Spearman ρ"
    if result.n < 3:
        return (
            f"Not enough completed attempts with both {x_label} and {y_label} "
            f"(n = {result.n}; at least 3 are needed)."
        )
    if result.r is None:
        return (
            f"{x_label} or {y_label} has the same value in every attempt, "
            "so there is no correlation to compute."
        )
    direction = "positive" if result.r > 0 else "negative"
    words = stats.strength(result.r)
    relation = "relationship" if words == "no" else f"{direction} relationship"
    if words == "no":
        words = "no clear"
    p_text = format_p(result.p)
    p_part = f"p {p_text}" if p_text.startswith("<") else f"p = {p_text}"
    return (
        f"{name} = {result.r:.2f} ({p_part}, n = {result.n}): "
        f"{words} {relation} between {x_label} and {y_label}."
    )

"""The analytics page's charts as SVG geometry, computed on the server (no chart script).

Each function turns one chart's figures (from :mod:`service.analytics.report`) into a plain
JSON-able dict that ``templates/analytics/_chart.html`` writes as an ``<svg>``: the chart's
size (its ``viewBox``), its plot area, axis ticks, and what is drawn in it. Coordinates are
SVG user units (about CSS pixels at the page's width), rounded to one decimal.

What is drawn, by kind (lists of lists, compact in the page cache):

- ``bars``: ``[x, y, width, height, class, title]`` — one ``<rect>`` each, with a hover title;
- ``bar_paths``: ``[d, class]`` — many bars as one ``<path>`` (a long series of days);
- ``lines``: ``[d, class]`` — a polyline (``M``/``L`` path; a gap starts a new ``M``);
- ``dots``: ``[d, class, stroke width or None, title]`` — many points as one ``<path>`` of
  zero-length segments, drawn as dots by a round line cap (the correlation scatter: a
  thousand points, one element; the prediction bubbles: one path per bubble size);
- ``bubbles``: ``[cx, cy, r, class, title]`` — one ``<circle>`` each, with a hover title;
- ``legend``: ``[x, kind, class, text]``;
- ``x_ticks``/``y_ticks``/``y2_ticks``/``categories``: ``[position, text]``.

Colours and strokes come from classes in ``static/css/app.css`` (the CSP forbids inline
styles). Text is escaped by the template, never here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

# viewBox sizes: about the width each chart gets on a 1,100-px page.
WIDE = (1000, 280)  # a chart across the card
HALF = (500, 280)  # one of a pair side by side
SMALL = (250, 160)  # one of the histograms
# Plot margins: left (y-axis labels and title), right, top (legend), bottom (x labels, title).
MARGIN = (52, 24, 26, 40)
RIGHT_AXIS_MARGIN = 60
# Bars drawn one by one (each with a hover title) up to this many; beyond, one path.
TITLED_BARS = 120
TICK_COUNT = 5
DAY_TICKS = 7
BUBBLE_MIN, BUBBLE_GROWTH = 2.0, 10.0  # radius: 2 + 10 √(n / the most in a cell)
BUBBLE_LEVELS = 6
DOTS = ("dots-a", "bubble")  # classes drawn as round line caps
LEGEND_CHAR = 7.0  # about the width of a 12-px character of the page's sans-serif
EMOTION_ROW = 30
EMOTION_NAME_CHARS = 18


def _n(value: float) -> float | int:
    """A coordinate rounded to one decimal (an int when whole: shorter markup)."""
    rounded = round(value, 1)
    return int(rounded) if rounded == int(rounded) else rounded


def _num(value: float) -> str:
    """A coordinate for a path's ``d``."""
    return str(_n(value))


def label_number(value: float) -> str:
    """A tick or hover value for people: no needless decimals."""
    if value == int(value):
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _rounded(value: float) -> str:
    return label_number(round(value, 1))


def nice_ticks(
    low: float, high: float, count: int = TICK_COUNT, whole: bool = False
) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2, 2.5 or 5 × 10ⁿ) covering [low, high];
    ``whole``: whole-number steps only (counts of things).

    A range of a single value is widened to 0 (or to 0–1 for zero), so a constant or
    one-point series still gets an axis instead of a division by zero.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, 1.0
    if low > high:
        low, high = high, low
    if low == high:  # widen to 0 (or to 0–1 for zero itself)
        if low > 0:
            low = 0.0
        elif low < 0:
            high = 0.0
        else:
            high = 1.0
    raw = (high - low) / max(1, count - 1)
    if whole:
        raw = max(raw, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(
        step
        for step in (m * magnitude for m in (1, 2, 2.5, 5, 10))
        if step >= raw and (not whole or float(step).is_integer())
    )
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    steps = round((last - first) / step)
    return [round(first + i * step, 10) for i in range(steps + 1)]


class Scale:
    """A linear map from data values to SVG coordinates (the domain never has zero width)."""

    def __init__(self, low: float, high: float, start: float, end: float) -> None:
        if high == low:
            high = low + 1
        self.low, self.high, self.start, self.end = low, high, start, end

    def __call__(self, value: float) -> float:
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)


def _frame(
    chart_id: str, label: str, size: tuple[int, int] = WIDE, right: int = MARGIN[1]
) -> dict[str, Any]:
    width, height = size
    left, _, top, bottom = MARGIN
    return {
        "id": chart_id,
        "label": label,
        "width": width,
        "height": height,
        "wide": width >= WIDE[0],  # across the card: scrolls sideways on a phone
        "plot": {"x": left, "y": top, "w": width - left - right, "h": height - top - bottom},
        "x_ticks": [],
        "y_ticks": [],
        "y2_ticks": [],
        "x_title": "",
        "y_title": "",
        "y2_title": "",
        "bars": [],
        "bar_paths": [],
        "lines": [],
        "dots": [],
        "bubbles": [],
        "categories": [],
        "legend": [],
        "note": "",
    }


def _x_scale(chart: dict[str, Any], low: float, high: float) -> Scale:
    plot = chart["plot"]
    return Scale(low, high, plot["x"], plot["x"] + plot["w"])


def _y_scale(chart: dict[str, Any], low: float, high: float) -> Scale:
    plot = chart["plot"]
    return Scale(low, high, plot["y"] + plot["h"], plot["y"])


def _value_axis(chart: dict[str, Any], key: str, ticks: list[float], scale: Scale) -> None:
    chart[key] = [[_n(scale(t)), label_number(t)] for t in ticks]


def _fit_y(chart: dict[str, Any], values: Sequence[float], key: str = "y_ticks") -> Scale:
    """A vertical axis with round ticks covering ``values`` (``y2_ticks``: the right one)."""
    ticks = nice_ticks(min(values, default=0), max(values, default=0))
    scale = _y_scale(chart, ticks[0], ticks[-1])
    _value_axis(chart, key, ticks, scale)
    return scale


def _legend(chart: dict[str, Any], items: list[tuple[str, str]]) -> None:
    """Legend entries left to right from the plot's left edge: [x, kind, class, text], the
    kind (box, line or dot) from the class's name."""
    x = float(chart["plot"]["x"])
    for css, text in items:
        kind = "line" if css.startswith("line") else "dot" if css in DOTS else "box"
        chart["legend"].append([_n(x), kind, css, text])
        x += 34 + LEGEND_CHAR * len(text)


def _path(points: Sequence[tuple[float, float] | None]) -> str:
    """An ``M``/``L`` path through the points; ``None`` is a gap (the next point moves)."""
    parts: list[str] = []
    move = True
    for point in points:
        if point is None:
            move = True
            continue
        parts.append(f"{'M' if move else 'L'}{_num(point[0])} {_num(point[1])}")
        move = False
    return "".join(parts)


def _dots(points: Sequence[tuple[float, float]]) -> str:
    """Points as zero-length segments (``M x yh0``), each position once."""
    seen: set[tuple[float | int, float | int]] = set()
    parts = []
    for x, y in points:
        key = (_n(x), _n(y))
        if key in seen:
            continue
        seen.add(key)
        parts.append(f"M{key[0]} {key[1]}h0")
    return "".join(parts)


def _day_ticks(labels: Sequence[str], scale: Scale, count: int = DAY_TICKS) -> list[list[Any]]:
    """A few evenly spaced days of a day axis, as "3 Dec" (or "Dec 2026" over a long span)."""
    if not labels:
        return []
    first, last = dt.date.fromisoformat(labels[0]), dt.date.fromisoformat(labels[-1])
    fmt = "%b %Y" if (last - first).days > 180 else "%d %b"
    if len(labels) <= count:
        picked = list(range(len(labels)))
    else:
        step = (len(labels) - 1) / (count - 1)
        picked = sorted({round(i * step) for i in range(count)})
    return [
        [_n(scale(i)), dt.date.fromisoformat(labels[i]).strftime(fmt).lstrip("0")] for i in picked
    ]


def _day_title(iso_day: str) -> str:
    return dt.date.fromisoformat(iso_day).strftime("%d %b %Y").lstrip("0")


def relief_chart(relief: dict[str, Any]) -> dict[str, Any]:
    """Relief per day (bars, left axis) and the cumulative relief (line, right axis)."""
    chart = _frame(
        "relief-chart",
        "Relief per day and cumulative relief, since your first completed task",
        right=RIGHT_AXIS_MARGIN,
    )
    labels, per_day, cumulative = relief["labels"], relief["per_day"], relief["cumulative"]
    days = len(labels)
    plot = chart["plot"]
    band = plot["w"] / max(1, days)
    x = _x_scale(chart, -0.5, days - 0.5)  # day i is centred in its band
    y = _fit_y(chart, [0, *per_day])
    y2 = _fit_y(chart, [0, *cumulative], "y2_ticks")
    chart["x_ticks"] = _day_ticks(labels, x)
    chart["y_title"], chart["y2_title"] = "Relief per day", "Cumulative"
    width = max(band * 0.8, 0.6)
    bottom = y(0)
    shapes = []
    for i, value in enumerate(per_day):
        if value <= 0:
            continue
        left, top = x(i) - width / 2, y(value)
        shapes.append((left, top, bottom - top, labels[i], value))
    if len(shapes) <= TITLED_BARS:
        chart["bars"] = [
            [
                _n(left),
                _n(top),
                _n(width),
                _n(height),
                "series-a",
                f"{_day_title(day)}: {label_number(value)}",
            ]
            for left, top, height, day, value in shapes
        ]
    else:
        chart["bar_paths"] = [
            [
                "".join(
                    f"M{_num(left)} {_num(top)}h{_num(width)}v{_num(height)}h{_num(-width)}z"
                    for left, top, height, _, _ in shapes
                ),
                "series-a",
            ]
        ]
    chart["lines"] = [[_path([(x(i), y2(v)) for i, v in enumerate(cumulative)]), "line-b"]]
    _legend(chart, [("series-a", "Relief per day"), ("line-b", "Cumulative relief")])
    return chart


def trend_chart(trend: dict[str, Any]) -> dict[str, Any]:
    """The chosen measure per day over the window: a line with gaps and a dot per day."""
    aggregation, measure = trend["aggregation"], trend["label"]
    label = f"{aggregation.capitalize()} {measure.lower()} per day, last {trend['window']} days"
    chart = _frame("trend-chart", label)
    labels, values = trend["labels"], trend["values"]
    known = [v for v in values if v is not None]
    x = _x_scale(chart, 0, max(1, len(labels) - 1))
    y = _fit_y(chart, known)
    chart["x_ticks"] = _day_ticks(labels, x)
    points = [None if v is None else (x(i), y(v)) for i, v in enumerate(values)]
    chart["lines"] = [[_path(points), "line-a"]]
    chart["bubbles"] = [
        [_n(p[0]), _n(p[1]), 2.5, "series-a", f"{_day_title(labels[i])}: {label_number(values[i])}"]
        for i, p in enumerate(points)
        if p is not None and (aggregation != "sum" or values[i])
    ]
    _legend(chart, [("line-a", f"{measure} ({aggregation})")])
    if not known:
        chart["note"] = "No data in this period"
    return chart


def histogram_chart(histogram: dict[str, Any], bucket_labels: Sequence[str]) -> dict[str, Any]:
    """One 0–100 measure's completed attempts per band of 10 (bars)."""
    chart = _frame(
        f"hist-{histogram['key']}", f"Distribution of {histogram['label'].lower()}", SMALL
    )
    chart["plot"]["y"] = 10  # no legend: the figure's caption names the measure
    chart["plot"]["h"] = SMALL[1] - 10 - 28
    chart["plot"]["x"] = 40
    chart["plot"]["w"] = SMALL[0] - 40 - 12
    counts = histogram["counts"]
    ticks = nice_ticks(0, max(counts, default=0), 4, whole=True)
    x = _x_scale(chart, 0, len(counts))
    y = _y_scale(chart, 0, ticks[-1])
    _value_axis(chart, "y_ticks", ticks, y)
    chart["x_ticks"] = [[_n(x(i)), str(i * 10)] for i in range(0, len(counts) + 1, 2)]
    bottom = y(0)
    for i, count in enumerate(counts):
        if not count:
            continue
        top = y(count)
        plural = "attempt" if count == 1 else "attempts"
        chart["bars"].append(
            [
                _n(x(i) + 1),
                _n(top),
                _n(x(1) - x(0) - 2),
                _n(bottom - top),
                "series-a",
                f"{bucket_labels[i]}: {count} {plural}",
            ]
        )
    return chart


def prediction_chart(
    chart_id: str,
    label: str,
    x_label: str,
    cells: Sequence[dict[str, Any]],
    bands: Sequence[dict[str, Any]],
    diagonal: bool,
) -> dict[str, Any]:
    """A prediction (0–100) against the actual relief (0–100): bubbles sized by the attempts
    in each 5-point cell, and the mean actual relief per 10-point band of the prediction."""
    chart = _frame(chart_id, label, HALF)
    ticks = [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    x = _x_scale(chart, 0, 100)
    y = _y_scale(chart, 0, 100)
    _value_axis(chart, "x_ticks", ticks, x)
    _value_axis(chart, "y_ticks", ticks, y)
    chart["x_title"], chart["y_title"] = x_label, "Actual relief"
    chart["dots"] = _bubble_groups(cells, x, y)
    line = [(x(b["center"]), y(b["mean_relief"])) for b in bands]
    chart["lines"] = [[_path(line), "line-c"]]
    chart["bubbles"] += [
        [
            _n(px),
            _n(py),
            3,
            "series-c",
            f"Mean relief {_rounded(b['mean_relief'])} for {x_label.lower()} {b['label']}",
        ]
        for (px, py), b in zip(line, bands, strict=True)
    ]
    legend = [("bubble", "Attempts"), ("line-c", "Mean relief")]
    if diagonal:
        chart["lines"].insert(0, [_path([(x(0), y(0)), (x(100), y(100))]), "line-diagonal"])
        legend.append(("line-diagonal", "As expected"))
    _legend(chart, legend)
    return chart


def _bubble_groups(cells: Sequence[dict[str, Any]], x: Scale, y: Scale) -> list[list[Any]]:
    """Bubbles sized by ``n`` in :data:`BUBBLE_LEVELS` sizes, one path per size: a few
    elements instead of one per cell (up to 400), each with a title saying its counts."""
    most = max((c["n"] for c in cells), default=1) or 1
    levels: dict[int, list[dict[str, Any]]] = {}
    for cell in cells:
        level = max(1, math.ceil(BUBBLE_LEVELS * math.sqrt(cell["n"] / most) - 1e-9))
        levels.setdefault(level, []).append(cell)
    groups = []
    for level in sorted(levels):
        members = levels[level]
        low, high = min(c["n"] for c in members), max(c["n"] for c in members)
        counts = str(low) if low == high else f"{low}–{high}"
        plural = "attempt" if high == 1 else "attempts"
        groups.append(
            [
                _dots([(x(c["x"]), y(c["y"])) for c in members]),
                "bubble",
                _n(2 * (BUBBLE_MIN + BUBBLE_GROWTH * level / BUBBLE_LEVELS)),
                f"{counts} {plural} in each of these 5-point cells",
            ]
        )
    return groups


def correlation_chart(correlation: dict[str, Any]) -> dict[str, Any]:
    """The sampled attempts as dots and the mean of Y per bin of X as a line."""
    x_label, y_label = correlation["x_label"], correlation["y_label"]
    label = f"{y_label} against {x_label}, with the mean of {y_label.lower()} per bin"
    chart = _frame("correlation-chart", label)
    points = [(p["x"], p["y"]) for p in correlation["points"]]
    bins = [(b["x"], b["y"]) for b in correlation["bin_points"]]
    xs = [p[0] for p in points + bins]
    x_ticks = nice_ticks(min(xs, default=0), max(xs, default=0), 8)
    x = _x_scale(chart, x_ticks[0], x_ticks[-1])
    _value_axis(chart, "x_ticks", x_ticks, x)
    y = _fit_y(chart, [p[1] for p in points + bins])
    chart["x_title"], chart["y_title"] = x_label, y_label
    chart["dots"] = [[_dots([(x(px), y(py)) for px, py in points]), "dots-a", None, ""]]
    line = [(x(bx), y(by)) for bx, by in bins]
    chart["lines"] = [[_path(line), "line-c"]]
    chart["bubbles"] = [
        [
            _n(px),
            _n(py),
            3,
            "series-c",
            f"Mean {y_label.lower()} {_rounded(by)} near {x_label.lower()} {_rounded(bx)}",
        ]
        for (px, py), (bx, by) in zip(line, bins, strict=True)
    ]
    _legend(chart, [("dots-a", "Attempts"), ("line-c", f"Mean {y_label.lower()} per bin")])
    if not points:
        chart["note"] = "No attempts with both values"
    return chart


def emotions_chart(emotions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each emotion's mean intensity before (blue) and after (green): horizontal bar pairs."""
    felt = [e for e in emotions if e["before"] is not None or e["after"] is not None]
    height = MARGIN[2] + MARGIN[3] + EMOTION_ROW * max(1, len(felt))
    chart = _frame(
        "emotions-chart",
        "Mean intensity of each emotion before and after your completed tasks",
        (WIDE[0], height),
    )
    plot = chart["plot"]
    names_width = 150
    plot["x"], plot["w"] = names_width, WIDE[0] - names_width - MARGIN[1]
    ticks = [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    x = _x_scale(chart, 0, 100)
    _value_axis(chart, "x_ticks", ticks, x)
    chart["x_title"] = "Mean intensity"
    bar = (EMOTION_ROW - 8) / 2
    rows = []
    for i, emotion in enumerate(felt):
        top = plot["y"] + i * EMOTION_ROW + 4
        name = emotion["name"]
        short = name if len(name) <= EMOTION_NAME_CHARS else name[: EMOTION_NAME_CHARS - 1] + "…"
        rows.append([_n(top + EMOTION_ROW / 2 - 4), short])
        for offset, key, css in ((0, "before", "series-a"), (bar, "after", "series-b")):
            value = emotion[key]
            if value is None:
                continue
            chart["bars"].append(
                [
                    _n(x(0)),
                    _n(top + offset),
                    _n(x(value) - x(0)),
                    _n(bar),
                    css,
                    f"{name}, {key}: {_rounded(value)}",
                ]
            )
    chart["categories"] = rows  # the emotions' names by their bars: [y, name]
    _legend(chart, [("series-a", "Before"), ("series-b", "After")])
    return chart


def build(page: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every chart of a (non-empty) analytics page, by its id."""
    predictions = page["predictions"]
    charts = [
        relief_chart(page["relief"]),
        prediction_chart(
            "aversion-chart",
            "Aversion before the task against actual relief after it",
            "Aversion",
            predictions["aversion_grid"],
            predictions["aversion_bands"],
            diagonal=False,
        ),
        prediction_chart(
            "expected-chart",
            "Expected relief against actual relief",
            "Expected relief",
            predictions["relief_grid"],
            predictions["relief_bands"],
            diagonal=True,
        ),
        trend_chart(page["trend"]),
        *(histogram_chart(h, page["bucket_labels"]) for h in page["histograms"]),
        correlation_chart(page["correlation"]),
        emotions_chart(page["emotions"]),
    ]
    return {chart["id"]: chart for chart in charts}

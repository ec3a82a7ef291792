"""The analytics charts drawn on the server: geometry (charts.py) and markup (_chart.html)."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment
from jinja2 import FileSystemLoader

from service.analytics import charts

TEMPLATES = Path(__file__).resolve().parents[2] / "service" / "templates"
SVG = "{http://www.w3.org/2000/svg}"


def render(chart: dict[str, Any]) -> str:
    """The chart's markup as the app writes it (HTML templates autoescape, as in Flask)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    macro = env.get_template("analytics/_chart.html").module.chart  # type: ignore[attr-defined]
    return str(macro(chart))


def parse(markup: str) -> ET.Element:
    """The chart's ``<svg>`` as XML (fails on anything malformed), in the SVG namespace; a
    chart across the card comes in a box that scrolls on a phone, and that box is checked too."""
    root = ET.fromstring(markup.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))
    if root.tag != "div":
        return root
    assert root.get("class") == "chart-scroll" and root.get("tabindex") == "0", root.attrib
    assert root.get("role") == "region" and root.get("aria-label"), root.attrib
    (svg,) = root
    assert "chart-wide" in (svg.get("class") or "")
    return svg


def days(count: int, first: str = "2026-11-01") -> list[str]:
    import datetime as dt

    start = dt.date.fromisoformat(first)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(count)]


def relief(per_day: list[float]) -> dict[str, Any]:
    cumulative, running = [], 0.0
    for value in per_day:
        running += value
        cumulative.append(running)
    return {"labels": days(len(per_day)), "per_day": per_day, "cumulative": cumulative}


def trend(values: list[float | None], aggregation: str = "mean") -> dict[str, Any]:
    return {
        "labels": days(len(values)),
        "values": values,
        "label": "Relief",
        "aggregation": aggregation,
        "window": len(values),
    }


def correlation(points: list[tuple[float, float]]) -> dict[str, Any]:
    return {
        "points": [{"x": x, "y": y} for x, y in points],
        "bin_points": [],
        "x_label": "Aversion",
        "y_label": "Relief",
    }


def test_relief_bars_have_the_heights_of_their_values_on_a_common_baseline():
    chart = charts.relief_chart(relief([10, 0, 20, 5]))
    bars = chart["bars"]
    assert len(bars) == 3  # a day without relief draws no bar
    heights = [bar[3] for bar in bars]
    assert heights[1] == pytest.approx(2 * heights[0], abs=0.2)
    assert heights[0] == pytest.approx(2 * heights[2], abs=0.2)
    bottoms = {round(bar[1] + bar[3]) for bar in bars}
    assert len(bottoms) == 1  # they all stand on the zero line
    assert [bar[0] for bar in bars] == sorted(bar[0] for bar in bars)  # days left to right
    assert bars[1][5] == "3 Nov 2026: 20"  # the hover title names the day and its value


def test_a_long_series_of_days_is_one_path_not_a_rect_per_day():
    chart = charts.relief_chart(relief([float(i % 7) for i in range(730)]))
    assert chart["bars"] == []
    (path, css), *_ = chart["bar_paths"]
    assert path.count("z") == sum(1 for i in range(730) if i % 7)
    markup = render(chart)
    assert markup.count("<rect") == 1  # only the legend's swatch


@pytest.mark.parametrize(
    ("low", "high"),
    [(0, 1), (0, 7), (3, 97), (0, 276), (-12.5, 40), (0.2, 0.9), (1000, 49519), (-5, -1)],
)
def test_ticks_are_round_even_and_cover_the_data(low, high):
    ticks = charts.nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    assert 3 <= len(ticks) <= 9
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1
    step = steps.pop()
    assert round(step / 10 ** math.floor(math.log10(step)), 9) in {1, 2, 2.5, 5}


@pytest.mark.parametrize("value", [0, 5, -3, 0.004])
def test_a_single_value_still_gets_an_axis(value):
    ticks = charts.nice_ticks(value, value)
    assert ticks[0] <= value <= ticks[-1] and ticks[0] < ticks[-1]


def test_empty_one_point_and_constant_series_draw_without_dividing_by_zero():
    one_day = charts.relief_chart(relief([42]))
    assert len(one_day["bars"]) == 1
    nothing = charts.relief_chart(relief([0, 0, 0]))
    assert nothing["bars"] == [] and nothing["y_ticks"][0][1] == "0"
    gaps = charts.trend_chart(trend([None] * 30))
    assert gaps["note"] == "No data in this period" and gaps["bubbles"] == []
    flat = charts.trend_chart(trend([50.0] * 30))
    assert len({bubble[1] for bubble in flat["bubbles"]}) == 1  # one height, inside the plot
    plot = flat["plot"]
    assert plot["y"] <= flat["bubbles"][0][1] <= plot["y"] + plot["h"]
    empty = charts.histogram_chart({"key": "stress", "label": "Stress", "counts": [0] * 10}, [])
    assert empty["bars"] == [] and [t[1] for t in empty["y_ticks"]] == ["0", "1"]
    scatter = charts.correlation_chart(correlation([]))
    assert scatter["note"] == "No attempts with both values"
    grid = charts.prediction_chart("aversion-chart", "A", "Aversion", [], [], diagonal=False)
    assert grid["dots"] == []
    for chart in (one_day, nothing, gaps, flat, empty, scatter, grid, charts.emotions_chart([])):
        parse(render(chart))  # well-formed markup


def test_a_trend_has_gaps_where_days_have_no_data():
    chart = charts.trend_chart(trend([10.0, 20.0, None, 30.0, 40.0]))
    ((path, _),) = chart["lines"]
    assert path.count("M") == 2 and path.count("L") == 2  # two runs of two days
    assert len(chart["bubbles"]) == 4


def test_histogram_bars_count_the_attempts_per_band():
    labels = ["0–9", "10–19", "20–29"] + [f"{i}0–{i}9" for i in range(3, 9)] + ["90–100"]
    counts = [0, 3, 6, 0, 0, 0, 0, 0, 0, 12]
    chart = charts.histogram_chart({"key": "relief", "label": "Relief", "counts": counts}, labels)
    assert chart["id"] == "hist-relief" and chart["label"] == "Distribution of relief"
    heights = [bar[3] for bar in chart["bars"]]
    assert heights[1] == pytest.approx(2 * heights[0], abs=0.2)
    assert heights[2] == pytest.approx(4 * heights[0], abs=0.2)
    assert [bar[5] for bar in chart["bars"]] == [
        "10–19: 3 attempts",
        "20–29: 6 attempts",
        "90–100: 12 attempts",
    ]
    assert all(float(t[1]).is_integer() for t in chart["y_ticks"])  # no "2.5 attempts"


@pytest.mark.parametrize("tallest", range(1, 60))
def test_every_histogram_bar_stays_inside_its_axis(tallest):
    """Counts get whole ticks, and the top tick is never below the tallest bar (a band of 7
    attempts once got ticks 0 and 5 and was drawn above the chart)."""
    chart = charts.histogram_chart({"key": "relief", "label": "Relief", "counts": [tallest]}, ["a"])
    ticks = [float(t[1]) for t in chart["y_ticks"]]
    assert all(t.is_integer() for t in ticks) and ticks[-1] >= tallest
    ((_, top, _, height, _, _),) = chart["bars"]
    assert top >= chart["plot"]["y"] and top + height <= chart["plot"]["y"] + chart["plot"]["h"]


def test_bubbles_grow_with_the_attempts_in_their_cell():
    cells = [{"x": 2.5, "y": 2.5, "n": 1}, {"x": 52.5, "y": 52.5, "n": 40}]
    cells += [{"x": 97.5, "y": 97.5, "n": 10}]
    chart = charts.prediction_chart("expected-chart", "E", "Expected relief", cells, [], True)
    widths = {title: width for _, _, width, title in chart["dots"]}
    assert (
        widths["40 attempts in each of these 5-point cells"]
        > widths["10 attempts in each of these 5-point cells"]
        > widths["1 attempt in each of these 5-point cells"]
    )
    assert chart["lines"][0][1] == "line-diagonal"  # "as expected": the diagonal


def test_a_large_scatter_stays_small():
    # 10,000 attempts on 0–100 scales: the page draws at most SCATTER_LIMIT of them, and
    # points that fall on the same spot are written once.
    points = [(float(i % 101), float((i * 7) % 101)) for i in range(1000)]
    chart = charts.correlation_chart(correlation(points + points))
    ((path, css, _, _),) = chart["dots"]
    assert path.count("M") == len(set(points))
    assert re.fullmatch(r"(M-?\d+(\.\d)? -?\d+(\.\d)?h0)+", path)  # one decimal at most
    assert len(render(chart)) < 20_000


def test_text_is_escaped_in_the_markup():
    hostile = '<script>alert("x")</script> & co'
    chart = charts.emotions_chart([{"name": hostile, "before": 70.0, "after": 20.0}])
    markup = render(chart)
    assert "<script>" not in markup
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in markup
    svg = parse(markup)
    assert svg.get("role") == "img" and svg.get("data-chart") == "emotions-chart"
    assert svg.get("aria-label") == (
        "Mean intensity of each emotion before and after your completed tasks"
    )
    titles = [t.text for t in svg.iter(f"{SVG}title")]
    assert f"{hostile}, before: 70" in titles and f"{hostile}, after: 20" in titles


def test_every_chart_of_a_page_is_named_and_uses_no_inline_style():
    page = {
        "relief": relief([5, 10]),
        "trend": trend([1.0, None, 3.0]),
        "histograms": [{"key": "relief", "label": "Relief", "counts": [1] * 10}],
        "bucket_labels": [str(i) for i in range(10)],
        "predictions": {
            "aversion_grid": [{"x": 2.5, "y": 2.5, "n": 3}],
            "aversion_bands": [{"label": "0–9", "center": 5, "mean_relief": 40.0, "n": 3}],
            "relief_grid": [],
            "relief_bands": [],
        },
        "correlation": correlation([(1, 2), (3, 4)]),
        "emotions": [{"name": "Calm", "before": None, "after": 60.0}],
    }
    built = charts.build(page)
    assert list(built) == [
        "relief-chart",
        "aversion-chart",
        "expected-chart",
        "trend-chart",
        "hist-relief",
        "correlation-chart",
        "emotions-chart",
    ]
    for chart_id, chart in built.items():
        markup = render(chart)
        assert "style" not in markup and "<script" not in markup
        svg = parse(markup)
        assert svg.get("data-chart") == chart_id == svg.get("id")
        assert svg.get("role") == "img" and svg.get("aria-label")

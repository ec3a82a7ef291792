"""The analytics page: right numbers on a known data set, your data only, cheap to build."""

from __future__ import annotations

import html
import math
import re

import pytest
from sqlalchemy import text

from service.analytics.queries import HISTOGRAM_MEASURES as HISTOGRAMS
from service.analytics.queries import MEASURES
from tests.conftest import count_statements

# Three completed attempts and one cancelled one, chosen so every KPI is easy by hand.
#   aversion, expected relief, relief, loads (mental, emotional, physical), minutes, estimate
DISHES_1 = (80, 40, 90, (30, 30, 30), 20, 10)  # stress 30, net 60, accuracy 2.0
DISHES_2 = (20, 60, 50, (60, 60, 60), 30, 30)  # stress 60, net −10, accuracy 1.0
TAXES_1 = (90, 20, 80, (10, 40, 70), 15, 30)  # stress 40, net 40, accuracy 0.5


def _attempt(browser, task_id: int, values: tuple) -> int:
    aversion, expected, relief, loads, minutes, estimate = values
    response = browser.post(
        f"/tasks/{task_id}/initialize",
        {
            "expected_aversion": str(aversion),
            "expected_relief": str(expected),
            "expected_cognitive_load": "50",
            "expected_emotional_load": "50",
            "expected_physical_load": "50",
            "motivation": "50",
            "time_estimate_minutes": str(estimate),
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    attempt_id = browser.latest_id("attempts")
    response = browser.post(
        f"/attempts/{attempt_id}/complete",
        {
            "actual_relief": str(relief),
            "actual_cognitive_load": str(loads[0]),
            "actual_emotional_load": str(loads[1]),
            "actual_physical_load": str(loads[2]),
            "completion_percent": "100",
            "minutes_spent": str(minutes),
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return attempt_id


def _known_data(browser, app) -> None:
    dishes = browser.create_task("Dishes")
    taxes = browser.create_task("Taxes")
    browser.create_task("Never done")
    first = _attempt(browser, dishes, DISHES_1)
    _attempt(browser, dishes, DISHES_2)
    _attempt(browser, taxes, TAXES_1)
    browser.post(f"/tasks/{taxes}/initialize", {"expected_aversion": "95"} | _defaults())
    cancelled = browser.latest_id("attempts")
    response = browser.post(
        f"/attempts/{cancelled}/cancel", {"reason": "Ran out of time", "completion_percent": "0"}
    )
    assert response.status_code == 302
    # The first one was completed ten days ago: outside "the last 7 days".
    _sql(
        app,
        "UPDATE attempts SET completed_at = now() - interval '10 days' WHERE id = :id",
        id=first,
    )


def _defaults() -> dict[str, str]:
    return {
        "expected_relief": "50",
        "expected_cognitive_load": "50",
        "expected_emotional_load": "50",
        "expected_physical_load": "50",
        "motivation": "50",
        "time_estimate_minutes": "10",
    }


def _sql(app, statement: str, **params) -> None:
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(text(statement), params)


def _page(client, query: str = "") -> str:
    response = client.get(f"/analytics{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def _kpi(page: str, label: str) -> str:
    match = re.search(
        rf'<span class="kpi-label">{re.escape(label)}</span>\s*<span class="kpi-value">([^<]*)<',
        page,
    )
    assert match, f"no KPI {label!r}"
    return html.unescape(match.group(1)).strip()


def _section(page: str, heading_id: str) -> str:
    start = page.index(f'id="{heading_id}"')
    end = page.find("</section>", start)
    return html.unescape(page[start:end])


def test_analytics_needs_a_signed_in_person(client):
    response = client.get("/analytics")
    assert response.status_code == 302
    assert "/signin" in response.headers["Location"]


def test_analytics_link_is_in_the_navigation(browser):
    page = browser.client.get("/").get_data(as_text=True)
    assert 'href="/analytics"' in page


def test_kpis_are_computed_from_the_known_data_set(browser, app):
    _known_data(browser, app)
    page = _page(browser.client)
    assert _kpi(page, "Active tasks") == "3"
    assert _kpi(page, "Completed in the last 7 days") == "2"
    assert _kpi(page, "Completion rate") == "75 %"  # 3 completed, 1 cancelled
    assert "3 completed of 4 finished" in page
    assert _kpi(page, "Time-estimate accuracy") == "1.00×"  # median of 2.0, 1.0, 0.5
    assert _kpi(page, "Relief") == "73"  # (90 + 50 + 80) / 3
    assert _kpi(page, "Mental load") == "33"  # (30 + 60 + 10) / 3
    assert _kpi(page, "Emotional load") == "43"  # (30 + 60 + 40) / 3
    assert _kpi(page, "Physical load") == "53"  # (30 + 60 + 70) / 3
    assert _kpi(page, "Stress") == "43"  # (30 + 60 + 40) / 3
    assert _kpi(page, "Net wellbeing") == "65"  # 50 + net / 2: (80 + 45 + 70) / 3


def test_dread_summary_compares_dreaded_tasks_with_the_rest(browser, app):
    _known_data(browser, app)
    section = _section(_page(browser.client), "prediction-heading")
    # Dreaded (aversion ≥ 70): relief 90 and 80; the rest: 50. Surprise: +50, −10, +60.
    assert "Tasks you dreaded (aversion ≥ 70) brought on average 85 relief vs 50" in section
    assert "Relief surprise averaged +33" in section
    assert "better than you expected" in section
    aversion_table, expected_table = re.split(r"<caption[^>]*>", section)[1:]
    assert "<td>80–89</td><td>1</td><td>90</td>" in aversion_table
    assert "<td>90–100</td><td>1</td><td>80</td>" in aversion_table
    assert "<td>20–29</td><td>1</td><td>50</td>" in aversion_table
    assert "<td>20–29</td><td>1</td><td>80</td>" in expected_table
    assert "<td>40–49</td><td>1</td><td>90</td>" in expected_table


def test_every_table_box_is_a_keyboard_reachable_region_named_by_its_table(browser, app):
    _known_data(browser, app)
    for path in ("/analytics", "/", "/history"):
        page = browser.client.get(path).get_data(as_text=True)
        boxes = re.findall(r'<div class="table-wrap"([^>]*)>', page)
        assert len(boxes) >= (7 if path == "/analytics" else 1), path
        for attributes in boxes:
            assert 'tabindex="0"' in attributes and 'role="region"' in attributes, attributes
            label = re.search(r'aria-labelledby="([^"]+)"', attributes)
            assert label, attributes
            named = re.search(rf'id="{label.group(1)}"[^>]*>([^<]+)<', page)
            assert named and named.group(1).strip(), f"{label.group(1)} names nothing"


def test_rankings_order_tasks_by_their_averages(browser, app):
    _known_data(browser, app)
    section = _section(_page(browser.client), "rank-heading")
    tables = re.split(r"<caption[^>]*>", section)[1:]
    most_relief, best_efficiency, lowest_stress = tables
    # Relief: Taxes 80, Dishes 70. Efficiency: Taxes 2.0, Dishes (3 + 0.83) / 2.
    # Stress: Taxes 40, Dishes 45. A task never completed is never ranked.
    for table in tables:
        assert "Never done" not in table
    assert most_relief.index("Taxes") < most_relief.index("Dishes")
    assert "<td>80</td>" in most_relief
    assert best_efficiency.index("Taxes") < best_efficiency.index("Dishes")
    assert "<td>2.00</td>" in best_efficiency and "<td>1.92</td>" in best_efficiency
    assert lowest_stress.index("Taxes") < lowest_stress.index("Dishes")
    assert "<td>45</td>" in lowest_stress


def test_relief_over_time_and_trend_summaries(browser, app):
    _known_data(browser, app)
    page = _page(browser.client, "?measure=relief&window=30&aggregation=sum")
    relief = _section(page, "relief-heading")
    assert "Total relief 220 from 2 days" in relief
    trend = _section(page, "trend-heading")
    # Today: 50 + 80; ten days ago: 90 (both inside 30 days).
    assert "2 days with data; highest 130.0" in trend
    assert "lowest 90.0" in trend
    median = _section(_page(browser.client, "?aggregation=median"), "trend-heading")
    assert "highest 90.0" in median and "lowest 65.0" in median


def _pearson(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy)


def _cauchy_two_sided_p(r: float) -> float:
    # n = 3 leaves 1 degree of freedom: Student's t is the Cauchy distribution.
    t = r * math.sqrt(1 / (1 - r * r))
    return 1 - 2 / math.pi * math.atan(abs(t))


def _shown(page: str, css_class: str) -> str:
    match = re.search(rf'<dd class="{css_class}">([^<]*)</dd>', page)
    assert match, css_class
    return html.unescape(match.group(1))


def test_pearson_correlation_matches_the_textbook_formula(browser, app):
    _known_data(browser, app)
    page = _page(browser.client, "?x=aversion&y=relief&method=pearson")
    aversion, relief = [80, 20, 90], [90, 50, 80]
    r = _pearson(aversion, relief)
    assert _shown(page, "corr-r") == f"{r:.3f}"
    assert _shown(page, "corr-p") == f"{_cauchy_two_sided_p(r):.3f}"
    assert _shown(page, "corr-n") == "3"


def test_spearman_correlation_uses_ranks(browser, app):
    _known_data(browser, app)
    page = _page(browser.client, "?x=aversion&y=relief&method=spearman")
    # Ranks of aversion 2, 1, 3; of relief 3, 1, 2: rho = 1 − 6·Σd² / (n(n² − 1)) = 0.5,
    # t = 0.5·√(1 / 0.75) = tan(π / 6), so p = 1 − (2 / π)·(π / 6) = 2 / 3.
    assert _shown(page, "corr-r") == "0.500"
    assert _shown(page, "corr-p") == "0.667"
    assert "Spearman ρ = 0.50" in page


def test_correlation_needs_three_pairs_and_variation(browser, app):
    task = browser.create_task("Walk")
    _attempt(browser, task, DISHES_1)
    _attempt(browser, task, DISHES_2)
    page = html.unescape(_page(browser.client, "?x=aversion&y=relief"))
    assert "Not enough completed attempts" in page and "n = 2" in page
    _attempt(browser, task, (50, 50, 50, (50, 50, 50), 10, 10))
    page = html.unescape(_page(browser.client, "?x=motivation&y=relief"))
    assert "has the same value in every attempt" in page  # motivation is always 50


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?window=45", "Choose 30, 60 or 90 days."),
        ("?window=abc", "Choose 30, 60 or 90 days."),
        ("?window=", "Choose 30, 60 or 90 days."),
        ("?aggregation=mode", "Choose mean, sum or median."),
        ("?measure=password", "Choose one of the listed measures."),
        ("?x=actual_relief%27%3B--", "Choose one of the listed measures."),
        ("?y=%00", "Choose one of the listed measures."),
        ("?method=kendall", "Choose Pearson or Spearman."),
        ("?x=relief&x=nope&method=" + "a" * 5000, "Choose Pearson or Spearman."),
    ],
)
def test_bad_chart_choices_get_a_message_and_the_defaults(browser, app, query, message):
    _known_data(browser, app)
    response = browser.client.get(f"/analytics{query}")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    assert 'role="alert"' in page
    assert 'id="correlation-chart"' in page  # the rest of the page still works


def test_bad_chart_choices_on_an_empty_account_are_not_an_error(browser):
    response = browser.client.get("/analytics?window=7&x=zzz")
    assert response.status_code == 400
    assert "Nothing to chart yet" in response.get_data(as_text=True)


def test_unknown_parameters_are_ignored(browser, app):
    _known_data(browser, app)
    assert browser.client.get("/analytics?foo=bar&window=90").status_code == 200


def test_every_choice_renders(browser, app):
    _known_data(browser, app)
    for measure in ("relief", "stress_efficiency", "delay_minutes", "time_accuracy"):
        for aggregation in ("mean", "sum", "median"):
            _page(browser.client, f"?measure={measure}&aggregation={aggregation}&window=90")
    for x in ("relief_duration", "procrastination", "proactive", "completion_percent"):
        _page(browser.client, f"?x={x}&y=net_wellbeing&method=spearman")


def test_empty_state_is_friendly(browser):
    browser.create_task("Not yet")
    page = _page(browser.client)
    assert "Nothing to chart yet" in page
    assert _kpi(page, "Active tasks") == "1"
    assert _kpi(page, "Completion rate") == "—"
    assert "<svg" not in page and "chart.umd" not in page


def test_another_persons_data_never_appears(browser, other_browser, app):
    _known_data(browser, app)
    secret = other_browser.create_task("Mallory's secret project")
    _attempt(other_browser, secret, (0, 0, 0, (100, 100, 100), 500, 1))
    page = _page(browser.client, "?x=minutes_spent&y=stress")
    assert "secret" not in page
    assert _kpi(page, "Active tasks") == "3"
    assert _kpi(page, "Relief") == "73"
    assert _shown(page, "corr-n") == "3"
    # ...and the other way round.
    theirs = _page(other_browser.client)
    assert _kpi(theirs, "Relief") == "0"
    assert "Dishes" not in theirs and "Taxes" not in theirs


def test_charts_are_named_svg_drawn_by_the_server_without_any_script(browser, app):
    _known_data(browser, app)
    page = _page(browser.client)
    # No chart script at all: not Chart.js, not the old analytics.js, nothing inline.
    assert "chart.umd" not in page and "analytics.js" not in page and "<canvas" not in page
    scripts = re.findall(r"<script([^>]*)>", page)
    assert all("src=" in attrs for attrs in scripts)
    svgs = dict(re.findall(r'<svg[^>]* data-chart="([^"]+)"[^>]*aria-label="([^"]+)"', page))
    assert svgs == {
        "relief-chart": "Relief per day and cumulative relief, since your first completed task",
        "aversion-chart": "Aversion before the task against actual relief after it",
        "expected-chart": "Expected relief against actual relief",
        "trend-chart": "Mean relief per day, last 30 days",
        **{f"hist-{key}": f"Distribution of {MEASURES[key].label.lower()}" for key in HISTOGRAMS},
        "correlation-chart": "Relief against Aversion, with the mean of relief per bin",
    }
    assert len(re.findall(r'<svg[^>]* role="img"', page)) == len(svgs)
    assert " style=" not in page and "<style" not in page  # the CSP allows no inline style


GENERATE_HISTORY = """
INSERT INTO tasks (user_id, name, default_estimate_minutes)
SELECT u.id, 'Task ' || n, 30 FROM users u, generate_series(1, 20) n;
INSERT INTO attempts (user_id, task_id, task_version, status, initialized_at, started_at,
                      completed_at, minutes_spent, expected_aversion, expected_relief,
                      actual_relief, actual_cognitive_load, actual_emotional_load,
                      actual_physical_load, stress, net_wellbeing, net_wellbeing_normalized,
                      stress_efficiency, relief_surprise, time_accuracy, behavioral_score,
                      relief_duration_score)
SELECT t.user_id, t.id, 1, 'completed', now() - (n || ' hours')::interval,
       now() - (n || ' hours')::interval, now() - (n || ' hours')::interval + interval '20 min',
       20, (n * 7) % 101, (n * 3) % 101, (n * 11) % 101, 40, 40, 40, 40, 20, 60, 1.5, 10, 0.9,
       50, 1200
FROM tasks t, generate_series(1, 50) n;
"""


def test_analytics_runs_at_most_5_statements_whatever_the_data_size(browser, app):
    _known_data(browser, app)
    status, small = count_statements(app, browser.client, "/analytics")
    assert status == 200
    with app.extensions["db_engine"].begin() as conn:
        for statement in GENERATE_HISTORY.strip().split(";\n"):
            conn.execute(text(statement))
    status, large = count_statements(
        app, browser.client, "/analytics?measure=stress&aggregation=median&method=spearman"
    )
    assert status == 200
    assert large <= 5  # the session lookup + 4 of the page's own
    assert large == small
    status, bad = count_statements(app, browser.client, "/analytics?window=1")
    assert status == 400 and bad <= 5


def test_empty_analytics_runs_two_statements(browser):
    app = browser.client.application
    status, count = count_statements(app, browser.client, "/analytics")
    assert status == 200 and count == 2

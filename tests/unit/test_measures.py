"""The per-attempt measures, checked against product.md's formulas by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from db.measures import AttemptFacts
from db.measures import compute_measures

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)


def test_a_good_outcome_after_a_short_delay():
    m = compute_measures(
        AttemptFacts(
            actual_relief=80,
            expected_relief=50,
            actual_cognitive_load=30,
            actual_emotional_load=20,
            actual_physical_load=10,
            completion_percent=100,
            minutes_spent=30,
            time_estimate_minutes=30,
            initialized_at=T0,
            started_at=T0 + dt.timedelta(minutes=15),
        )
    )
    assert m["stress"] == pytest.approx(20)
    assert m["net_wellbeing"] == pytest.approx(60)
    assert m["net_wellbeing_normalized"] == pytest.approx(80)
    assert m["stress_efficiency"] == pytest.approx(4)
    assert m["relief_surprise"] == pytest.approx(30)  # better than expected
    assert m["delay_minutes"] == pytest.approx(15)
    assert m["procrastination_score"] == pytest.approx(0.5)
    assert m["proactive_score"] == pytest.approx(7.5)
    assert m["time_accuracy"] == pytest.approx(1)
    # d = 0.4·0 + 0.4·0 + 0.2·clamp(-0.25, -5, 0) = -0.05 → 50 - 0.25
    assert m["behavioral_score"] == pytest.approx(49.75)
    assert m["relief_duration_score"] == pytest.approx(2400)


def test_procrastination_is_capped_at_10_and_proactive_floors_at_0():
    m = compute_measures(
        AttemptFacts(
            time_estimate_minutes=10,
            initialized_at=T0,
            started_at=T0 + dt.timedelta(hours=5),
        )
    )
    assert m["procrastination_score"] == 10
    assert m["proactive_score"] == 0


def test_zero_stress_leaves_stress_efficiency_empty():
    m = compute_measures(
        AttemptFacts(
            actual_relief=60,
            actual_cognitive_load=0,
            actual_emotional_load=0,
            actual_physical_load=0,
        )
    )
    assert m["stress"] == 0
    assert m["stress_efficiency"] is None
    assert m["net_wellbeing"] == 60


def test_over_delivery_fast_work_raises_the_behavioural_score_within_0_to_100():
    m = compute_measures(
        AttemptFacts(completion_percent=200, minutes_spent=1, time_estimate_minutes=60)
    )
    # d = 0.4·5 + 0.4·5 + 0 = 4 → 70
    assert m["behavioral_score"] == pytest.approx(70)


def test_a_negative_delay_from_real_data_is_kept():
    m = compute_measures(AttemptFacts(initialized_at=T0, started_at=T0 - dt.timedelta(minutes=3)))
    assert m["delay_minutes"] == pytest.approx(-3)

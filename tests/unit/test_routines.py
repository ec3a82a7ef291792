"""When a routine's occurrence falls due, in zones with unusual clock changes, and how a
schedule reads on the dashboard."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from service import routines

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("zone", "day", "time", "due"),
    [
        # An ordinary day: the local time, in the zone's offset that day.
        ("Europe/Berlin", dt.date(2026, 1, 15), dt.time(8, 0), dt.datetime(2026, 1, 15, 7, 0)),
        ("Europe/Berlin", dt.date(2026, 7, 15), dt.time(8, 0), dt.datetime(2026, 7, 15, 6, 0)),
        # Lord Howe Island springs forward by half an hour (02:00 → 02:30): 02:10 → 02:30.
        (
            "Australia/Lord_Howe",
            dt.date(2026, 10, 4),
            dt.time(2, 10),
            dt.datetime(2026, 10, 3, 15, 30),
        ),
        # Samoa skipped 30 December 2011 whole: that day's occurrence falls due when the
        # next day starts.
        ("Pacific/Apia", dt.date(2011, 12, 30), dt.time(9, 0), dt.datetime(2011, 12, 30, 10, 0)),
        # Falling back: the first of the two 02:30s, in summer time.
        ("Europe/Berlin", dt.date(2026, 10, 25), dt.time(2, 30), dt.datetime(2026, 10, 25, 0, 30)),
    ],
)
def test_an_occurrence_falls_due_at_its_local_time_or_the_first_instant_after_a_gap(
    zone, day, time, due
):
    assert routines.occurrence_instant(day, time, ZoneInfo(zone)) == due.replace(tzinfo=UTC)


def test_weekdays_are_bits_from_monday():
    assert routines.weekday_mask([0, 2, 4]) == 0b10101
    assert routines.weekdays_of(0b1100000) == [5, 6]


@pytest.mark.parametrize(
    ("frequency", "mask", "text"),
    [
        ("daily", 127, "every day at 07:30"),
        ("weekdays", 127, "every day at 07:30"),
        ("weekdays", 0b10101, "Mon, Wed and Fri at 07:30"),
        ("weekdays", 0b1000000, "Sun at 07:30"),
    ],
)
def test_a_schedule_reads_as_words(frequency, mask, text):
    assert routines.describe(frequency, mask, dt.time(7, 30)) == text


def test_the_next_occurrence_skips_days_the_routine_does_not_repeat_on():
    since = dt.datetime(2026, 1, 1, tzinfo=UTC)
    schedule = routines.Schedule(1, "Gym", "weekdays", 0b10001, dt.time(18), since)  # Mon, Fri
    zone = ZoneInfo("America/New_York")
    friday_night = dt.datetime(2026, 1, 9, 23, 30, tzinfo=UTC)  # 18:30 in New York
    assert schedule.next_instant(friday_night, zone) == dt.datetime(2026, 1, 12, 23, 0, tzinfo=UTC)
    assert schedule.due_days(dt.date(2026, 1, 5), friday_night, zone) == [
        dt.date(2026, 1, 5),
        dt.date(2026, 1, 9),
    ]
    assert routines.Schedule.from_json(schedule.as_json()) == schedule

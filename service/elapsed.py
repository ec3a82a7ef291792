"""Time spent on an attempt so far: shared by the attempt lifecycle and the page cache (which
fills a stored page's running timer in as of each request)."""

from __future__ import annotations

import datetime as dt

from db.models import utcnow


def minutes_so_far(
    status: str,
    resumed_at: dt.datetime | None,
    minutes_spent: float,
    now: dt.datetime | None = None,
) -> float:
    """Time spent: the sum of the started intervals, including the running one."""
    running = 0.0
    if status == "started" and resumed_at is not None:
        running = ((now or utcnow()) - resumed_at).total_seconds() / 60
    return minutes_spent + max(running, 0.0)

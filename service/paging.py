"""Keyset paging shared by the pages that list rows newest first (history, notes): where a
page starts, as a short text for the page's links."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from db.models import BIGINT_MAX

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_CURSOR = re.compile(r"(-?\d{1,18})_(\d{1,19})")


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: the (initialized_at, id) of the row next to it."""

    initialized_at: dt.datetime
    id: int

    def text(self) -> str:
        """Microseconds since 1970 and the id: exact, and short enough for a URL."""
        micros = (self.initialized_at - _EPOCH) // dt.timedelta(microseconds=1)
        return f"{micros}_{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        """The cursor written by :meth:`text`, or None for anything else."""
        match = _CURSOR.fullmatch(text)
        if match is None or int(match.group(2)) > BIGINT_MAX:
            return None
        try:
            at = _EPOCH + dt.timedelta(microseconds=int(match.group(1)))
        except OverflowError:
            return None
        return cls(at, int(match.group(2)))

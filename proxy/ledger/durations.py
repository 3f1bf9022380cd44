"""Budget durations (LiteLLM ``budget_duration`` strings) and their UTC reset boundaries.

Accepted: ``<N><unit>`` with N a positive integer and unit one of ``s``, ``m``, ``h``, ``d``,
``mo`` ("30s", "10m", "1h", "24h", "1d", "7d", "30d", "1mo", "3mo"). Anything else, including
other units such as "1w" or "1y", is a ``ValueError``.

Reset boundaries (``next_reset``) are UTC-aligned so every replica, and every restart, agrees
on when a budget resets without storing when it started:

- ``Ns``, ``Nm``, ``Nh``: multiples of the duration counted from the Unix epoch, so "1h" resets
  at the top of each UTC hour and "30s" at :00 and :30 of each minute.
- ``Nd``: UTC midnight, on days whose index is a multiple of N counted from 1970-01-01 ("1d" is
  every midnight). When N is a multiple of 7 the count starts on Monday 1970-01-05 instead, so
  "7d" resets every Monday 00:00 UTC and "14d" every other Monday.
- ``Nmo``: 00:00 UTC on the 1st of a month whose index is a multiple of N counted from January
  1970, so "1mo" resets on the 1st of every month, "3mo" at the start of each calendar quarter
  (1 Jan, 1 Apr, 1 Jul, 1 Oct), "6mo" on 1 Jan and 1 Jul and "12mo" on 1 Jan. (Counting N months
  from the current month instead would make the boundary depend on when it was computed.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Unit = Literal["s", "m", "h", "d", "mo"]

_PATTERN = re.compile(r"([0-9]+)(mo|s|m|h|d)")
_UNIT_SECONDS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DAY = 86400
# 1970-01-01 was a Thursday; day 4 of the epoch (1970-01-05) is the first Monday.
_FIRST_MONDAY = 4
# Keeps every boundary far inside datetime's range (year 9999) and rejects typos like "1000000d".
_MAX_SECONDS = 100 * 366 * _DAY
_MONTH_SECONDS = 31 * _DAY


@dataclass(frozen=True, slots=True)
class Duration:
    count: int
    unit: Unit

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"


def parse_duration(text: str) -> Duration:
    """Parse a ``budget_duration`` string such as "30d" or "1mo"; raise ``ValueError`` if bad."""
    match = _PATTERN.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"invalid budget_duration {text!r}: expected a positive integer followed by "
            "s, m, h, d or mo (e.g. '30s', '1h', '30d', '1mo')"
        )
    count = int(match.group(1))
    unit: Unit = match.group(2)  # type: ignore[assignment]
    if count <= 0:
        raise ValueError(f"invalid budget_duration {text!r}: the count must be at least 1")
    if count * _UNIT_SECONDS.get(unit, _MONTH_SECONDS) > _MAX_SECONDS:
        raise ValueError(f"invalid budget_duration {text!r}: longer than 100 years")
    return Duration(count, unit)


def next_reset(duration: Duration, now: float) -> float:
    """Return the first UTC-aligned reset boundary strictly after ``now`` (epoch seconds)."""
    count, unit = duration.count, duration.unit
    # Boundaries are whole seconds, so flooring first keeps the arithmetic in integers.
    second = int(now // 1)
    if unit == "mo":
        current = datetime.fromtimestamp(second, UTC)
        month = (current.year - 1970) * 12 + current.month - 1
        year, month0 = divmod((month // count + 1) * count, 12)
        year += 1970
        return datetime(year, month0 + 1, 1, tzinfo=UTC).timestamp()
    if unit == "d":
        day = second // _DAY
        anchor = _FIRST_MONDAY if count % 7 == 0 else 0
        return float(((day - anchor) // count + 1) * count * _DAY + anchor * _DAY)
    step = count * _UNIT_SECONDS[unit]
    return float((second // step + 1) * step)

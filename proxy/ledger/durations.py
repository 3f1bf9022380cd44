"""Budget durations (LiteLLM ``budget_duration`` strings) and when a budget resets.

Accepted: ``<N><unit>`` with N a positive integer and unit one of ``s``, ``m``, ``h``, ``d``,
``w`` (7 days), ``mo`` ("30s", "10m", "1h", "24h", "1d", "7d", "2w", "30d", "1mo", "3mo"), and
the words LiteLLM accepts, in any case, meaning what they mean there: ``hourly`` (1h),
``daily`` (1d), ``weekly`` (7d), ``monthly`` (30d). Either form may end in ``@calendar``
("1mo@calendar", "weekly@calendar"). Anything else is a ``ValueError``.

Two kinds of schedule:

- **Rolling** (the default, as LiteLLM users expect): the budget resets one duration after it
  started, then every duration after that. "30d" set on 3 March 14:20 UTC resets on 2 April
  14:20 UTC; "1mo" set on 15 January resets on 15 February (a day missing from a shorter month
  is its last day: 31 January → 28/29 February). ``next_reset(duration, start)`` is the first
  reset; ``advance(duration, reset_at, now)`` steps a due reset forward on the same anchor, so
  the schedule never drifts by the time a reset happened to be noticed.
- **Calendar** (``@calendar``): UTC-aligned boundaries that every replica and every restart
  agree on without knowing when the budget started:

  - ``Ns``, ``Nm``, ``Nh``: multiples of the duration counted from the Unix epoch, so
    "1h@calendar" resets at the top of each UTC hour.
  - ``Nd`` / ``Nw``: UTC midnight, on days whose index is a multiple of N counted from
    1970-01-01 ("1d@calendar" is every midnight). When the length is a multiple of 7 days the
    count starts on Monday 1970-01-05, so "7d@calendar" resets every Monday 00:00 UTC.
  - ``Nmo``: 00:00 UTC on the 1st of a month whose index is a multiple of N counted from
    January 1970: "1mo@calendar" is the 1st of every month, "3mo@calendar" each quarter.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Unit = Literal["s", "m", "h", "d", "mo"]

CALENDAR_SUFFIX = "@calendar"
_PATTERN = re.compile(r"([0-9]+)(mo|s|m|h|d|w)")
_WORDS: dict[str, tuple[int, Unit]] = {
    "hourly": (1, "h"),
    "daily": (1, "d"),
    "weekly": (7, "d"),
    "monthly": (30, "d"),  # LiteLLM's meaning; "1mo" is the calendar-month length
}
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
    calendar: bool = False

    def __str__(self) -> str:
        return f"{self.count}{self.unit}{CALENDAR_SUFFIX if self.calendar else ''}"


def parse_duration(text: str) -> Duration:
    """Parse a ``budget_duration`` such as "30d", "monthly" or "1mo@calendar".

    Raises ``ValueError`` naming what is accepted.
    """
    if not isinstance(text, str):
        raise ValueError(f"invalid budget_duration {text!r}: expected a string such as '30d'")
    spec = text.strip()
    aligned = spec.endswith(CALENDAR_SUFFIX)
    if aligned:
        spec = spec[: -len(CALENDAR_SUFFIX)]
    word = _WORDS.get(spec.lower())
    if word is not None:
        return Duration(word[0], word[1], aligned)
    match = _PATTERN.fullmatch(spec)
    if match is None:
        raise ValueError(
            f"invalid budget_duration {text!r}: expected a positive integer followed by "
            "s, m, h, d, w or mo (e.g. '30s', '1h', '30d', '1mo'), or hourly, daily, weekly, "
            "monthly; "
            f"add '{CALENDAR_SUFFIX}' for UTC calendar boundaries"
        )
    count = int(match.group(1))
    unit_text = match.group(2)
    if unit_text == "w":
        count, unit_text = count * 7, "d"
    unit: Unit = unit_text  # type: ignore[assignment]
    if count <= 0:
        raise ValueError(f"invalid budget_duration {text!r}: the count must be at least 1")
    if count * _UNIT_SECONDS.get(unit, _MONTH_SECONDS) > _MAX_SECONDS:
        raise ValueError(f"invalid budget_duration {text!r}: longer than 100 years")
    return Duration(count, unit, aligned)


def next_reset(duration: Duration, now: float) -> float:
    """The first reset of a budget that starts at ``now`` (epoch seconds), strictly later."""
    if duration.calendar:
        return _next_boundary(duration, now)
    if duration.unit == "mo":
        return _add_months(now, duration.count)
    return float(now + duration.count * _UNIT_SECONDS[duration.unit])


def advance(duration: Duration, reset_at: float, now: float) -> float:
    """The next reset after a due one (``reset_at <= now``), on the same schedule, > ``now``."""
    if duration.calendar:
        return _next_boundary(duration, now)
    if duration.unit == "mo":
        following = reset_at
        while following <= now:
            following = _add_months(following, duration.count)
        return following
    step = duration.count * _UNIT_SECONDS[duration.unit]
    periods = max(1, math.floor((now - reset_at) / step) + 1)
    following = reset_at + periods * step
    while following <= now:  # float rounding at an exact multiple
        following += step
    return float(following)


def _add_months(at: float, months: int) -> float:
    moment = datetime.fromtimestamp(at, UTC)
    index = moment.year * 12 + moment.month - 1 + months
    year, month0 = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day).timestamp()


def _next_boundary(duration: Duration, now: float) -> float:
    """The first UTC-aligned boundary strictly after ``now``."""
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

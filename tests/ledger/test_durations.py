import random
from datetime import UTC, datetime

import pytest

from proxy.ledger.durations import Duration, next_reset, parse_duration


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("30s", Duration(30, "s"), id="seconds"),
        pytest.param("10m", Duration(10, "m"), id="minutes"),
        pytest.param("1h", Duration(1, "h"), id="hour"),
        pytest.param("24h", Duration(24, "h"), id="24-hours"),
        pytest.param("7d", Duration(7, "d"), id="days"),
        pytest.param("3mo", Duration(3, "mo"), id="months"),
        pytest.param(" 1d ", Duration(1, "d"), id="surrounding-space"),
    ],
)
def test_parse_duration_accepts_litellm_strings(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected
    assert str(parse_duration(text)) == text.strip()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("1y", id="years-unit"),
        pytest.param("1mon", id="month-typo"),
        pytest.param("1D", id="uppercase-unit"),
        pytest.param("0d", id="zero"),
        pytest.param("-1d", id="negative"),
        pytest.param("1.5h", id="fraction"),
        pytest.param("d", id="no-count"),
        pytest.param("30", id="no-unit"),
        pytest.param("1 d", id="inner-space"),
        pytest.param("\u0663d", id="non-ascii-digit"),
        pytest.param("36601d", id="over-100-years"),
        pytest.param("1300mo", id="months-over-100-years"),
    ],
)
def test_parse_duration_rejects_bad_strings(text: str) -> None:
    with pytest.raises(ValueError, match="invalid budget_duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        pytest.param("30s", utc(2024, 5, 15, 12, 0, 10), utc(2024, 5, 15, 12, 0, 30), id="30s"),
        pytest.param(
            "30s", utc(2024, 5, 15, 12, 0, 30), utc(2024, 5, 15, 12, 1), id="30s-on-boundary"
        ),
        pytest.param("10m", utc(2024, 5, 15, 12, 7), utc(2024, 5, 15, 12, 10), id="10m"),
        pytest.param(
            "1h", utc(2024, 5, 15, 12, 59, 59) + 0.5, utc(2024, 5, 15, 13), id="1h-fraction"
        ),
        pytest.param("1h", utc(2024, 5, 15, 13), utc(2024, 5, 15, 14), id="1h-on-boundary"),
        pytest.param("24h", utc(2024, 3, 10, 15), utc(2024, 3, 11), id="24h-is-midnight"),
        pytest.param("1d", utc(2024, 5, 15, 23, 59, 59), utc(2024, 5, 16), id="1d"),
        pytest.param("1d", utc(2024, 5, 16), utc(2024, 5, 17), id="1d-at-midnight"),
        pytest.param("1d", utc(2024, 12, 31, 8), utc(2025, 1, 1), id="1d-new-year"),
        pytest.param("7d", utc(2024, 5, 15, 9), utc(2024, 5, 20), id="7d-wednesday-to-monday"),
        pytest.param("7d", utc(2024, 5, 19, 23, 59), utc(2024, 5, 20), id="7d-sunday-night"),
        pytest.param("7d", utc(2024, 5, 20), utc(2024, 5, 27), id="7d-on-monday"),
        pytest.param("14d", utc(2024, 5, 15), utc(2024, 5, 27), id="14d-every-other-monday"),
        pytest.param("30d", utc(2024, 1, 15), utc(2024, 1, 18), id="30d-from-epoch"),
        pytest.param("1mo", utc(2024, 12, 15, 10), utc(2025, 1, 1), id="1mo-dec-to-jan"),
        pytest.param("1mo", utc(2024, 1, 31, 23), utc(2024, 2, 1), id="1mo-end-of-january"),
        pytest.param("1mo", utc(2024, 2, 29, 12), utc(2024, 3, 1), id="1mo-leap-day"),
        pytest.param("1mo", utc(2024, 3, 1), utc(2024, 4, 1), id="1mo-on-boundary"),
        pytest.param("3mo", utc(2024, 2, 15), utc(2024, 4, 1), id="3mo-next-quarter"),
        pytest.param("3mo", utc(2024, 4, 1), utc(2024, 7, 1), id="3mo-on-boundary"),
        pytest.param("3mo", utc(2024, 11, 20), utc(2025, 1, 1), id="3mo-over-new-year"),
        pytest.param("6mo", utc(2024, 8, 31), utc(2025, 1, 1), id="6mo-half-year"),
        pytest.param("12mo", utc(2024, 6, 1), utc(2025, 1, 1), id="12mo-new-year"),
    ],
)
def test_calendar_next_reset_is_the_next_utc_boundary(
    text: str, now: float, expected: float
) -> None:
    assert next_reset(parse_duration(text + "@calendar"), now) == expected


@pytest.mark.parametrize("text", ["30s", "10m", "1h", "6h", "1d", "7d", "30d", "1mo", "3mo"])
def test_calendar_next_reset_is_strictly_later_and_stable_within_a_period(text: str) -> None:
    duration = parse_duration(text + "@calendar")
    rng = random.Random(7)
    for _ in range(500):
        now = rng.uniform(utc(2000, 1, 1), utc(2040, 1, 1))
        boundary = next_reset(duration, now)
        assert boundary > now
        # Any instant between now and the boundary resets at the same boundary.
        assert next_reset(duration, rng.uniform(now, boundary - 0.001)) == boundary
        assert datetime.fromtimestamp(boundary, UTC).microsecond == 0

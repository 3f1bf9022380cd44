"""``budget_duration`` as LiteLLM users write it: rolling from when the budget started, the
words of LiteLLM's guides, and calendar alignment on request (``@calendar``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from proxy.errors import BudgetExceeded
from proxy.ledger.durations import Duration, advance, next_reset, parse_duration
from proxy.ledger.memory import Ledger, Limits


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("daily", Duration(1, "d"), id="daily"),
        pytest.param("weekly", Duration(7, "d"), id="weekly"),
        pytest.param("monthly", Duration(30, "d"), id="monthly-is-litellm-30d"),
        pytest.param("Hourly", Duration(1, "h"), id="hourly-any-case"),
        pytest.param("2w", Duration(14, "d"), id="weeks"),
        pytest.param("1mo@calendar", Duration(1, "mo", calendar=True), id="calendar-month"),
        pytest.param("weekly@calendar", Duration(7, "d", calendar=True), id="calendar-week"),
    ],
)
def test_litellm_words_and_calendar_suffix_parse(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "start", "expected"),
    [
        pytest.param("30d", utc(2026, 3, 3, 14, 20), utc(2026, 4, 2, 14, 20), id="30d"),
        pytest.param("daily", utc(2026, 3, 3, 14, 20), utc(2026, 3, 4, 14, 20), id="daily"),
        pytest.param("weekly", utc(2026, 3, 4, 9), utc(2026, 3, 11, 9), id="weekly"),
        pytest.param("monthly", utc(2026, 1, 15, 8), utc(2026, 2, 14, 8), id="monthly-30d"),
        pytest.param("1mo", utc(2026, 1, 15, 8), utc(2026, 2, 15, 8), id="1mo"),
        pytest.param("1mo", utc(2026, 1, 31, 8), utc(2026, 2, 28, 8), id="1mo-short-month"),
        pytest.param("1h", utc(2026, 3, 3, 14, 20), utc(2026, 3, 3, 15, 20), id="1h"),
        pytest.param(
            "1mo@calendar", utc(2026, 1, 15, 8), utc(2026, 2, 1), id="calendar-1st-of-month"
        ),
        pytest.param("7d@calendar", utc(2026, 3, 4, 9), utc(2026, 3, 9), id="calendar-monday"),
        pytest.param("1d@calendar", utc(2026, 3, 3, 14), utc(2026, 3, 4), id="calendar-midnight"),
    ],
)
def test_first_reset_is_one_duration_after_the_start(
    text: str, start: float, expected: float
) -> None:
    assert next_reset(parse_duration(text), start) == expected


def test_a_30d_key_made_today_resets_in_30_days_not_at_an_epoch_boundary() -> None:
    # The complaint: a key made on 2024-01-15 got its first reset on 2024-01-18.
    made = utc(2024, 1, 15, 10)
    assert next_reset(parse_duration("30d"), made) == utc(2024, 2, 14, 10)


@pytest.mark.parametrize(
    ("text", "reset_at", "now", "expected"),
    [
        pytest.param("30d", utc(2026, 4, 2), utc(2026, 4, 2), utc(2026, 5, 2), id="on-time"),
        pytest.param("1d", utc(2026, 4, 2, 6), utc(2026, 4, 5, 7), utc(2026, 4, 6, 6), id="late"),
        pytest.param("1mo", utc(2026, 1, 15), utc(2026, 3, 20), utc(2026, 4, 15), id="months"),
    ],
)
def test_a_due_reset_keeps_its_anchor(
    text: str, reset_at: float, now: float, expected: float
) -> None:
    assert advance(parse_duration(text), reset_at, now) == expected


def test_ledger_budget_rolls_from_when_it_was_set() -> None:
    now = [utc(2026, 3, 3, 14, 20)]
    ledger = Ledger(clock=lambda: now[0])
    ledger.set_account("key:k", Limits(max_budget=1.0, budget_duration="30d"))
    assert ledger.account("key:k").budget_reset_at == utc(2026, 4, 2, 14, 20)
    ledger.settle(ledger.admit("a", ["key:k"], tokens=1, cost=1.0), cost=1.0, tokens=1)
    with pytest.raises(BudgetExceeded):
        ledger.admit("b", ["key:k"], tokens=1, cost=0.1)
    now[0] = utc(2026, 4, 3, 9)  # noticed late: the next reset stays on the 14:20 anchor
    ledger.admit("c", ["key:k"], tokens=1, cost=0.1)
    assert ledger.account("key:k").budget_reset_at == utc(2026, 5, 2, 14, 20)

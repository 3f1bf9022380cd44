"""Admission control and spend accounting: rpm/tpm windows, parallel limits and budgets."""

from proxy.ledger.durations import Duration, next_reset, parse_duration
from proxy.ledger.memory import AccountState, Ledger, Limits, Reservation

__all__ = [
    "AccountState",
    "Duration",
    "Ledger",
    "Limits",
    "Reservation",
    "next_reset",
    "parse_duration",
]

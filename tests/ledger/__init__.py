"""Shared by the ledger tests: a clock that moves only when told to, and a key account id."""

from __future__ import annotations

KEY = "key:9f86d081884c7d659a2feaa0c55ad015"


class FakeClock:
    """The ledger's clock (a callable returning epoch seconds) at ``now``; tests set it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

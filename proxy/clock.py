"""Time, injected: the ledger's windows and budget resets, key expiry, cooldowns and spend
logs read one ``Clock``, so tests drive them with a fake one instead of sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (expiry, budget resets, spend logs)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (windows, cooldowns)."""
        ...


class SystemClock:
    __slots__ = ()

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

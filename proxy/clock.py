"""Time, injected: the ledger's windows and budget resets, key expiry, cooldowns and spend
logs read one ``Clock``, so tests drive them with a fake one instead of sleeping."""

from __future__ import annotations

from time import monotonic as _monotonic
from time import time as _time
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

    # The C functions themselves, not methods calling them: the clock is read several times
    # per request, and a Python frame per reading showed in the profile.
    time = staticmethod(_time)
    monotonic = staticmethod(_monotonic)

"""Slows down password guessing on ``/ui/login``: after ``limit`` failed logins from one
client address within ``window_s``, that address is refused (429) until the window ends.
Per process, in memory; the table is bounded so it cannot grow without limit."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import RateLimited

MAX_TRACKED = 10_000


class LoginThrottle:
    def __init__(
        self, clock: Callable[[], float], *, limit: int = 10, window_s: float = 60.0
    ) -> None:
        self._clock = clock
        self._limit = limit
        self._window_s = window_s
        self._failures: dict[str, tuple[int, float]] = {}

    def check(self, client: str) -> None:
        count, started = self._failures.get(client, (0, 0.0))
        left = started + self._window_s - self._clock()
        if count >= self._limit and left > 0:
            raise RateLimited("too many failed logins; try again later", retry_after=left)

    def failed(self, client: str) -> None:
        now = self._clock()
        count, started = self._failures.get(client, (0, now))
        if started + self._window_s <= now:
            count, started = 0, now
        if len(self._failures) >= MAX_TRACKED and client not in self._failures:
            self._failures = {
                c: v for c, v in self._failures.items() if v[1] + self._window_s > now
            }
            if len(self._failures) >= MAX_TRACKED:
                self._failures.clear()
        self._failures[client] = (count + 1, started)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

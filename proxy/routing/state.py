"""What the router knows about each deployment: in flight, cooldown, failures, latency, usage.

Only touched on the event loop between awaits, so no locks. Times are ``time.monotonic``.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from ..upstream.deployment import Deployment
from .policy import EWMA_ALPHA, MAX_COOLDOWN_S

FAIL_WINDOW_S = 60.0


class DeploymentState:
    __slots__ = (
        "cooldowns",
        "cooled_until",
        "deployment",
        "failures",
        "in_flight",
        "latency_ewma",
        "minute",
        "minute_requests",
        "minute_tokens",
        "outcomes",
        "recent_fails",
        "ttft_ewma",
    )

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.in_flight = 0
        self.cooled_until = 0.0
        self.recent_fails: deque[float] = deque()
        self.latency_ewma: float | None = None
        self.ttft_ewma: float | None = None
        # Usage in the current clock minute (usage-based routing honours rpm/tpm with these).
        self.minute = 0
        self.minute_requests = 0
        self.minute_tokens = 0
        # Counters since start, for /metrics: attempts by status, failures, cooldowns.
        self.outcomes: dict[int, int] = {}
        self.failures = 0
        self.cooldowns = 0

    def cooling(self, now: float) -> bool:
        return self.cooled_until > now

    def cool(self, now: float, seconds: float) -> None:
        if seconds <= 0:
            return
        until = now + min(seconds, MAX_COOLDOWN_S)
        if until > self.cooled_until:
            if self.cooled_until <= now:
                self.cooldowns += 1
            self.cooled_until = until
        self.recent_fails.clear()

    def record_failure(
        self,
        now: float,
        allowed_fails: int,
        cooldown_s: float,
        rate_limited: bool,
        retry_after: float | None,
    ) -> None:
        """Count a failure; a 429, or more than ``allowed_fails`` in a minute, cools it down.

        A 429 cools for the upstream's Retry-After when it sent one, else ``cooldown_s``;
        ``cooldown_s`` of 0 turns cooldowns off.
        """
        self.failures += 1
        if cooldown_s <= 0:
            return
        if rate_limited:
            self.cool(now, retry_after if retry_after else cooldown_s)
            return
        fails = self.recent_fails
        fails.append(now)
        while fails and fails[0] <= now - FAIL_WINDOW_S:
            fails.popleft()
        if len(fails) > allowed_fails:
            self.cool(now, cooldown_s)

    def record_outcome(self, status: int) -> None:
        self.outcomes[status] = self.outcomes.get(status, 0) + 1

    def record_latency(self, seconds: float, *, first_token: bool) -> None:
        if first_token:
            old = self.ttft_ewma
            self.ttft_ewma = seconds if old is None else old + EWMA_ALPHA * (seconds - old)
        else:
            old = self.latency_ewma
            self.latency_ewma = seconds if old is None else old + EWMA_ALPHA * (seconds - old)

    def _roll(self, wall: float) -> None:
        minute = int(wall // 60)
        if minute != self.minute:
            self.minute = minute
            self.minute_requests = 0
            self.minute_tokens = 0

    def count_request(self, wall: float) -> None:
        self._roll(wall)
        self.minute_requests += 1

    def count_tokens(self, wall: float, tokens: int) -> None:
        self._roll(wall)
        self.minute_tokens += tokens

    def headroom(self, wall: float) -> float | None:
        """The smaller free fraction of this minute's rpm and tpm; None when unlimited."""
        self._roll(wall)
        params = self.deployment.params
        free: float | None = None
        if params.rpm:
            free = 1.0 - self.minute_requests / params.rpm
        if params.tpm:
            tokens = 1.0 - self.minute_tokens / params.tpm
            free = tokens if free is None else min(free, tokens)
        return free

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        cooling = self.cooling(now)
        return {
            "healthy": not cooling,
            "cooling_until": (time.time() + self.cooled_until - now) if cooling else None,
            "recent_fails": len(self.recent_fails),
            "failures": self.failures,
            "cooldowns": self.cooldowns,
            "in_flight": self.in_flight,
            "latency_ewma_s": self.latency_ewma,
            "ttft_ewma_s": self.ttft_ewma,
            "minute_requests": self.minute_requests,
            "minute_tokens": self.minute_tokens,
        }

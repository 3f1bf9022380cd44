"""The Redis ledger's boundary: its client, its scripts' text, and the scripts' refusals
turned into the in-memory ledger's errors, word for word."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from proxy.errors import BudgetExceeded, RateLimited, TollwayError
from proxy.ledger import memory
from proxy.ledger.memory import MONEY_UNIT, Reservation, _Account

NANOS = 1_000_000_000
"""Redis holds money as integer nano-dollars: exact in Lua's doubles up to $9 million."""
SCALE = MONEY_UNIT // NANOS  # the in-memory ledger's units per nano-dollar

_LUA = Path(__file__).with_name("lua")
# Read once, at import (off the event loop); common.lua holds the functions both share.
ADMIT_LUA = (_LUA / "common.lua").read_text() + (_LUA / "admit.lua").read_text()
SETTLE_LUA = (_LUA / "common.lua").read_text() + (_LUA / "settle.lua").read_text()
# Renew the leases of live reservations (ARGV[2:]) to ARGV[1] ms from now; only existing
# ones (XX: a reservation already settled or reclaimed is not brought back), never shorter.
RENEW_LUA = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', 'GT', expiry, ARGV[i]) end
return 0
"""


class LedgerUnavailable(TollwayError):
    """503: the shared ledger (Redis) did not answer in time and failure mode is closed."""

    status = 503
    type = "service_unavailable_error"
    code = "ledger_unavailable"


def redis_client(url: str, timeout_s: float, max_connections: int = 64) -> aioredis.Redis:
    """A client that retries once, only on a broken connection (a pooled connection to a
    Redis that restarted; the scripts are idempotent per request id), never on a timeout;
    every socket operation has ``timeout_s``; at most ``max_connections``, waited for at
    most as long."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        retry_on_error=[RedisConnectionError],
        # No CLIENT SETINFO: a round trip per connection and a package-metadata read.
        driver_info=None,
    )
    return aioredis.Redis(connection_pool=pool)


def refusal(
    reply: list[int], reservation: Reservation, capping: tuple[float, int, int]
) -> TollwayError:
    """The in-memory ledger's refusal, word for word (its own functions), from the numbers
    the script returns; ``capping`` is (output price, max output, min output tokens)."""
    code, index = reply[0], reply[1]
    kind = reservation._accounts[index - 1].kind
    if code == -1:
        return RateLimited(
            f"Parallel request limit reached for {kind}: {reply[2]} in flight, "
            f"max_parallel_requests {reply[3]}",
            retry_after=1.0,
        )
    if code == -2:
        error = RateLimited(
            f"Rate limit reached for {kind}: {reply[2]} requests in the last minute, "
            f"rpm_limit {reply[3]}",
            retry_after=reply[4] / 1000,
        )
        error.headers.update(
            {
                "x-ratelimit-limit-requests": str(reply[3]),
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": error.headers["retry-after"] + "s",
            }
        )
        return error
    if code == -3:
        used, limit = reply[2], reply[3]
        error = RateLimited(
            f"Rate limit reached for {kind}: {used} tokens in the last minute "
            f"+ this request's {reply[5]} > tpm_limit {limit}",
            retry_after=reply[4] / 1000,
        )
        error.headers.update(
            {
                "x-ratelimit-limit-tokens": str(limit),
                "x-ratelimit-remaining-tokens": str(max(0, limit - used)),
                "x-ratelimit-reset-tokens": error.headers["retry-after"] + "s",
            }
        )
        return error
    # The figures as the in-memory ledger holds them, for its own wording.
    shown = _Account(reservation._accounts[index - 1].id)
    shown.spend_units, shown.reserved_units = reply[2] * SCALE, reply[3] * SCALE
    shown.budget_units = reply[4] * SCALE
    message = memory._refusal(
        shown,
        reservation._units,
        reply[5] * SCALE,
        *capping,
    )
    return BudgetExceeded(message)

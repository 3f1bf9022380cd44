"""The shared ledger: the in-memory ledger's interface, with admission and settle in Redis.

Several processes (``--workers``) and replicas enforce one set of limits and budgets because
every admission and every settle is one atomic Lua script in one Redis (``lua/``):

    admit   sweep expired leases → per account: seed if missing, budget reset, parallel,
            rpm, tpm, budget → reserve on every account or none          (one round trip)
    settle  release the reservation (if Redis still holds it) → add the actual cost and
            tokens; keyed by request id, so a retried settle never counts twice

Money is integer nano-dollars in Redis. A reservation carries a lease (a score in one
sorted set); live processes renew the leases of their calls in flight, and every admission
sweeps expired ones, so a replica that dies (SIGKILL) leaks nothing for longer than a lease.

The process keeps the in-memory ledger it inherits as (a) the directory of accounts and their
limits, (b) a mirror of each account's global spend, updated from the scripts' replies (the
flusher stores it; response headers and alerts read it), and (c) the fallback ledger when
Redis is unreachable and ``TOLLWAY_REDIS_FAILURE=open``: calls are then admitted locally,
their spend-log rows are tagged ``base.LOCAL_TAG``, and their spend reaches Redis when it is back.
With ``closed`` (the default) they are refused with a 503 (``LedgerUnavailable``).

Settles are not on the client's wait: they are queued and sent, pipelined, by one task; a
batch that fails is kept and retried (idempotent), which is also how spend admitted locally
is reconciled. An account Redis does not know (Redis restarted empty) is seeded with the
spend this process holds (restored from the database, then mirrored) minus what it has not
yet had acknowledged, so nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from proxy.ledger import memory
from proxy.ledger.memory import MONEY_UNIT, Ledger, Reservation, _Account
from proxy.ledger.redis_support import (
    ADMIT_LUA,
    NANOS,
    RENEW_LUA,
    SCALE,
    SETTLE_LUA,
    LedgerUnavailable,
    redis_client,
    refusal,
)

__all__ = ["LedgerUnavailable", "RedisLedger", "RemoteReservation", "redis_client"]

log = logging.getLogger("tollway.ledger")

_SETTLE_BATCH = 256
_MAX_BACKOFF_S = 1.0
_UNREACHABLE = (RedisError, OSError, TimeoutError)
WINDOW_MS = 60_000


class RemoteReservation(Reservation):
    """A reservation held in Redis (``confirmed``) or about to be (``admit_remote``).

    ``output_cap`` (and the reserved cost and tokens) are known once it is confirmed."""

    __slots__ = ("confirmed", "max_output", "min_output", "nanos", "output_price")

    def __init__(
        self,
        request_id: str,
        accounts: list[_Account],
        units: int,
        tokens: int,
        timestamp: float,
        capping: tuple[float, int, int],
    ) -> None:
        super().__init__(request_id, accounts, units, tokens, timestamp)
        self.nanos = -(-units // SCALE)  # rounded up: never reserve less than the worst case
        self.output_price, self.max_output, self.min_output = capping
        self.confirmed = False


class _Job:
    """One settle (or spend-only charge) waiting to be sent to Redis."""

    __slots__ = ("accounts", "local_nanos", "nanos", "request_id", "tokens")

    def __init__(
        self, request_id: str, accounts: list[_Account], nanos: int, tokens: int, local: bool
    ) -> None:
        self.request_id = request_id
        self.accounts = accounts
        self.nanos = nanos
        self.tokens = tokens
        # Already in the local spend (admitted locally): not yet acknowledged by Redis.
        self.local_nanos = nanos if local else 0


class RedisLedger(Ledger):
    """The ledger shared through Redis; see the module docstring."""

    remote = True

    def __init__(
        self,
        client: aioredis.Redis,
        clock: Callable[[], float] = time.time,
        *,
        failure: str = "closed",
        timeout_s: float = 0.25,
        lease_s: float = 30.0,
        prefix: str = "tollway:ledger:",
    ) -> None:
        super().__init__(clock)
        if failure not in ("closed", "open"):
            raise ValueError(f"failure must be closed or open, got {failure!r}")
        self.client = client
        self.failure = failure
        self.timeout_s = timeout_s
        self.lease_ms = round(lease_s * 1000)
        self.prefix = prefix
        self._leases = prefix + "leases"
        self._admit_lua = ADMIT_LUA
        self._settle_lua = SETTLE_LUA
        self._admit_sha = self._settle_sha = ""
        self._live: dict[str, RemoteReservation] = {}
        self._jobs: deque[_Job] = deque()
        self._unacked: dict[str, int] = {}
        # account id -> (rpm count, oldest ms, tpm tokens, oldest settled ms, at ms) as of
        # the last admission that named it first (-1: no such limit).
        self._windows: dict[str, tuple[int, int, int, int, int]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sending = 0
        self._admissions: list[tuple[tuple[str, str, str], list[Any], asyncio.Future[Any]]] = []
        self._senders: set[asyncio.Task[None]] = set()
        # Counted for /metrics and tests: failed Redis calls, calls admitted locally.
        self.errors = 0
        self.local_admits = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Load the scripts (once; reloaded on NOSCRIPT) and start the settle and lease
        tasks. Redis being down at start is not fatal: the failure mode applies per call."""
        try:
            await self._load_scripts()
        except _UNREACHABLE as exc:
            self.errors += 1
            log.warning("redis ledger: cannot load scripts at start (%s)", type(exc).__name__)
        self._tasks = [
            asyncio.create_task(self._settler(), name="tollway-ledger-settler"),
            asyncio.create_task(self._renewer(), name="tollway-ledger-leases"),
        ]

    async def stop(self, drain_s: float = 5.0) -> None:
        """Send the settles still queued (for at most ``drain_s``), then close the client."""
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_s):
                while self._jobs:
                    if not await self._send_batch():
                        break
        tasks = [*self._tasks, *self._senders]
        for task in tasks:
            task.cancel()
        # Bounded, like the drain: a task stuck in the client (a command that ignores its
        # cancellation) must not hold the shutdown forever.
        grace = max(drain_s, 1.0)
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=grace)
            if stuck:
                log.error("redis ledger: %d background tasks did not stop", len(stuck))
        self._tasks = []
        if self._jobs:
            log.error("redis ledger: %d settles not sent at shutdown", len(self._jobs))
        try:
            async with asyncio.timeout(grace):
                await self.client.aclose(close_connection_pool=True)
        except TimeoutError:
            log.error("redis ledger: the client did not close within %gs", grace)

    async def _load_scripts(self) -> None:
        async with asyncio.timeout(self.timeout_s):
            self._admit_sha = await self.client.script_load(self._admit_lua)
            self._settle_sha = await self.client.script_load(self._settle_lua)

    # -- admission ---------------------------------------------------------------------

    def pending(
        self,
        request_id: str,
        account_ids: Sequence[str],
        *,
        tokens: int,
        cost: float,
        output_price: float = 0.0,
        max_output_tokens: int = 0,
        min_output_tokens: int = 1,
    ) -> Reservation:
        """What ``admit_remote`` will reserve (no I/O): the known accounts, deduplicated,
        with any budget period that ended applied locally first."""
        now = self._clock()
        accounts: list[_Account] = []
        get = self._accounts.get
        for account_id in account_ids:
            account = get(account_id)
            if account is None or account in accounts:
                continue
            reset_at = account.budget_reset_at
            if reset_at is not None and now >= reset_at:
                self._reset_budget(account, now)
            accounts.append(account)
        capping = (output_price, max_output_tokens, min_output_tokens)
        units = round(cost * MONEY_UNIT)
        return RemoteReservation(request_id, accounts, units, tokens, now, capping)

    async def admit_remote(self, reservation: Reservation) -> Reservation:
        """Reserve in Redis (one round trip): the reservation itself, or a local one when
        Redis failed and the failure mode is open. Raises ``RateLimited``,
        ``BudgetExceeded`` or ``LedgerUnavailable``."""
        assert isinstance(reservation, RemoteReservation)
        accounts = reservation._accounts
        if not accounts:
            reservation.confirmed = True
            return reservation
        rid = reservation.request_id
        # Numbers packed into one argument per account (see admit.lua): fewer to encode.
        args: list[Any] = [
            self.prefix,
            rid,
            f"{reservation.nanos} {reservation.tokens} {self.lease_ms} "
            f"{reservation.output_price * NANOS!r} {reservation.max_output} "
            f"{reservation.min_output}",
        ]
        for account in accounts:
            reset_at = account.budget_reset_at
            budget = account.budget_units
            args.append(
                f"{-1 if budget is None else budget // SCALE} "
                f"{-1 if account.rpm_limit is None else account.rpm_limit} "
                f"{-1 if account.tpm_limit is None else account.tpm_limit} "
                f"{-1 if account.max_parallel is None else account.max_parallel} "
                f"{self._seed(account)} {0 if reset_at is None else round(reset_at * 1000)} "
                f"{account.id}"
            )
        keys = (self._leases, self.prefix + "res:" + rid, self.prefix + "done:" + rid)
        # Registered before the call: a cancelled admission is still renewed and settled.
        self._live[rid] = reservation
        try:
            reply = await self._admit(keys, args)
        except _UNREACHABLE as exc:
            del self._live[rid]
            return self._unavailable(reservation, exc)
        except BaseException:
            # Cancelled: the settle that follows (``finally``) releases whatever Redis holds.
            if reservation.settled:
                self._live.pop(rid, None)
            raise
        status = reply[0]
        if status < 0:
            del self._live[rid]
            reservation.settled = True
            capping = (reservation.output_price, reservation.max_output, reservation.min_output)
            raise refusal(reply, reservation, capping)
        if status == 0:
            nanos, tokens, cap = reply[1], reply[2], reply[3]
            if cap >= 0:
                reservation.output_cap = cap
                reservation.nanos = nanos
                reservation._units = units = nanos * SCALE
                reservation.cost = units / MONEY_UNIT
                reservation.tokens = tokens
            # The key's windows as Redis has them, for its x-ratelimit-* headers.
            self._windows[accounts[0].id] = (reply[4], reply[5], reply[6], reply[7], reply[8])
            for account, spend in zip(accounts, reply[9:], strict=False):
                self._mirror(account, spend)
        reservation.confirmed = True
        if reservation.settled:  # settled while the admission was in flight
            self._live.pop(rid, None)
        return reservation

    def _unavailable(self, reservation: RemoteReservation, exc: BaseException) -> Reservation:
        self.errors += 1
        if self.failure == "closed":
            reservation.settled = True
            # The admission may still run in Redis (slow, not down): a zero settle under its
            # id releases it, or makes it a no-op if it arrives later. (Open mode: the local
            # reservation's own settle, under the same id, does this.)
            self._queue(_Job(reservation.request_id, reservation._accounts, 0, 0, False))
            log.warning("redis ledger unavailable (%s): refusing the call", type(exc).__name__)
            raise LedgerUnavailable(
                "the shared ledger (Redis) is unavailable; the call was not admitted "
                "(TOLLWAY_REDIS_FAILURE=closed)"
            ) from None
        self.local_admits += 1
        reservation.settled = True
        ids = [account.id for account in reservation._accounts]
        return Ledger.admit(
            self,
            reservation.request_id,
            ids,
            tokens=reservation.tokens,
            cost=reservation.cost,
            output_price=reservation.output_price,
            max_output_tokens=reservation.max_output,
            min_output_tokens=reservation.min_output,
        )

    def admitted_locally(self, reservation: Reservation) -> bool:
        return not isinstance(reservation, RemoteReservation)

    # -- settle ------------------------------------------------------------------------

    def settle(self, reservation: Reservation, *, cost: float, tokens: int) -> None:
        """Queue the settle for Redis (not the client's wait); later calls are no-ops.

        A remote reservation is settled even when its admission never answered (cancelled):
        the script releases whatever Redis holds under the request id."""
        if isinstance(reservation, RemoteReservation):
            if reservation.settled:
                return
            reservation.settled = True
            self._live.pop(reservation.request_id, None)
            if reservation._accounts:
                self._queue(
                    _Job(
                        reservation.request_id,
                        reservation._accounts,
                        round(cost * NANOS),
                        tokens,
                        False,
                    )
                )
            return
        if reservation.settled:
            return
        # Admitted locally (Redis was away): settled here, and its spend sent to Redis.
        super().settle(reservation, cost=cost, tokens=tokens)
        nanos = round(cost * NANOS)
        for account in reservation._accounts:
            self._unacked[account.id] = self._unacked.get(account.id, 0) + nanos
        self._queue(_Job(reservation.request_id, reservation._accounts, nanos, tokens, True))

    def charge(
        self, reservation: Reservation, request_id: str, *, cost: float, tokens: int
    ) -> None:
        """Bill an attempt that is not the answer under its own id, keeping the reservation."""
        nanos = round(cost * NANOS)
        local = not isinstance(reservation, RemoteReservation)
        if local:
            for account in reservation._accounts:
                account.spend_units += nanos * SCALE
                self._unacked[account.id] = self._unacked.get(account.id, 0) + nanos
        self._queue(_Job(request_id, reservation._accounts, nanos, tokens, local))

    def _queue(self, job: _Job) -> None:
        self._jobs.append(job)
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every settle queued so far has been acknowledged by Redis."""
        while self._jobs or self._sending:
            await asyncio.sleep(0.002)

    async def _settler(self) -> None:
        backoff = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._jobs:
                if await self._send_batch():
                    backoff = 0.05
                    continue
                # Kept and retried (settles are idempotent): this is also reconciliation.
                await asyncio.sleep(backoff)
                backoff = min(_MAX_BACKOFF_S, backoff * 2)

    async def _send_batch(self) -> bool:
        """Send up to ``_SETTLE_BATCH`` queued settles in one pipelined round trip."""
        batch = [self._jobs.popleft() for _ in range(min(_SETTLE_BATCH, len(self._jobs)))]
        self._sending += 1
        try:
            replies = await self._settle_many(batch)
        except _UNREACHABLE as exc:
            self.errors += 1
            self._jobs.extendleft(reversed(batch))
            log.warning(
                "redis ledger: settles not sent (%s: %s); retrying", type(exc).__name__, exc
            )
            return False
        finally:
            self._sending -= 1
        for job, reply in zip(batch, replies, strict=True):
            for account, spend in zip(job.accounts, reply[1:], strict=False):
                if job.local_nanos:
                    left = self._unacked.get(account.id, 0) - job.local_nanos
                    if left:
                        self._unacked[account.id] = left
                    else:
                        self._unacked.pop(account.id, None)
                self._mirror(account, spend)
        return True

    async def _settle_many(self, batch: list[_Job]) -> list[list[int]]:
        prefix = self.prefix
        calls = []
        for job in batch:
            rid = job.request_id
            args: list[Any] = [prefix, rid, f"{job.nanos} {job.tokens}"]
            for account in job.accounts:
                reset_at = account.budget_reset_at
                args.append(
                    f"{-1 if account.tpm_limit is None else account.tpm_limit} "
                    f"{self._seed(account)} {0 if reset_at is None else round(reset_at * 1000)} "
                    f"{account.id}"
                )
            keys = (self._leases, prefix + "res:" + rid, prefix + "done:" + rid)
            calls.append((keys, args))
        for attempt in range(2):
            if not self._settle_sha:
                await self._load_scripts()
            async with asyncio.timeout(self.timeout_s * 4):
                pipe = self.client.pipeline(transaction=False)
                for keys, args in calls:
                    pipe.evalsha(self._settle_sha, len(keys), *keys, *args)
                replies = await pipe.execute(raise_on_error=False)
            missing = any(isinstance(r, NoScriptError) for r in replies)
            if missing and attempt == 0:
                # Redis restarted: the settled ones are marked done, so resending is safe.
                self._settle_sha = ""
                continue
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return replies
        raise AssertionError("unreachable")

    # -- helpers -----------------------------------------------------------------------

    async def _admit(self, keys: tuple[str, str, str], args: list[Any]) -> Any:
        """One admission script call. Admissions issued in the same turn of the event loop
        go out together in one pipeline (one write, one read): under load a request pays a
        share of a round trip's system calls, alone it pays one round trip."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # A waiter that gave up never reads its failure: read here, so nothing is logged.
        future.add_done_callback(_consume)
        batch = self._admissions
        batch.append((keys, args, future))
        if len(batch) == 1:
            task = asyncio.create_task(self._send_admissions())
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)
        async with asyncio.timeout(self.timeout_s):
            # Shielded: a caller that gives up (deadline, cancellation) leaves the batch to
            # the others; its reservation, if made, is released by the settle that follows.
            return await asyncio.shield(future)

    async def _send_admissions(self) -> None:
        await asyncio.sleep(0)  # let the other requests of this turn join the batch
        batch, self._admissions = self._admissions, []
        try:
            async with asyncio.timeout(self.timeout_s):
                replies = await self._pipeline([(keys, args) for keys, args, _ in batch])
        except BaseException as exc:  # every waiter gets the failure, nothing is lost
            error = exc if isinstance(exc, Exception) else RedisConnectionError("cancelled")
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _pipeline(self, calls: list[tuple[tuple[str, str, str], list[Any]]]) -> list[Any]:
        """The admission script for each call, in one pipeline; scripts (re)loaded on
        NOSCRIPT (a Redis that restarted) and the batch resent: admissions are idempotent."""
        for attempt in range(2):
            if not self._admit_sha:
                await self._load_scripts()
            pipe = self.client.pipeline(transaction=False)
            for keys, args in calls:
                pipe.evalsha(self._admit_sha, 3, *keys, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in replies):
                self._admit_sha = ""
                continue
            return replies
        raise AssertionError("unreachable")

    def _seed(self, account: _Account) -> int:
        """The spend Redis starts from if it does not know the account (restarted empty)."""
        return account.spend_units // SCALE - self._unacked.get(account.id, 0)

    def _mirror(self, account: _Account, spend_nanos: int) -> None:
        units = (spend_nanos + self._unacked.get(account.id, 0)) * SCALE
        if units != account.spend_units:
            account.spend_units = units
            self._dirty.add(account.id)

    async def _renewer(self) -> None:
        """Keep the leases of this process's calls in flight from expiring."""
        period = self.lease_ms / 3000
        while True:
            await asyncio.sleep(period)
            if not self._live:
                continue
            try:
                async with asyncio.timeout(self.timeout_s * 4):
                    # Expiries on Redis's clock, as the scripts read them (no clock skew).
                    await self.client.eval(RENEW_LUA, 1, self._leases, self.lease_ms, *self._live)
            except _UNREACHABLE as exc:
                self.errors += 1
                log.warning("redis ledger: leases not renewed (%s)", type(exc).__name__)

    def _limit_pairs(self, account: memory._Account) -> list[tuple[bytes, bytes]]:
        """``x-ratelimit-*`` from the windows Redis reported at this account's last admission
        (the in-memory ledger's own windows are empty: admissions happen in Redis)."""
        window = self._windows.get(account.id)
        if window is None:
            return super()._limit_pairs(account)
        count, oldest, tokens, settled_oldest, now = window
        pairs: list[tuple[bytes, bytes]] = []
        limit = account.rpm_limit
        if limit is not None and count >= 0:
            reset = (oldest + WINDOW_MS - now) / 1000 if count else 0.0
            pairs += memory.request_pairs(limit, count, reset)
        limit = account.tpm_limit
        if limit is not None and tokens >= 0:
            reset = (settled_oldest + WINDOW_MS - now) / 1000 if settled_oldest else 0.0
            pairs += memory.token_pairs(limit, tokens, reset)
        return pairs

    def drop_account(self, account_id: str) -> None:
        super().drop_account(account_id)
        self._windows.pop(account_id, None)

    def outstanding(self) -> tuple[int, float]:
        """This process's calls in flight and their reserved cost (plus any admitted locally)."""
        in_flight, reserved = super().outstanding()
        nanos = sum(r.nanos for r in self._live.values())
        return in_flight + len(self._live), reserved + nanos / NANOS

    async def totals(self, account_id: str) -> dict[str, int]:
        """The account as Redis holds it (nano-dollars, counts): for tests and operators."""
        raw = await self.client.hgetall(self.prefix + "a:" + account_id)
        return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()

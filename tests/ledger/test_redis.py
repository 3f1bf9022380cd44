"""The Redis ledger against a real redis-server: the in-memory ledger's guarantees (the same
tests run over both), plus what only a shared ledger has: several processes (here several
``RedisLedger`` instances, each with its own client and local state), idempotent settles,
leases, Redis faults and reseeding."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from proxy.errors import BudgetExceeded, RateLimited, TollwayError
from proxy.ledger import Ledger, Limits, Reservation
from proxy.ledger.redis import LedgerUnavailable, RedisLedger, redis_client
from tests.cache.conftest import RedisServer, own_redis, redis, redis_server  # noqa: F401
from tests.multiproc.delay_proxy import DelayProxy

KEY, TEAM, USER = "key:k1", "team:t1", "user:u1"


class Shared:
    """One ``RedisLedger`` per simulated process, all on one Redis."""

    def __init__(self, server: RedisServer, prefix: str) -> None:
        self.server = server
        self.prefix = prefix
        self.ledgers: list[RedisLedger] = []

    async def process(self, *, lease_s: float = 30.0, **options: Any) -> RedisLedger:
        ledger = RedisLedger(
            redis_client(self.server.url, options.pop("timeout_s", 0.5)),
            prefix=self.prefix,
            lease_s=lease_s,
            timeout_s=options.pop("deadline", 0.5),
            **options,
        )
        await ledger.start()
        self.ledgers.append(ledger)
        return ledger

    async def close(self) -> None:
        for ledger in self.ledgers:
            await ledger.stop(drain_s=1.0)


@pytest.fixture
async def shared(redis: RedisServer) -> AsyncIterator[Shared]:  # noqa: F811
    group = Shared(redis, f"t{random.getrandbits(32)}:")
    yield group
    await group.close()


async def admit(ledger: Ledger, rid: str, ids: list[str], **kw: Any) -> Reservation:
    """Admission through whichever interface the ledger has (the pipeline's two paths)."""
    if isinstance(ledger, RedisLedger):
        return await ledger.admit_remote(ledger.pending(rid, ids, **kw))
    return ledger.admit(rid, ids, **kw)


async def settled(ledger: Ledger) -> None:
    if isinstance(ledger, RedisLedger):
        await ledger.flush()


async def reserved_and_spend(ledger: Ledger, account: str) -> tuple[int, float, int]:
    """(in flight, reserved dollars, ...) as the shared truth holds them, spend in dollars."""
    if isinstance(ledger, RedisLedger):
        totals = await ledger.totals(account)
        return (
            totals.get("inflight", 0),
            totals.get("reserved", 0) / 1e9,
            round(totals.get("spend", 0)),
        )
    state = ledger.account(account)
    return state.in_flight, state.reserved, round(state.spend * 1e9)


LedgerFactory = Callable[[], Any]


@pytest.fixture(params=["memory", "redis"])
async def make(
    request: pytest.FixtureRequest,
    redis: RedisServer,  # noqa: F811
) -> AsyncIterator[LedgerFactory]:
    """Ledgers of one kind: in memory (one, shared), or Redis (one instance per call)."""
    if request.param == "memory":
        ledger = Ledger()

        async def memory() -> Ledger:
            return ledger

        yield memory
        return
    group = Shared(redis, f"t{random.getrandbits(32)}:")
    yield group.process
    await group.close()


def configure(ledgers: list[Ledger], account: str, limits: Limits) -> None:
    for ledger in ledgers:
        ledger.set_account(account, limits)


# -- the in-memory ledger's guarantees, on both ---------------------------------------


async def test_budget_never_exceeded_by_300_concurrent_admissions(make: LedgerFactory) -> None:
    ledgers = [await make() for _ in range(3)]
    configure(ledgers, KEY, Limits(max_budget=1.0))
    configure(ledgers, TEAM, Limits(max_budget=0.5))

    async def one(i: int) -> Reservation | None:
        try:
            return await admit(ledgers[i % 3], f"r{i}", [KEY, TEAM], tokens=10, cost=0.01)
        except BudgetExceeded:
            return None

    admitted = [r for r in await asyncio.gather(*(one(i) for i in range(300))) if r]
    assert len(admitted) == 50  # the team's 0.50 / 0.01, exactly
    for i, reservation in enumerate(admitted):
        ledgers[i % 3].settle(reservation, cost=0.01, tokens=10)
    for ledger in ledgers:
        await settled(ledger)
    in_flight, reserved, spend_nanos = await reserved_and_spend(ledgers[0], TEAM)
    assert (in_flight, reserved, spend_nanos) == (0, 0.0, 500_000_000)


async def test_rpm_admits_exactly_the_limit(make: LedgerFactory) -> None:
    ledgers = [await make() for _ in range(3)]
    configure(ledgers, KEY, Limits(rpm_limit=10))
    outcomes = await asyncio.gather(
        *(admit(ledgers[i % 3], f"r{i}", [KEY], tokens=1, cost=0.0) for i in range(30)),
        return_exceptions=True,
    )
    assert sum(isinstance(o, Reservation) for o in outcomes) == 10
    refused = [o for o in outcomes if isinstance(o, RateLimited)]
    assert len(refused) == 20
    assert "rpm_limit 10" in refused[0].message
    assert 59 <= float(refused[0].headers["retry-after"]) <= 60


async def test_parallel_slots_are_shared_and_returned(make: LedgerFactory) -> None:
    ledgers = [await make() for _ in range(2)]
    configure(ledgers, KEY, Limits(max_parallel_requests=2))
    first = await admit(ledgers[0], "a", [KEY], tokens=1, cost=0.0)
    await admit(ledgers[1], "b", [KEY], tokens=1, cost=0.0)
    with pytest.raises(RateLimited, match="Parallel request limit reached for key"):
        await admit(ledgers[1], "c", [KEY], tokens=1, cost=0.0)
    ledgers[0].release(first)
    await settled(ledgers[0])
    await admit(ledgers[1], "d", [KEY], tokens=1, cost=0.0)


async def test_tpm_counts_settled_tokens_across_processes(make: LedgerFactory) -> None:
    ledgers = [await make() for _ in range(2)]
    configure(ledgers, KEY, Limits(tpm_limit=100))
    first = await admit(ledgers[0], "a", [KEY], tokens=60, cost=0.0)
    ledgers[0].settle(first, cost=0.0, tokens=70)
    await settled(ledgers[0])
    with pytest.raises(RateLimited, match="70 tokens in the last minute"):
        await admit(ledgers[1], "b", [KEY], tokens=40, cost=0.0)
    await admit(ledgers[1], "c", [KEY], tokens=30, cost=0.0)


async def test_output_is_capped_to_the_last_cent_the_same_way(make: LedgerFactory) -> None:
    ledger = await make()
    ledger.set_account(KEY, Limits(max_budget=0.001))
    # 100 prompt tokens' worth fixed (0.0002) + up to 1000 output tokens at 0.00001 = 0.0102.
    reservation = await admit(
        ledger,
        "r1",
        [KEY],
        tokens=1100,
        cost=0.0102,
        output_price=0.00001,
        max_output_tokens=1000,
        min_output_tokens=1,
    )
    assert reservation.output_cap == 80
    assert reservation.tokens == 180
    assert reservation.cost == pytest.approx(0.001)
    with pytest.raises(BudgetExceeded, match="would exceed the key budget"):
        await admit(
            ledger,
            "r2",
            [KEY],
            tokens=1100,
            cost=0.0102,
            output_price=0.00001,
            max_output_tokens=1000,
        )


# -- only a shared ledger --------------------------------------------------------------


async def test_a_retried_settle_counts_once(shared: Shared) -> None:
    one, two = await shared.process(), await shared.process()
    configure([one, two], KEY, Limits(max_budget=10.0))
    reservation = await admit(one, "r1", [KEY], tokens=5, cost=1.0)
    one.settle(reservation, cost=0.25, tokens=5)
    await one.flush()
    # The same settle again, from another process (a retry after a lost reply).
    again = two.pending("r1", [KEY], tokens=5, cost=1.0)
    two.settle(again, cost=0.25, tokens=5)
    await two.flush()
    totals = await one.totals(KEY)
    assert totals["spend"] == 250_000_000 and totals["reserved"] == 0
    assert one.spend(KEY) == two.spend(KEY) == 0.25


async def test_random_cancellations_leak_no_reservation_or_slot(shared: Shared) -> None:
    ledgers = [await shared.process() for _ in range(3)]
    configure(ledgers, KEY, Limits(max_budget=1000.0, max_parallel_requests=10_000))
    rng = random.Random(7)

    async def call(i: int) -> None:
        ledger = ledgers[i % 3]
        reservation = ledger.pending(f"c{i}", [KEY], tokens=3, cost=0.001)
        try:
            await ledger.admit_remote(reservation)
            await asyncio.sleep(rng.random() * 0.05)
        finally:
            ledger.settle(reservation, cost=0.0, tokens=0)

    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(call(i)) for i in range(1000)]
    # Each call is cancelled at a random moment: before, during or after its admission.
    for task in tasks:
        loop.call_later(rng.random() * 0.1, task.cancel)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) > 300
    for ledger in ledgers:
        await ledger.flush()
    totals = await ledgers[0].totals(KEY)
    assert totals.get("inflight", 0) == 0
    assert totals.get("reserved", 0) == 0
    assert totals.get("tokres", 0) == 0
    assert all(not ledger._live for ledger in ledgers)


async def test_a_dead_processs_reservations_are_reclaimed_after_the_lease(
    shared: Shared,
) -> None:
    dead = await shared.process(lease_s=0.3)
    alive = await shared.process(lease_s=0.3)
    configure([dead, alive], KEY, Limits(max_budget=1.0, max_parallel_requests=1))
    await admit(dead, "held", [KEY], tokens=1, cost=0.9)
    for task in dead._tasks:  # it stops renewing: killed
        task.cancel()
    with pytest.raises(RateLimited):
        await admit(alive, "early", [KEY], tokens=1, cost=0.05)
    await asyncio.sleep(0.4)
    reservation = await admit(alive, "late", [KEY], tokens=1, cost=0.9)
    assert (await alive.totals(KEY))["reserved"] == 900_000_000
    alive.settle(reservation, cost=0.0, tokens=0)


async def test_a_live_processs_long_call_keeps_its_lease(shared: Shared) -> None:
    ledger = await shared.process(lease_s=0.3)
    ledger.set_account(KEY, Limits(max_budget=1.0))
    await admit(ledger, "long", [KEY], tokens=1, cost=0.9)
    await asyncio.sleep(0.5)  # longer than the lease: renewed meanwhile
    with pytest.raises(BudgetExceeded):
        await admit(ledger, "other", [KEY], tokens=1, cost=0.9)


async def test_closed_refuses_fast_when_redis_is_down(own_redis: RedisServer) -> None:  # noqa: F811
    ledger = RedisLedger(redis_client(own_redis.url, 0.2), timeout_s=0.2)
    await ledger.start()
    ledger.set_account(KEY, Limits(max_budget=1.0))
    await asyncio.to_thread(own_redis.kill)
    started = time.monotonic()
    with pytest.raises(LedgerUnavailable) as caught:
        await admit(ledger, "r1", [KEY], tokens=1, cost=0.1)
    assert time.monotonic() - started < 0.5
    assert caught.value.status == 503
    body = caught.value.body()
    assert b'"type":"service_unavailable_error"' in body and b"Redis" in body
    await ledger.stop(drain_s=0.1)


async def test_closed_honours_the_deadline_on_a_slow_redis(redis: RedisServer) -> None:  # noqa: F811
    async with DelayProxy(redis.port, delay_s=1.0) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        ledger = RedisLedger(redis_client(url, 0.15), timeout_s=0.15)
        ledger.set_account(KEY, Limits(max_budget=1.0))
        await ledger.start()  # the scripts do not load in time: loaded on first use
        started = time.monotonic()
        with pytest.raises(LedgerUnavailable):
            await admit(ledger, "r1", [KEY], tokens=1, cost=0.1)
        assert time.monotonic() - started < 0.4
        await ledger.stop(drain_s=0.1)


async def test_open_admits_locally_and_reconciles_when_redis_is_back(
    own_redis: RedisServer,  # noqa: F811
) -> None:
    ledger = RedisLedger(redis_client(own_redis.url, 0.2), timeout_s=0.2, failure="open")
    await ledger.start()
    ledger.set_account(KEY, Limits(max_budget=1.0))
    first = await admit(ledger, "r1", [KEY], tokens=1, cost=0.1)
    ledger.settle(first, cost=0.1, tokens=1)
    await ledger.flush()
    await asyncio.to_thread(own_redis.kill)
    local = await admit(ledger, "r2", [KEY], tokens=1, cost=0.1)
    assert ledger.admitted_locally(local) and ledger.local_admits == 1
    ledger.settle(local, cost=0.2, tokens=1)
    assert ledger.spend(KEY) == pytest.approx(0.3)
    # Redis comes back empty: the account is seeded with what this process acknowledged
    # (0.1), then the queued local spend is added once.
    await asyncio.to_thread(own_redis.start)
    async with asyncio.timeout(5):
        await ledger.flush()
    totals = await ledger.totals(KEY)
    assert totals["spend"] == 300_000_000
    assert ledger.spend(KEY) == pytest.approx(0.3)
    await ledger.stop(drain_s=0.5)


async def test_redis_restarted_empty_is_reseeded_without_double_counting(
    own_redis: RedisServer,  # noqa: F811
) -> None:
    ledger = RedisLedger(redis_client(own_redis.url, 0.3), timeout_s=0.3)
    await ledger.start()
    # Restored from the database: 2.00 spent before this process started.
    ledger.set_account(KEY, Limits(max_budget=3.0), spend=2.0)
    reservation = await admit(ledger, "r1", [KEY], tokens=1, cost=0.5)
    ledger.settle(reservation, cost=0.5, tokens=1)
    await ledger.flush()
    assert (await ledger.totals(KEY))["spend"] == 2_500_000_000
    await asyncio.to_thread(own_redis.kill)
    await asyncio.to_thread(own_redis.start)
    with pytest.raises(BudgetExceeded, match=r"spend 2\.50"):
        await admit(ledger, "r2", [KEY], tokens=1, cost=0.6)
    reservation = await admit(ledger, "r3", [KEY], tokens=1, cost=0.5)
    ledger.settle(reservation, cost=0.5, tokens=1)
    await ledger.flush()
    assert (await ledger.totals(KEY))["spend"] == 3_000_000_000
    await ledger.stop(drain_s=0.5)


async def test_refusal_errors_are_in_the_contract_shape(shared: Shared) -> None:
    ledger = await shared.process()
    ledger.set_account(KEY, Limits(max_budget=0.05))
    with pytest.raises(TollwayError) as caught:
        await admit(ledger, "x", [KEY], tokens=1, cost=0.1)
    memory = Ledger()
    memory.set_account(KEY, Limits(max_budget=0.05))
    with pytest.raises(TollwayError) as same:
        memory.admit("x", [KEY], tokens=1, cost=0.1)
    assert caught.value.message == same.value.message
    assert caught.value.headers == same.value.headers


async def test_ratelimit_headers_come_from_the_shared_windows(shared: Shared) -> None:
    one, two = await shared.process(), await shared.process()
    configure([one, two], KEY, Limits(rpm_limit=5, tpm_limit=1000))
    for i in range(3):
        reservation = await admit(one, f"a{i}", [KEY], tokens=10, cost=0.0)
        one.settle(reservation, cost=0.0, tokens=20)
    await one.flush()
    await admit(two, "b", [KEY], tokens=10, cost=0.0)
    headers = two.ratelimit_headers(KEY)
    assert headers["x-ratelimit-limit-requests"] == "5"
    assert headers["x-ratelimit-remaining-requests"] == "1"  # 4 of 5 used, by both processes
    assert headers["x-ratelimit-remaining-tokens"] == str(1000 - 3 * 20 - 10)
    assert headers["x-ratelimit-reset-requests"] in ("59s", "60s")


async def test_an_admission_that_times_out_is_released_when_it_lands(
    redis: RedisServer,  # noqa: F811
) -> None:
    async with DelayProxy(redis.port, delay_s=0.15) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        ledger = RedisLedger(redis_client(url, 3.0), timeout_s=3.0)
        await ledger.start()  # scripts loaded (slowly)
        ledger.timeout_s = 0.05  # the admission gives up before Redis has even seen it
        ledger.set_account(KEY, Limits(max_budget=1.0))
        with pytest.raises(LedgerUnavailable):
            await admit(ledger, "late", [KEY], tokens=1, cost=0.5)
        ledger.timeout_s = 3.0
        async with asyncio.timeout(8):
            await ledger.flush()
        totals = await ledger.totals(KEY)
        assert totals.get("reserved", 0) == 0 and totals.get("inflight", 0) == 0
        await ledger.stop(drain_s=1.0)


@pytest.mark.parametrize(
    ("limits", "tokens", "cost"),
    [
        pytest.param(Limits(max_parallel_requests=1), 1, 0.0, id="parallel"),
        pytest.param(Limits(rpm_limit=1), 1, 0.0, id="rpm"),
        pytest.param(Limits(tpm_limit=100), 60, 0.0, id="tpm"),
        pytest.param(Limits(max_budget=0.15), 1, 0.1, id="budget"),
    ],
)
async def test_each_refusal_reads_as_the_in_memory_ledgers(
    shared: Shared, limits: Limits, tokens: int, cost: float
) -> None:
    remote, memory = await shared.process(), Ledger()
    errors = []
    for ledger in (remote, memory):
        ledger.set_account(KEY, limits)
        await admit(ledger, "first", [KEY], tokens=tokens, cost=cost)
        with pytest.raises(TollwayError) as caught:
            await admit(ledger, "second", [KEY], tokens=tokens, cost=cost)
        errors.append(caught.value)
    assert errors[0].message == errors[1].message
    assert type(errors[0]) is type(errors[1])
    assert set(errors[0].headers) == set(errors[1].headers)

"""The upstream pool serves waiters first come, first served (no barging)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from proxy.upstream import lean


@pytest.fixture
async def listener() -> AsyncIterator[int]:
    """A port on 127.0.0.1 that accepts connections and holds them open (the pool only
    connects here; nothing is sent)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the pool closes its end
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0, backlog=1024)
    yield server.sockets[0].getsockname()[1]
    server.close()
    for writer in held:
        writer.close()
    await server.wait_closed()


async def test_a_freed_connection_goes_to_the_oldest_waiter_not_a_newcomer(listener: int) -> None:
    pool = lean._Pool("127.0.0.1", listener, None, 1)
    held = await pool.acquire(5, False)
    order: list[str] = []

    async def take(name: str) -> None:
        conn = await pool.acquire(5, False)
        order.append(name)
        await asyncio.sleep(0)
        pool.release(conn)

    first = asyncio.create_task(take("waited"))
    await asyncio.sleep(0)  # queued behind the held connection
    # A request already scheduled when the connection is freed runs before the woken
    # waiter does: it must still queue behind it.
    late = asyncio.create_task(take("newcomer"))
    pool.release(held)
    await asyncio.gather(first, late)
    assert order == ["waited", "newcomer"]
    assert pool.active == 0


async def test_connections_a_burst_opened_are_closed_once_idle_past_the_limit(
    listener: int,
) -> None:
    pool = lean._Pool("127.0.0.1", listener, None, 600)
    burst = [await pool.acquire(5, False) for _ in range(500)]
    for conn in burst:
        pool.release(conn)
    assert len(pool.idle) == 500
    # Later, one call at a time (most recently used first): a call that finds an idle
    # connection still fresh reuses it, and its release closes those idle too long.
    for stale in burst[:-1]:
        stale.idle_since -= lean._IDLE_SECONDS + 1
    conn = await pool.acquire(5, False)
    assert conn is burst[-1]
    pool.release(conn)
    assert list(pool.idle) == [conn]
    assert sum(c.closed for c in burst) == 499
    # With no call at all, the transport's sweep does it (run by the memory trimmer).
    conn.idle_since -= lean._IDLE_SECONDS + 1
    transport = lean.LeanTransport(pool_size=4)
    transport._pools[("http", "127.0.0.1", listener)] = pool
    transport.sweep_idle()
    assert not pool.idle and conn.closed

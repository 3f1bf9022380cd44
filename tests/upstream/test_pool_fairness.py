"""The upstream pool serves waiters first come, first served (no barging)."""

from __future__ import annotations

import asyncio

from proxy.upstream import lean


class _Conn:
    closed = False
    idle_since = 0.0

    def abort(self) -> None:
        self.closed = True


async def test_a_freed_connection_goes_to_the_oldest_waiter_not_a_newcomer() -> None:
    pool = lean._Pool("127.0.0.1", 1, None, 1)

    async def connect(timeout: float) -> _Conn:
        return _Conn()

    pool._connect = connect  # type: ignore[assignment,method-assign]
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

"""The header and keep-alive deadlines: two timestamps under one timer per connection, in the
default protocol and the raw one (``TollwayHttpToolsProtocol``), not a timer created and
cancelled per request; and both deadlines still end a connection when they pass."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from proxy.server.raw import RawProtocol
from proxy.server.uvicorn_protocol import TollwayHttpToolsProtocol
from tests.server.serving import echo_app, read_reply, serving

PROTOCOLS = [TollwayHttpToolsProtocol, RawProtocol]
REQUEST = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_requests_on_a_kept_alive_connection_arm_no_timer_each(
    protocol: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    armed: list[str] = []

    def counting(schedule: Any) -> Any:
        def wrapper(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(getattr(callback, "__self__", None), TollwayHttpToolsProtocol):
                armed.append(callback.__name__)
            return schedule(when, callback, *args, **kwargs)

        return wrapper

    async with serving(echo_app, lifespan="off", http=protocol) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):  # the connection's first deadlines are set
            writer.write(REQUEST)
            assert (await asyncio.wait_for(read_reply(reader), 5))[0] == 200
        monkeypatch.setattr(loop, "call_at", counting(loop.call_at))
        monkeypatch.setattr(loop, "call_later", counting(loop.call_later))
        for _ in range(50):
            writer.write(REQUEST)
            assert (await asyncio.wait_for(read_reply(reader), 5))[0] == 200
        monkeypatch.undo()
        writer.close()
    # Each request moves both deadlines later, which the timer already covers: nothing is armed
    # (uvicorn's own protocol arms and cancels a keep-alive timer per request, and the header
    # deadline was a second one).
    assert armed == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_keep_alive_deadline_still_closes_an_idle_connection(protocol: Any) -> None:
    async with serving(echo_app, lifespan="off", http=protocol, timeout_keep_alive=0.3) as (
        _,
        port,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            writer.write(REQUEST)
            assert (await asyncio.wait_for(read_reply(reader), 5))[0] == 200
            await asyncio.sleep(0.15)  # less than the timeout: each request pushes it on
        started = loop_time()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        waited = loop_time() - started
        writer.close()
    assert 0.05 < waited < 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_header_deadline_still_ends_a_trickled_head(protocol: Any) -> None:
    async with serving(echo_app, lifespan="off", http=protocol, header_timeout_s=0.3) as (
        _,
        port,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)  # one whole request first: the deadline is re-armed after it
        assert (await asyncio.wait_for(read_reply(reader), 5))[0] == 200
        writer.write(b"POST /x HTTP/1.1\r\nHost: t\r\n")  # ... and the head never ends
        status, _, _ = await asyncio.wait_for(read_reply(reader), 5)
        writer.close()
    assert status == 408


def loop_time() -> float:
    return asyncio.get_running_loop().time()

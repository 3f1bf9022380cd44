"""The header deadline (slowloris) and the connection cap, on a real server over raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson

from tests.server.serving import read_reply, serving

REQUEST = b"GET / HTTP/1.1\r\nhost: t\r\n\r\n"


async def _trickle(host: str, port: int) -> tuple[bytes, float]:
    """Send a request line, then one header line every 50 ms, forever; returns what the
    server sent and when the connection ended (seconds after it opened)."""
    opened = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)

    async def drip() -> None:
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n")
        n = 0
        while not reader.at_eof():
            n += 1
            writer.write(b"x-drip-%d: y\r\n" % n)
            await writer.drain()
            await asyncio.sleep(0.05)

    dripping = asyncio.create_task(drip())
    received = b""
    with contextlib.suppress(ConnectionResetError):
        received = await reader.read()
    ended = time.monotonic() - opened
    dripping.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        await dripping
    writer.close()
    return received, ended


async def test_200_connections_trickling_headers_are_closed_and_others_still_served() -> None:
    async with serving(header_timeout_s=0.5) as (host, port):
        tricklers = [asyncio.create_task(_trickle(host, port)) for _ in range(200)]
        await asyncio.sleep(0.1)
        # Normal clients are served while the trickling connections are open.
        for _ in range(20):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(REQUEST)
            status, _, body = await asyncio.wait_for(read_reply(reader), 2)
            assert (status, body) == (200, b"ok")
            writer.close()
        async with asyncio.timeout(10):
            outcomes = await asyncio.gather(*tricklers)
    for received, ended in outcomes:
        assert ended >= 0.45, "closed before the header deadline"
        assert received.startswith(b"HTTP/1.1 408 "), received[:60]
        assert b"connection: close" in received
        assert b'"code":"header_timeout"' in received


async def test_a_connection_that_sends_nothing_is_closed_without_a_reply() -> None:
    async with serving(header_timeout_s=0.3) as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()


async def test_the_next_request_on_a_kept_alive_connection_has_a_header_deadline_too() -> None:
    async with serving(header_timeout_s=0.3) as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(REQUEST)
        assert (await read_reply(reader))[0] == 200
        await asyncio.sleep(0.5)  # longer than the deadline: idle time is keep-alive's
        writer.write(b"GET / HTTP/1.1\r\n")
        async with asyncio.timeout(5):
            received = await reader.read()
        assert received.startswith(b"HTTP/1.1 408 ")
        writer.close()


async def _slow_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    await asyncio.sleep(0.6)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"late"})


async def test_a_slow_answer_is_not_cut_by_the_header_deadline() -> None:
    async with serving(_slow_app, header_timeout_s=0.2, lifespan="off") as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        async with asyncio.timeout(5):
            received = await reader.read()
        assert received.startswith(b"HTTP/1.1 200 ")
        assert b"\r\nlate\r\n" in received
        writer.close()


async def test_connections_beyond_the_limit_get_503_and_admitted_ones_keep_working() -> None:
    async with serving(limit_concurrency=3) as (host, port):
        admitted = [await asyncio.open_connection(host, port) for _ in range(3)]
        for reader, writer in admitted:
            writer.write(REQUEST)
            assert (await read_reply(reader))[0] == 200

        reader, writer = await asyncio.open_connection(host, port)
        writer.write(REQUEST)
        status, headers, body = await read_reply(reader)
        assert status == 503
        assert headers["connection"] == "close"
        assert headers["retry-after"] == "1"
        error = orjson.loads(body)["error"]
        assert error["code"] == "too_many_connections"
        assert set(error) == {"message", "type", "param", "code"}
        async with asyncio.timeout(5):
            assert await reader.read() == b"", "the refused connection is closed"
        writer.close()

        # The refused connection did not cost the admitted ones their next request.
        for reader, writer in admitted:
            writer.write(REQUEST)
            assert (await read_reply(reader))[0] == 200

        # A freed slot is given to the next connection.
        admitted[0][1].close()
        async with asyncio.timeout(5):
            while True:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(REQUEST)
                status = (await read_reply(reader))[0]
                writer.close()
                if status == 200:
                    break
                await asyncio.sleep(0.02)
        for _, writer in admitted[1:]:
            writer.close()

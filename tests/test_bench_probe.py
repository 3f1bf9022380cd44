"""The precise probe (``bench/probe.py``) times requests on one kept-alive connection."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.probe import Client
from tests.server.serving import serving


async def test_the_probe_keeps_one_connection_alive_across_requests() -> None:
    # Until 2026-11-30 it asked httptools about keep-alive after the reply was complete,
    # was told no, and connected again for every request: the gateways' added latency
    # included a TCP handshake and an accept per request.
    async with serving(access_log=False) as (host, port):
        client = Client(f"http://{host}:{port}/v1/chat/completions", "sk-test")
        try:
            timings = [await asyncio.to_thread(client.post, b"{}") for _ in range(3)]
        finally:
            client.close()
    assert client.connects == 1
    for first_byte, last_byte in timings:
        assert 0 < first_byte <= last_byte


async def test_the_probe_connects_again_after_a_reply_that_closes() -> None:
    async def closing_app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-length", b"2"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    async with serving(closing_app, lifespan="off", access_log=False) as (host, port):
        client = Client(f"http://{host}:{port}/", "sk-test")
        try:
            for _ in range(3):
                await asyncio.to_thread(client.post, b"{}")
        finally:
            client.close()
    assert client.connects == 3

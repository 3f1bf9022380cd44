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


def test_spikes_counts_each_slow_request_by_what_it_overlapped() -> None:
    from bench.spikes import attribute

    # 200 requests 1 ms apart: direct 50 µs, tollway ~200 µs, and three slow ones at the top.
    samples = [(i / 1000, 50.0, i / 1000 + 0.0001, 200.0 + i / 1000) for i in range(200)]
    samples[10] = (0.010, 50.0, 0.0101, 5000.0)  # inside the flush below
    samples[30] = (0.030, 50.0, 0.0301, 4000.0)  # inside the collection below
    samples[50] = (0.050, 900.0, 0.0501, 3000.0)  # right after a slow direct request
    samples[70] = (0.070, 900.0, 0.0701, 210.0)  # slow direct, tollway not
    samples[90] = (0.090, 900.0, 0.0901, 210.0)
    flushes = [(0.0099, 0.0102)]
    collections = [(0.0305, 0.0306)]
    one_percent, one_permille = attribute(samples, flushes, collections)
    # p99 of 200 is the 198th value: 3,000 µs; the slowest are the three at or above it.
    assert one_percent["threshold_us"] == 3000.0
    assert one_percent["requests"] == 3
    assert (one_percent["flush"], one_percent["gc"], one_percent["machine"]) == (1, 1, 1)
    assert one_percent["none"] == 0
    assert (one_permille["requests"], one_permille["flush"], one_permille["none"]) == (1, 1, 0)
    # The same requests with no flush and no collection recorded: two of them are unexplained.
    assert attribute(samples, [], [])[0]["none"] == 2


def test_jitter_reports_the_share_of_runs_three_times_the_median_or_slower() -> None:
    from bench.jitter import summarize

    runs = [10e-6] * 980 + [29e-6] * 10 + [31e-6] * 6 + [100e-6] * 4
    result = summarize(runs)
    assert result["median_us"] == 10.0
    assert result["slow_share"] == 10 / 1000  # 31 µs and 100 µs, not 29 µs
    assert result["p99_us"] == 29.0
    assert result["p99.9_us"] == 100.0

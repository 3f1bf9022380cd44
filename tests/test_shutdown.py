"""SIGTERM: stop accepting at once, let in-flight streams finish, exit 0 within the grace."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    MASTER_KEY,
    GatewayProcess,
    chat_body,
    free_port,
    gateway_config,
    start_gateway,
)
from tests.fakes.openai_upstream import FakeOpenAI

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


async def start(
    tmp: Path, upstream: FakeOpenAI, env: dict[str, str] | None = None
) -> GatewayProcess:
    return await asyncio.to_thread(start_gateway, tmp, gateway_config(upstream, free_port()), env)


async def refuses_connections(port: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.02)
    return False


async def wait_exit(gateway: GatewayProcess, timeout: float) -> int | None:
    try:
        return await asyncio.to_thread(gateway.proc.wait, timeout)
    except Exception:
        return None


async def test_sigterm_refuses_new_connections_and_finishes_the_stream_in_flight(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    gateway = await start(tmp_path, fake_openai)
    try:
        async with (
            httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
            client.stream(
                "POST", "/v1/chat/completions", json=chat_body("medium", stream=True), headers=AUTH
            ) as resp,
        ):
            assert resp.status_code == 200
            chunks = resp.aiter_raw()
            received = [await anext(chunks)]
            assert received[0].startswith(b"data: ")
            gateway.terminate()
            assert await refuses_connections(gateway.port, within=2.0)
            received += [chunk async for chunk in chunks]
        stream = b"".join(received)
        assert stream.endswith(b"data: [DONE]\n\n")
        assert stream.count(b'"tock"') + stream.count(b'" tock"') == 20
        assert await wait_exit(gateway, 10) == 0
    finally:
        await asyncio.to_thread(gateway.stop)


async def test_graceful_timeout_bounds_shutdown_and_closes_upstream_streams(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    gateway = await start(tmp_path, fake_openai, {"TOLLWAY_GRACEFUL_TIMEOUT_S": "1"})
    try:
        async with (
            httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
            client.stream(
                "POST", "/v1/chat/completions", json=chat_body("slow", stream=True), headers=AUTH
            ) as resp,
        ):
            chunks = resp.aiter_raw()
            await anext(chunks)
            assert fake_openai.open_streams == 1
            terminated = time.monotonic()
            gateway.terminate()
            # The 10 s stream is cut when the grace period ends; the client sees it end.
            with pytest.raises(httpx.HTTPError):
                async for _ in chunks:
                    pass
            code = await wait_exit(gateway, 6)
            elapsed = time.monotonic() - terminated
        assert code is not None, "the gateway did not exit after the grace period"
        assert elapsed < 4
        deadline = time.monotonic() + 2
        while fake_openai.open_streams and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert fake_openai.open_streams == 0
    finally:
        await asyncio.to_thread(gateway.stop)

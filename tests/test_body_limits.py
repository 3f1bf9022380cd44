"""TOLLWAY_MAX_BODY_BYTES: an oversized body is refused with 413 before it is read in full."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, start_gateway

LIMIT = 1024


@pytest.fixture(scope="module")
def small_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp: Path = tmp_path_factory.mktemp("body-limits")
    proc = start_gateway(
        tmp, None, {"TOLLWAY_MAX_BODY_BYTES": str(LIMIT), "TOLLWAY_MASTER_KEY": MASTER_KEY}
    )
    yield proc
    proc.stop()


class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def error(self) -> dict[str, object]:
        payload = orjson.loads(self.body)
        assert set(payload) == {"error"}
        assert set(payload["error"]) == {"message", "type", "param", "code"}
        return payload["error"]  # type: ignore[no-any-return]


async def raw_exchange(gateway: GatewayProcess, head: bytes, body: bytes) -> RawResponse:
    """Send ``head`` and ``body`` over a fresh socket and read one response (3 s deadline)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(head + body)
        await writer.drain()
        async with asyncio.timeout(3):
            status_line = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            payload = await reader.readexactly(int(headers["content-length"]))
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return RawResponse(int(status_line.split()[1]), headers, payload)


def request_head(extra: str) -> bytes:
    return (
        "POST /v1/chat/completions HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        f"Authorization: Bearer {MASTER_KEY}\r\n"
        "Content-Type: application/json\r\n"
        f"{extra}"
        "\r\n"
    ).encode()


def chat_of_size(size: int) -> bytes:
    """A valid chat body exactly ``size`` bytes long."""
    empty = orjson.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": ""}]})
    body = orjson.dumps(
        {"model": "mock-gpt", "messages": [{"role": "user", "content": "x" * (size - len(empty))}]}
    )
    assert len(body) == size
    return body


async def test_declared_oversized_body_is_413_before_it_is_sent(
    small_gateway: GatewayProcess,
) -> None:
    started = time.monotonic()
    # 50 MB announced, a dozen bytes sent: the answer must not wait for the rest.
    resp = await raw_exchange(
        small_gateway, request_head("Content-Length: 50000000\r\n"), b'{"model": "m'
    )
    assert time.monotonic() - started < 2
    assert resp.status == 413
    error = resp.error()
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "request_too_large"
    assert str(LIMIT) in str(error["message"])


async def test_chunked_body_over_the_limit_is_413(small_gateway: GatewayProcess) -> None:
    chunk = b"x" * 512
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    resp = await raw_exchange(small_gateway, request_head("Transfer-Encoding: chunked\r\n"), body)
    assert resp.status == 413
    assert resp.error()["type"] == "invalid_request_error"


async def test_chunked_body_under_the_limit_is_served(small_gateway: GatewayProcess) -> None:
    payload = chat_of_size(600)
    body = b"%x\r\n%s\r\n" % (300, payload[:300]) + b"%x\r\n%s\r\n" % (300, payload[300:])
    resp = await raw_exchange(
        small_gateway, request_head("Transfer-Encoding: chunked\r\n"), body + b"0\r\n\r\n"
    )
    assert resp.status == 200
    assert orjson.loads(resp.body)["object"] == "chat.completion"


@pytest.mark.parametrize(
    ("size", "status"),
    [
        pytest.param(LIMIT - 1, 200, id="just-under"),
        pytest.param(LIMIT, 200, id="at-limit"),
        pytest.param(LIMIT + 1, 413, id="one-over"),
    ],
)
async def test_limit_is_inclusive(small_gateway: GatewayProcess, size: int, status: int) -> None:
    body = chat_of_size(size)
    resp = await raw_exchange(small_gateway, request_head(f"Content-Length: {size}\r\n"), body)
    assert resp.status == status
    if status == 200:
        assert orjson.loads(resp.body)["choices"][0]["message"]["content"]
    else:
        assert resp.error()["code"] == "request_too_large"

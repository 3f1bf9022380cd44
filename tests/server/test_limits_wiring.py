"""``TOLLWAY_HEADER_TIMEOUT_S`` and ``TOLLWAY_MAX_CONNECTIONS`` reach the real server."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import orjson

from tests.conftest import free_port, gateway_config, start_gateway
from tests.fakes.openai_upstream import FakeOpenAI


def _recv_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_gateway_enforces_header_deadline_and_connection_cap(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    gateway = start_gateway(
        tmp_path,
        gateway_config(fake_openai, free_port()),
        {"TOLLWAY_HEADER_TIMEOUT_S": "0.5", "TOLLWAY_MAX_CONNECTIONS": "2"},
    )
    try:
        idle = [socket.create_connection(("127.0.0.1", gateway.port), 5) for _ in range(2)]
        time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", gateway.port), 5) as third:
            third.sendall(b"GET /health/liveliness HTTP/1.1\r\nhost: t\r\n\r\n")
            reply = _recv_all(third)
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ")
        assert orjson.loads(body)["error"]["code"] == "too_many_connections"
        # The idle connections hit the header deadline and are closed without a reply ...
        started = time.monotonic()
        for sock in idle:
            assert _recv_all(sock) == b""
            sock.close()
        assert time.monotonic() - started < 5
        # ... which frees their slots.
        assert httpx.get(gateway.url + "/health/liveliness", timeout=5).status_code == 200
    finally:
        gateway.stop()

"""Fair accept (``proxy/server/accept.py``): a burst of connections is taken within a loop
turn or two, in batches, and served; accept errors for lack of descriptors pause it."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import pytest

from proxy.server import accept
from proxy.server.accept import ACCEPT_BATCH, EagerListener


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data.upper())


def _connect(port: int, count: int) -> list[socket.socket]:
    clients = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port))
        client.setblocking(False)
        clients.append(client)
    return clients


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    return sock


async def test_a_burst_of_connections_is_accepted_in_batches_within_a_few_loop_turns() -> None:
    sock = _listening()
    # 300 connections complete their handshake in the kernel's accept queue first.
    clients = await asyncio.to_thread(_connect, sock.getsockname()[1], 300)
    listener = EagerListener(sock, Echo)
    try:
        # The turn that sees the listening socket readable takes one batch at most.
        while not listener.accepted:
            await asyncio.sleep(0)
        assert listener.accepted == ACCEPT_BATCH
        for _ in range(5):
            await asyncio.sleep(0)
        assert listener.accepted == 300
        # Every one of them is served.
        loop = asyncio.get_running_loop()
        for client in clients:
            await loop.sock_sendall(client, b"hi")
        replies = [await asyncio.wait_for(loop.sock_recv(c, 10), 5) for c in clients]
        assert replies == [b"HI"] * 300
    finally:
        for client in clients:
            client.close()
        listener.close()
        await listener.wait_closed()
        sock.close()


async def test_running_out_of_descriptors_pauses_accepting_then_resumes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(accept, "ACCEPT_RETRY_S", 0.05)
    sock = _listening()
    failures = [OSError(errno.EMFILE, "Too many open files")]
    real_accept = sock.accept

    class Flaky:
        def __getattr__(self, name: str) -> Any:
            return getattr(sock, name)

        def accept(self) -> tuple[socket.socket, Any]:
            if failures:
                raise failures.pop()
            return real_accept()

    (client,) = await asyncio.to_thread(_connect, sock.getsockname()[1], 1)
    listener = EagerListener(sock, Echo)
    listener._sock = Flaky()  # type: ignore[assignment]
    try:
        for _ in range(500):  # the reader runs on a loop turn: the EMFILE pauses it
            if listener._paused:
                break
            await asyncio.sleep(0.001)
        assert listener.accepted == 0 and listener._paused
        for _ in range(500):  # and ACCEPT_RETRY_S later it accepts again
            if listener.accepted:
                break
            await asyncio.sleep(0.01)
        assert listener.accepted == 1 and not listener._paused
    finally:
        client.close()
        listener.close()
        await listener.wait_closed()
        sock.close()


async def test_after_close_nothing_more_is_accepted() -> None:
    sock = _listening()
    listener = EagerListener(sock, Echo)
    listener.close()
    (client,) = await asyncio.to_thread(_connect, sock.getsockname()[1], 1)
    try:
        await asyncio.sleep(0.05)
        assert listener.accepted == 0
    finally:
        client.close()
        sock.close()

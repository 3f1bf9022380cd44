"""A real uvicorn server with Tollway's protocol, in the test's event loop, on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from proxy.server.raw import RawProtocol
from proxy.server.uvicorn_protocol import TollwayConfig, TollwayHttpToolsProtocol


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers 200 with the request body (read whole), or 200 ``ok`` for an empty body."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        more = message.get("more_body", False)
    reply = body or b"ok"
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(reply)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": reply})


@contextlib.asynccontextmanager
async def serving(app: Any = echo_app, **config: Any) -> AsyncIterator[tuple[str, int]]:
    """Serve ``app`` on 127.0.0.1 (port 0) as the CLI does; yields (host, port)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.setblocking(False)
    protocol: type[TollwayHttpToolsProtocol] = TollwayHttpToolsProtocol
    if os.environ.get("TEST_TOLLWAY_SERVER") == "raw":  # as in ``tests/conftest.py``
        protocol = RawProtocol
    options: dict[str, Any] = {
        "http": protocol,
        "lifespan": "on",
        "log_config": None,
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 1,
        "proxy_headers": False,  # as the CLI serves
    }
    options.update(config)
    server = uvicorn.Server(TollwayConfig(app, **options))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[:2]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a content-length (status, lower-cased headers, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


class _RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 4000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


@contextlib.contextmanager
def unit_protocol(
    app: Any = echo_app, protocol: type[TollwayHttpToolsProtocol] = TollwayHttpToolsProtocol
) -> Iterator[tuple[Callable[[], bytes], Callable[[], bool], Callable[[bytes], None]]]:
    """Tollway's protocol (or ``protocol``, a subclass) on a recording transport, without a
    socket or a running loop: yields (what it wrote, whether it closed, feed bytes)."""
    loop = asyncio.new_event_loop()
    config = TollwayConfig(app, lifespan="off", log_config=None)
    protocol = protocol(config, ServerState(), {}, _loop=loop)
    transport = _RecordingTransport()
    protocol.connection_made(transport)

    def written() -> bytes:
        protocol.transport.flush()  # type: ignore[attr-defined]
        return bytes(transport.data)

    def closed() -> bool:
        return transport.closed

    try:
        yield written, closed, protocol.data_received
    finally:
        protocol.connection_lost(None)
        loop.close()

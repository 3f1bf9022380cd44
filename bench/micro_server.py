"""``bench.micro`` rows for the HTTP server layer: what Tollway's uvicorn protocol adds.

A request head is fed through the protocol callbacks the parser calls (message begin, the
target, eight typical headers), on uvicorn's stock protocol and on Tollway's, without a
socket; the difference is the per-request cost of the header deadline and the RFC 9112
checks. The last row is the cost of a transport attribute found through ``__getattr__``
(why ``CorkedTransport`` defines ``is_closing`` itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from proxy.server.uvicorn_protocol import CorkedTransport, TollwayConfig, TollwayHttpToolsProtocol

HEADERS = [
    (b"Host", b"127.0.0.1:4000"),
    (b"User-Agent", b"python-httpx/0.28"),
    (b"Accept-Encoding", b"identity"),
    (b"Accept", b"*/*"),
    (b"Connection", b"keep-alive"),
    (b"Authorization", b"Bearer sk-1234567890abcdef"),
    (b"Content-Type", b"application/json"),
    (b"Content-Length", b"400"),
]


class _Transport(asyncio.Transport):
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 4000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def is_closing(self) -> bool:
        return False


async def _app(scope: Any, receive: Any, send: Any) -> None:
    return None


def server_stages() -> list[tuple[str, str, Callable[[], object], int]]:
    loop = asyncio.new_event_loop()
    config = TollwayConfig(_app, lifespan="off", log_config=None)
    config.load()
    out: list[tuple[str, str, Callable[[], object], int]] = []
    for label, cls in (("uvicorn", HttpToolsProtocol), ("tollway", TollwayHttpToolsProtocol)):
        protocol = cls(config, ServerState(), {}, _loop=loop)
        protocol.connection_made(_Transport())

        def head(protocol: HttpToolsProtocol = protocol) -> None:
            protocol.on_message_begin()
            protocol.on_url(b"/v1/chat/completions")
            for name, value in HEADERS:
                protocol.on_header(name, value)

        out.append(("server", f"request head callbacks, 8 headers ({label} protocol)", head, 1))
    corked = CorkedTransport(_Transport(), loop)
    out.append(("server", "CorkedTransport.is_closing()", corked.is_closing, 1))
    out.append(("server", "an attribute through __getattr__", lambda: corked.get_extra_info, 1))
    return out

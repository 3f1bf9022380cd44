"""The server protocol releases a reset connection at once (no pending keep-alive timer)."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from proxy.server.uvicorn_protocol import CorkedTransport, TollwayHttpToolsProtocol


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 4000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _pending_timer(protocol: HttpToolsProtocol) -> asyncio.TimerHandle | None:
    """The timer holding the connection: uvicorn's keep-alive timer, or Tollway's one timer
    for its header and keep-alive deadlines."""
    if isinstance(protocol, TollwayHttpToolsProtocol):
        return protocol._timer
    return protocol.timeout_keep_alive_task


async def _reset_after_a_reply(protocol_class: type[HttpToolsProtocol]) -> HttpToolsProtocol:
    config = Config(_app, lifespan="off", log_config=None, timeout_keep_alive=30)
    protocol = protocol_class(config, ServerState(), {})
    protocol.connection_made(_Transport())
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    for _ in range(5):
        await asyncio.sleep(0)  # let the app answer; the keep-alive deadline is then set
    assert _pending_timer(protocol) is not None
    protocol.connection_lost(ConnectionResetError("reset by peer"))
    return protocol


async def test_reset_connection_leaves_no_keepalive_timer_holding_it() -> None:
    protocol = await _reset_after_a_reply(TollwayHttpToolsProtocol)
    assert _pending_timer(protocol) is None
    assert protocol.timeout_keep_alive_task is None  # uvicorn's own is never armed


async def test_stock_protocol_keeps_the_timer_which_is_the_leak_being_fixed() -> None:
    protocol = await _reset_after_a_reply(HttpToolsProtocol)
    assert protocol.timeout_keep_alive_task is not None
    protocol.timeout_keep_alive_task.cancel()


class _Recorder(_Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))


async def test_writes_of_one_loop_iteration_go_out_as_one() -> None:
    inner = _Recorder()
    corked = CorkedTransport(inner, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    corked.write(b"body")
    assert inner.writes == []
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    corked.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[-1] == b"next"


async def test_close_sends_what_was_gathered_first() -> None:
    inner = _Recorder()
    corked = CorkedTransport(inner, asyncio.get_running_loop())
    corked.write(b"last bytes")
    corked.close()
    assert inner.writes == [b"last bytes"]
    assert inner.closed
    await asyncio.sleep(0)
    assert inner.writes == [b"last bytes"], "nothing is written after close"

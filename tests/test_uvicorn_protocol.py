"""The server protocol releases a reset connection at once (no pending keep-alive timer)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from proxy.server.uvicorn_protocol import CorkedTransport, TollwayHttpToolsProtocol
from tests.server.serving import serving


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


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_complete_reply_is_on_the_wire_before_the_app_goes_on(chunked: bool) -> None:
    """The last ``send`` of a reply writes it at once: work the app does after it (settling a
    stream, the spend log) is not the client's wait, as it was when the corked transport
    only wrote at the end of the loop turn."""
    loop = asyncio.get_running_loop()
    client = socket.socket()
    client.setblocking(False)
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        headers = [] if chunked else [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok", "more_body": chunked})
        if chunked:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        # No await since the last send: the reply is in the client's socket or it is not.
        try:
            seen.append(client.recv(65536))
        except BlockingIOError:
            seen.append(b"")

    # As the CLI serves: no access log (with one, uvicorn's own cycle answers).
    async with serving(app, lifespan="off", access_log=False) as (host, port):
        await loop.sock_connect(client, (host, port))
        await loop.sock_sendall(client, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        async with asyncio.timeout(5):
            while not seen:
                await asyncio.sleep(0.01)
        client.close()
    assert seen[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert seen[0].endswith(b"2\r\nok\r\n0\r\n\r\n" if chunked else b"\r\n\r\nok")


async def test_with_another_request_in_flight_replies_wait_for_the_end_of_the_loop_turn() -> None:
    """Under load the replies of one loop turn go out together (and the clients' next
    requests come back together); only a request alone in flight is written at once."""
    loop = asyncio.get_running_loop()
    holder, other = socket.socket(), socket.socket()
    for sock in (holder, other):
        sock.setblocking(False)
    release = asyncio.Event()
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if scope["path"] == "/hold":
            await release.wait()
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
        if scope["path"] == "/now":
            try:
                seen.append(other.recv(65536))
            except BlockingIOError:
                seen.append(b"")
            release.set()

    async with serving(app, lifespan="off", access_log=False) as (host, port):
        await loop.sock_connect(holder, (host, port))
        await loop.sock_connect(other, (host, port))
        await loop.sock_sendall(holder, b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.sleep(0.05)  # /hold is in flight, waiting
        await loop.sock_sendall(other, b"GET /now HTTP/1.1\r\nHost: t\r\n\r\n")
        async with asyncio.timeout(5):
            while not seen:
                await asyncio.sleep(0.01)
            reply = await loop.sock_recv(other, 65536)
            held = await loop.sock_recv(holder, 65536)
        holder.close()
        other.close()
    assert seen == [b""], "written before the loop turn ended, with another request in flight"
    assert reply.endswith(b"\r\n\r\nok") and held.endswith(b"\r\n\r\nok")

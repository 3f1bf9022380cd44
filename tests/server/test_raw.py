"""``TOLLWAY_SERVER=raw``: which requests take the short path, and that it frames, keeps
alive, times out and shuts down as uvicorn's cycle does (``proxy/server/raw.py``).

The RFC 9112 hazards run on both servers in ``tests/http_hazards``; the gateway's own tests
run on it with ``TEST_TOLLWAY_SERVER=raw``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from proxy.server.raw import RawCycle, RawProtocol
from proxy.server.settings import resolve
from proxy.server.uvicorn_protocol import TollwayHttpToolsProtocol
from tests.server.serving import read_reply, serving

H = b"Host: t\r\n"


class ShortApp:
    """Offers ``/fast`` to the short path; records which path served each request."""

    def __init__(self, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.cycles: list[str] = []
        self.headers = headers
        self.release = asyncio.Event()
        self.release.set()

    def fast_route(self, path: str) -> ShortApp | None:
        return self if path == "/fast" else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        short = isinstance(getattr(send, "__self__", None), RawCycle)
        self.cycles.append("short" if short else "uvicorn")
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if body == b"stream":
            # No length: chunked, each part as it comes.
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"one", "more_body": True})
            await self.release.wait()
            await send({"type": "http.response.body", "body": b"two", "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        reply = body or b"ok"
        headers = self.headers or [(b"content-length", str(len(reply)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": reply})


async def _ask(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


def test_tollway_server_raw_is_a_setting() -> None:
    assert resolve({}, {"TOLLWAY_SERVER": "raw"}, None).server == "raw"


@pytest.mark.parametrize(
    ("request_bytes", "cycle"),
    [
        pytest.param(b"POST /fast HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi", "short"),
        pytest.param(
            b"POST /fast?x=1 HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi",
            "uvicorn",
            id="query-string",
        ),
        pytest.param(
            b"POST /f%61st HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi",
            "uvicorn",
            id="percent-escape",
        ),
        pytest.param(b"GET /fast HTTP/1.1\r\n" + H + b"\r\n", "uvicorn", id="get"),
        pytest.param(
            b"POST /other HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi",
            "uvicorn",
            id="other-path",
        ),
        pytest.param(
            b"POST /fast HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
            "uvicorn",
            id="http-1.0",
        ),
        pytest.param(
            b"POST /fast HTTP/1.1\r\n" + H + b"Connection: close\r\nContent-Length: 2\r\n\r\nhi",
            "uvicorn",
            id="connection-close",
        ),
    ],
)
async def test_only_plain_keep_alive_posts_to_an_offered_path_take_the_short_path(
    request_bytes: bytes, cycle: str
) -> None:
    app = ShortApp()
    async with serving(app, lifespan="off", http=RawProtocol) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes)
        status, _, _ = await asyncio.wait_for(read_reply(reader), 5)
        writer.close()
    assert status == 200
    assert app.cycles == [cycle]


async def test_expect_continue_is_left_to_uvicorns_cycle() -> None:
    app = ShortApp()
    async with serving(app, lifespan="off", http=RawProtocol) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /fast HTTP/1.1\r\n" + H + b"Content-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == (
            b"HTTP/1.1 100 Continue\r\n\r\n"
        )
        writer.write(b"hi")
        status, _, body = await asyncio.wait_for(read_reply(reader), 5)
        writer.close()
    assert (status, body) == (200, b"hi")
    assert app.cycles == ["uvicorn"]


@pytest.mark.parametrize(
    "protocol", [TollwayHttpToolsProtocol, RawProtocol], ids=["uvicorn", "raw"]
)
async def test_a_streamed_reply_is_chunked_and_the_connection_kept_alive(protocol: Any) -> None:
    app = ShortApp()
    async with serving(app, lifespan="off", http=protocol) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /fast HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n\r\nstream")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        chunks = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
        writer.write(b"POST /fast HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nagain")
        status, _, body = await asyncio.wait_for(read_reply(reader), 5)
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked\r\n" in head
    assert b"connection" not in head
    assert chunks == b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n"
    assert (status, body) == (200, b"again")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([(b"x-a", b"1\r\nx-injected: 1"), (b"content-length", b"2")], id="crlf-value"),
        pytest.param([(b"x a", b"1"), (b"content-length", b"2")], id="space-in-name"),
        pytest.param([(b"x-a", b"bare\nlf"), (b"content-length", b"2")], id="lf-value"),
    ],
)
@pytest.mark.parametrize(
    "protocol", [TollwayHttpToolsProtocol, RawProtocol], ids=["uvicorn", "raw"]
)
async def test_a_reply_header_that_could_split_the_response_is_never_written(
    protocol: Any, headers: list[tuple[bytes, bytes]]
) -> None:
    app = ShortApp(headers)
    async with serving(app, lifespan="off", http=protocol) as (_, port):
        received = await _ask(port, b"POST /fast HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi")
    # The app failed after its reply started: the connection is closed, nothing written.
    assert received == b""


async def test_known_reply_headers_are_written_as_given() -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"x-tollway-call-id", b"abc"),
        (b"X-Custom", b"v\twith tab"),
        (b"content-length", b"2"),
    ]
    app = ShortApp(headers)
    async with serving(app, lifespan="off", http=RawProtocol) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /fast HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.close()
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert lines[1].startswith(b"date: ")  # uvicorn's default headers come first
    assert lines[-6:-2] == [
        b"content-type: application/json",
        b"x-tollway-call-id: abc",
        b"x-custom: v\twith tab",
        b"content-length: 2",
    ]
    assert app.cycles == ["short"]


async def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout() -> None:
    app = ShortApp()
    async with serving(app, lifespan="off", http=RawProtocol, timeout_keep_alive=0.3) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            writer.write(b"POST /fast HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi")
            assert (await asyncio.wait_for(read_reply(reader), 5))[0] == 200
            await asyncio.sleep(0.15)  # less than the timeout: each request pushes it on
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        waited = asyncio.get_running_loop().time() - started
        writer.close()
    assert 0.05 < waited < 2
    assert app.cycles == ["short"] * 3


async def test_shutdown_lets_a_short_path_stream_finish_and_closes_after_it() -> None:
    app = ShortApp()
    app.release.clear()
    async with serving(app, lifespan="off", http=RawProtocol) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /fast HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n\r\nstream")
        await asyncio.wait_for(reader.readuntil(b"3\r\none\r\n"), 5)
        # Leaving ``serving`` starts the graceful shutdown while the stream is open.
        asyncio.get_running_loop().call_later(0.2, app.release.set)
    rest = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert rest == b"3\r\ntwo\r\n0\r\n\r\n"
    assert app.cycles == ["short"]


def test_raw_cycle_is_uvicorns_cycle() -> None:
    # The protocol's own code (pipelining, half-close, shutdown) reads the cycle's fields.
    assert issubclass(
        RawCycle, __import__("uvicorn").protocols.http.httptools_impl.RequestResponseCycle
    )


class WatchingApp:
    """Streams until the client goes away, learning it from the cycle's disconnect hook."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()
        self.hooked: list[bool] = []
        self.late: list[bool] = []  # whether a watcher set after the disconnect was called
        self.done = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        try:
            watch = getattr(getattr(receive, "__self__", None), "watch_disconnect", None)
            self.hooked.append(watch is not None)
            if watch is None:
                return
            watch(self.gone.set)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"one", "more_body": True})
            await asyncio.wait_for(self.gone.wait(), 5)
            # Already gone: a late watcher is called at once.
            late = asyncio.Event()
            watch(late.set)
            self.late.append(late.is_set())
        finally:
            self.done.set()


@pytest.mark.parametrize(
    "protocol", [TollwayHttpToolsProtocol, RawProtocol], ids=["uvicorn", "raw"]
)
async def test_a_streaming_reply_learns_of_the_disconnect_from_the_cycle_hook(
    protocol: type,
) -> None:
    app = WatchingApp()
    async with serving(app, lifespan="off", http=protocol, access_log=False) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi")
        await asyncio.wait_for(reader.readuntil(b"one"), 5)
        writer.close()
        await asyncio.wait_for(app.done.wait(), 5)
    assert app.hooked == [True]
    assert app.late == [True]

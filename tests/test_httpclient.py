"""The lean upstream client against raw HTTP servers on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from proxy.errors import UpstreamTimeout, UpstreamUnreachable
from proxy.upstream.lean import LeanTransport, transport_kind
from proxy.upstream.transport import Deadlines

DEADLINES = Deadlines(connect=1.0, read=1.0)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    """A server whose handler writes raw bytes; counts connections and requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests = 0
        self.bodies: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.bodies.append(await reader.readexactly(length))
                self.requests += 1
                await self.handler(reader, writer, self.requests)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def start(handler: Handler) -> RawServer:
        raw = RawServer(handler)
        raw.server = await asyncio.start_server(raw._serve, "127.0.0.1", 0)
        servers.append(raw)
        return raw

    yield start
    for raw in servers:
        assert raw.server is not None
        raw.server.close()
        await raw.server.wait_closed()


@pytest.fixture
async def transport() -> AsyncIterator[LeanTransport]:
    client = LeanTransport(pool_size=8)
    yield client
    await client.close()


def json_reply(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"\r\n"
        + body
    )


async def answer_json(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
    writer.write(json_reply(b'{"n": %d}' % n))
    await writer.drain()


async def test_json_reply_is_read_and_the_connection_is_reused(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: LeanTransport
) -> None:
    server = await serve(answer_json)
    for n in (1, 2, 3):
        resp = await transport.post(server.url, b'{"x": 1}', {"x-test": "yes"}, DEADLINES)
        assert resp.status == 200
        assert resp.header("Content-Type") == "application/json"
        assert await resp.read() == b'{"n": %d}' % n
    assert server.connections == 1
    assert server.bodies == [b'{"x": 1}'] * 3


async def test_chunked_stream_chunks_arrive_before_the_stream_ends(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: LeanTransport
) -> None:
    release = asyncio.Event()

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        writer.write(b"9\r\ndata: a\n\n\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"9\r\ndata: b\n\n\r\n0\r\n\r\n")
        await writer.drain()

    server = await serve(stream)
    resp = await transport.post(server.url, b"{}", {}, DEADLINES)
    chunks = resp.iter_chunks()
    assert await anext(chunks) == b"data: a\n\n"
    release.set()
    assert [c async for c in chunks] == [b"data: b\n\n"]
    again = await transport.post(server.url, b"{}", {}, DEADLINES)
    assert again.status == 200
    again.close()
    assert server.connections == 1, "a fully read chunked reply leaves the connection reusable"


async def test_keepalive_connection_closed_by_the_server_is_retried_on_a_fresh_one(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: LeanTransport
) -> None:
    async def first_only(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        if n == 2:
            writer.close()  # the request was read but never answered: a stale keep-alive
            return
        await answer_json(reader, writer, n)

    server = await serve(first_only)
    first = await transport.post(server.url, b"{}", {}, DEADLINES)
    assert await first.read() == b'{"n": 1}'
    second = await transport.post(server.url, b"{}", {}, DEADLINES)
    assert await second.read() == b'{"n": 3}'
    assert server.connections == 2


async def test_refused_connection_is_unreachable(transport: LeanTransport) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(UpstreamUnreachable):
        await transport.post(f"http://127.0.0.1:{port}/v1/x", b"{}", {}, DEADLINES)


async def test_no_headers_within_the_read_deadline_is_a_timeout(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: LeanTransport
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await asyncio.sleep(5)

    server = await serve(silent)
    with pytest.raises(UpstreamTimeout):
        await transport.post(server.url, b"{}", {}, Deadlines(connect=1, read=0.2))


async def test_stall_between_chunks_is_a_timeout(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: LeanTransport
) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    server = await serve(stall)
    resp = await transport.post(server.url, b"{}", {}, Deadlines(connect=1, read=0.2))
    chunks = resp.iter_chunks()
    assert await anext(chunks) == b"abc"
    with pytest.raises(UpstreamTimeout):
        await anext(chunks)


async def test_connection_dropped_mid_body_is_an_error_not_a_short_body(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: LeanTransport
) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()
        writer.close()

    server = await serve(drop)
    resp = await transport.post(server.url, b"{}", {}, DEADLINES)
    with pytest.raises(UpstreamUnreachable):
        await resp.read()


async def test_body_delimited_by_connection_close_is_read_whole(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: LeanTransport
) -> None:
    async def eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil-eof")
        await writer.drain()
        writer.close()

    server = await serve(eof)
    resp = await transport.post(server.url, b"{}", {}, DEADLINES)
    assert await resp.read() == b"until-eof"


async def test_closing_a_half_read_reply_closes_the_upstream_connection(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: LeanTransport
) -> None:
    gone = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            while True:
                writer.write(b"4\r\ntick\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
        except ConnectionError:
            gone.set()

    server = await serve(endless)
    resp = await transport.post(server.url, b"{}", {}, DEADLINES)
    chunks = resp.iter_chunks()
    await anext(chunks)
    resp.close()
    await asyncio.wait_for(gone.wait(), 2)


async def test_large_body_survives_flow_control(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: LeanTransport
) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(json_reply(payload))
        await writer.drain()

    server = await serve(big)
    resp = await transport.post(server.url, b"{}", {}, DEADLINES)
    chunks = resp.iter_chunks()
    await asyncio.sleep(0.2)  # let the socket fill past the high-water mark
    received = b"".join([c async for c in chunks])
    assert received == payload


@pytest.mark.parametrize(
    ("configured", "environ", "expected"),
    [
        pytest.param("lean", {}, "lean", id="default"),
        pytest.param("aiohttp", {}, "aiohttp", id="asked"),
        pytest.param("lean", {"HTTPS_PROXY": "http://proxy:3128"}, "aiohttp", id="proxy-env"),
    ],
)
def test_transport_choice(configured: str, environ: dict[str, str], expected: str) -> None:
    assert transport_kind(configured, environ) == expected

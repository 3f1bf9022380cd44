"""HTTP/1.1 parsing hazards, each answered as RFC 9112 says, over raw sockets.

Every server Tollway can run its inference routes on is listed in ``SERVERS`` and must pass
the same table: a purpose-built HTTP path would be added there and answer identically.
A refused request never reaches the app, is answered once (the error contract's body,
``connection: close``) and the connection is closed, so bytes smuggled after it are never
read as a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from proxy.server.raw import RawProtocol
from proxy.server.uvicorn_protocol import TollwayHttpToolsProtocol
from tests.server.serving import read_reply, serving, unit_protocol


class Recorder:
    """An app that answers 200 with what it saw: method, path, headers and body."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the request never completed: nothing was served
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.calls.append(scope["path"])
        headers = {name.decode(): value.decode() for name, value in scope["headers"]}
        out = orjson.dumps({"path": scope["path"], "headers": headers, "body": body.decode()})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(out)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": out})


class FastRecorder(Recorder):
    """The same app, offering every path to ``RawProtocol``'s short path (as the gateway
    offers its inference routes), so each hazard below reaches the short path's code."""

    def fast_route(self, path: str) -> Recorder:
        return self


# name: (protocol class, app class)
SERVERS = {
    "uvicorn": (TollwayHttpToolsProtocol, Recorder),
    "raw": (RawProtocol, FastRecorder),
}


@pytest.fixture(params=list(SERVERS))
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, int, Recorder]]:
    protocol, kind = SERVERS[request.param]
    app = kind()
    # As the CLI serves (no proxy-headers layer between the protocol and the app).
    options = {"lifespan": "off", "header_timeout_s": 5, "proxy_headers": False}
    async with serving(app, http=protocol, **options) as (host, port):
        yield host, port, app


async def _exchange(host: str, port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Send ``data`` (then EOF, if ``half_close``) and read until the server closes."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    if half_close:
        writer.write_eof()
    try:
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


async def _replies(
    host: str, port: int, data: bytes, count: int = 1
) -> list[tuple[int, dict[str, str], bytes]]:
    """Send ``data`` and read ``count`` content-length replies (5 s for each)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    answers = [await asyncio.wait_for(read_reply(reader), 5) for _ in range(count)]
    writer.close()
    return answers


H = b"Host: t\r\n"
POST = b"POST / HTTP/1.1\r\n" + H
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"

REFUSED = [
    pytest.param(
        POST + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        (400,),
        id="content-length-and-transfer-encoding",
    ),
    pytest.param(
        POST + b"Content-Length: 4\r\nContent-Length: 40\r\n\r\nabcd" + SMUGGLED,
        (400,),
        id="two-content-lengths",
    ),
    pytest.param(POST + b"Content-Length: 4, 40\r\n\r\nabcd", (400,), id="content-length-list"),
    pytest.param(POST + b"Content-Length: +4\r\n\r\nabcd", (400,), id="content-length-with-sign"),
    pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: one\r\n two\r\n\r\n", (400,), id="obs-fold"),
    pytest.param(b"GET / HTTP/1.1\rHost: t\r\n\r\n", (400,), id="bare-cr"),
    pytest.param(
        b"GET / HTTP/1.1\n" + b"Host: t\n\n" + SMUGGLED, (400,), id="bare-lf-line-endings"
    ),
    pytest.param(CHUNKED + b"zz\r\nabc\r\n0\r\n\r\n", (400,), id="chunk-size-not-hex"),
    pytest.param(
        CHUNKED + b"1000000000000000000\r\nabc\r\n0\r\n\r\n", (400,), id="chunk-size-overflow"
    ),
    pytest.param(CHUNKED + b"-3\r\nabc\r\n0\r\n\r\n", (400,), id="chunk-size-negative"),
    pytest.param(CHUNKED + b"3\nabc\n0\n\n", (400,), id="chunk-bare-lf"),
    pytest.param(
        POST + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        (400,),
        id="chunked-not-last",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        (400, 501),
        id="unknown-transfer-coding",
    ),
    pytest.param(
        b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        (400,),
        id="transfer-encoding-in-http-1.0",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", (400,), id="space-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\n Host: t\r\n\r\n", (400,), id="leading-whitespace-line"),
    pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", (400,), id="nul-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", (400,), id="no-host"),
    pytest.param(b"GET / HTTP/1.1\r\n" + H + b"Host: u\r\n\r\n", (400,), id="two-hosts"),
    pytest.param(b"GARBAGE\r\n\r\n", (400,), id="malformed-request-line"),
    pytest.param(b"GET / HTTP/2.0\r\n" + H + b"\r\n", (505,), id="http-2.0-request-line"),
    pytest.param(b"GET / HTTP/9.9\r\n" + H + b"\r\n", (400, 505), id="unknown-major-version"),
    pytest.param(
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n" + H + b"\r\n", (414,), id="oversized-target"
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 200_000 + b"\r\n\r\n",
        (431,),
        id="oversized-header",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: a\r\n" % i for i in range(5000)) + b"\r\n",
        (431,),
        id="too-many-headers",
    ),
]


@pytest.mark.parametrize(("request_bytes", "statuses"), REFUSED)
async def test_hazard_is_refused_once_and_the_connection_closed(
    server: tuple[str, int, Recorder], request_bytes: bytes, statuses: tuple[int, ...]
) -> None:
    host, port, app = server
    received = await _exchange(host, port, request_bytes)
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert status in statuses, head
    assert b"\r\nconnection: close" in head.lower()
    error = orjson.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert len(body) == length, "one answer; nothing after it was read"
    assert app.calls == []


@pytest.mark.parametrize("protocol", [SERVERS[name][0] for name in SERVERS], ids=list(SERVERS))
def test_an_unending_header_line_is_cut_off_without_buffering_it_whole(protocol: Any) -> None:
    # The parser keeps an unfinished field in memory: the server must stop reading one long
    # before the client stops sending. Fed directly, so the count of bytes is exact.
    with unit_protocol(protocol=protocol) as (written, closed, feed):
        feed(b"GET / HTTP/1.1\r\nHost: t\r\nX-Endless: ")
        sent = 0
        while not closed() and sent < 16 * 1024 * 1024:
            feed(b"a" * 65536)
            sent += 65536
        assert closed()
        assert sent <= 512 * 1024
        assert written().startswith(b"HTTP/1.1 431 ")


ALLOWED = [
    pytest.param(b"GET /x HTTP/1.1\r\n" + H + b"X-A: a\tb\r\n\r\n", id="tab-in-value"),
    pytest.param(b"GET http://t/x HTTP/1.1\r\n" + H + b"\r\n", id="absolute-form"),
    pytest.param(
        b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n",
        id="chunk-extension-and-trailer",
    ),
    pytest.param(b"GET /x HTTP/1.0\r\n\r\n", id="http-1.0-without-host"),
]


@pytest.mark.parametrize("request_bytes", ALLOWED)
async def test_valid_edge_cases_are_served(
    server: tuple[str, int, Recorder], request_bytes: bytes
) -> None:
    host, port, _app = server
    [(status, _, body)] = await _replies(host, port, request_bytes)
    assert status == 200
    assert orjson.loads(body)["path"] == "/x"


async def test_pipelined_requests_are_answered_in_order(
    server: tuple[str, int, Recorder],
) -> None:
    host, port, app = server
    pipelined = (
        b"POST /1 HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\none"
        b"GET /2 HTTP/1.1\r\n" + H + b"\r\n"
        b"POST /3 HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nthree\r\n0\r\n\r\n"
    )
    answers = await _replies(host, port, pipelined, 3)
    assert [orjson.loads(body)["path"] for _, _, body in answers] == ["/1", "/2", "/3"]
    assert orjson.loads(answers[2][2])["body"] == "three"
    assert app.calls == ["/1", "/2", "/3"]


async def test_expect_100_continue_gets_an_interim_answer_before_the_body(
    server: tuple[str, int, Recorder],
) -> None:
    host, port, _ = server
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    status, _, body = await asyncio.wait_for(read_reply(reader), 5)
    writer.close()
    assert status == 200
    assert orjson.loads(body)["body"] == "hello"


async def test_a_half_closed_connection_still_gets_its_answer(
    server: tuple[str, int, Recorder],
) -> None:
    host, port, _ = server
    received = await _exchange(
        host, port, b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc", half_close=True
    )
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.endswith(b'"body":"abc"}')


async def test_a_half_closed_unfinished_request_is_dropped(
    server: tuple[str, int, Recorder],
) -> None:
    host, port, app = server
    received = await _exchange(
        host, port, b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\nabc", half_close=True
    )
    assert received == b""
    assert app.calls == []

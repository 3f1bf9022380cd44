"""A fast fake OpenAI upstream: raw asyncio ``Protocol`` on uvloop, no framework.

It must cost as little as possible so that a benchmark measures the gateway, not this server.
HTTP/1.1 keep-alive with a minimal parser: the request line, the headers (only
``Content-Length`` and ``Connection`` are read) and a ``Content-Length`` body.

``POST /v1/chat/completions`` answers a fixed ``chat.completion`` with usage; a body containing
``"stream":true`` is answered as SSE in chunked transfer encoding: N content chunks, a usage
chunk when the body mentions ``include_usage``, then ``data: [DONE]``. N is ``--chunks``, or
the number in a ``"user":"bench-chunks-N"`` field (the scaling rows' streams of 20, 200 and
2,000 events; each count is rendered once, on first use).

It is also the telemetry receiver of the ``observe`` feature (bench/run.py), answering at once
without looking at the body: ``POST /v1/traces`` (OTLP/HTTP) → 200 with an empty
``application/x-protobuf`` body (an empty ``ExportTraceServiceResponse``: all accepted) and
``POST /webhook`` (the generic webhook sink) → 200 ``{}``. Any other path is a 404.

    python -m bench.upstream --port 0 [--chunks 8] [--delay-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from typing import cast

import orjson

_CREATED = 1_700_000_000
_STREAM_MARKER = re.compile(rb'"stream"\s*:\s*true')
_CHUNKS_MARKER = re.compile(rb'"user"\s*:\s*"bench-chunks-(\d{1,5})"')
_HEADER_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024
# The telemetry receiver's routes (the ``observe`` feature's OTLP and webhook endpoints).
OTLP_TRACES_PATH = b"/v1/traces"
WEBHOOK_PATH = b"/webhook"


def _completion_body() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": _CREATED,
            "model": "bench-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
        }
    )


def _chunk(delta: dict[str, str], finish: str | None) -> dict[str, object]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _sse_events(chunks: int, with_usage: bool) -> list[bytes]:
    events = []
    for i in range(chunks):
        delta = {"role": "assistant", "content": "tok "} if i == 0 else {"content": "tok "}
        finish = "stop" if i == chunks - 1 else None
        events.append(b"data: " + orjson.dumps(_chunk(delta, finish)) + b"\n\n")
    if with_usage:
        usage = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": "bench-model",
            "choices": [],
            "usage": {
                "prompt_tokens": 20,
                "completion_tokens": chunks,
                "total_tokens": 20 + chunks,
            },
        }
        events.append(b"data: " + orjson.dumps(usage) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def _chunked(events: list[bytes]) -> bytes:
    # Each event is its own HTTP chunk, as a real upstream would flush it; all are written in
    # one go (the bench measures relay cost, not token pacing).
    out = b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events)
    return out + b"0\r\n\r\n"


class Responses:
    """Every answer pre-rendered once: the hot path only picks bytes and writes them."""

    def __init__(self, chunks: int) -> None:
        body = _completion_body()
        self.json = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        stream_head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        self.stream_head = stream_head
        self.stream = stream_head + _chunked(_sse_events(chunks, with_usage=False))
        self.stream_usage = stream_head + _chunked(_sse_events(chunks, with_usage=True))
        # (chunks, with usage) -> the whole stream, for requests that ask for a count.
        self.sized: dict[tuple[int, bool], bytes] = {}
        self.otlp = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
        )
        self.webhook = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        )
        not_found = b'{"error":{"message":"not found","type":"not_found"}}'
        self.not_found = (
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(not_found), not_found)
        )

    def pick(self, method: bytes, path: bytes, body: bytes) -> bytes:
        if method != b"POST":
            return self.not_found
        if not path.startswith(b"/v1/chat/completions"):
            if path == OTLP_TRACES_PATH:
                return self.otlp
            if path == WEBHOOK_PATH:
                return self.webhook
            return self.not_found
        if _STREAM_MARKER.search(body):
            usage = b"include_usage" in body
            sized = _CHUNKS_MARKER.search(body) if b"bench-chunks-" in body else None
            if sized is not None:
                key = (max(1, int(sized.group(1))), usage)
                stream = self.sized.get(key)
                if stream is None:
                    stream = self.sized[key] = self.stream_head + _chunked(_sse_events(*key))
                return stream
            return self.stream_usage if usage else self.stream
        return self.json


class UpstreamProtocol(asyncio.Protocol):
    __slots__ = ("_buffer", "_delay", "_loop", "_responses", "_transport")

    def __init__(self, responses: Responses, delay_s: float) -> None:
        self._responses = responses
        self._delay = delay_s
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport (and set TCP_NODELAY already).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        # Pipelined requests are answered in order, one per complete head + body.
        while True:
            head_end = buffer.find(_HEADER_END)
            if head_end < 0:
                if len(buffer) > _MAX_HEAD:
                    self._close()
                    return
                break
            head = buffer[:head_end]
            length, close = _content_length(head)
            body_start = head_end + 4
            if len(buffer) - body_start < length:
                break
            body = buffer[body_start : body_start + length]
            buffer = buffer[body_start + length :]
            request_line = head.split(b"\r\n", 1)[0].split(b" ")
            if len(request_line) < 2:
                self._close()
                return
            self._answer(self._responses.pick(request_line[0], request_line[1], body), close)
            if close:
                buffer = b""
                break
        self._buffer = buffer

    def _answer(self, response: bytes, close: bool) -> None:
        if self._delay:
            self._loop.call_later(self._delay, self._write, response, close)
        else:
            self._write(response, close)

    def _write(self, response: bytes, close: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(response)
        if close:
            transport.close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


def _content_length(head: bytes) -> tuple[int, bool]:
    length = 0
    close = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip() or 0)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    return length, close


async def serve(host: str, port: int, chunks: int, delay_ms: float) -> None:
    loop = asyncio.get_running_loop()
    responses = Responses(chunks)
    delay_s = delay_ms / 1000.0
    server = await loop.create_server(
        lambda: UpstreamProtocol(responses, delay_s), host, port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()
    # The runner reads this first line to learn the port chosen for --port 0.
    print(f"upstream listening on http://{bound[0]}:{bound[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.upstream", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--chunks", type=int, default=int(os.environ.get("BENCH_UPSTREAM_CHUNKS", "8"))
    )
    parser.add_argument(
        "--delay-ms", type=float, default=float(os.environ.get("BENCH_UPSTREAM_DELAY_MS", "0"))
    )
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a gateway dependency on Linux
        print("uvloop not available; using the default asyncio loop", file=sys.stderr)
        asyncio.run(serve(args.host, args.port, args.chunks, args.delay_ms))
    else:
        uvloop.run(serve(args.host, args.port, args.chunks, args.delay_ms))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)

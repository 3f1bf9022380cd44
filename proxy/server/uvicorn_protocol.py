"""uvicorn's httptools protocol, hardened and leaner.

1. uvicorn cancels a connection's keep-alive timer in ``connection_lost`` only when the
   connection closed cleanly. A client that resets the connection (an aborted stream, a load
   balancer) leaves the timer pending, and the timer keeps the whole connection — protocol,
   request cycle, headers — alive until it fires. The soak run showed thousands of dead
   connections held that way and RSS climbing with the abort rate.

2. uvicorn writes the status line and headers on ``http.response.start`` and the body on
   each ``http.response.body``: at least two ``send`` syscalls per reply, and on loopback a
   syscall costs as much as a third of the gateway's own work for a request. Writes made in
   the same event-loop iteration are gathered and sent as one, at the end of that iteration
   (``call_soon``), so a whole small reply — or a stream's headers and first events — goes
   out in one syscall and no byte waits longer than the current iteration.

3. uvicorn has no deadline for a request's headers: a client that opens a connection and
   trickles header bytes (slowloris) holds it forever. Each request's headers must be
   complete within ``TOLLWAY_HEADER_TIMEOUT_S`` of the connection opening or of the
   request's first byte; otherwise the connection is closed (with a 408 when part of a
   request had arrived).

4. Requests that RFC 9112 says to refuse are refused before the app sees them, with the
   error contract's body, and the connection is closed (``limits.py`` lists the cases).

5. ``TOLLWAY_MAX_CONNECTIONS``: a connection accepted beyond the limit is answered 503
   (the error contract's body, ``connection: close``, ``retry-after: 1``) and closed, so an
   overload turns away the newest clients instead of slowing every client down. The
   decision is made once per connection, when it opens: a connection that was let in is
   never refused a later request because others arrived meanwhile (uvicorn's own
   ``limit_concurrency`` re-checks on every request and counts tasks too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr

from ..errors import TollwayError
from .expect import ExpectAware, close_delimited
from .limits import (
    BAD_REQUEST,
    HEADER_TIMEOUT,
    MAX_HEADER_BYTES,
    MAX_HEADER_FIELDS,
    MAX_TARGET_BYTES,
    Refused,
    refusal,
)

DEFAULT_HEADER_TIMEOUT_S = 10.0

Message = MutableMapping[str, Any]


class TollwayConfig(uvicorn.Config):
    """uvicorn's config plus the header deadline (a module-level class, so it pickles into
    worker processes); the connection limit is uvicorn's ``limit_concurrency`` field."""

    def __init__(
        self, *args: Any, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s


class CorkedTransport:
    """Wraps a transport: ``write`` gathers until the loop iteration ends, then flushes once."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pending = self._pending
        if pending is None:
            self._pending = [bytes(data)]
            self._loop.call_soon(self._flush)
        else:
            pending.append(bytes(data))

    def flush(self) -> None:
        """Send what was gathered now (before the transport closes on its own)."""
        self._flush()

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def is_closing(self) -> bool:
        # Asked at least twice per request: a method, not the ``__getattr__`` fallback.
        return self._transport.is_closing()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _over_capacity_reply() -> tuple[bytes, list[tuple[bytes, bytes]]]:
    error = TollwayError(
        "the gateway is at its connection limit (TOLLWAY_MAX_CONNECTIONS); retry shortly",
        code="too_many_connections",
    )
    error.status = 503
    error.type = "service_unavailable"
    body = error.body()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]
    return body, headers


_OVER_CAPACITY_BODY, _OVER_CAPACITY_HEADERS = _over_capacity_reply()


async def over_capacity(scope: Any, receive: Any, send: Any) -> None:
    """The app of a connection accepted beyond the limit: one 503, then the close."""
    await send({"type": "http.response.start", "status": 503, "headers": _OVER_CAPACITY_HEADERS})
    await send({"type": "http.response.body", "body": _OVER_CAPACITY_BODY})


# Bytes of an unfinished head beyond which the connection is refused even before the
# parser reports a field: one field can be sent without end, and the parser buffers it.
_HEAD_BYTES_GUARD = MAX_HEADER_BYTES + 256 * 1024


# How long a refused connection is kept reading (and discarding) after our FIN.
_LINGER_S = 1.0


class RawCycle(RequestResponseCycle):
    """uvicorn's request cycle with a leaner ``send``: the same framing decisions and checks.

    ``watch_disconnect(callback)`` has ``callback`` called when the client goes away before
    the reply is complete: a streaming reply learns it without a task waiting on
    ``receive`` per request (the app finds the method on ``receive.__self__``).
    """

    # Set per cycle by ``watch_disconnect``; a class default costs the common cycle nothing.
    gone: Callable[[], None] | None = None

    def watch_disconnect(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` once when the client disconnects (now, if it already has);
        ``None`` stops watching."""
        if callback is not None and self.disconnected:
            callback()
            return
        self.gone = callback

    async def send(self, message: Message) -> None:  # type: ignore[override]
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected 'http.response.start', got {message['type']!r}.")
            self.response_started = True
            self.waiting_for_100_continue = False
            status = message["status"]
            if self.access_log:
                self.access_logger.info(
                    '%s - "%s %s HTTP/%s" %d',
                    get_client_addr(self.scope),
                    self.scope["method"],
                    self.scope["path"],
                    self.scope["http_version"],
                    status,
                )
            self.transport.write(self._head(status, message.get("headers", ())))
        elif not self.response_complete:
            if message["type"] != "http.response.body":
                raise RuntimeError(f"Expected 'http.response.body', got {message['type']!r}.")
            body = message.get("body", b"")
            more_body = message.get("more_body", False)
            if self.chunked_encoding:
                if body:
                    self.transport.write(
                        b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
                        if not more_body
                        else b"%x\r\n%b\r\n" % (len(body), body)
                    )
                elif not more_body:
                    self.transport.write(b"0\r\n\r\n")
            else:
                size = len(body)
                if size > self.expected_content_length:
                    raise RuntimeError("Response content longer than Content-Length")
                self.expected_content_length -= size
                if size:
                    self.transport.write(body)
            if not more_body:
                if self.expected_content_length != 0:
                    raise RuntimeError("Response content shorter than Content-Length")
                self.response_complete = True
                self.message_event.set()
                if not self.keep_alive:
                    self.transport.close()
                self.on_response()
        else:
            raise RuntimeError(f"Unexpected ASGI message {message['type']!r} after the response.")

    def _head(self, status: int, headers: Any) -> bytes:
        """The status line and header block; the framing read from the headers as uvicorn
        reads it (the first ``content-length``, ``transfer-encoding: chunked``,
        ``connection: close``), with uvicorn's two checks made once over all names and
        once over all values, and the block joined without a Python loop per field."""
        fields = [*self.default_headers, *headers]
        names = [name for name, _ in fields]
        values = [value for _, value in fields]
        # The gateway's own names are known to be lower-case tokens: only others are checked.
        if not _KNOWN_NAMES.issuperset(names):
            names = [name.lower() for name in names]
            if HEADER_RE.search(b"".join(names)):
                raise RuntimeError("Invalid HTTP header name.")
        joined = b"".join(values)
        if len(joined.translate(None, _VALUE_CONTROLS)) != len(joined):
            raise RuntimeError("Invalid HTTP header value.")
        closing = False
        if _FRAMING.isdisjoint(names):
            pass
        elif b"transfer-encoding" not in names and b"connection" not in names:
            # A length alone (every JSON reply): its first occurrence, without a loop.
            if self.chunked_encoding is None:
                self.expected_content_length = int(values[names.index(b"content-length")])
                self.chunked_encoding = False
        else:
            for name, value in zip(names, values, strict=True):
                if name not in _FRAMING:
                    continue
                if name == b"content-length":
                    if self.chunked_encoding is None:
                        self.expected_content_length = int(value)
                        self.chunked_encoding = False
                elif name == b"transfer-encoding":
                    if value.lower() == b"chunked":
                        self.expected_content_length = 0
                        self.chunked_encoding = True
                elif b"close" in [token.strip() for token in value.lower().split(b",")]:
                    self.keep_alive = False
                    closing = True
        tail = [b"\r\n"]
        if not self.keep_alive and not closing:
            tail.append(b"connection: close\r\n")
        if self.chunked_encoding is None and status not in (204, 304):
            self.chunked_encoding = True
            tail.append(b"transfer-encoding: chunked\r\n")
        tail.append(b"\r\n")
        if not fields:
            return STATUS_LINE[status] + b"".join(tail[1:])
        block = b"\r\n".join(map(b": ".join, zip(names, values, strict=True)))
        return STATUS_LINE[status] + block + b"".join(tail)


# What ``HEADER_VALUE_RE`` refuses in a value: control bytes but HTAB.
_VALUE_CONTROLS = bytes((*range(0x09), *range(0x0A, 0x20), 0x7F))
# The names Tollway's replies are made of (``pipeline/respond.py``, ``pipeline/formats.py``).
_KNOWN_NAMES = frozenset(
    (
        b"date",
        b"server",
        b"content-type",
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"cache-control",
        b"retry-after",
        b"x-accel-buffering",
        b"x-should-retry",
        b"x-request-id",
        *(
            b"x-tollway-" + name
            for name in (
                b"call-id",
                b"overhead-ms",
                b"attempted-retries",
                b"attempted-fallbacks",
                b"complexity-tier",
                b"model",
                b"response-cost",
                b"max-tokens-capped",
                b"cache",
                b"cache-key",
                b"cache-similarity",
                b"applied-guardrails",
                b"key-spend",
            )
        ),
        *(
            b"x-litellm-" + name
            for name in (
                b"call-id",
                b"attempted-retries",
                b"attempted-fallbacks",
                b"max-retries",
                b"timeout",
                b"model-id",
                b"model-region",
                b"response-cost",
                b"cache-key",
                b"semantic-similarity",
                b"applied-guardrails",
                b"key-spend",
            )
        ),
        *(
            b"x-ratelimit-%s-%s" % (what, unit)
            for what in (b"limit", b"remaining", b"reset")
            for unit in (b"requests", b"tokens")
        ),
    )
)
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))


class TollwayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's protocol with the header deadline, the connection limit, the framing and
    head-size checks of ``limits.py``, half-close handling and the corked transport.

    The header deadline and the keep-alive deadline are two timestamps under one timer per
    connection instead of a timer created and cancelled for each (two ``call_later`` and two
    cancels per request, ~3.5 us, as much CPU as the reply's head): setting a deadline is a
    store, and the timer, when it fires, acts on what is due and re-arms for the rest.
    """

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._header_due = 0.0  # 0: none
        self._idle_due = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.header_timeout_s: float = getattr(config, "header_timeout_s", DEFAULT_HEADER_TIMEOUT_S)
        # The limit is decided per connection in ``connection_made``; uvicorn's per-request
        # check is switched off.
        self.max_connections = self.limit_concurrency or 0
        self.limit_concurrency = None
        self._reading_headers = False
        # Between a request's end (or the connection's start) and the next request's headers.
        self._in_head = True
        self._head_bytes = 0
        self._refused: Refused | None = None
        self._discarding = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The cycle only calls write/close/is_closing; the rest is delegated.
        self.transport = cast(asyncio.Transport, CorkedTransport(self.transport, self.loop))
        if self.max_connections and len(self.connections) > self.max_connections:
            self.app = over_capacity
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # Nothing may keep a closed connection alive: the one timer holds both deadlines.
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        cycle = self.cycle
        if isinstance(cycle, RawCycle) and cycle.disconnected and cycle.gone is not None:
            gone, cycle.gone = cycle.gone, None
            gone()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # Only requests without keep-alive (HTTP/1.0 among them) or with ``Expect:
        # 100-continue`` are wrapped (see ``expect.py``); every other one runs as it is.
        if cycle.waiting_for_100_continue or not cycle.keep_alive:
            if cycle.waiting_for_100_continue and isinstance(app, ExpectAware):
                app = app.expect_continue
            if cycle.scope["http_version"] == "1.0":
                app = close_delimited(app, cycle)
        elif not cycle.access_log and cycle.scope["method"] != "HEAD":
            # The common request (keep-alive, no Expect, not HEAD, no access log) gets the
            # leaner ``send`` (one check over all header names and values instead of two
            # regular expressions per field); the cycle's state is the same object's.
            cycle.__class__ = RawCycle
        super()._start_asgi_task(cycle, app)

    def eof_received(self) -> bool | None:  # type: ignore[override]
        # A client that shut its sending side after a whole request (a half-close) still
        # gets the answer, then the connection is closed; uvicorn closes at once and the
        # answer is lost. Once the answer has started, an end of input is taken as the
        # client going away (an aborted stream must stop its upstream at once, not at the
        # next failed write). An unfinished request can never finish: close.
        cycle = self.cycle
        if (
            cycle is not None
            and not cycle.response_started
            and not cycle.more_body
            and not self._reading_headers
        ):
            cycle.keep_alive = False
            self._cancel_header_timer()
            return True
        # The transport closes itself now: what the last answer wrote must go out first.
        cast(CorkedTransport, self.transport).flush()
        return None

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        counting = self._in_head
        super().data_received(data)
        if counting and self._in_head and not self.transport.is_closing():
            # Still inside a head after this chunk (an over-count by at most the bytes of a
            # previous request in the same chunk).
            self._head_bytes += len(data)
            if self._head_bytes > _HEAD_BYTES_GUARD:
                self._refuse(431, "request header fields too large", "headers_too_large")
                self.send_400_response("")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._in_head = True
        if not self._header_due:
            self._arm_header_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's, without the call through ``super()`` (it runs for every header).
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        # The head is bounded while it arrives (``data_received``); the exact limits and
        # the framing rules are checked once it is whole, before anything is started.
        if len(self.url) > MAX_TARGET_BYTES:
            raise self._refuse(414, "the request target is too long", "uri_too_long")
        headers = self.headers
        if len(headers) > MAX_HEADER_FIELDS:
            raise self._refuse(431, "request header fields too large", "headers_too_large")
        size = hosts = 0
        transfer_encoding = False
        for name, value in headers:
            size += len(name) + len(value)
            if name == b"host":
                hosts += 1
            elif name == b"transfer-encoding":
                transfer_encoding = True
        if size > MAX_HEADER_BYTES:
            raise self._refuse(431, "request header fields too large", "headers_too_large")
        version = self.parser.get_http_version()
        if version == "1.1":
            if hosts != 1:
                raise self._refuse(
                    400, "an HTTP/1.1 request needs exactly one Host header", "bad_host"
                )
        elif version == "1.0":
            if transfer_encoding:
                raise self._refuse(400, "Transfer-Encoding in an HTTP/1.0 request", "bad_framing")
        else:
            raise self._refuse(505, "only HTTP/1.x is served here", "http_version_not_supported")
        self._reading_headers = False
        self._in_head = False
        self._head_bytes = 0
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parse error, in the error contract's shape; a refusal made
        in a parser callback (``_refuse``) chooses the status."""
        refused, self._refused = self._refused, None
        reply = BAD_REQUEST
        if refused is not None:
            reply = refusal(refused.status, refused.message, refused.code)
        self.transport.write(reply)
        self.transport.close()

    def _refuse(self, status: int, message: str, code: str) -> Refused:
        """Note the refusal ``send_400_response`` sends; a parser callback raises the return
        value (the parser then reports an error and uvicorn calls ``send_400_response``)."""
        self._refused = Refused(status, message, code)
        return self._refused

    def on_response_complete(self) -> None:
        # uvicorn's, with the keep-alive deadline as a timestamp.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        if len(self.tasks) <= 1:
            # The only request in flight: its reply leaves now, not at the end of the loop
            # turn, so what its task does after the last ``send`` (a stream's close and
            # settle, the spend log) is not the client's wait. With others in flight the
            # replies of one turn still go out together, and the clients' next requests
            # come back together: flushing each at once cost 5% more CPU per request at
            # 32 connections (bench.ab).
            cast(CorkedTransport, self.transport).flush()
        self._idle_due = 0.0
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_due = self.loop.time() + self.timeout_keep_alive
            self._schedule(self._idle_due)

    def _unset_keepalive_if_required(self) -> None:
        self._idle_due = 0.0

    def _arm_header_timer(self) -> None:
        if self.header_timeout_s > 0:
            self._header_due = self.loop.time() + self.header_timeout_s
            self._schedule(self._header_due)

    def _cancel_header_timer(self) -> None:
        self._header_due = 0.0

    def _schedule(self, due: float) -> None:
        timer = self._timer
        if timer is None or due < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(due, self._on_timer)
            self._timer_at = due

    def _on_timer(self) -> None:
        self._timer = None
        # The loop's clock may read a hair before the time asked for.
        now = self.loop.time() + 0.001
        if self._header_due and now >= self._header_due:
            self._header_due = 0.0
            self._header_timeout()
        if self._idle_due and now >= self._idle_due:
            self._idle_due = 0.0
            self.timeout_keep_alive_handler()
        if self.transport.is_closing():
            return
        pending = [due for due in (self._header_due, self._idle_due) if due]
        if pending:
            self._schedule(min(pending))

    def _header_timeout(self) -> None:
        if self.transport.is_closing():
            return
        idle = self.cycle is None or self.cycle.response_complete
        if self._reading_headers and idle:
            # Part of a request arrived: say why it ends (RFC 9110 §15.5.9).
            self.transport.write(HEADER_TIMEOUT)
            self._close_lingering()
            return
        self.transport.close()

    def _close_lingering(self) -> None:
        """Close after a 408 the client may still be sending into (a trickled head): end our
        side (the 408, then FIN), drop what still arrives, and close a moment later. Closing
        at once with the client's bytes unread makes the kernel reset the connection, which
        can destroy the 408 before the client reads it (RFC 9112 §9.6)."""
        try:
            lingers = self.transport.can_write_eof()
        except NotImplementedError:
            lingers = False
        if not lingers:
            self.transport.close()
            return
        self.transport.write_eof()
        self._discarding = True
        self.loop.call_later(_LINGER_S, self.transport.close)

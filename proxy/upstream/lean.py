"""A lean HTTP/1.1 client for upstream calls: keep-alive pools on asyncio protocols.

Why not aiohttp here: the profile of a proxied request showed aiohttp's client (request and
header objects, payload writers, stream readers) costing about a third of the gateway's
CPU per call. This client does only what a gateway needs: one POST with a byte body, the
response status and headers, and the body as the chunks arrive. Parsing is httptools' C
parser (the one uvicorn uses); TLS is the event loop's. ``AiohttpTransport`` stays the
fallback (``TOLLWAY_UPSTREAM_CLIENT=aiohttp``, and whenever an HTTP(S) proxy is configured).

A reused keep-alive connection can be closed by the server just as a request is written;
when that happens before a single response byte arrives, the request is sent once more on a
fresh connection (no upstream saw it, so nothing can be billed twice).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from ..errors import UpstreamTimeout, UpstreamUnreachable
from .transport import Deadlines, UpstreamResponse

_HIGH_WATER = 512 * 1024
_LOW_WATER = 64 * 1024
_IDLE_SECONDS = 4.0


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Retry(Exception):
    """A reused connection died before any response byte: send again on a new one."""


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_buffered",
        "_complete",
        "_error",
        "_headers",
        "_headers_done",
        "_keep_alive",
        "_parser",
        "_pool",
        "_reading_paused",
        "_received_any",
        "_waiter",
        "closed",
        "idle_since",
        "status",
        "transport",
        "uses",
    )

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.uses = 0
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._headers: dict[str, str] = {}
        self._headers_done = False
        self._body: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._keep_alive = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._received_any = False
        self._reading_paused = False
        self.status = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamUnreachable("the upstream tried to upgrade the connection"))
        except httptools.HttpParserError:
            self._fail(UpstreamUnreachable("the upstream sent a malformed HTTP response"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._complete:
            return
        if self._headers_done and not self._length_known():
            # No Content-Length and not chunked: the body ends when the connection does.
            self._complete = True
            self._wake()
            return
        if not self._received_any and self.uses > 1:
            self._fail(_Retry())
            return
        self._fail(UpstreamUnreachable("the upstream closed the connection mid-response"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        self._headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self._complete = True
        self._wake()

    # used by the response

    def _length_known(self) -> bool:
        return "content-length" in self._headers or "transfer-encoding" in self._headers

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, timeout: float) -> None:
        """Until the parser has news; TimeoutError after ``timeout`` seconds of silence.

        A bare timer on the future instead of ``asyncio.timeout``: this runs once or twice
        per request, and the timeout context's bookkeeping showed in the profile.
        """
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def send(self, head: bytes, body: bytes) -> None:
        self._reset()
        self.uses += 1
        assert self.transport is not None
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)

    async def wait_headers(self, timeout: float) -> None:
        while not self._headers_done:
            if self._error is not None:
                raise self._error
            await self._wait(timeout)
        if self._error is not None and not self._complete:
            raise self._error

    def pop_chunk(self) -> bytes | None:
        if not self._body:
            return None
        chunk = self._body.popleft()
        self._buffered -= len(chunk)
        if self._reading_paused and self._buffered < _LOW_WATER and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()
        return chunk

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _Response:
    """One upstream response; implements ``proxy.upstream.UpstreamResponse``."""

    __slots__ = ("_conn", "_finished", "_idle_timeout", "_read_timeout", "status")

    def __init__(
        self, conn: _Connection, read_timeout: float, idle_timeout: float | None = None
    ) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        # After the first chunk, the longest gap between chunks (``stream_timeout``).
        self._idle_timeout = idle_timeout
        self._finished = False
        self.status = conn.status

    def header(self, name: str) -> str | None:
        return self._conn._headers.get(name.lower())

    @property
    def arrived(self) -> bool:
        """The whole body is here: ``read()`` returns without waiting."""
        return self._conn._complete

    async def read(self) -> bytes:
        conn = self._conn
        if conn._complete:
            # The usual small reply arrived whole with its headers: no async generator.
            parts = []
            while (chunk := conn.pop_chunk()) is not None:
                parts.append(chunk)
            self._finish()
        else:
            parts = [chunk async for chunk in self.iter_chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def iter_chunks(self) -> _Chunks:
        return _Chunks(self)

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        conn = self._conn
        if conn._keep_alive and not conn.closed and conn._error is None:
            conn._pool.release(conn)
        else:
            conn._pool.discard(conn)

    def close(self) -> None:
        if self._finished:
            return
        conn = self._conn
        if conn._complete and not conn._body:
            self._finish()
            return
        # Half-read: the connection cannot be reused; closing it also tells the upstream to
        # stop generating.
        self._finished = True
        conn.abort()
        conn._pool.discard(conn)


class _Chunks:
    """A response's body as it arrives (``ChunkStream``): what was read so far in one piece
    per ``__anext__``, then waits for more. A class rather than an async generator, which
    mypyc does not compile; it behaves as the generator did: after the end, an error or
    ``aclose()``, iteration stops."""

    __slots__ = ("_done", "_response", "_timeout")

    def __init__(self, response: _Response) -> None:
        self._response = response
        self._timeout = response._read_timeout
        self._done = False

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        response = self._response
        conn = response._conn
        while True:
            chunk = conn.pop_chunk()
            if chunk is not None:
                if response._idle_timeout is not None:
                    self._timeout = response._idle_timeout
                if conn._body:
                    # More has arrived already (a stream's events come several to a read):
                    # passed on as one piece, one trip through the relay and one write.
                    parts = [chunk]
                    while (more := conn.pop_chunk()) is not None:
                        parts.append(more)
                    chunk = b"".join(parts)
                return chunk
            if conn._complete:
                self._done = True
                response._finish()
                raise StopAsyncIteration
            if conn._error is not None:
                self._done = True
                response._finished = True
                error = conn._error
                if isinstance(error, _Retry):
                    error = UpstreamUnreachable("the upstream closed the connection")
                raise error
            try:
                await conn._wait(self._timeout)
            except TimeoutError:
                self._done = True
                response.close()
                raise UpstreamTimeout(
                    f"the upstream sent nothing for over {self._timeout:g}s"
                ) from None

    async def aclose(self) -> None:
        self._done = True


class _Pool:
    """Keep-alive connections to one origin (scheme, host, port)."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, limit: int) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.limit = limit
        # Most recently used on the right (taken first); the longest idle on the left.
        self.idle: collections.deque[_Connection] = collections.deque()
        self.active = 0
        self._slot_waiters: collections.deque[asyncio.Future[_Connection | None]] = (
            collections.deque()
        )

    async def acquire(self, connect_timeout: float, fresh: bool) -> _Connection:
        # First come, first served: while anyone waits for a slot, a newcomer queues behind
        # them (no barging), and a released connection is handed to the oldest waiter
        # directly. Otherwise a woken waiter can lose the freed connection to a request
        # that arrived later and go back to the end of the queue, again and again: at
        # 1,000 connections that starvation made a few requests wait seconds.
        if not self._slot_waiters:
            now = time.monotonic()
            while self.idle and not fresh:
                conn = self.idle.pop()
                if conn.closed or now - conn.idle_since > _IDLE_SECONDS:
                    conn.abort()
                    continue
                self.active += 1
                return conn
        if self.active >= self.limit or self._slot_waiters:
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._slot_waiters.append(waiter)
            try:
                async with asyncio.timeout(connect_timeout):
                    handed = await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    # The slot was handed over just as the wait ended: pass it on.
                    self._pass_on(waiter.result())
                if isinstance(exc, TimeoutError):
                    raise UpstreamTimeout("no upstream connection became free in time") from None
                raise
            if handed is not None and not fresh and not handed.closed:
                return handed  # its slot (``active``) came with it
            if handed is not None:
                handed.abort()  # a fresh connection was asked for: keep the slot only
        else:
            self.active += 1
        try:
            return await self._connect(connect_timeout)
        except BaseException:
            self._free_slot()
            raise

    async def _connect(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls else None,
                )
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to the upstream took over {timeout:g}s") from None
        except OSError as exc:
            raise UpstreamUnreachable(
                f"cannot connect to the upstream at {self.host}:{self.port}"
            ) from exc
        return protocol

    def release(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._pass_on(conn)

    def discard(self, conn: _Connection) -> None:
        conn.abort()
        self._free_slot()

    def _pass_on(self, conn: _Connection | None) -> None:
        """Hand a slot (with ``conn`` when reusable) to the oldest waiter, or free it."""
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.active -= 1
        if conn is not None:
            idle = self.idle
            idle.append(conn)
            # Connections a burst opened and nobody took since are closed (with their
            # buffers and parser) as the next ones come back, not kept until the upstream
            # drops them: after 1,000 connections the pool otherwise held ~500 idle ones.
            self.sweep(conn.idle_since)

    def sweep(self, now: float) -> int:
        """Close the idle connections unused for over ``_IDLE_SECONDS`` at ``now``; how many."""
        idle = self.idle
        since = now - _IDLE_SECONDS
        closed = 0
        while idle and idle[0].idle_since < since:
            idle.popleft().abort()
            closed += 1
        return closed

    def _free_slot(self) -> None:
        self._pass_on(None)

    def close(self) -> None:
        for conn in self.idle:
            conn.abort()
        self.idle.clear()


# Encoded request heads kept per target: one per headers mapping in use (JSON and stream
# calls of a deployment may use two); more than this many means mappings built per call.
_HEADS_KEPT = 8


class _Target:
    __slots__ = ("heads", "host_header", "path", "pool")

    def __init__(self, pool: _Pool, host_header: str, path: str) -> None:
        self.pool = pool
        self.host_header = host_header
        self.path = path
        # The request head without its length, encoded per headers mapping (by identity, the
        # mapping kept beside it): providers hand the same never-mutated mapping to every call
        # of a deployment, so JSON and stream calls to one URL no longer evict each other.
        self.heads: dict[int, tuple[Mapping[str, str], bytes]] = {}

    def head(self, headers: Mapping[str, str], length: int) -> bytes:
        entry = self.heads.get(id(headers))
        if entry is None or entry[0] is not headers:
            lines = [f"POST {self.path} HTTP/1.1\r\nhost: {self.host_header}\r\n"]
            lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
            if len(self.heads) >= _HEADS_KEPT:
                self.heads.clear()
            self.heads[id(headers)] = entry = (headers, "".join(lines).encode("latin-1"))
        return b"%bcontent-length: %d\r\n\r\n" % (entry[1], length)


class LeanTransport:
    """``proxy.upstream.Transport`` on ``_Pool``s, one per origin."""

    def __init__(self, *, pool_size: int = 512) -> None:
        self._pool_size = pool_size
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._targets: dict[str, _Target] = {}
        self._tls: ssl.SSLContext | None = None

    def sweep_idle(self) -> int:
        """Close every pool's connections idle for over ``_IDLE_SECONDS``; how many (run by
        the trimmer: with no calls returning, nothing else closes what a burst opened)."""
        now = time.monotonic()
        return sum(pool.sweep(now) for pool in self._pools.values())

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is not None:
            return target
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamUnreachable("the upstream URL must be http:// or https://")
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, parts.hostname, port)
        pool = self._pools.get(key)
        if pool is None:
            tls = None
            if scheme == "https":
                if self._tls is None:
                    self._tls = ssl.create_default_context()
                tls = self._tls
            pool = self._pools[key] = _Pool(parts.hostname, port, tls, self._pool_size)
        default_port = 443 if scheme == "https" else 80
        host = parts.hostname if port == default_port else f"{parts.hostname}:{port}"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        target = _Target(pool, host, path)
        if len(self._targets) < 4096:
            self._targets[url] = target
        return target

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadlines: Deadlines
    ) -> UpstreamResponse:
        target = self._target(url)
        head = target.head(headers, len(body))
        pool = target.pool
        fresh = False
        for _ in range(2):
            conn = await pool.acquire(deadlines.connect, fresh)
            conn.send(head, body)
            try:
                await conn.wait_headers(deadlines.read)
            except _Retry:
                pool.discard(conn)
                fresh = True
                continue
            except TimeoutError:
                conn.abort()
                pool.discard(conn)
                raise UpstreamTimeout(
                    f"the upstream did not answer within {deadlines.read:g}s"
                ) from None
            except BaseException:
                conn.abort()
                pool.discard(conn)
                raise
            return _Response(conn, deadlines.read, deadlines.stream_idle)
        raise UpstreamUnreachable("the upstream closed the connection twice")

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        self._targets.clear()


def transport_kind(configured: str, environ: Mapping[str, Any]) -> str:
    """``configured``, except that an HTTP(S) proxy in the environment needs aiohttp."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        if environ.get(name):
            return "aiohttp"
    return configured

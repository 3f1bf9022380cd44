"""The inference routes as raw ASGI: every stage of a request, in order, in one place.

    read body (bounded) → authenticate → parse → model allowlist
    → route → admit (ledger) → call upstream            (``router/dispatch.py``)
    → stream or return → settle (in ``finally``: also on error, disconnect and cancellation)

No framework layer sits on this path: headers are read once from the scope, the body is
forwarded as bytes, and SSE chunks are passed from the upstream socket to the client's.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from .errors import BodyTooLarge, InvalidRequest, PermissionDenied, TollwayError
from .parse import Kind, ParsedRequest, parse
from .providers.base import Deployment, Reply
from .usage import Usage

if TYPE_CHECKING:
    from .accounting import Accounting
    from .app import GatewayState
    from .auth import Principal
    from .ledger import Reservation
    from .pricing import ModelPrice

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("tollway.request")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class ClientGone(Exception):
    """The client went away before its request was complete; nobody is left to answer."""


class Call:
    """The state of one inference request as it moves through the stages."""

    __slots__ = (
        "attempted_fallbacks",
        "attempted_retries",
        "call_id",
        "complexity_tier",
        "cost",
        "deployment",
        "disconnected",
        "echo_request_id",
        "failed_attempts",
        "headers_sent",
        "price",
        "principal",
        "reached_upstream",
        "relayed_events",
        "request",
        "reservation",
        "response_bytes",
        "settled",
        "started",
        "status",
        "tags_header",
        "uid",
        "upstream_s",
        "usage",
    )

    def __init__(self, uid: str, call_id: str, echo_request_id: bool) -> None:
        self.uid = uid
        self.call_id = call_id
        self.echo_request_id = echo_request_id
        self.started = time.perf_counter()
        self.upstream_s = 0.0
        self.request: ParsedRequest | None = None
        self.principal: Principal | None = None
        self.deployment: Deployment | None = None
        self.price: ModelPrice | None = None
        self.reservation: Reservation | None = None
        self.usage: Usage | None = None
        self.cost: float | None = None
        self.status = 0
        self.relayed_events = 0
        self.response_bytes = 0
        self.reached_upstream = False
        self.settled = False
        self.headers_sent = False
        self.disconnected = False
        # Set by the router (router/dispatch.py).
        self.attempted_retries = 0
        self.attempted_fallbacks = 0
        self.failed_attempts = 0
        self.complexity_tier: str | None = None
        self.tags_header: str | None = None

    def response_headers(
        self, extra: list[tuple[bytes, bytes]], accounting: Accounting
    ) -> list[tuple[bytes, bytes]]:
        overhead_ms = (time.perf_counter() - self.started - self.upstream_s) * 1000
        call_id = self.call_id.encode()
        headers = [
            *extra,
            (b"x-tollway-call-id", call_id),
            (b"x-tollway-overhead-ms", f"{overhead_ms:.3f}".encode()),
            (b"x-tollway-attempted-retries", str(self.attempted_retries).encode()),
            (b"x-tollway-attempted-fallbacks", str(self.attempted_fallbacks).encode()),
        ]
        if self.complexity_tier is not None:
            headers.append((b"x-tollway-complexity-tier", self.complexity_tier.encode()))
        if self.echo_request_id:
            headers.append((b"x-request-id", call_id))
        if self.deployment is not None:
            headers.append((b"x-tollway-model", self.deployment.label.encode()))
        if self.cost is not None:
            headers.append((b"x-tollway-response-cost", _money(self.cost)))
        principal = self.principal
        if principal is not None and principal.key is not None:
            spend = accounting.key_spend(principal)
            if spend is not None:
                headers.append((b"x-tollway-key-spend", _money(spend)))
            for name, value in accounting.ratelimit_headers(principal).items():
                headers.append((name.encode(), value.encode()))
        return headers


class InferenceRoute:
    """One ASGI endpoint per inference kind (chat, completions, embeddings)."""

    def __init__(self, state: GatewayState, kind: Kind) -> None:
        self.state = state
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        authorization = api_key = request_id = content_length = tags = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-api-key":
                api_key = value
            elif name == b"content-length":
                content_length = value
            elif name == b"x-request-id":
                request_id = value
            elif name == b"x-tollway-tags":
                tags = value
        call = _new_call(state.request_ids.next(), request_id)
        if tags is not None:
            call.tags_header = tags.decode("latin-1")
        try:
            # Read the body before authenticating so the connection stays usable for the
            # next request; it is bounded, and nothing is decoded until the key is known.
            body = await read_body(receive, content_length, state.settings.max_body_bytes)
            principal = state.auth.authenticate(authorization, api_key)
            if not principal.may_infer:
                raise PermissionDenied("this key may not call models", code="key_type")
            call.principal = principal
            reply = await self.exchange(call, principal, body)
            if reply.chunks is not None:
                await self._stream(call, reply, receive, send)
            else:
                await self._respond(call, reply, send)
        except TollwayError as exc:
            await self._fail(call, exc, send)
        except ClientGone:
            call.status = 499
            call.disconnected = True
        except asyncio.CancelledError:
            call.status = 499
            raise
        except Exception:
            log.exception("call %s failed inside the gateway", call.call_id)
            await self._fail(call, TollwayError(f"internal error (call {call.call_id})"), send)
        finally:
            state.settle(call)

    async def exchange(self, call: Call, principal: Principal, body: bytes) -> Reply:
        """Parse → model allowlist → route, admit and call upstream; formats override this."""
        call.request = request = parse(self.kind, body)
        self.state.accounting.check_models(principal, request.model)
        return await self.state.dispatch(call, principal, request)

    def stream_error(self, exc: TollwayError) -> bytes:
        """The in-band event that ends a stream which failed after its headers were sent."""
        return _sse_error(exc)

    def error_body(self, exc: TollwayError) -> bytes:
        """The JSON body of an error answer, in this route's format."""
        return exc.body()

    async def _respond(self, call: Call, reply: Reply, send: Send) -> None:
        body = reply.body or b""
        call.usage = reply.usage
        call.status = reply.status
        if reply.usage is None and 200 <= reply.status < 300:
            call.response_bytes = len(body)
        # Settle before answering so the reply can carry its cost; settle is idempotent and
        # the upstream has billed by now whether or not the client reads the answer.
        self.state.settle(call)
        headers = call.response_headers(
            [(b"content-type", reply.content_type)], self.state.accounting
        )
        headers.append((b"content-length", str(len(body)).encode()))
        call.headers_sent = True
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, call: Call, reply: Reply, receive: Receive, send: Send) -> None:
        chunks = reply.chunks
        assert chunks is not None
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, call, task))
        call.status = reply.status
        try:
            headers = call.response_headers(_STREAM_HEADERS, self.state.accounting)
            call.headers_sent = True
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                async for data in chunks:
                    call.relayed_events += data.count(b"data:")
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            except TollwayError as exc:
                # Headers are gone: the error travels in-band, and the stream is not ended
                # with a [DONE] it never reached.
                call.status = exc.status
                log.warning("call %s: stream ended early: %s", call.call_id, exc.message)
                await send(
                    {
                        "type": "http.response.body",
                        "body": self.stream_error(exc),
                        "more_body": True,
                    }
                )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if call.disconnected and task.uncancel() == 0:
                call.status = 499
            else:
                raise
        except OSError:
            # The client's socket went away while we were writing to it.
            call.disconnected = True
            call.status = 499
        finally:
            watcher.cancel()
            reply.close()
            # A generator that ran to its end has nothing to close (no frame): skip the
            # shielded task that closing a suspended one needs.
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None and getattr(chunks, "ag_frame", True) is not None:
                await asyncio.shield(aclose())
            call.usage = reply.final_usage()

    async def _fail(self, call: Call, exc: TollwayError, send: Send) -> None:
        call.status = exc.status
        if call.headers_sent:
            return
        body = self.error_body(exc)
        extra = [(b"content-type", b"application/json")]
        extra.extend((k.encode(), v.encode()) for k, v in exc.headers.items())
        headers = call.response_headers(extra, self.state.accounting)
        headers.append((b"content-length", str(len(body)).encode()))
        call.headers_sent = True
        try:
            await send({"type": "http.response.start", "status": exc.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        except OSError:
            call.disconnected = True


def _new_call(uid: str, request_id: bytes | None) -> Call:
    if request_id is not None:
        text = request_id.decode("latin-1")
        if _REQUEST_ID.fullmatch(text):
            return Call(uid, text, echo_request_id=True)
    return Call(uid, uid, echo_request_id=False)


def _money(value: float) -> bytes:
    return f"{value:.10f}".rstrip("0").rstrip(".").encode() if value else b"0"


async def read_body(receive: Receive, content_length: bytes | None, limit: int) -> bytes:
    """The whole request body, refusing (413) as soon as it is known to exceed ``limit``."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise InvalidRequest("invalid content-length header") from None
        if declared > limit:
            raise BodyTooLarge(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone("the client disconnected before sending its body")
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge(f"request body exceeds the {limit}-byte limit")
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone("the client disconnected while sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body exceeds the {limit}-byte limit")
        parts.append(chunk)
    return b"".join(parts)


async def _watch_disconnect(receive: Receive, call: Call, task: asyncio.Task[Any]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            call.disconnected = True
            task.cancel()
            return


def _sse_error(exc: TollwayError) -> bytes:
    return b"data: " + exc.body() + b"\n\n"

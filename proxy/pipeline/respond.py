"""The respond stage: the reply written to the client, in the client's format.

A reply already in the client's format (the pass-through paths) is written as the upstream's
bytes; a typed reply is encoded once by the inbound format; a stream is relayed as bytes
when the client speaks the upstream's format, and otherwise decoded into events by the
provider's dialect and encoded by the client's (``UpstreamStream`` owns it either way and
its ``aclose`` is the one close path, in ``finally``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Protocol

from ..auth import Principal
from ..errors import TollwayError
from ..model import ChatReply, TextDelta
from ..request import Kind
from ..upstream.engine import Reply
from ..upstream.stream import StreamStage
from .call import Call
from .formats import InboundFormat

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("tollway.request")


class SpendView(Protocol):
    """What the reply headers read from the ledger."""

    def reply_view(self, principal: Principal) -> tuple[float | None, list[tuple[bytes, bytes]]]:
        """The key's spend (None when not a virtual key's) and its ``x-ratelimit-*`` pairs."""
        ...


class PostCall(Protocol):
    """A stage after the upstream answered and before the client sees anything (post-call
    guardrails): it may change or refuse a whole reply, and watch every event of a stream."""

    async def reply(self, call: Call, reply: ChatReply) -> ChatReply:
        """The reply to send (raise a ``TollwayError`` to refuse it)."""
        ...

    def stream_stage(self, call: Call) -> StreamStage | None:
        """A stage for this call's stream, or None to leave it alone."""
        ...


class Responder:
    def __init__(
        self,
        spend: SpendView,
        settle: Callable[[Call], None],
        post_call: Sequence[PostCall] = (),
        capture_text: bool = False,
        litellm_headers: bool = True,
    ) -> None:
        self.spend = spend
        self.settle = settle
        # Empty unless configured: then replies pass through without being decoded.
        self.post_call = tuple(post_call)
        # Keep the reply's text on the call for the observability sinks (message logging on
        # and a sink configured); a pass-through JSON reply is then decoded once for it.
        self.capture_text = capture_text
        # LiteLLM's names for the same values, for dashboards and SDK wrappers written for it.
        self.litellm_headers = litellm_headers

    def headers(
        self, call: Call, extra: Sequence[tuple[bytes, bytes]], *, refused: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """The reply's head: ``extra`` first, then the gateway's own fields. ``refused``: a
        refusal whose ``extra`` may carry a level's ``x-ratelimit-*`` figures already."""
        call_id = call.call_id.encode()
        retries = str(call.attempted_retries).encode()
        fallbacks = str(call.attempted_fallbacks).encode()
        litellm = self.litellm_headers
        headers = [
            *extra,
            (b"x-tollway-call-id", call_id),
            (b"x-tollway-overhead-ms", f"{call.overhead_ms():.3f}".encode()),
            (b"x-tollway-attempted-retries", retries),
            (b"x-tollway-attempted-fallbacks", fallbacks),
        ]
        if litellm:
            headers += (
                (b"x-litellm-call-id", call_id),
                (b"x-litellm-attempted-retries", retries),
                (b"x-litellm-attempted-fallbacks", fallbacks),
            )
            if call.max_retries is not None:
                headers.append((b"x-litellm-max-retries", str(call.max_retries).encode()))
            if call.timeout_s is not None:
                headers.append((b"x-litellm-timeout", str(call.timeout_s).encode()))
        if call.complexity_tier is not None:
            headers.append((b"x-tollway-complexity-tier", call.complexity_tier.encode()))
        if call.echo_request_id:
            headers.append((b"x-request-id", call_id))
        if call.deployment is not None:
            headers.append((b"x-tollway-model", call.deployment.label.encode()))
            if litellm:
                deployment = call.deployment
                headers.append((b"x-litellm-model-id", deployment.id.encode()))
                if deployment.params.region_name is not None:
                    region = deployment.params.region_name.encode()
                    headers.append((b"x-litellm-model-region", region))
        if call.cost is not None:
            cost = _money(call.cost)
            headers.append((b"x-tollway-response-cost", cost))
            if litellm:
                headers.append((b"x-litellm-response-cost", cost))
        if call.output_cap is not None:
            headers.append((b"x-tollway-max-tokens-capped", str(call.output_cap).encode()))
        if call.cache_status is not None:
            headers.append((b"x-tollway-cache", call.cache_status.encode()))
            if call.cache_key is not None:
                key = call.cache_key.encode()
                headers.append((b"x-tollway-cache-key", key))
                headers.append((b"x-litellm-cache-key", key))
            if call.cache_similarity is not None:
                similarity = f"{call.cache_similarity:.4f}".encode()
                headers.append((b"x-tollway-cache-similarity", similarity))
                headers.append((b"x-litellm-semantic-similarity", similarity))
        if call.guardrails:
            applied = ",".join(dict.fromkeys(g["name"] for g in call.guardrails)).encode()
            headers.append((b"x-tollway-applied-guardrails", applied))
            headers.append((b"x-litellm-applied-guardrails", applied))
        principal = call.principal
        if principal is not None and principal.key is not None:
            spend, limits = self.spend.reply_view(principal)
            if spend is not None:
                money = _money(spend)
                headers.append((b"x-tollway-key-spend", money))
                if litellm:
                    headers.append((b"x-litellm-key-spend", money))
            if limits:
                if refused:
                    # A rate-limit refusal already carries the refusing level's own figures.
                    given = {name for name, _ in extra}
                    limits = [pair for pair in limits if pair[0] not in given]
                headers += limits
        return headers

    async def json(self, call: Call, inbound: InboundFormat, reply: Reply, send: Send) -> None:
        request = call.request
        assert request is not None
        if self.post_call and request.kind is Kind.CHAT:
            typed = reply.typed
            if not isinstance(typed, ChatReply):
                assert reply.body is not None
                typed = inbound.decode_reply(request, reply.body)
            for stage in self.post_call:
                typed = await stage.reply(call, typed)
            reply.typed, reply.body = typed, None
        if self.capture_text and request.kind is Kind.CHAT:
            typed = reply.typed
            if not isinstance(typed, ChatReply) and reply.body is not None:
                with contextlib.suppress(TollwayError):
                    typed = inbound.decode_reply(request, reply.body)
            if isinstance(typed, ChatReply):
                call.response_text = typed.message.text()
        body = reply.body
        if body is None:
            assert reply.typed is not None
            body = inbound.encode_reply(request, reply.typed)
        call.usage = reply.usage
        call.status = reply.status
        call.response_id = reply_id(body)
        if reply.usage is None and 200 <= reply.status < 300:
            call.response_bytes = len(body)
        # Settle before answering so the reply can carry its cost; settle is idempotent and
        # the upstream has billed by now whether or not the client reads the answer.
        self.settle(call)
        content_type = reply.content_type if reply.body is not None else b"application/json"
        headers = self.headers(call, [(b"content-type", content_type)])
        headers.append((b"content-length", str(len(body)).encode()))
        call.headers_sent = True
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def stream(
        self, call: Call, inbound: InboundFormat, reply: Reply, receive: Receive, send: Send
    ) -> None:
        stream = reply.stream
        assert stream is not None and call.request is not None
        task = asyncio.current_task()
        assert task is not None
        # The server's disconnect hook when it has one (``RawCycle.watch_disconnect``), else a
        # task reading ``receive`` until the client goes away.
        watch = getattr(getattr(receive, "__self__", None), "watch_disconnect", None)
        watcher = None
        if watch is not None:

            def gone() -> None:
                call.disconnected = True
                task.cancel()

            watch(gone)
        else:
            watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, call, task))
        call.status = reply.status
        for post_call in self.post_call:
            stage = post_call.stream_stage(call)
            if stage is not None:
                stream.add_stage(stage)
        # Bytes untouched when the client speaks the upstream's format and no stage watches;
        # else events, encoded in the client's format.
        encoder = None
        texts: list[str] | None = [] if self.capture_text else None
        if not (stream.relays_raw and stream.format == inbound.name):
            encoder = inbound.stream_encoder(call.request)
        try:
            headers = self.headers(call, inbound.stream_headers)
            call.headers_sent = True
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                call.first_token_s = time.perf_counter() - call.started
                if encoder is None:
                    async for data in stream.raw():
                        if call.response_id is None:
                            call.response_id = reply_id(data)
                        call.relayed_events += data.count(b"data:")
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                else:
                    async for event in stream.events():
                        if texts is not None and isinstance(event, TextDelta):
                            texts.append(event.text)
                        data = encoder.encode(event)
                        if data:
                            call.relayed_events += 1
                            await send(
                                {"type": "http.response.body", "body": data, "more_body": True}
                            )
                    await send(
                        {"type": "http.response.body", "body": encoder.finish(), "more_body": True}
                    )
            except TollwayError as exc:
                # Headers are gone: the error travels in-band, and the stream is not ended
                # with a [DONE] it never reached.
                call.status = exc.status
                call.error = exc
                log.warning("call %s: stream ended early: %s", call.call_id, exc.message)
                tail = encoder.error(exc) if encoder is not None else inbound.stream_error(exc)
                await send({"type": "http.response.body", "body": tail, "more_body": True})
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
            if watcher is not None:
                watcher.cancel()
            elif watch is not None:
                watch(None)
            if texts:
                call.response_text = "".join(texts)
            # Settle reads the final usage: the stream must be closed (and over) first. A
            # stream that ran to its end closes without waiting: no shielded task needed.
            if stream.outcome.completed:
                await stream.aclose()
            else:
                await asyncio.shield(stream.aclose())
            call.usage = stream.usage

    async def error(
        self, call: Call, inbound: InboundFormat, exc: TollwayError, send: Send
    ) -> None:
        call.status = exc.status
        call.error = exc
        if call.headers_sent:
            return
        body = inbound.error_body(exc)
        extra = [(b"content-type", b"application/json"), *inbound.error_headers(exc)]
        extra.extend((k.encode(), v.encode()) for k, v in exc.headers.items())
        headers = self.headers(call, extra, refused=True)
        headers.append((b"content-length", str(len(body)).encode()))
        call.headers_sent = True
        try:
            await send({"type": "http.response.start", "status": exc.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        except OSError:
            call.disconnected = True


def reply_id(body: bytes) -> str:
    """The ``"id"`` a reply (or its first stream chunk) starts with, "" when it has none; a
    bounded scan of the first bytes, no JSON decode."""
    start = body.find(b'"id"', 0, 256)
    if start < 0:
        return ""
    start = body.find(b'"', start + 4, start + 16)
    end = body.find(b'"', start + 1, start + 130) if start >= 0 else -1
    if end < 0:
        return ""
    value = body[start + 1 : end]
    return value.decode("ascii") if value.isascii() and b"\\" not in value else ""


def _money(value: float) -> bytes:
    return f"{value:.10f}".rstrip("0").rstrip(".").encode() if value else b"0"


async def _watch_disconnect(receive: Receive, call: Call, task: asyncio.Task[Any]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            call.disconnected = True
            task.cancel()
            return

"""The inference routes as raw ASGI: the stages of one request, in the order the app factory
gave them (see ``server/app.py``), with no framework layer on the path.

    read (bounded body) → authenticate → parse (the client's format) → authorize (model
    allowlist) → route + admit + call upstream (``routing/dispatch.py``) → respond (bytes
    relayed, or the typed reply encoded once in the client's format) → settle (in
    ``finally``: also on error, client disconnect and cancellation)

Headers are read once from the scope, the body is forwarded as bytes, and on the
pass-through path SSE chunks go from the upstream socket to the client's untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Protocol

from ..auth import Principal
from ..errors import PermissionDenied, TollwayError
from ..observe.trace import parse_traceparent
from ..request import Kind, ParsedRequest
from ..routing.dispatch import Plan
from ..upstream.engine import Reply
from .batch import Captured, batch_models, combined, with_model
from .call import Call
from .formats import InboundFormat
from .read import ClientGone, read_body
from .respond import Responder

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("tollway.request")

_COMMON_UNREAD = frozenset(
    (b"host", b"user-agent", b"accept", b"accept-encoding", b"connection", b"content-type")
)


class Authenticate(Protocol):
    def __call__(self, authorization: bytes | None, api_key: bytes | None) -> Principal: ...


class Authorize(Protocol):
    """May rename ``request.model`` (a key's aliases) before checking it."""

    def __call__(self, principal: Principal, request: ParsedRequest) -> None: ...


class Admit(Protocol):
    """Route and reserve (the dispatcher's ``admit``); returns the plan ``run`` follows."""

    def __call__(self, call: Call, principal: Principal, request: ParsedRequest) -> Plan: ...


class Run(Protocol):
    """The upstream call with its retries and fallbacks (the dispatcher's ``run``)."""

    async def __call__(self, call: Call, request: ParsedRequest, plan: Plan) -> Reply: ...


Proceed = Callable[[], Awaitable[Reply]]


class AroundCall(Protocol):
    """A stage between admission and the upstream call (pre-call and during-call guardrails,
    a cache lookup): it may refuse, change the request, answer itself, or ``proceed``."""

    async def __call__(self, call: Call, request: ParsedRequest, proceed: Proceed) -> Reply: ...


class NextId(Protocol):
    def __call__(self) -> str: ...


class Stages:
    """The collaborators the inference path uses, handed over by the composition root."""

    __slots__ = (
        "admit",
        "around",
        "authenticate",
        "authorize",
        "confirm",
        "max_body_bytes",
        "next_id",
        "respond",
        "run",
        "settle",
    )

    def __init__(
        self,
        *,
        authenticate: Authenticate,
        authorize: Authorize,
        admit: Admit,
        run: Run,
        respond: Responder,
        settle: Callable[[Call], None],
        next_id: NextId,
        max_body_bytes: int,
        around: Sequence[AroundCall] = (),
        confirm: Callable[[Call], Awaitable[None]] | None = None,
    ) -> None:
        self.authenticate = authenticate
        self.authorize = authorize
        self.admit = admit
        self.run = run
        self.around = tuple(around)
        # A shared (Redis) ledger's admission, awaited after ``admit``; None by default.
        self.confirm = confirm
        self.respond = respond
        self.settle = settle
        self.next_id = next_id
        self.max_body_bytes = max_body_bytes


class InferenceRoute:
    """One ASGI endpoint: an inbound format (chat, completions, embeddings, messages,
    responses) over the shared stages."""

    def __init__(self, stages: Stages, inbound: InboundFormat) -> None:
        self.stages = stages
        self.inbound = inbound
        # Headers nearly every client sends and this route never reads: one set lookup
        # skips them instead of the whole comparison chain below.
        self._unread = _COMMON_UNREAD.difference(inbound.key_headers, inbound.forwarded_headers)

    async def _call(self, call: Call, request: ParsedRequest, plan: Plan, index: int) -> Reply:
        """The around-call stages in order, each wrapping the rest; the upstream call last."""
        around = self.stages.around
        if index == len(around):
            return await self.stages.run(call, request, plan)
        return await around[index](
            call, request, lambda: self._call(call, request, plan, index + 1)
        )

    async def _batch(
        self,
        call: Call,
        request: ParsedRequest,
        body: bytes,
        forwarded: dict[str, str] | None,
        scope: Scope,
        send: Send,
    ) -> None:
        """Each model of a comma-separated list called as a request of its own (admitted,
        billed and logged alone), at once; the answers sent as one JSON list."""
        models = batch_models(request)
        # Each model's call is settled (billed, counted, logged) on its own; this one is not.
        call.settled = True
        principal = call.principal
        assert principal is not None
        answers = [Captured() for _ in models]
        async with asyncio.TaskGroup() as group:
            for model, answer in zip(models, answers, strict=True):
                sub = Call.start(self.stages.next_id(), None)
                sub.principal = principal
                sub.end_user = call.end_user
                sub.tags_header = call.tags_header
                sub.timeout_header = call.timeout_header
                sub.cache_control = call.cache_control
                group.create_task(
                    self._batch_one(sub, with_model(body, model), forwarded, scope, answer.send)
                )
        status, headers, payload = combined(answers)
        call.status = status
        call.headers_sent = True
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _batch_one(
        self,
        call: Call,
        body: bytes,
        forwarded: dict[str, str] | None,
        scope: Scope,
        send: Send,
    ) -> None:
        """One model of a batch: the stages after parse, answering into ``send``."""
        stages = self.stages
        inbound = self.inbound
        principal = call.principal
        assert principal is not None
        try:
            call.request = request = inbound.parse(body, forwarded, scope.get("path_params"))
            stages.authorize(principal, request)
            plan = stages.admit(call, principal, request)
            if stages.confirm is not None:
                await stages.confirm(call)
            reply = await self._call(call, request, plan, 0)
            if reply.stream is not None:  # a batch is never streamed; close what came
                await reply.stream.aclose()
                raise TollwayError(f"internal error (call {call.call_id})")
            await stages.respond.json(call, inbound, reply, send)
        except TollwayError as exc:
            await stages.respond.error(call, inbound, exc, send)
        except Exception:
            log.exception("call %s failed inside the gateway", call.call_id)
            error = TollwayError(f"internal error (call {call.call_id})")
            await stages.respond.error(call, inbound, error, send)
        finally:
            stages.settle(call)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stages = self.stages
        inbound = self.inbound
        authorization = api_key = request_id = content_length = tags = cache_control = None
        timeout = None
        end_user = None
        traceparent = tracestate = None
        forwarded: dict[str, str] | None = None
        unread = self._unread
        for name, value in scope["headers"]:
            if name in unread:
                continue
            if name == b"authorization":
                authorization = value
            elif name == b"x-api-key":
                api_key = value
            elif name == b"content-length":
                content_length = value
            elif name == b"x-request-id":
                request_id = value
            elif name == b"x-litellm-timeout":
                timeout = value
            elif name == b"x-tollway-tags":
                tags = value
            elif name == b"cache-control":
                cache_control = value
            elif name == b"x-litellm-end-user-id" or name == b"x-litellm-customer-id":
                end_user = value
            elif name == b"traceparent":
                traceparent = value
            elif name == b"tracestate":
                tracestate = value
            elif name in inbound.key_headers:
                api_key = value
            elif name in inbound.forwarded_headers:
                if forwarded is None:
                    forwarded = {}
                forwarded[name.decode("latin-1")] = value.decode("latin-1")
        call = Call.start(stages.next_id(), request_id)
        if timeout is not None:
            # LiteLLM's per-request timeout; checked where it is applied (the dispatcher).
            call.timeout_header = timeout.decode("latin-1")
        if tags is not None:
            call.tags_header = tags.decode("latin-1")
        if cache_control is not None:
            call.cache_control = cache_control.decode("latin-1")
        if end_user is not None:
            call.end_user = end_user.decode("latin-1")[:256] or None
        if traceparent is not None:
            # A client's W3C trace is continued: this call's span becomes its child.
            parent = parse_traceparent(traceparent.decode("latin-1"))
            if parent is not None:
                call.trace_id, call.trace_parent, call.trace_flags = parent
                if tracestate is not None:
                    call.trace_state = tracestate.decode("latin-1")[:512]
        respond = stages.respond
        try:
            # Read the body before authenticating so the connection stays usable for the
            # next request; it is bounded, and nothing is decoded until the key is known.
            body = await read_body(receive, content_length, stages.max_body_bytes)
            principal = stages.authenticate(authorization, api_key)
            if not principal.may_infer:
                raise PermissionDenied("this key may not call models", code="key_type")
            call.principal = principal
            call.request = request = inbound.parse(body, forwarded, scope.get("path_params"))
            if "," in request.model and request.kind is Kind.CHAT and inbound.name == "openai":
                # LiteLLM's batch completions: one call per model (``batch.py``).
                call.request = None
                await self._batch(call, request, body, forwarded, scope, send)
                return
            stages.authorize(principal, request)
            plan = stages.admit(call, principal, request)
            if stages.confirm is not None:
                await stages.confirm(call)
            if stages.around:
                reply = await self._call(call, request, plan, 0)
            else:  # nothing around the call: no extra frame per request
                reply = await stages.run(call, request, plan)
            if reply.stream is not None:
                await respond.stream(call, inbound, reply, receive, send)
            else:
                await respond.json(call, inbound, reply, send)
        except TollwayError as exc:
            await respond.error(call, inbound, exc, send)
        except ClientGone:
            call.status = 499
            call.disconnected = True
        except asyncio.CancelledError:
            call.status = 499
            raise
        except Exception:
            log.exception("call %s failed inside the gateway", call.call_id)
            error = TollwayError(f"internal error (call {call.call_id})")
            await respond.error(call, inbound, error, send)
        finally:
            stages.settle(call)

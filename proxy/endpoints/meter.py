"""The stages of a side endpoint (images, audio, moderations, rerank, files, batches,
count_tokens, pass-through), the same as chat's but written for bodies that are not chat:

    authenticate (from the headers, before any byte of the body is read: a bad key or an
    oversized ``Content-Length`` is refused before ``Expect: 100-continue`` is answered)
    → read (bounded) → parse (the endpoint's own body) → authorize (model allowlist)
    → route (the model group, one deployment) → admit (the worst case, in the endpoint's
    unit, at the dearest price among every deployment a retry or fallback may reach,
    reserved on every budget: key, user, team, organization, end user; rpm/tpm/parallel
    checked) → call upstream (retries in the group, then the router's fallback groups, as on
    chat) → bill (the units the reply reports at the price of the deployment that served)
    → settle (``finally``; also on error and disconnect, through the gateway's one settle:
    ledger, spend log, metrics, events).

A call's units are recorded as its prompt "tokens" and priced per unit, so the spend log,
the ledger and every sink see one kind of row whatever the endpoint.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeGuard, cast

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..auth import Authenticator, Principal, Role
from ..errors import InvalidRequest, NotFound, PermissionDenied, TollwayError
from ..model import Usage
from ..pipeline.accounting import Accounting, RequestIds
from ..pipeline.call import Call
from ..pipeline.read import ClientGone, read_body
from ..pricing import ModelPrice, unpriced_message
from ..request import Kind, ParsedRequest
from ..routing import Router
from ..routing.policy import Failure, classify
from ..routing.state import DeploymentState
from ..server.settings import Settings
from ..upstream.deployment import Deployment
from .client import Body, SideClient, UpstreamReply, upstream_error, upstream_head
from .prices import UnitPrice, UnitPrices

# The body of an attempt, built for the deployment it goes to and the model name that
# deployment takes: a body given this way can be resent (a retry, a fallback to another group).
BodyFor = Callable[[Deployment, str], Body]
# Providers whose deployments no side endpoint serves (a fallback skips them).
NOT_SERVING = frozenset(("mock", "auto_router", "bedrock", "gemini"))

if TYPE_CHECKING:
    import aiohttp


class ModelCheck(Protocol):
    """The model allowlist (the chat path's authorize stage)."""

    def __call__(self, principal: Principal, request: ParsedRequest) -> None: ...

    def visible(
        self, principal: Principal, models: list[str], *, groups: bool = False
    ) -> list[str]: ...


class EndpointHost(Protocol):
    """The parts of the gateway's state the side endpoints use."""

    @property
    def auth(self) -> Authenticator: ...
    @property
    def accounting(self) -> Accounting: ...
    @property
    def router(self) -> Router: ...
    @property
    def model_policy(self) -> ModelCheck: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def request_ids(self) -> RequestIds: ...
    @property
    def started_at(self) -> int: ...

    def settle(self, call: Call) -> None: ...


def principal_of(
    auth: Authenticator,
    headers: Mapping[str, str],
    key_header: str | None = None,
    query_key: str | None = None,
) -> Principal:
    """The caller, from ``authorization`` or ``x-api-key`` (or the route's own header, or
    the ``?key=`` Google's REST clients send)."""
    other = headers.get(key_header) if key_header is not None else None
    other = other or query_key
    if other is not None and "authorization" not in headers and "x-api-key" not in headers:
        principal = auth.authenticate(None, other.encode("latin-1"))
    else:
        principal = auth.authenticate_headers(headers)
    if not principal.may_infer:
        raise PermissionDenied("this key may not call models", code="key_type")
    return principal


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


class Side:
    """One side call: its ``Call`` (what settle reads), the deployment chosen, the client."""

    __slots__ = (
        "call",
        "deployment",
        "group",
        "meter",
        "metered",
        "principal",
        "request",
        "requested",
        "state",
        "upstream_model",
    )

    def __init__(self, meter: Meter, request: Request, principal: Principal, route: str) -> None:
        self.meter = meter
        self.request = request
        self.principal = principal
        self.call = call = Call.start(
            meter.host.request_ids.next(),
            request.headers.get("x-request-id", "").encode("latin-1") or None,
        )
        call.principal = principal
        # LiteLLM's end-user headers; a body's ``user`` field is taken by ``end_user``.
        headers = request.headers
        end_user = headers.get("x-litellm-end-user-id") or headers.get("x-litellm-customer-id")
        call.end_user = end_user[:256] if end_user else None
        call.request = ParsedRequest(
            kind=Kind.CHAT,
            model="",
            stream=False,
            wants_usage_chunk=False,
            max_tokens=None,
            body=b"",
            format=route,
        )
        self.deployment: Deployment | None = None
        self.state: DeploymentState | None = None
        self.upstream_model = ""
        # The model group (after aliases) and its members, when routed by model; the
        # group first asked for (whose fallbacks apply).
        self.group: tuple[str, Sequence[Deployment]] | None = None
        self.requested = ""
        # False: never billed nor logged (counting tokens, reading a listing).
        self.metered = True

    def end_user(self, user: object) -> None:
        """The request body's ``user`` (OpenAI's end-user field), unless a header named one."""
        if self.call.end_user is None and isinstance(user, str) and user:
            self.call.end_user = user[:256]

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body, bounded (413 before any byte is read when declared too large)."""
        limit = limit or self.meter.host.settings.max_body_bytes
        length = self.request.headers.get("content-length")
        body = await read_body(
            self.request.receive, None if length is None else length.encode("latin-1"), limit
        )
        assert self.call.request is not None
        self.call.request.prompt_bytes = len(body)
        self.call.request.body = body
        return body

    def route(self, model: str, deployment: Deployment | None = None) -> Deployment:
        """Authorize ``model`` and choose one deployment of its group (or take the one the
        object being read lives on)."""
        host = self.meter.host
        if not model:
            raise InvalidRequest("`model` is required", param="model")
        request = self.call.request
        assert request is not None
        request.model = model
        # The allowlist may map a key's alias to the model it stands for.
        host.model_policy(self.principal, request)
        model = request.model
        if deployment is None:
            resolved, group = host.router.resolve(model)
            state = host.router.choose(resolved, group)
            deployment = state.deployment
            self.upstream_model = deployment.resolve_model(resolved)
            self.group = (resolved, group)
            self.requested = resolved
        else:
            state = host.router.state(deployment)
            self.upstream_model = deployment.resolve_model(model)
        if deployment.provider in NOT_SERVING:
            raise InvalidRequest(
                f"{deployment.provider}/ deployments do not serve /{request.format}",
                param="model",
            )
        self.deployment, self.state = deployment, state
        self.call.deployment = deployment
        return deployment

    def reachable(self) -> list[tuple[Deployment, str]]:
        """Every deployment (and the model name it takes) a retry or fallback of this call may
        reach: the chosen one first, then its group, then the router's fallback groups."""
        deployment = self.deployment
        assert deployment is not None
        out = [(deployment, self.upstream_model)]
        if self.group is None:
            return out
        router = self.meter.host.router
        model, members = self.group
        out += [(d, d.resolve_model(model)) for d in members if d is not deployment]
        for name in router.settings.every_fallback(model):
            try:
                target, others = router.resolve(name)
            except NotFound:
                continue
            out += [(d, d.resolve_model(target)) for d in others if d.provider not in NOT_SERVING]
        return out

    def dearest(self, unit: Callable[[Deployment, str], UnitPrice]) -> UnitPrice:
        """The unit price to reserve at: the dearest of every deployment the call may reach;
        priced as the chosen deployment is (the rule chat's admission applies)."""
        prices = [unit(d, m) for d, m in self.reachable()]
        return UnitPrice(max(p.value for p in prices), prices[0].priced)

    def served(self, unit: Callable[[Deployment, str], UnitPrice]) -> float:
        """The unit price of the deployment that served the call (what is billed)."""
        assert self.deployment is not None
        return unit(self.deployment, self.upstream_model).value

    async def reserve(self, cost: float, tokens: int = 0, *, priced: bool = True) -> None:
        """Admit the call: ``cost`` (its worst case) reserved on every budget of the key's
        levels (key, user, team, organization, reusable budget, end user), rpm/tpm/parallel
        checked; with a shared (Redis) ledger, in Redis. An unpriced model (``priced``
        False) is refused to a caller with a budget unless ``TOLLWAY_ALLOW_UNPRICED=1``."""
        principal = self.principal
        if principal.role is not Role.KEY or principal.key_hash is None:
            return
        accounting = self.meter.host.accounting
        call = self.call
        assert call.request is not None
        accounts, budgeted = accounting.accounts_of(principal, call.request.model, call.end_user)
        if not priced and budgeted and not accounting.prices.allow_unpriced:
            provider = self.deployment.provider if self.deployment is not None else ""
            raise InvalidRequest(
                unpriced_message(f"{provider}/{self.upstream_model}"),
                param="model",
                code="model_unpriced",
            )
        shared = accounting.shared
        if shared is None:
            call.reservation = accounting.ledger.admit(call.uid, accounts, tokens=tokens, cost=cost)
            return
        pending = shared.pending(call.uid, accounts, tokens=tokens, cost=cost)
        call.reservation = await shared.admit_remote(pending)

    async def send(
        self,
        method: str,
        path: str,
        body: Body | BodyFor = None,
        *,
        content_type: str | None = "application/json",
        query: str = "",
    ) -> UpstreamReply:
        """``path`` (OpenAI's, e.g. ``images/generations``) on the chosen deployment; an
        error status is read and raised in the contract's shape. A retryable failure (429,
        5xx, unreachable, timeout) is retried, up to ``num_retries`` times, on another
        deployment of the group; then, as on chat, the router's fallback groups for that kind
        of failure are tried (at most ``max_fallbacks``). A body given as bytes is retried
        only on deployments taking the same model name and never falls back; a ``BodyFor``
        (multipart uploads included: their parts stay in memory, bounded) is built afresh
        for each attempt, so it can go anywhere."""
        # aiohttp's FormData is callable too: a ``BodyFor`` is told apart as what it is not.
        fixed: Body = None
        build: BodyFor | None = None
        if body is None or isinstance(body, bytes) or _is_form(body):
            fixed = body
        else:
            build = cast("BodyFor", body)
        rebuild = build is not None
        failed: set[int] = set()
        chain: tuple[str, ...] | None = None
        position = 0
        while True:
            assert self.deployment is not None
            payload = fixed if build is None else build(self.deployment, self.upstream_model)
            try:
                return await self._send_once(method, path, payload, content_type, query)
            except TollwayError as exc:
                failure = classify(exc)
                resendable = rebuild or payload is None or isinstance(payload, bytes)
                if failure is Failure.RETRYABLE and resendable and self._retry(failed, rebuild):
                    self.call.attempted_retries += 1
                    continue
                if not rebuild or failure is Failure.FATAL or self.group is None:
                    raise
                if chain is None:
                    settings = self.meter.host.router.settings
                    chain = settings.fallbacks_for(self.requested, failure)
                    chain = chain[: settings.max_fallbacks]
                while position < len(chain) and not self._fall_back(chain[position]):
                    position += 1
                if position >= len(chain):
                    raise
                position += 1
                failed = set()
                self.call.attempted_fallbacks += 1

    def _retry(self, failed: set[int], any_model: bool) -> bool:
        """Move to another deployment of the group for a retry; False when there is none."""
        deployment, group = self.deployment, self.group
        if group is None or deployment is None:
            return False
        settings = self.meter.host.router.settings
        allowed = deployment.params.max_retries
        if len(failed) >= (settings.num_retries if allowed is None else allowed):
            return False
        failed.add(id(deployment))
        model, members = group
        same = [
            d
            for d in members
            if id(d) not in failed
            and d.provider not in NOT_SERVING
            and (any_model or d.resolve_model(model) == self.upstream_model)
        ]
        if not same:
            return False
        try:
            state = self.meter.host.router.choose(model, same)
        except TollwayError:
            return False
        self._use(state, model)
        return True

    def _fall_back(self, name: str) -> bool:
        """Move to a deployment of the fallback group ``name``; False when none is usable."""
        router = self.meter.host.router
        try:
            model, members = router.resolve(name)
            serving = [d for d in members if d.provider not in NOT_SERVING]
            if not serving:
                return False
            state = router.choose(model, serving)
        except TollwayError:
            return False
        self.group = (model, serving)
        self._use(state, model)
        return True

    def _use(self, state: DeploymentState, model: str) -> None:
        self.deployment, self.state = state.deployment, state
        self.upstream_model = state.deployment.resolve_model(model)
        self.call.deployment = state.deployment

    async def _send_once(
        self, method: str, path: str, body: Body, content_type: str | None, query: str
    ) -> UpstreamReply:
        deployment = self.deployment
        assert deployment is not None and self.state is not None
        router = self.meter.host.router
        url, headers = upstream_head(deployment, self.upstream_model, path, query)
        if content_type is None:
            headers.pop("content-type", None)
        else:
            headers["content-type"] = content_type
        call = self.call
        call.reached_upstream = True
        router.started(self.state)
        started = time.perf_counter()
        try:
            reply = await self.meter.client.send(method, url, headers, body, deployment.deadlines)
            if reply.status >= 400:
                raw = await reply.read(deployment.deadlines.total)
                raise upstream_error(deployment, reply, raw)
        except TollwayError as exc:
            router.failed(self.state, exc, time.perf_counter() - started)
            raise
        except BaseException:
            router.finished(self.state, status=499)
            raise
        finally:
            call.upstream_s += time.perf_counter() - started
        router.finished(self.state, status=reply.status, latency=time.perf_counter() - started)
        return reply

    async def send_to(
        self, method: str, url: str, headers: Mapping[str, str], body: Body
    ) -> UpstreamReply:
        """A request as given (pass-through): any status comes back as the reply."""
        deployment = self.deployment
        assert deployment is not None
        self.call.reached_upstream = True
        started = time.perf_counter()
        try:
            return await self.meter.client.send(method, url, headers, body, deployment.deadlines)
        finally:
            self.call.upstream_s += time.perf_counter() - started

    def bill(self, units: float, unit_price: float, tokens: int | None = None) -> None:
        """The call's cost: ``units`` (images, seconds, characters, queries, tokens) at
        ``unit_price`` each; recorded as prompt units so every sink sees one row shape."""
        count = max(0, int(units + 0.999999))
        self.call.price = ModelPrice(input_cost_per_token=unit_price)
        self.call.usage = Usage(prompt_tokens=count, total_tokens=tokens or count)

    def bill_usage(self, usage: Usage, price: ModelPrice) -> None:
        self.call.price = price
        self.call.usage = usage

    def headers(self) -> dict[str, str]:
        """The contract's headers on every inference reply."""
        call = self.call
        accounting = self.meter.host.accounting
        out = {
            "x-tollway-call-id": call.call_id,
            "x-tollway-overhead-ms": f"{call.overhead_ms():.3f}",
            "x-tollway-attempted-retries": str(call.attempted_retries),
            "x-tollway-attempted-fallbacks": str(call.attempted_fallbacks),
        }
        if call.deployment is not None:
            out["x-tollway-model"] = call.deployment.label
        cost = call.cost
        if cost is None and call.price is not None and call.usage is not None:
            cost = call.usage.prompt_tokens * call.price.input_cost_per_token
        if cost is not None:
            out["x-tollway-response-cost"] = f"{cost:.10g}"
        spend, limits = accounting.reply_view(self.principal)
        if spend is not None:
            out["x-tollway-key-spend"] = f"{spend:.10g}"
        out.update((name.decode(), value.decode()) for name, value in limits)
        return out

    def answer(
        self, body: bytes, status: int = 200, content_type: str = "application/json"
    ) -> Response:
        """A whole reply: settled first, so it carries its cost."""
        self.call.status = status
        self.call.response_bytes = len(body)
        if self.metered:
            self.meter.host.settle(self.call)
        return Response(body, status, self.headers(), media_type=content_type)

    def stream(
        self,
        reply: UpstreamReply,
        content_type: str,
        observe: Callable[[bytes], None] | None = None,
        done: Callable[[], None] | None = None,
    ) -> Response:
        """The upstream's body relayed as it arrives (``observe`` sees each chunk); ``done``
        runs when the relay ends, then the call is settled."""
        self.call.status = reply.status
        return Relay(self, reply, content_type, observe, done)


class Meter:
    """What every side endpoint shares: the host, the upstream client, the unit prices."""

    def __init__(self, host: EndpointHost) -> None:
        self.host = host
        self.client = SideClient()
        # Through the host each time: a config reload replaces its accounting.
        self.prices = UnitPrices(lambda d, m: host.accounting.price_of(d, m))

    async def serve(
        self,
        request: Request,
        route: str,
        work: Callable[[Side], Awaitable[Response]],
        *,
        settle: bool = True,
        key_header: str | None = None,
        query_key: str | None = None,
    ) -> Response:
        """Authenticate, then ``work``; the call is settled however it ends (``settle``
        False: a call that is never billed nor logged, such as counting tokens)."""
        principal = principal_of(self.host.auth, request.headers, key_header, query_key)
        side = Side(self, request, principal, route)
        side.metered = settle
        relayed = False
        try:
            response = await work(side)
            relayed = isinstance(response, Relay)
            return response
        except TollwayError as exc:
            side.call.status = exc.status
            side.call.error = exc
            raise
        except ClientGone:
            # Nobody is left to answer; the call is settled as cancelled.
            side.call.status = 499
            side.call.disconnected = True
            return Response(status_code=499)
        except asyncio.CancelledError:
            side.call.status = 499
            side.call.disconnected = True
            raise
        except Exception:
            side.call.status = 500
            raise
        finally:
            if settle and not relayed:
                self.host.settle(side.call)

    async def close(self) -> None:
        await self.client.close()


class Relay(Response):
    """A streamed reply whose call is settled when the relay ends (done, failed or cut)."""

    def __init__(
        self,
        side: Side,
        reply: UpstreamReply,
        content_type: str,
        observe: Callable[[bytes], None] | None,
        done: Callable[[], None] | None,
    ) -> None:
        super().__init__(None, reply.status, side.headers(), media_type=content_type)
        del self.headers["content-length"]
        self._side = side
        self._reply = reply
        self._observe = observe
        self._done = done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = self._side.call
        # A client that goes away ends the relay at once: the upstream is closed, so it
        # stops generating (and billing) what nobody will read.
        watcher = asyncio.create_task(self._watch(receive))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            call.headers_sent = True
            async for chunk in self._chunks():
                call.response_bytes += len(chunk)
                call.relayed_events += 1
                if self._observe is not None:
                    self._observe(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if call.disconnected:
                call.status = 499
                return
            await send({"type": "http.response.body", "body": b""})
        except TollwayError as exc:
            # After the headers nothing can be said in-band: the body ends unfinished.
            if call.disconnected:
                call.status = 499
            else:
                call.error = exc
                call.status = exc.status
        except (OSError, asyncio.CancelledError):
            call.status = 499
            call.disconnected = True
            raise
        finally:
            watcher.cancel()
            self._reply.close()
            if self._done is not None:
                self._done()
            if self._side.metered:
                self._side.meter.host.settle(call)

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._side.call.disconnected = True
        self._reply.close()

    def _chunks(self) -> AsyncIterator[bytes]:
        return self._reply.chunks()


def _is_form(body: object) -> TypeGuard[aiohttp.FormData]:
    """Whether ``body`` is an aiohttp ``FormData`` (only possible once aiohttp is loaded)."""
    aiohttp = sys.modules.get("aiohttp")
    return aiohttp is not None and isinstance(body, aiohttp.FormData)

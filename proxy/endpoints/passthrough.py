"""Provider pass-through routes, as LiteLLM offers them: ``/openai/*``, ``/anthropic/*``,
``/gemini/*``, ``/cohere/*`` forwarded to the provider as they are, with the gateway's
credential instead of the caller's virtual key (which authenticates the caller, and is never
sent upstream). So SDK features Tollway does not model still work behind the gateway.

The provider's base and key come from the first deployment of that provider in the config,
else from its ``<PROVIDER>_API_KEY`` / ``<PROVIDER>_API_BASE`` environment variables. A
request naming a ``model`` is checked against the key's allowlist and reserves its worst
case; a reply that carries usage (JSON, or the events of a stream) is billed at that model's
token price.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..config import LiteLLMParams, ModelInfo
from ..errors import InvalidRequest, NotFound
from ..model import Usage
from ..pricing import worst_case_cost
from ..routing import Router
from ..upstream.deployment import Deployment
from ..upstream.transport import Deadlines
from .meter import Meter, Side

# provider → (default base, its key header, the key's prefix in that header)
PROVIDERS: dict[str, tuple[str, str, str]] = {
    "openai": ("https://api.openai.com", "authorization", "Bearer "),
    "anthropic": ("https://api.anthropic.com", "x-api-key", ""),
    "gemini": ("https://generativelanguage.googleapis.com", "x-goog-api-key", ""),
    "cohere": ("https://api.cohere.com", "authorization", "Bearer "),
}
# Never forwarded: the caller's credentials, and what the client library sets itself.
_DROPPED = frozenset(
    {
        "authorization",
        "x-api-key",
        "x-goog-api-key",
        "api-key",
        "host",
        "content-length",
        "connection",
        "accept-encoding",
        "transfer-encoding",
        "expect",
    }
)
_VERSION_SUFFIX = re.compile(r"/v\d+(?:beta\d*|alpha\d*)?$")
_GEMINI_MODEL = re.compile(r"models/([^:/]+)")
PASS_THROUGH_MAX_BYTES = 64 * 1024 * 1024
# Of a stream, its start and its end are kept to find its usage in (Anthropic reports the
# input tokens first, OpenAI and Gemini the totals last).
_SNIFF_BYTES = 64 * 1024


class PathPattern(Protocol):
    """What the inference path needs of a provider-native path pattern (``re.Pattern``)."""

    def fullmatch(self, string: str, /) -> re.Match[str] | None: ...


class ModelGroupPath:
    """A provider-native path (Gemini's ``/gemini/v1beta/models/{model}:generateContent``)
    that is the gateway's own inference route only when its ``model`` is a model group of the
    config: under ``prefix``, a model no group serves is the provider's, so the path is left
    to the pass-through route (forwarded with the gateway's credential, billed from the
    reply's usage). Without the prefix (``/v1beta/...``) the path is always the gateway's."""

    __slots__ = ("_pattern", "_prefix", "_router")

    def __init__(self, pattern: re.Pattern[str], prefix: str, router: Callable[[], Router]):
        self._pattern = pattern
        self._prefix = prefix
        self._router = router

    def fullmatch(self, string: str, /) -> re.Match[str] | None:
        found = self._pattern.fullmatch(string)
        if found is None or not string.startswith(self._prefix):
            return found
        try:
            self._router().resolve(unquote(found.group("model")))
        except NotFound:
            return None
        return found


def usage_of(payload: Any) -> Usage | None:
    """Usage in OpenAI's, Anthropic's, Gemini's or Cohere's shape, wherever it sits."""
    if not isinstance(payload, dict):
        return None
    for holder in (payload, payload.get("message"), payload.get("response")):
        if not isinstance(holder, dict):
            continue
        usage = holder.get("usage") or holder.get("usageMetadata")
        if isinstance(usage, dict):
            units = usage.get("billed_units")
            billed: dict[str, Any] = units if isinstance(units, dict) else usage
            prompt = _first(billed, "prompt_tokens", "input_tokens", "promptTokenCount")
            completion = _first(
                billed, "completion_tokens", "output_tokens", "candidatesTokenCount"
            )
            return Usage(
                prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
            )
    return None


def _first(usage: dict[str, Any], *names: str) -> int:
    for name in names:
        value = usage.get(name)
        if isinstance(value, int | float):
            return int(value)
    return 0


class PassThrough:
    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def routes(self) -> list[BaseRoute]:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return [
            Route(f"/{name}/{{path:path}}", self._handler(name), methods=methods)
            for name in PROVIDERS
        ]

    def _handler(self, provider: str) -> Any:
        async def handle(request: Request) -> Response:
            gemini = provider == "gemini"
            return await self.meter.serve(
                request,
                f"{provider}/pass-through",
                lambda side: self._forward(side, provider),
                key_header="x-goog-api-key" if gemini else None,
                query_key=request.query_params.get("key") if gemini else None,
            )

        return handle

    def _target(self, provider: str) -> Deployment:
        for deployment in self.meter.host.router.deployments():
            if deployment.provider == provider:
                return deployment
        base, _header, _prefix = PROVIDERS[provider]
        env = provider.upper()
        key = os.environ.get(f"{env}_API_KEY") or (
            os.environ.get("GOOGLE_API_KEY") if provider == "gemini" else None
        )
        if not key:
            raise InvalidRequest(
                f"no {provider}/ deployment and no {env}_API_KEY: /{provider}/ is not configured"
            )
        settings = self.meter.host.settings
        return Deployment(
            id=f"pass-through-{provider}",
            model_name=f"{provider}/*",
            provider=provider,
            upstream_model="*",
            api_base=os.environ.get(f"{env}_API_BASE", base),
            api_key=key,
            params=LiteLLMParams(model=f"{provider}/*"),
            info=ModelInfo(),
            deadlines=Deadlines(
                connect=settings.connect_timeout_s,
                read=settings.request_timeout_s,
                total=settings.request_timeout_s,
            ),
        )

    async def _forward(self, side: Side, provider: str) -> Response:
        request = side.request
        deployment = self._target(provider)
        body = await side.read(PASS_THROUGH_MAX_BYTES)
        payload: Any = None
        if body and request.headers.get("content-type", "").startswith("application/json"):
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                payload = None
        path: str = request.path_params["path"]
        model = payload.get("model") if isinstance(payload, dict) else None
        if isinstance(payload, dict):
            side.end_user(payload.get("user"))
        if model is None and provider == "gemini":
            found = _GEMINI_MODEL.search(path)
            model = found.group(1) if found else None
        call_request = side.call.request
        assert call_request is not None
        call_request.model = str(model or f"{provider}/pass-through")
        if isinstance(model, str):
            self.meter.host.model_policy(side.principal, call_request)
        side.deployment = deployment
        side.upstream_model = str(model or "")
        side.call.deployment = deployment
        side.state = None
        price = self.meter.host.accounting.price_of(deployment, side.upstream_model)
        max_tokens = payload.get("max_tokens") if isinstance(payload, dict) else None
        await side.reserve(
            worst_case_cost(
                price,
                prompt_tokens=len(body),
                max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            ),
            # A call naming a model is refused to a budgeted caller when nobody priced it.
            priced=price.priced or not isinstance(model, str),
        )
        base = (deployment.api_base or PROVIDERS[provider][0]).rstrip("/")
        url = f"{_VERSION_SUFFIX.sub('', base)}/{path}"
        query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "key"])
        headers = {k: v for k, v in request.headers.items() if k not in _DROPPED}
        _base, key_header, prefix = PROVIDERS[provider]
        if deployment.api_key:
            headers[key_header] = prefix + deployment.api_key
        if provider == "anthropic":
            headers.setdefault("anthropic-version", "2023-06-01")
        headers["accept-encoding"] = "identity"
        reply = await side.send_to(
            request.method, url + (f"?{query}" if query else ""), headers, body or None
        )
        content_type = reply.headers.get("content-type", "application/json")
        if content_type.startswith("text/event-stream"):
            sniffer = UsageSniffer()

            def done() -> None:
                usage = sniffer.usage()
                if usage is not None:
                    side.bill_usage(usage, price)

            return side.stream(reply, content_type, sniffer.observe, done)
        raw = await reply.read(deployment.deadlines.total)
        try:
            usage = (
                usage_of(orjson.loads(raw)) if content_type.startswith("application/json") else None
            )
        except orjson.JSONDecodeError:
            usage = None
        if usage is not None:
            side.bill_usage(usage, price)
        return side.answer(raw, reply.status, content_type)


class UsageSniffer:
    """The first and the last ``_SNIFF_BYTES`` of a relayed stream, read for usage at its end."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._tail = bytearray()

    def observe(self, chunk: bytes) -> None:
        if len(self._head) < _SNIFF_BYTES:
            self._head += chunk
            return
        self._tail += chunk
        if len(self._tail) > 2 * _SNIFF_BYTES:
            del self._tail[:-_SNIFF_BYTES]

    def usage(self) -> Usage | None:
        # The tail is cut at a line start, so a half event is never read.
        tail = bytes(self._tail)
        cut = tail.find(b"\n")
        return _stream_usage(bytes(self._head) + b"\n" + (tail[cut + 1 :] if cut >= 0 else b""))


def _stream_usage(data: bytes) -> Usage | None:
    """The largest usage any event of an SSE stream reported (they count up)."""
    prompt = completion = 0
    found = False
    for line in data.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        try:
            usage = usage_of(orjson.loads(line[5:].strip()))
        except orjson.JSONDecodeError:
            continue
        if usage is not None:
            found = True
            prompt = max(prompt, usage.prompt_tokens)
            completion = max(completion, usage.completion_tokens)
    if not found:
        return None
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )

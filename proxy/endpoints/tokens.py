"""Token counting and model lookup: ``/v1/messages/count_tokens`` (Anthropic's; passed
through to ``anthropic/`` deployments, answered from the gateway's estimate for others),
``/utils/token_counter`` (LiteLLM's) and ``GET /v1/models/{id}``. None of them is billed.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import NotFound
from ..upstream.deployment import Deployment
from ..upstream.native import with_model
from ..usage import estimate_tokens
from .inference import decode
from .meter import Meter, Side, json_response

# What a chat template adds per message (role markers, separators), as OpenAI documents it.
TOKENS_PER_MESSAGE = 3


class CountBody(msgspec.Struct):
    model: str
    messages: list[Any] = []
    system: Any = None
    tools: list[Any] | None = None


class CounterBody(msgspec.Struct):
    model: str
    messages: list[Any] | None = None
    prompt: str | None = None
    contents: list[Any] | None = None


def estimate(*parts: Any, messages: int = 0) -> int:
    """Tokens of every string in ``parts`` (about four bytes a token), plus per message."""
    size = 0
    stack = list(parts)
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            size += len(item.encode())
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return estimate_tokens(size) + TOKENS_PER_MESSAGE * messages


class TokenEndpoints:
    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            Route("/messages/count_tokens", self.count_tokens, methods=["POST"]),
            Route("/utils/token_counter", self.token_counter, methods=["POST"]),
            Route("/v1/models/{model_id:path}", self.model, methods=["GET"]),
            Route("/models/{model_id:path}", self.model, methods=["GET"]),
        ]

    async def count_tokens(self, request: Request) -> Response:
        async def work(side: Side) -> Response:
            body = await side.read()
            spec: CountBody = decode(body, CountBody)
            deployment = self._route(side, spec.model)
            if deployment.provider == "anthropic":
                reply = await side.send(
                    "POST", "messages/count_tokens", with_model(body, side.upstream_model)
                )
                raw = await reply.read(deployment.deadlines.total)
                return Response(raw, 200, side.headers(), media_type="application/json")
            tokens = estimate(spec.messages, spec.system, spec.tools, messages=len(spec.messages))
            return json_response({"input_tokens": tokens}, headers=side.headers())

        # Counting is not a completion: no reservation, no spend-log row.
        return await self.meter.serve(request, "messages/count_tokens", work, settle=False)

    async def token_counter(self, request: Request) -> Response:
        async def work(side: Side) -> Response:
            spec: CounterBody = decode(await side.read(), CounterBody)
            deployment = self._route(side, spec.model)
            messages = spec.messages or []
            tokens = estimate(messages, spec.prompt, spec.contents, messages=len(messages))
            return json_response(
                {
                    "total_tokens": tokens,
                    "request_model": spec.model,
                    "model_used": deployment.params.model,
                    "tokenizer_type": "openai_tokenizer",
                }
            )

        return await self.meter.serve(request, "utils/token_counter", work, settle=False)

    def _route(self, side: Side, model: str) -> Deployment:
        """The deployment serving ``model`` (authorized); an ``anthropic/`` one is chosen as
        a call would choose it, since the count is asked of it."""
        host = self.meter.host
        request = side.call.request
        assert request is not None
        request.model = model
        host.model_policy(side.principal, request)
        resolved, group = host.router.resolve(request.model)
        deployment = group[0]
        if deployment.provider == "anthropic":
            return side.route(resolved)
        side.upstream_model = deployment.resolve_model(resolved)
        return deployment

    async def model(self, request: Request) -> Response:
        """``GET /v1/models/{id}``: a model the key may use, in OpenAI's shape; else 404."""
        host = self.meter.host
        principal = host.auth.authenticate_headers(request.headers)
        model_id: str = request.path_params["model_id"]
        if model_id not in host.model_policy.visible(principal, host.router.model_names()):
            raise NotFound(f"model {model_id[:100]!r} is not served here", param="model")
        return json_response(
            {"id": model_id, "object": "model", "created": host.started_at, "owned_by": "tollway"}
        )

"""``GET /guardrails/list`` and ``POST /guardrails/apply_guardrail`` (LiteLLM's shapes).

The list shows each guardrail's name, kind, modes and ``default_on`` — never its other
parameters (API keys and endpoints stay out). Applying one runs its input check on a text,
for trying a policy out; a block is the same 400 a call would get.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import Principal
from ..errors import NotFound
from .stage import Guardrails


class ApplyGuardrail(msgspec.Struct, forbid_unknown_fields=True):
    guardrail_name: str
    text: str
    language: str | None = None
    entities: list[str] | None = None


def guardrail_routes(
    guardrails: Guardrails,
    authenticate: Callable[[Mapping[str, str]], Principal],
    decode_body: Callable[[Request, type[ApplyGuardrail]], object],
) -> list[Route]:
    async def listing(request: Request) -> Response:
        authenticate(request.headers)
        items = [
            {
                "guardrail_name": name,
                "litellm_params": {
                    "guardrail": c.entry.kind,
                    "mode": sorted(m.value for m in c.entry.modes),
                    "default_on": c.entry.default_on,
                },
                "guardrail_info": c.entry.info,
            }
            for name, c in guardrails.configured.items()
        ]
        return _json({"guardrails": items})

    async def apply(request: Request) -> Response:
        authenticate(request.headers)
        body = await decode_body(request, ApplyGuardrail)  # type: ignore[misc]
        assert isinstance(body, ApplyGuardrail)
        configured = guardrails.configured.get(body.guardrail_name)
        if configured is None:
            raise NotFound(
                f"guardrail {body.guardrail_name!r} does not exist", code="guardrail_not_found"
            )
        text = await guardrails.apply(configured, body.text)
        return _json({"response_text": text})

    return [
        Route("/guardrails/list", listing, methods=["GET"]),
        Route("/v2/guardrails/list", listing, methods=["GET"]),
        Route("/guardrails/apply_guardrail", apply, methods=["POST"]),
    ]


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")

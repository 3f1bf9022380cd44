"""``/model_group/info`` (the model groups the caller may use, LiteLLM's shape) and
``/routes`` (the routes the gateway serves, as LiteLLM lists them; no key needed, like
``/openapi.json``)."""

from __future__ import annotations

import fnmatch
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import PermissionDenied
from ..upstream.deployment import Deployment
from .common import AdminRoutes, check_query, json_response, query_str


def group_object(name: str, deployments: list[Deployment], access: list[str]) -> dict[str, Any]:
    infos = [d.info for d in deployments]

    def first(field: str) -> Any:
        return next((v for v in (getattr(i, field) for i in infos) if v is not None), None)

    return {
        "model_group": name,
        "providers": sorted({d.provider for d in deployments}),
        "max_input_tokens": first("max_input_tokens"),
        "max_output_tokens": first("max_output_tokens"),
        "input_cost_per_token": first("input_cost_per_token"),
        "output_cost_per_token": first("output_cost_per_token"),
        "mode": first("mode") or "chat",
        "supports_function_calling": bool(first("supports_function_calling")),
        "supports_vision": bool(first("supports_vision")),
        "model_group_access_groups": access,
        "deployments": len(deployments),
    }


class ModelGroupRoutes(AdminRoutes):
    def routes(self) -> list[Route]:
        return [
            Route("/model_group/info", self.info, methods=["GET"]),
            Route("/routes", self.list_routes, methods=["GET"]),
        ]

    async def info(self, request: Request) -> Response:
        """Any key may call it; it lists only the groups that key may use."""
        state = self.state
        if state.auth.open:
            raise PermissionDenied("admin API disabled: no master key configured")
        principal = state.auth.authenticate_headers(request.headers)
        check_query(request, ("model_group",))
        wanted = query_str(request, "model_group")
        policy = state.model_policy
        groups = state.router.groups()
        # A wildcard group (``anthropic/*``) is listed as the priced models it serves, as
        # LiteLLM expands it.
        served: dict[str, list[Deployment]] = {}
        priced = state.accounting.prices.prices
        for name, deployments in groups.items():
            if any(ch in name for ch in "*?["):
                # Price entries are keyed by model; their provider makes ``provider/model``.
                for model, price in sorted(priced.items()):
                    full = model if "/" in model else f"{price.provider}/{model}"
                    if fnmatch.fnmatchcase(full, name):
                        served.setdefault(full, deployments)
            else:
                served[name] = deployments
        names = [n for n in served if wanted is None or n == wanted]
        data = []
        for name in policy.visible(principal, names):
            access = sorted(g for g, members in policy.groups.items() if name in members)
            data.append(group_object(name, served[name], access))
        return json_response({"data": data})

    async def list_routes(self, request: Request) -> Response:
        check_query(request, ())
        listed = []
        for route in request.app.routes:
            path = getattr(route, "path", None)
            if path is not None:
                methods = sorted(getattr(route, "methods", None) or ())
                listed.append({"path": path, "methods": methods})
        return json_response({"routes": listed})

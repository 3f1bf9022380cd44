"""``/model/info``: the configured deployments, without any credential."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from msgspec.structs import asdict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..upstream.deployment import Deployment
from .common import Action, AdminRoutes, authorize, json_response, query_str

# Fields of litellm_params never shown: credentials, and headers that may carry them.
_SECRET_PARAMS = frozenset(
    {"api_key", "aws_access_key_id", "aws_secret_access_key", "extra_headers"}
)
_SECRET_WORDS = ("key", "secret", "token", "password", "credential")


def _safe_url(url: str | None) -> str | None:
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def deployment_object(
    deployment: Deployment, state: dict[str, Any] | None = None
) -> dict[str, Any]:
    params = {
        name: value
        for name, value in asdict(deployment.params).items()
        if name not in _SECRET_PARAMS and not any(word in name for word in _SECRET_WORDS)
    }
    params["api_base"] = _safe_url(deployment.params.api_base)
    info = asdict(deployment.info)
    info["id"] = info.get("id") or deployment.id
    if state is not None:
        # The router's live view: healthy / cooling until / fails / in flight / latency EWMA.
        info["deployment_state"] = state
    return {"model_name": deployment.model_name, "litellm_params": params, "model_info": info}


class ModelRoutes(AdminRoutes):
    def routes(self) -> list[Route]:
        return [
            Route("/model/info", self.info, methods=["GET"]),
            Route("/v1/model/info", self.info, methods=["GET"]),
        ]

    async def info(self, request: Request) -> Response:
        caller = authorize(self.state, request, Action.MODEL_READ)
        wanted = query_str(request, "litellm_model_id")
        allowed: set[str] | None = None
        if not caller.is_master and caller.key.models:
            allowed = set(caller.key.models)
        router = self.state.router
        data = [
            deployment_object(d, router.state(d).snapshot())
            for d in router.deployments()
            if (wanted is None or d.id == wanted or d.info.id == wanted)
            and (allowed is None or d.model_name in allowed)
        ]
        return json_response({"data": data})

"""``/model/info`` (every deployment, its price and where the price came from, without any
credential; a plain key sees the deployments of the models it may call) and
``/model/new|update|delete`` for models stored in the database (``store_model_in_db: true`` /
``STORE_MODEL_IN_DB=True``; master key only)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
from msgspec.structs import asdict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidRequest, PermissionDenied
from ..pricing import UNIT_FIELDS, ModelPrice
from ..upstream.deployment import Deployment
from .common import (
    Action,
    AdminRoutes,
    AdminState,
    Caller,
    authorize,
    decode_body,
    json_response,
    query_str,
)
from .runtime_models import RuntimeModels

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


class NewModel(msgspec.Struct, forbid_unknown_fields=True):
    model_name: str
    litellm_params: dict[str, Any]
    model_info: dict[str, Any] = msgspec.field(default_factory=dict)


class UpdateModel(msgspec.Struct, forbid_unknown_fields=True):
    model_id: str | None = None
    model_name: str | None = None
    litellm_params: dict[str, Any] = msgspec.field(default_factory=dict)
    model_info: dict[str, Any] = msgspec.field(default_factory=dict)


class DeleteModel(msgspec.Struct, forbid_unknown_fields=True):
    id: str


def price_fields(price: ModelPrice) -> dict[str, Any]:
    """The price a deployment is billed at, and its source (None: unpriced)."""
    return {
        "input_cost_per_token": price.input_cost_per_token if price.priced else None,
        "output_cost_per_token": price.output_cost_per_token if price.priced else None,
        "cache_read_input_token_cost": price.cache_read_input_token_cost,
        # The side endpoints' unit prices (per image: the model's dearest size and quality).
        **{name: getattr(price, name) for name in UNIT_FIELDS},
        "price_source": price.source,
        "price_source_date": price.source_date,
    }


def deployment_object(
    deployment: Deployment,
    state: dict[str, Any] | None = None,
    price: ModelPrice | None = None,
    stored: bool = False,
) -> dict[str, Any]:
    params = {
        name: value
        for name, value in asdict(deployment.params).items()
        if name not in _SECRET_PARAMS and not any(word in name for word in _SECRET_WORDS)
    }
    params["api_base"] = _safe_url(deployment.params.api_base)
    info = asdict(deployment.info)
    info["id"] = info.get("id") or deployment.id
    info["db_model"] = stored
    if price is not None:
        info.update(price_fields(price))
    if state is not None:
        # The router's live view: healthy / cooling until / fails / in flight / latency EWMA.
        info["deployment_state"] = state
    return {"model_name": deployment.model_name, "litellm_params": params, "model_info": info}


class ModelRoutes(AdminRoutes):
    def routes(self) -> list[Route]:
        out = []
        for prefix in ("", "/v1"):
            out += [
                Route(f"{prefix}/model/info", self.info, methods=["GET"]),
                Route(f"{prefix}/model/new", self.new, methods=["POST"]),
                Route(f"{prefix}/model/update", self.update, methods=["POST"]),
                Route(f"{prefix}/model/{{model_id}}/update", self.patch, methods=["PATCH"]),
                Route(f"{prefix}/model/delete", self.delete, methods=["POST"]),
            ]
        return out

    async def info(self, request: Request) -> Response:
        """Admin keys see every deployment (a team-scoped one, its key's models) with the
        router's live state; any other key, as LiteLLM allows, the deployments of the models
        it may call (its key's, user's and team's lists, wildcards and access groups), with
        credentials masked and without the router's state."""
        caller = authorize(self.state, request, Action.MODEL_READ, allow_self=True)
        wanted = query_str(request, "litellm_model_id")
        allowed: set[str] | None = None
        if not caller.is_master and not caller.self_only and caller.key.models:
            allowed = set(caller.key.models)
        router = self.state.router
        runtime = self.state.runtime_models
        price_of = self.state.accounting.price_of
        policy = self.state.model_policy
        visible: dict[str, bool] = {}

        def shown(deployment: Deployment) -> bool:
            if allowed is not None:
                return deployment.model_name in allowed
            if not caller.self_only:
                return True
            name = deployment.model_name
            if name not in visible:
                visible[name] = policy.may_use(caller.principal, name)
            return visible[name]

        data = [
            deployment_object(
                d,
                None if caller.self_only else router.state(d).snapshot(),
                price_of(d, d.upstream_model),
                stored=runtime is not None and runtime.is_stored(d.id),
            )
            for d in router.deployments()
            if (wanted is None or d.id == wanted or d.info.id == wanted) and shown(d)
        ]
        return json_response({"data": data})

    async def new(self, request: Request) -> Response:
        caller, runtime = self._writer(request)
        body = await decode_body(request, NewModel)
        deployment = await runtime.add(
            body.model_name, body.litellm_params, body.model_info, caller.created_by
        )
        return json_response(self._created(deployment))

    async def update(self, request: Request) -> Response:
        _caller, runtime = self._writer(request)
        body = await decode_body(request, UpdateModel)
        model_id = body.model_id or body.model_info.get("id")
        if not model_id:
            raise InvalidRequest("model_info.id (or model_id) names the model", param="model_id")
        deployment = await runtime.update(
            str(model_id), body.model_name, body.litellm_params, body.model_info
        )
        return json_response(self._created(deployment))

    async def patch(self, request: Request) -> Response:
        _caller, runtime = self._writer(request)
        body = await decode_body(request, UpdateModel)
        deployment = await runtime.update(
            request.path_params["model_id"], body.model_name, body.litellm_params, body.model_info
        )
        return json_response(self._created(deployment))

    async def delete(self, request: Request) -> Response:
        _caller, runtime = self._writer(request)
        body = await decode_body(request, DeleteModel)
        await runtime.delete(body.id)
        return json_response({"message": f"Model: {body.id} deleted successfully"})

    def _created(self, deployment: Deployment) -> dict[str, Any]:
        price = self.state.accounting.price_of(deployment, deployment.upstream_model)
        out = deployment_object(deployment, price=price, stored=True)
        out["model_id"] = deployment.id
        return out

    def _writer(self, request: Request) -> tuple[Caller, RuntimeModels]:
        return writer(self.state, request)


def writer(state: AdminState, request: Request) -> tuple[Caller, RuntimeModels]:
    """The master key, with models stored in the database: what every write here needs."""
    caller = authorize(state, request, Action.MODEL_READ)
    if not caller.is_master:
        raise PermissionDenied(f"{request.url.path} needs the master key", code="admin_only")
    runtime = state.runtime_models
    if runtime is None:
        raise InvalidRequest(
            f"{request.url.path} needs models stored in the database: set "
            "general_settings.store_model_in_db: true (or STORE_MODEL_IN_DB=True)",
            code="store_model_in_db_off",
        )
    return caller, runtime

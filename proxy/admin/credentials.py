"""``/credentials``: named provider credentials that stored models use through
``litellm_params.litellm_credential_name`` (LiteLLM's API). Values are sealed at rest and
never returned: reads show the credential's name, its info and which value fields it holds.
Master key only; needs ``store_model_in_db``."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidRequest, NotFound
from ..store.models_db import CredentialRow
from .common import AdminRoutes, decode_body, iso, json_response
from .models import writer


class NewCredential(msgspec.Struct, forbid_unknown_fields=True):
    credential_name: str
    credential_values: dict[str, Any]
    credential_info: dict[str, Any] = msgspec.field(default_factory=dict)


class UpdateCredential(msgspec.Struct, forbid_unknown_fields=True):
    credential_name: str | None = None
    credential_values: dict[str, Any] = msgspec.field(default_factory=dict)
    credential_info: dict[str, Any] = msgspec.field(default_factory=dict)


def credential_object(row: CredentialRow) -> dict[str, Any]:
    return {
        "credential_name": row.credential_name,
        "credential_info": row.credential_info,
        # Which fields are set, never their values.
        "credential_values": {name: "********" for name in row.credential_values},
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


class CredentialRoutes(AdminRoutes):
    def routes(self) -> list[Route]:
        out = []
        for prefix in ("", "/v1"):
            out += [
                Route(f"{prefix}/credentials", self.create, methods=["POST"]),
                Route(f"{prefix}/credentials", self.list, methods=["GET"]),
                Route(f"{prefix}/credentials/by_name/{{name}}", self.get, methods=["GET"]),
                Route(f"{prefix}/credentials/{{name}}", self.update, methods=["PATCH", "PUT"]),
                Route(f"{prefix}/credentials/{{name}}", self.delete, methods=["DELETE"]),
            ]
        return out

    async def create(self, request: Request) -> Response:
        caller, runtime = writer(self.state, request)
        body = await decode_body(request, NewCredential)
        row = await runtime.put_credential(
            body.credential_name, body.credential_values, body.credential_info, caller.created_by
        )
        return json_response({"success": True, **credential_object(row)})

    async def list(self, request: Request) -> Response:
        _caller, runtime = writer(self.state, request)
        rows = sorted(runtime.credentials.values(), key=lambda r: r.credential_name)
        return json_response({"credentials": [credential_object(r) for r in rows]})

    async def get(self, request: Request) -> Response:
        _caller, runtime = writer(self.state, request)
        name = request.path_params["name"]
        row = runtime.credentials.get(name)
        if row is None:
            raise NotFound(f"credential {name!r} not found", param="credential_name")
        return json_response(credential_object(row))

    async def update(self, request: Request) -> Response:
        caller, runtime = writer(self.state, request)
        name = request.path_params["name"]
        if name not in runtime.credentials:
            raise NotFound(f"credential {name!r} not found", param="credential_name")
        body = await decode_body(request, UpdateCredential)
        if body.credential_name not in (None, name):
            raise InvalidRequest(
                "a credential cannot be renamed; create one under the new name",
                param="credential_name",
            )
        row = await runtime.put_credential(
            name, body.credential_values, body.credential_info, caller.created_by
        )
        return json_response({"success": True, **credential_object(row)})

    async def delete(self, request: Request) -> Response:
        _caller, runtime = writer(self.state, request)
        await runtime.delete_credential(request.path_params["name"])
        return json_response({"success": True})

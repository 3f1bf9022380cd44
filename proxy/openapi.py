"""The OpenAPI 3.1 document, generated from the routes the gateway serves and the msgspec
structs that decode their bodies.

Every framework route is listed (so no admin route can be missing); a handler's request body
is the struct it passes to ``decode_body`` and its query parameters are the names it reads
with the ``query_*`` helpers — both found in the handler's own code, and the body's schema
comes from ``msgspec.json.schema_components`` over that very struct, so the document cannot
drift from what the server accepts. The inference paths (raw ASGI, not framework routes)
are described from the typed model in ``proxy.model``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec
from starlette.routing import BaseRoute, Route

from .model import ChatReply, ChatRequest, EmbeddingReply, EmbeddingRequest


class Operation(NamedTuple):
    method: str
    path: str
    tag: str
    summary: str
    body: type | None = None
    params: Sequence[str] = ()
    example: dict[str, Any] | None = None
    reply: type | None = None
    public: bool = False


_CHAT_EXAMPLE = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
INFERENCE: tuple[Operation, ...] = (
    Operation(
        "post",
        "/v1/chat/completions",
        "inference",
        "Chat completion (OpenAI format)",
        ChatRequest,
        example=_CHAT_EXAMPLE,
        reply=ChatReply,
    ),
    Operation("post", "/v1/completions", "inference", "Text completion (OpenAI format)"),
    Operation(
        "post",
        "/v1/embeddings",
        "inference",
        "Embeddings (OpenAI format)",
        EmbeddingRequest,
        example={"model": "text-embedding-3-small", "input": "hello"},
        reply=EmbeddingReply,
    ),
    Operation("post", "/v1/messages", "inference", "Messages (Anthropic format)"),
    Operation("post", "/v1/responses", "inference", "Responses (OpenAI Responses format)"),
)

# Examples for the request bodies people type most; the schemas come from the structs.
EXAMPLES: dict[str, dict[str, Any]] = {
    "/key/generate": {
        "key_alias": "billing-svc",
        "team_id": "team-a",
        "models": ["gpt-4o-mini"],
        "max_budget": 10.0,
        "budget_duration": "30d",
        "rpm_limit": 60,
    },
    "/key/update": {"key": "sk-...", "max_budget": 20.0},
    "/key/delete": {"keys": ["sk-..."]},
    "/key/block": {"key": "sk-..."},
    "/key/unblock": {"key": "sk-..."},
    "/key/regenerate": {"key": "sk-..."},
    "/team/new": {"team_alias": "search", "max_budget": 100.0, "budget_duration": "30d"},
    "/team/update": {"team_id": "team-a", "blocked": True},
    "/team/delete": {"team_ids": ["team-a"]},
    "/user/new": {"user_id": "ada", "user_email": "ada@example.com", "max_budget": 5.0},
    "/user/update": {"user_id": "ada", "max_budget": 10.0},
    "/user/delete": {"user_ids": ["ada"]},
}
# Routes anyone may call (no key): they are marked so in the document.
PUBLIC_PATHS = frozenset(
    {
        "/health/liveliness",
        "/health/liveness",
        "/health/readiness",
        "/metrics",
        "/metrics/",
        "/docs",
        "/openapi.json",
        "/ui",
        "/ui/",
        "/ui/static/{path:path}",
        # The UI's session routes: authenticated by the session cookie, not by a key.
        "/ui/login",
        "/ui/session",
        "/ui/logout",
    }
)

_BODY = re.compile(r"decode_body\(\s*request\s*,\s*([A-Za-z_][\w.]*)")
_QUERY = re.compile(r"query_(?:str|int|time|page)\(\s*request\s*,\s*\"(\w+)\"")
_QUERY_RAW = re.compile(r"query_params\.get\(\s*\"(\w+)\"")


def _code_of(endpoint: Callable[..., Any]) -> tuple[str, Mapping[str, Any]]:
    function = getattr(endpoint, "__func__", endpoint)
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return "", {}
    return source, getattr(function, "__globals__", {})


def route_operations(routes: Iterable[BaseRoute]) -> list[Operation]:
    """One operation per method of every framework route, read from its handler."""
    found: list[Operation] = []
    for route in routes:
        if not isinstance(route, Route) or route.path.startswith("/ui/static"):
            continue
        source, names = _code_of(route.endpoint)
        bodies = [names.get(name) for name in _BODY.findall(source)]
        body = next((b for b in bodies if isinstance(b, type)), None)
        params = list(dict.fromkeys(_QUERY.findall(source) + _QUERY_RAW.findall(source)))
        if "query_page(" in source:
            params.insert(0, "page")
        tag = route.path.strip("/").split("/")[0] or "ops"
        if tag == "v1" or tag == "v2":
            tag = route.path.strip("/").split("/")[1]
        doc = inspect.getdoc(route.endpoint) or ""
        name = getattr(route.endpoint, "__name__", "").strip("_").replace("_", " ")
        summary = doc.split("\n", 1)[0] if doc else f"{tag.replace('_', ' ')}: {name}"
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            found.append(
                Operation(
                    method.lower(),
                    route.path,
                    tag,
                    summary,
                    body=body if method != "GET" else None,
                    params=params,
                    example=EXAMPLES.get(route.path),
                    public=route.path in PUBLIC_PATHS,
                )
            )
    return found


def build_spec(operations: Sequence[Operation], version: str = "0.1.0") -> dict[str, Any]:
    everything = [*INFERENCE, *operations]
    types = [t for op in everything for t in (op.body, op.reply) if t is not None]
    unique = list(dict.fromkeys(types))
    schemas, components = msgspec.json.schema_components(
        unique, ref_template="#/components/schemas/{name}"
    )
    refs = dict(zip(unique, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in everything:
        paths.setdefault(op.path.replace(":path}", "}"), {})[op.method] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tollway",
            "version": version,
            "description": "LiteLLM-compatible LLM gateway: inference and admin API. "
            "Authenticate with `Authorization: Bearer <key>` (the master key, or a key whose "
            "type allows the route). Every route is also served without the `/v1` prefix.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": {**components, "Error": _ERROR_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(op: Operation, refs: dict[type, Any]) -> dict[str, Any]:
    path_params = re.findall(r"\{(\w+)(?::\w+)?\}", op.path)
    out: dict[str, Any] = {
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": op.method + re.sub(r"[^A-Za-z0-9]+", "_", op.path).rstrip("_"),
        "responses": _responses(op, refs),
    }
    if op.public:
        out["security"] = []
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in path_params
    ] + [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in op.params
        if name not in path_params
    ]
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        content: dict[str, Any] = {"schema": refs[op.body]}
        if op.example is not None:
            content["example"] = op.example
        out["requestBody"] = {"required": True, "content": {"application/json": content}}
    return out


def _responses(op: Operation, refs: dict[type, Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "success"}
    if op.reply is not None:
        ok["content"] = {"application/json": {"schema": refs[op.reply]}}
    responses: dict[str, Any] = {"200": ok, "400": _ERROR}
    if not op.public:
        responses["401"] = _ERROR
        responses["403"] = _ERROR
    return responses


_ERROR = {
    "description": "error (the gateway's one error shape)",
    "content": {
        "application/json": {
            "schema": {"$ref": "#/components/schemas/Error"},
            "example": {
                "error": {
                    "message": "invalid API key",
                    "type": "authentication_error",
                    "param": None,
                    "code": "401",
                }
            },
        }
    },
}
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

"""``/v1/files`` and ``/v1/batches``, passed through to OpenAI-compatible upstreams.

Each file and batch belongs to the key that created it: another key gets 404 for it, and
listings show a key only its own. A batch's output file belongs to the batch's owner and is
billed when it is first read, from the usage of every line (at the model's token price,
halved as OpenAI prices its Batch API). Which upstream: the deployment of the ``model`` form
field or query parameter, else the first OpenAI-compatible deployment in the config.

Ownership is kept in the store (``owned_objects``, migration 0009) and in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import InvalidRequest, NotFound
from ..model import Usage
from ..store import Store
from ..store.owned import OwnedObjects, OwnedRow
from ..upstream.deployment import Deployment
from .inference import decode, decode_reply, form_data, read_form
from .meter import Meter, Side

# Files are uploaded whole into memory before they go upstream: bounded.
FILE_MAX_BYTES = 200 * 1024 * 1024
BATCH_PRICE_FACTOR = 0.5
_NOT_UPSTREAM = ("anthropic", "gemini", "cohere", "bedrock", "mock", "auto_router")


class Owned:
    __slots__ = ("billed", "deployment", "kind", "owner")

    def __init__(self, owner: str, deployment: Deployment, kind: str) -> None:
        self.owner = owner
        self.deployment = deployment
        self.kind = kind  # "file", "batch", "batch_output"
        self.billed = False


class Owners:
    """Object id → who owns it and the deployment it lives on: kept in memory (bounded),
    and in the store's ``owned_objects`` table once attached, so other workers and later
    runs know it too (a miss in memory is looked up there: files and batches are a slow
    path, each waiting on its upstream anyway)."""

    def __init__(self, deployment: Callable[[str], Deployment | None], limit: int = 100_000):
        self._objects: dict[str, Owned] = {}
        self._deployment = deployment
        self._limit = limit
        self._db: OwnedObjects | None = None

    async def attach(self, store: Store) -> None:
        self._db = db = OwnedObjects(store)
        for row in reversed(await db.recent(self._limit)):
            self._from_row(row)

    def _put(self, object_id: str, owned: Owned) -> None:
        if len(self._objects) >= self._limit:
            self._objects.pop(next(iter(self._objects)))
        self._objects[object_id] = owned

    def _from_row(self, row: OwnedRow) -> Owned | None:
        deployment = self._deployment(row.deployment_id)
        if deployment is None:  # no longer configured: its objects cannot be reached
            return None
        owned = Owned(row.owner, deployment, row.kind)
        owned.billed = row.billed
        self._put(row.object_id, owned)
        return owned

    async def add(self, object_id: str, owned: Owned) -> None:
        if object_id in self._objects:
            return
        self._put(object_id, owned)
        if self._db is not None:
            # Written before the reply: the next request may reach another worker.
            await self._db.add(
                OwnedRow(
                    object_id=object_id,
                    kind=owned.kind,
                    owner=owned.owner,
                    deployment_id=owned.deployment.id,
                    created_at=time.time(),
                )
            )

    async def _lookup(self, object_id: str) -> Owned | None:
        owned = self._objects.get(object_id)
        if owned is None and self._db is not None:
            row = await self._db.find(object_id)
            if row is not None:
                owned = self._from_row(row)
        return owned

    async def get(self, object_id: str, owner: str, kind: str) -> Owned:
        """The object, if ``owner`` owns it; else 404, as if it did not exist."""
        owned = await self._lookup(object_id)
        if owned is None or owned.owner != owner or (kind == "batch") != (owned.kind == "batch"):
            raise NotFound(f"no such {kind}: {object_id[:100]!r}", param=f"{kind}_id")
        return owned

    async def owned_by(self, object_ids: list[str], owner: str) -> set[str]:
        """Those of ``object_ids`` that ``owner`` owns (the misses looked up at once)."""
        missing = [i for i in object_ids if i not in self._objects]
        if missing and self._db is not None:
            for row in await self._db.find_many(missing):
                self._from_row(row)
        return {
            i
            for i in object_ids
            if (owned := self._objects.get(i)) is not None and owned.owner == owner
        }

    async def claim_billing(self, object_id: str, owned: Owned) -> bool:
        """True once per object, for the one read that bills it."""
        if owned.billed:
            return False
        owned.billed = True
        if self._db is not None:
            return await self._db.claim_billing(object_id)
        return True


class _Batch(msgspec.Struct):
    id: str
    output_file_id: str | None = None
    error_file_id: str | None = None


class _BatchBody(msgspec.Struct):
    input_file_id: str
    endpoint: str
    completion_window: str = "24h"


class _Object(msgspec.Struct):
    id: str


class _Line(msgspec.Struct):
    response: dict[str, Any] | None = None


def owner_of(side: Side) -> str:
    return side.principal.key_hash or ""


class FileEndpoints:
    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.owners = Owners(self._deployment_by_id)

    def routes(self) -> list[BaseRoute]:
        out: list[BaseRoute] = []
        for prefix in ("/v1", ""):
            out += [
                Route(f"{prefix}/files", self.create_file, methods=["POST"]),
                Route(f"{prefix}/files", self.list_files, methods=["GET"]),
                Route(f"{prefix}/files/{{object_id}}", self.file, methods=["GET", "DELETE"]),
                Route(f"{prefix}/files/{{object_id}}/content", self.content, methods=["GET"]),
                Route(f"{prefix}/batches", self.create_batch, methods=["POST"]),
                Route(f"{prefix}/batches", self.list_batches, methods=["GET"]),
                Route(f"{prefix}/batches/{{object_id}}", self.batch, methods=["GET"]),
                Route(f"{prefix}/batches/{{object_id}}/cancel", self.cancel, methods=["POST"]),
            ]
        return out

    def _deployment_by_id(self, deployment_id: str) -> Deployment | None:
        for deployment in self.meter.host.router.deployments():
            if deployment.id == deployment_id:
                return deployment
        return None

    def _default(self, side: Side, model: str | None) -> Deployment:
        """The deployment named by ``model``, else the first OpenAI-compatible one."""
        if model:
            return side.route(model)
        for deployment in self.meter.host.router.deployments():
            if deployment.provider not in _NOT_UPSTREAM:
                return side.route(deployment.model_name, deployment)
        raise InvalidRequest("no OpenAI-compatible deployment serves files and batches")

    def _on(self, side: Side, owned: Owned) -> None:
        side.route(owned.deployment.model_name, owned.deployment)

    async def _remember(self, side: Side, raw: bytes, kind: str) -> None:
        deployment = side.deployment
        assert deployment is not None
        owner = owner_of(side)
        if kind == "batch":
            batch: _Batch = decode_reply(raw, _Batch)
            await self._remember_batch(batch, owner, deployment)
        else:
            created: _Object = decode_reply(raw, _Object)
            await self.owners.add(created.id, Owned(owner, deployment, kind))

    async def _remember_batch(self, batch: _Batch, owner: str, deployment: Deployment) -> None:
        await self.owners.add(batch.id, Owned(owner, deployment, "batch"))
        if batch.output_file_id:
            await self.owners.add(batch.output_file_id, Owned(owner, deployment, "batch_output"))
        if batch.error_file_id:
            await self.owners.add(batch.error_file_id, Owned(owner, deployment, "file"))

    async def create_file(self, request: Request) -> Response:
        async def work(side: Side) -> Response:
            fields, files = await read_form(side, FILE_MAX_BYTES)
            if not any(upload.field == "file" for upload in files):
                raise InvalidRequest("`file` is required", param="file")
            model = fields.pop("model", None) or fields.pop("target_model_names", None)
            self._default(side, model)
            await side.reserve(0.0)
            reply = await side.send("POST", "files", form_data(fields, files), content_type=None)
            raw = await reply.read()
            await self._remember(side, raw, "file")
            return side.answer(raw)

        return await self.meter.serve(request, "files", work)

    async def list_files(self, request: Request) -> Response:
        return await self._list(request, "files")

    async def list_batches(self, request: Request) -> Response:
        return await self._list(request, "batches")

    async def _list(self, request: Request, path: str) -> Response:
        async def work(side: Side) -> Response:
            deployment = self._default(side, request.query_params.get("model"))
            query = urlencode(
                [(k, v) for k, v in request.query_params.multi_items() if k != "model"]
            )
            reply = await side.send("GET", path, query=query)
            listing = orjson.loads(await reply.read(deployment.deadlines.total))
            owner = owner_of(side)
            data = listing.get("data") if isinstance(listing, dict) else None
            if isinstance(data, list):
                items = [item for item in data if isinstance(item, dict)]
                mine = await self.owners.owned_by([str(item.get("id")) for item in items], owner)
                listing["data"] = [item for item in items if str(item.get("id")) in mine]
                if path == "batches":
                    for item in listing["data"]:
                        batch = msgspec.convert(item, _Batch, strict=False)
                        await self._remember_batch(batch, owner, deployment)
            return side.answer(orjson.dumps(listing))

        return await self.meter.serve(request, path, work, settle=False)

    async def file(self, request: Request) -> Response:
        async def work(side: Side) -> Response:
            object_id = request.path_params["object_id"]
            owned = await self.owners.get(object_id, owner_of(side), "file")
            self._on(side, owned)
            reply = await side.send(request.method, f"files/{object_id}")
            return side.answer(await reply.read(owned.deployment.deadlines.total))

        return await self.meter.serve(request, "files", work, settle=False)

    async def content(self, request: Request) -> Response:
        async def work(side: Side) -> Response:
            object_id = request.path_params["object_id"]
            owned = await self.owners.get(object_id, owner_of(side), "file")
            self._on(side, owned)
            await side.reserve(0.0)
            reply = await side.send("GET", f"files/{object_id}/content")
            raw = await reply.read(owned.deployment.deadlines.total)
            if owned.kind == "batch_output" and await self.owners.claim_billing(object_id, owned):
                self._bill_batch(side, owned.deployment, raw)
            content_type = reply.headers.get("content-type", "application/octet-stream")
            return side.answer(raw, content_type=content_type)

        return await self.meter.serve(request, "files", work)

    def _bill_batch(self, side: Side, deployment: Deployment, raw: bytes) -> None:
        """A batch's output, billed from the usage of every line it holds."""
        prompt = completion = 0
        model = side.upstream_model
        for line in raw.splitlines():
            if not line.strip():
                continue
            try:
                response = msgspec.json.decode(line, type=_Line).response
            except (msgspec.ValidationError, msgspec.DecodeError):
                continue
            body = response.get("body") if response else None
            if not isinstance(body, dict):
                continue
            usage = body.get("usage")
            if isinstance(usage, dict):
                prompt += int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
                completion += int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
            if isinstance(body.get("model"), str):
                model = body["model"]
        request = side.call.request
        assert request is not None
        request.model = model
        price = self.meter.host.accounting.price_of(deployment, model)
        price = msgspec.structs.replace(
            price,
            input_cost_per_token=price.input_cost_per_token * BATCH_PRICE_FACTOR,
            output_cost_per_token=price.output_cost_per_token * BATCH_PRICE_FACTOR,
            cache_read_input_token_cost=None,
        )
        side.bill_usage(
            Usage(
                prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
            ),
            price,
        )

    async def create_batch(self, request: Request) -> Response:
        async def work(side: Side) -> Response:
            body = await side.read()
            spec: _BatchBody = decode(body, _BatchBody)
            owned = await self.owners.get(spec.input_file_id, owner_of(side), "file")
            self._on(side, owned)
            await side.reserve(0.0)
            reply = await side.send("POST", "batches", body)
            raw = await reply.read(owned.deployment.deadlines.total)
            await self._remember(side, raw, "batch")
            return side.answer(raw)

        return await self.meter.serve(request, "batches", work)

    async def batch(self, request: Request) -> Response:
        return await self._batch(request, "GET", "")

    async def cancel(self, request: Request) -> Response:
        return await self._batch(request, "POST", "/cancel")

    async def _batch(self, request: Request, method: str, suffix: str) -> Response:
        async def work(side: Side) -> Response:
            object_id = request.path_params["object_id"]
            owned = await self.owners.get(object_id, owner_of(side), "batch")
            self._on(side, owned)
            reply = await side.send(method, f"batches/{object_id}{suffix}")
            raw = await reply.read(owned.deployment.deadlines.total)
            await self._remember(side, raw, "batch")
            return side.answer(raw)

        return await self.meter.serve(request, "batches", work, settle=False)

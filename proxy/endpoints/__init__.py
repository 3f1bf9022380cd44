"""The inference endpoints beyond chat, completions, embeddings, messages and responses:
images, audio, moderations, rerank, files and batches, token counting, model lookup, and
the provider pass-through routes. They are Starlette routes beside the raw-ASGI hot path
(``server/app.py``), so chat pays nothing for them; each shares the stages of
``meter.py`` (authenticate, read bounded, authorize, route, admit, call, bill, settle).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from ..store import Store
from .files import FileEndpoints
from .inference import InferenceEndpoints
from .meter import EndpointHost, Meter
from .passthrough import ModelGroupPath, PassThrough, PathPattern
from .tokens import TokenEndpoints

__all__ = ["EndpointHost", "Endpoints", "ModelGroupPath", "PathPattern"]


class Endpoints:
    """The side endpoints of one gateway; ``close`` ends their upstream client."""

    def __init__(self, host: EndpointHost) -> None:
        self.meter = Meter(host)
        self.files = FileEndpoints(self.meter)

    def routes(self) -> list[BaseRoute]:
        return [
            *TokenEndpoints(self.meter).routes(),
            *InferenceEndpoints(self.meter).routes(),
            *self.files.routes(),
            *PassThrough(self.meter).routes(),
        ]

    async def start(self, store: Store) -> None:
        """Once the store is open: the owners of files and batches known so far."""
        await self.files.owners.attach(store)

    async def close(self) -> None:
        await self.meter.close()

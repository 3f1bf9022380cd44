"""The in-process test tier: the real app from ``create_app``, driven without a socket.

``InProcessGateway`` builds the gateway exactly as ``tollway`` does (config parsed, settings
resolved, the stage list composed in ``server/app.py``) but hands it a transport and a
``FakeClock``: async tests call it through ``httpx.ASGITransport``; sync tests through
Starlette's ``TestClient``, which runs the lifespan in a portal thread. Time moves only when
a test calls ``clock.advance`` — no sleeps that only wait for time to pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from starlette.testclient import TestClient

from proxy.config import parse_config
from proxy.pipeline.respond import PostCall
from proxy.server.app import Gateway, GatewayState, create_app
from proxy.server.settings import resolve
from proxy.upstream.transport import Transport
from tests.conftest import MASTER_KEY, UPSTREAM_KEY


class FakeClock:
    """Wall and monotonic time that move only when told to."""

    def __init__(self, start: float | None = None) -> None:
        self._wall = time.time() if start is None else start
        self._mono = 1_000.0

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds


class InProcessGateway:
    def __init__(
        self,
        tmp: Path,
        config_text: str,
        *,
        transport: Transport | None = None,
        clock: FakeClock | None = None,
        environ: Mapping[str, str] | None = None,
        post_call: Sequence[PostCall] = (),
        **cli: Any,
    ) -> None:
        env = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "TEST_MASTER_KEY": MASTER_KEY}
        env.update(environ or {})
        config = parse_config(config_text, str(tmp / "config.yaml"), env)
        self.db_path = tmp / "tollway.db"
        settings = resolve({"db": str(self.db_path), **cli}, {}, config)
        self.clock = clock or FakeClock()
        self.app: Gateway = create_app(settings, config, transport, self.clock, post_call)

    @classmethod
    async def build(cls, tmp: Path, config_text: str, **options: Any) -> InProcessGateway:
        """Built off the event loop, as uvicorn's factory does (the price table is a file)."""
        return await asyncio.to_thread(cls, tmp, config_text, **options)

    @property
    def state(self) -> GatewayState:
        return self.app.state

    @asynccontextmanager
    async def running(self) -> AsyncIterator[httpx.AsyncClient]:
        """The gateway started (store open, ledger restored, flusher running) and a client."""
        await self.state.start()
        try:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://tollway.test", timeout=10
            ) as client:
                yield client
        finally:
            await self.state.stop()

    @contextmanager
    def sync_client(self) -> Iterator[TestClient]:
        """A sync client; the lifespan (start and stop) runs around it."""
        with TestClient(self.app, base_url="http://tollway.test") as client:
            yield client


def bearer(key: str = MASTER_KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}

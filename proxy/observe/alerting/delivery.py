"""Alert delivery: one bounded queue and one background worker, off the request path.

``put`` never blocks and never raises: when the queue is full (the endpoint is slow or down)
the alert is dropped and counted. The worker posts each alert to each of its destinations,
retrying a failed post (a non-2xx answer, a refused connection, a timeout) with exponential
backoff a few times before dropping it (counted too). Only a destination's
``scheme://host:port`` is ever logged: a Slack webhook URL's path is its secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Literal

from ...upstream.transport import Deadlines, Transport
from .payload import Alert, slack_body, webhook_body

log = logging.getLogger("tollway.alerts")

Format = Literal["slack", "webhook"]
Destination = tuple[str, Format]  # (url, wire format)

_DEADLINES = Deadlines(connect=5.0, read=10.0, total=10.0)
_ATTEMPT_TIMEOUT_S = 10.0


class AlertDelivery:
    def __init__(
        self,
        transport: Transport,
        destinations: Callable[[Alert], Sequence[Destination]],
        *,
        queue_size: int = 1_000,
        retries: int = 3,
        backoff_s: float = 0.2,
    ) -> None:
        self._transport = transport
        self._destinations = destinations
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(queue_size)
        self._retries = retries
        self._backoff_s = backoff_s
        self._worker: asyncio.Task[None] | None = None
        self.delivered = 0  # posts answered 2xx
        self.failed = 0  # posts given up after the retries
        self.dropped = 0  # alerts never posted: the queue was full

    def put(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="tollway-alerts")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Deliver what is queued (bounded by ``grace_s``), then stop and close the client."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await self._queue.join()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        with contextlib.suppress(Exception):
            await self._transport.close()

    async def _work(self) -> None:
        queue = self._queue
        while True:
            alert = await queue.get()
            try:
                for url, fmt in self._destinations(alert):
                    body = slack_body(alert) if fmt == "slack" else webhook_body(alert)
                    await self._deliver(url, body, alert.alert_type)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert %s could not be built", alert.alert_type)
            finally:
                queue.task_done()

    async def _deliver(self, url: str, body: bytes, alert_type: str) -> None:
        delay = self._backoff_s
        for attempt in range(self._retries + 1):
            try:
                async with asyncio.timeout(_ATTEMPT_TIMEOUT_S):
                    await self._post(url, body)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == self._retries:
                    self.failed += 1
                    log.warning(
                        "alert %s to %s dropped after %d attempts: %s",
                        alert_type,
                        origin(url),
                        attempt + 1,
                        type(exc).__name__ if isinstance(exc, TimeoutError) else exc,
                    )
                    return
                await asyncio.sleep(delay)
                delay *= 2
            else:
                self.delivered += 1
                return

    async def _post(self, url: str, body: bytes) -> None:
        headers = {"content-type": "application/json", "user-agent": "tollway-alerts"}
        response = await self._transport.post(url, body, headers, _DEADLINES)
        try:
            await response.read()
        finally:
            response.close()
        if not 200 <= response.status < 300:
            raise AlertRejected(f"answered HTTP {response.status}")


class AlertRejected(Exception):
    """The endpoint answered with a non-2xx status."""


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: no path (a Slack URL's path is its secret)."""
    scheme_end = url.find("://") + 3
    path_start = url.find("/", scheme_end)
    authority = url[scheme_end:] if path_start < 0 else url[scheme_end:path_start]
    return url[:scheme_end] + authority.rpartition("@")[2]

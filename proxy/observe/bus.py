"""Delivery: one bounded queue and one background worker per sink.

``publish`` never blocks and never fails a request: it puts the event on every sink's queue
and, when a queue is full (the sink is slow or down), drops the event for that sink and
counts it (``tollway_callback_dropped_total{sink}``). Each worker takes batches (up to the
sink's ``max_batch``, or what arrived within ``flush_interval_s``), sends them, and retries a
failed batch with exponential backoff a few times before dropping it (counted too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from .event import CallEvent

log = logging.getLogger("tollway.observe")


class Sink(Protocol):
    name: str
    max_batch: int
    flush_interval_s: float

    async def send(self, batch: Sequence[CallEvent]) -> None:
        """Deliver a batch; raise to have it retried."""
        ...

    async def close(self) -> None: ...


class SinkStats:
    __slots__ = ("delivered", "dropped", "failed_batches", "queue")

    def __init__(self, queue: asyncio.Queue[CallEvent]) -> None:
        self.queue = queue
        self.delivered = 0
        self.dropped = 0
        self.failed_batches = 0


class EventBus:
    def __init__(
        self, sinks: Sequence[Sink], *, queue_size: int = 10_000, retries: int = 3
    ) -> None:
        self.sinks = list(sinks)
        self.stats = {s.name: SinkStats(asyncio.Queue(queue_size)) for s in self.sinks}
        self._retries = retries
        self._workers: list[asyncio.Task[None]] = []

    def __bool__(self) -> bool:
        return bool(self.sinks)

    def publish(self, event: CallEvent) -> None:
        for sink in self.sinks:
            stats = self.stats[sink.name]
            try:
                stats.queue.put_nowait(event)
            except asyncio.QueueFull:
                stats.dropped += 1

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work(sink)) for sink in self.sinks]

    async def stop(self, grace_s: float = 5.0) -> None:
        """Deliver what is queued (bounded by ``grace_s``), then stop the workers."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                for sink in self.sinks:
                    await self.stats[sink.name].queue.join()
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                await sink.close()

    async def _work(self, sink: Sink) -> None:
        stats = self.stats[sink.name]
        queue = stats.queue
        while True:
            batch = [await queue.get()]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(sink.flush_interval_s):
                    while len(batch) < sink.max_batch:
                        batch.append(await queue.get())
            await self._deliver(sink, stats, batch)
            for _ in batch:
                queue.task_done()

    async def _deliver(self, sink: Sink, stats: SinkStats, batch: list[CallEvent]) -> None:
        delay = 0.2
        for attempt in range(self._retries + 1):
            try:
                await sink.send(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == self._retries:
                    stats.failed_batches += 1
                    stats.dropped += len(batch)
                    log.warning("sink %s: dropped %d events: %s", sink.name, len(batch), exc)
                    return
                await asyncio.sleep(delay)
                delay *= 2
            else:
                stats.delivered += len(batch)
                return

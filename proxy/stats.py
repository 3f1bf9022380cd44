"""The request counters every gateway keeps, and what ``/metrics`` reads from the gateway.

Kept apart from ``proxy.metrics`` so that a gateway nobody scrapes never imports
``prometheus_client`` (about 2 MB resident): the registry is built on the first scrape, and
the per-call series (``proxy.observe.prometheus``) only when the Prometheus callback is on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .cache.stage import Cache
    from .clock import Clock
    from .directory import Directory
    from .ledger import Ledger
    from .ledger.flush import Flusher
    from .observe.bus import EventBus
    from .observe.prometheus import PrometheusObserver
    from .routing import Router
    from .routing.dispatch import Dispatcher


class Stats:
    """Counters since start, read by /health and the tests."""

    __slots__ = ("by_status", "completion_tokens", "prompt_tokens", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.by_status: dict[int, int] = {}


class MetricsSource(Protocol):
    """What ``/metrics`` reads (the gateway's state provides it)."""

    @property
    def router(self) -> Router: ...
    @property
    def dispatch(self) -> Dispatcher: ...
    @property
    def stats(self) -> Stats: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def flusher(self) -> Flusher: ...
    @property
    def cache(self) -> Cache | None: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def events(self) -> EventBus: ...
    @property
    def directory(self) -> Directory: ...
    @property
    def prometheus(self) -> PrometheusObserver | None: ...

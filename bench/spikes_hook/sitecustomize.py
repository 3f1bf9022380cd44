"""Loaded by ``python -m proxy`` when ``bench.spikes`` puts this folder first on PYTHONPATH:
records the gateway's spend-log flush windows and garbage-collection pauses, on the clock
the probe uses (``perf_counter``: CLOCK_MONOTONIC, one clock for every process), and writes
them as JSON to ``TOLLWAY_BENCH_SPIKES`` when the gateway exits. Nothing happens without
that variable."""

from __future__ import annotations

import atexit
import gc
import importlib.abc
import importlib.util
import json
import os
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

OUT = os.environ.get("TOLLWAY_BENCH_SPIKES")
EVENTS: dict[str, list[tuple[float, float, int]]] = {"flush": [], "gc": []}


def _patch_flusher(module: ModuleType) -> None:
    flusher = module.Flusher
    flush = flusher.flush

    async def timed_flush(self: Any) -> bool:
        started = time.perf_counter()
        rows = len(self._buffer) + len(self._batch_logs)
        try:
            return bool(await flush(self))
        finally:
            EVENTS["flush"].append((started, time.perf_counter(), rows))

    flusher.flush = timed_flush


class _Finder(importlib.abc.MetaPathFinder):
    """Patches ``proxy.ledger.flush`` once it has been executed."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        if name != "proxy.ledger.flush":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            _patch_flusher(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


_gc_started = [0.0]


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        EVENTS["gc"].append((_gc_started[0], time.perf_counter(), info["generation"]))


def _write() -> None:
    if OUT:
        with open(OUT, "w") as file:
            json.dump(EVENTS, file)


if OUT:
    sys.meta_path.insert(0, _Finder())
    gc.callbacks.append(_on_gc)
    atexit.register(_write)

"""Sinks by the names LiteLLM configs use (``success_callback``, ``failure_callback``,
``callbacks``). Each builder returns a ``Sink`` (delivered through the bus) and is imported
only when configured."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ...upstream.transport import Transport
from .. import PROMETHEUS_CALLBACK
from ..bus import Sink

log = logging.getLogger("tollway.observe")

# callback name → "module:function" building the sink: f(environ, transport, settings) -> Sink
SINKS: dict[str, str] = {
    "otel": "proxy.observe.sinks.otel:build",
    "langfuse": "proxy.observe.sinks.langfuse:build",
    "generic_api": "proxy.observe.sinks.webhook:build",
    "generic": "proxy.observe.sinks.webhook:build",
    "s3": "proxy.observe.sinks.s3:build",
}
# LiteLLM's ``call_type`` for each ``CallEvent.kind`` (the Langfuse and webhook payloads).
CALL_TYPES = {
    "chat/completions": "acompletion",
    "completions": "atext_completion",
    "embeddings": "aembedding",
}
# Handled elsewhere: Prometheus is updated in process, not through a queue.
IN_PROCESS = frozenset({PROMETHEUS_CALLBACK})


def build_sinks(
    names: Sequence[str],
    environ: Mapping[str, str],
    transport: Transport,
    settings: Mapping[str, Any],
) -> list[Sink]:
    sinks: list[Sink] = []
    for name in dict.fromkeys(names):
        if name in IN_PROCESS:
            continue
        target = SINKS.get(name)
        if target is None:
            log.warning("callback %r is not supported and is ignored", name)
            continue
        module, _, function = target.partition(":")
        build = getattr(importlib.import_module(module), function)
        sinks.append(build(environ, transport, settings))
    return sinks

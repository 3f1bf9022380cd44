"""The request bodies every benchmark client sends (shared by locust and the precise probe)."""

from __future__ import annotations

import itertools
import os
import time

import orjson

KEY = os.environ.get("BENCH_KEY", "sk-bench-master")
MODEL = os.environ.get("BENCH_MODEL", "bench-model")
PATH = os.environ.get("BENCH_PATH", "/v1/chat/completions")

# A typical small chat request (about 400 bytes); the gateway's work does not grow with it.
_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly and precisely."},
    {
        "role": "user",
        "content": "Summarise the main trade-offs between latency and throughput when putting "
        "an HTTP gateway in front of a language model API, in two sentences.",
    },
]


def chat_body(model: str = MODEL, *, stream: bool = False) -> bytes:
    body: dict[str, object] = {"model": model, "messages": _MESSAGES, "max_tokens": 64}
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


CHAT_BODY = chat_body()
STREAM_BODY = chat_body(stream=True)

# BENCH_VARY=1 (set by bench.run for features that need it, e.g. semantic-cache): every
# request's last user turn ends in a marker no other request of any run carries, so no
# cache, exact or semantic, can answer it (the numbers differ, so the semantic agreement
# check rejects even a near-identical prompt).
VARY = os.environ.get("BENCH_VARY") == "1"
_RUN = f"{os.getpid()}{time.time_ns() % 10**9}"
_COUNTER = itertools.count()


def varied_body(model: str = MODEL, *, stream: bool = False) -> bytes:
    """``chat_body`` with a unique marker appended to the user message."""
    question = _MESSAGES[1]["content"] + f" (request {_RUN}-{next(_COUNTER)})"
    body: dict[str, object] = {
        "model": model,
        "messages": [_MESSAGES[0], {"role": "user", "content": question}],
        "max_tokens": 64,
    }
    if stream:
        body["stream"] = True
    return orjson.dumps(body)

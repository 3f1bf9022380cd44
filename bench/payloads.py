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


# The scaling rows (bench/scaling.py) set these for their clients only:
# BENCH_PROMPT_BYTES pads the user message so the whole body is about that many bytes;
# BENCH_STREAM_CHUNKS asks the fake upstream for that many SSE content events (through the
# standard ``user`` field, which the gateway forwards untouched; bench/upstream.py).
PROMPT_BYTES = int(os.environ.get("BENCH_PROMPT_BYTES", "0"))
STREAM_CHUNKS = int(os.environ.get("BENCH_STREAM_CHUNKS", "0"))


def chat_body(
    model: str = MODEL,
    *,
    stream: bool = False,
    prompt_bytes: int = PROMPT_BYTES,
    stream_chunks: int = STREAM_CHUNKS,
) -> bytes:
    messages = _MESSAGES
    if prompt_bytes:
        small = len(orjson.dumps({"model": model, "messages": messages, "max_tokens": 64}))
        pad = " lorem" * max(0, (prompt_bytes - small) // 6)
        messages = [messages[0], {"role": "user", "content": messages[1]["content"] + pad}]
    body: dict[str, object] = {"model": model, "messages": messages, "max_tokens": 64}
    if stream:
        body["stream"] = True
    if stream_chunks:
        body["user"] = f"bench-chunks-{stream_chunks}"
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

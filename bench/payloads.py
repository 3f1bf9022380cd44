"""The request bodies every benchmark client sends (shared by locust and the precise probe)."""

from __future__ import annotations

import os

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

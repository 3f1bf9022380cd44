"""Locust scenarios: non-streaming and streaming chat completions, no think time.

Environment: ``BENCH_KEY`` (bearer key), ``BENCH_MODEL`` (model name), ``BENCH_PATH``
(default ``/v1/chat/completions``), ``BENCH_VARY=1`` (a unique marker in every request's
prompt, so no cache can answer it; ``bench.payloads.varied_body``).
Pick a scenario by class name on the command line:

    locust -f bench/locustfile.py --headless -u 32 -r 32 --run-time 10s --host URL ChatUser
    locust -f bench/locustfile.py ... StreamChatUser

``StreamChatUser`` reports three request names: ``stream-headers`` (locust's own event, at
the response headers), ``stream-ttfb`` (first body byte: the first SSE event) and
``stream-total`` (the whole stream read to its end).

With ``BENCH_RAW_OUT`` set, every response time after the last user has spawned is also kept
at full precision (locust's own stats round to whole milliseconds) and written there as JSON
when locust quits; ``bench.run`` computes its percentiles from that file.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import orjson
from locust import constant, events, task
from locust.contrib.fasthttp import FastHttpUser

try:
    from bench.payloads import CHAT_BODY, KEY, PATH, STREAM_BODY, VARY, varied_body
except ImportError:  # run as `locust -f bench/locustfile.py` from another directory
    from payloads import (  # type: ignore[no-redef,import-not-found]
        CHAT_BODY,
        KEY,
        PATH,
        STREAM_BODY,
        VARY,
        varied_body,
    )

HEADERS = {
    "Authorization": f"Bearer {KEY}",
    "Content-Type": "application/json",
    # Without this locust asks for gzip, which neither upstream nor gateway should spend on.
    "Accept-Encoding": "identity",
}


class RawRecorder:
    """Full-precision response times per request name, from the end of spawning to the stop."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.times: dict[str, list[float]] = {}
        self.failures: Counter[str] = Counter()
        self.recording = False
        self.started = 0.0
        self.stopped = 0.0

    def on_spawned(self, **_: Any) -> None:
        self.recording = True
        self.started = time.perf_counter()

    def on_request(
        self, name: str, response_time: float, exception: BaseException | None, **_: Any
    ) -> None:
        if not self.recording:
            return
        if exception is not None:
            self.failures[f"{name}: {type(exception).__name__}: {exception}"[:200]] += 1
            return
        self.times.setdefault(name, []).append(response_time)

    def on_stop(self, **_: Any) -> None:
        if self.recording:
            self.recording = False
            self.stopped = time.perf_counter()

    def on_quit(self, **_: Any) -> None:
        self.on_stop()
        with open(self.path, "wb") as out:
            out.write(
                orjson.dumps(
                    {
                        "seconds": max(self.stopped - self.started, 0.0),
                        "times_ms": self.times,
                        "failures": dict(self.failures),
                    }
                )
            )


if os.environ.get("BENCH_RAW_OUT"):
    _recorder = RawRecorder(os.environ["BENCH_RAW_OUT"])
    events.spawning_complete.add_listener(_recorder.on_spawned)
    events.request.add_listener(_recorder.on_request)
    events.test_stop.add_listener(_recorder.on_stop)
    events.quitting.add_listener(_recorder.on_quit)


class ChatUser(FastHttpUser):
    """POST a chat completion and read the JSON answer; one request in flight per user."""

    wait_time = constant(0)
    concurrency = 1

    @task
    def chat(self) -> None:
        body = varied_body() if VARY else CHAT_BODY
        self.client.request("POST", PATH, data=body, headers=HEADERS, name="chat")


class StreamChatUser(FastHttpUser):
    """POST a streaming chat completion and time the first SSE bytes and the whole stream."""

    wait_time = constant(0)
    concurrency = 1

    @task
    def stream(self) -> None:
        fire = self.environment.events.request.fire
        body = varied_body(stream=True) if VARY else STREAM_BODY
        start = time.perf_counter()
        start_epoch = time.time()
        response = self.client.request(
            "POST", PATH, data=body, headers=HEADERS, name="stream-headers", stream=True
        )
        error: BaseException | None = getattr(response, "error", None)
        if error is None and response.status_code != 200:
            error = RuntimeError(f"HTTP {response.status_code}")
        first_ms: float | None = None
        length = 0
        if error is None:
            try:
                for chunk in response.iter_content(chunk_size=1, decode_content=False):
                    first_ms = (time.perf_counter() - start) * 1000
                    length += len(chunk)
                    break
                for chunk in response.iter_content(chunk_size=65536, decode_content=False):
                    length += len(chunk)
            except Exception as exc:
                error = exc
        total_ms = (time.perf_counter() - start) * 1000
        if error is None and first_ms is None:
            error = RuntimeError("empty stream")
        common = {"request_type": "POST", "context": {}, "start_time": start_epoch}
        fire(
            name="stream-ttfb",
            response_time=first_ms if first_ms is not None else total_ms,
            response_length=1 if first_ms is not None else 0,
            exception=error,
            **common,
        )
        fire(
            name="stream-total",
            response_time=total_ms,
            response_length=length,
            exception=error,
            **common,
        )

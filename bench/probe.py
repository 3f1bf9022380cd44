"""The precise probe: sequential requests at concurrency 1, timed with ``perf_counter``.

Locust's stats round to whole milliseconds, too coarse for a gateway that adds a fraction of
one. Here one client alternates between targets request by request (so drift in the machine's
speed hits every target alike), in an order that rotates each round, and keeps every latency
in microseconds.

The client is as light as wrk's: a blocking keep-alive socket per target, ``httptools`` for
the response, no event loop. An asyncio client (aiohttp, used until 2026-11-30) spent ~0.4 ms
of its own per request, and more on the gateway's replies than on the bare upstream's (its
header parsing is per field, in Python, and a gateway answers with more fields): that showed
as added latency the gateway did not add.

Scenarios: ``non-stream`` (to the last byte), ``stream`` (to the last byte) and
``stream-ttfb`` (to the first byte of the reply: the stream's time to first byte).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Collection, Mapping
from urllib.parse import urlsplit

import httptools

from bench.payloads import CHAT_BODY, STREAM_BODY, varied_body

QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p99.9": 0.999}


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -int(-fraction * len(sorted_values) // 1))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Client:
    """One keep-alive HTTP/1.1 connection to ``url``'s origin, used one request at a time."""

    def __init__(self, url: str, key: str, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the probe speaks plain http to 127.0.0.1, not {url!r}")
        self._address = (parts.hostname, parts.port or 80)
        self._path = parts.path or "/"
        self._key = key
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._complete = False
        self._keep_alive = False
        self.connects = 0

    def post(self, body: bytes) -> tuple[float, float]:
        """POST ``body``; (first byte, last byte) after sending, in microseconds. Raises
        ``RuntimeError`` on a status other than 200 or a connection closed mid-reply."""
        head = (
            f"POST {self._path} HTTP/1.1\r\nHost: {self._address[0]}:{self._address[1]}\r\n"
            f"Authorization: Bearer {self._key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock = self._connect()
        parser = httptools.HttpResponseParser(self)
        self._parser = parser
        self._complete = False
        self._keep_alive = False
        first = 0.0
        start = time.perf_counter()
        sock.sendall(head + body)
        while not self._complete:
            data = sock.recv(262144)
            if not first:
                first = time.perf_counter()
            if not data:
                self.close()
                raise RuntimeError(f"{self._address} closed the connection mid-reply")
            parser.feed_data(data)
        last = time.perf_counter()
        status = parser.get_status_code()
        if not self._keep_alive:
            self.close()
        if status != 200:
            raise RuntimeError(f"{self._address}{self._path} answered HTTP {status}")
        return (first - start) * 1e6, (last - start) * 1e6

    def on_headers_complete(self) -> None:  # httptools callback
        # Asked here, as uvicorn does: once the message is complete llhttp has reset its
        # flags, and ``should_keep_alive`` answered False for every reply, so until
        # 2026-11-30 the probe opened a new connection per request.
        self._keep_alive = self._parser is not None and self._parser.should_keep_alive()

    def on_message_complete(self) -> None:  # httptools callback
        self._complete = True

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection(self._address, timeout=self._timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self.connects += 1
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _samples(
    targets: Mapping[str, tuple[str, str]], requests: int, warmup: int, vary: Collection[str]
) -> dict[str, dict[str, list[float]]]:
    clients = {name: Client(url, key) for name, (url, key) in targets.items()}
    samples: dict[str, dict[str, list[float]]] = {}
    plans: list[tuple[str, bytes, Callable[[], bytes], str | None]] = [
        ("non-stream", CHAT_BODY, varied_body, None),
        ("stream", STREAM_BODY, _varied_stream, "stream-ttfb"),
    ]
    try:
        for scenario, body, fresh, first_byte in plans:
            total: dict[str, list[float]] = {name: [] for name in targets}
            ttfb: dict[str, list[float]] = {name: [] for name in targets}
            names = list(clients)
            for i in range(warmup + requests):
                # The order rotates each round, so no target always follows the same one
                # (in a fixed order, the first gateway after `direct` had the higher p99).
                shift = i % len(names)
                for name in names[shift:] + names[:shift]:
                    to_first, to_last = clients[name].post(fresh() if name in vary else body)
                    if i >= warmup:
                        total[name].append(to_last)
                        ttfb[name].append(to_first)
            samples[scenario] = total
            if first_byte:
                samples[first_byte] = ttfb
    finally:
        for client in clients.values():
            client.close()
    return samples


def run_probe(
    targets: Mapping[str, tuple[str, str]],
    *,
    requests: int = 2000,
    warmup: int = 200,
    vary: Collection[str] = (),
) -> dict[str, dict[str, dict[str, float]]]:
    """``{scenario: {target: {p50, p90, p99, p99.9, mean, added_p50, ...}}}`` in
    microseconds.

    ``targets`` maps a name to ``(chat completions URL, key)``; the first is the baseline
    that ``added_*`` is measured against. Targets in ``vary`` get a fresh prompt per request
    (``bench.payloads.varied_body``: no cache can answer it).
    """
    samples = _samples(targets, requests, warmup, vary)
    baseline = next(iter(targets))
    report: dict[str, dict[str, dict[str, float]]] = {}
    for scenario, per_target in samples.items():
        stats: dict[str, dict[str, float]] = {}
        for name, values in per_target.items():
            values.sort()
            stats[name] = {"requests": float(len(values)), "mean": sum(values) / len(values)}
            for label, fraction in QUANTILES.items():
                stats[name][label] = percentile(values, fraction)
        for name, row in stats.items():
            if name != baseline:
                for key in (*QUANTILES, "mean"):
                    row[f"added_{key}"] = row[key] - stats[baseline][key]
        report[scenario] = stats
    return report


def _varied_stream() -> bytes:
    return varied_body(stream=True)

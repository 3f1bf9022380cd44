"""``make bench-soak``: mixed traffic with client cancellations, then check the books.

    python -m bench.soak [--keep-temp]

Starts the fake upstream (paced SSE chunks after a small delay, so cancellations land while
requests are in flight) and the gateway (bench config, a throw-away ``TOLLWAY_DB``), makes a
virtual key whose limits are never reached, and drives it from an aiohttp client: streaming
and non-streaming chat requests, a share cancelled by the client after a random delay or
mid-stream; other streams are read to their end. The gateway's RSS is sampled every second.
Afterwards:

(a) no leaked reservation (``/ledger/status``: nothing in flight, nothing reserved);
(b) spend-log rows equal the settled calls, no ``request_id`` repeats, and the key's
    ``spend`` equals ``SUM(cost)`` of its rows;
(c) RSS stayed flat: the median of the last 10 s is under 10 MB above that of 60-90 s
    (runs under 120 s: of 5-15 s); the first minute is warm-up (60 s rate windows).

Prints PASS/FAIL per check, writes ``bench/results/soak-<timestamp>.json`` and exits 1 if
any check fails. ``BENCH_SOAK_SECONDS`` is 180 by default (30: quick; 600: the 10-minute
soak); the other knobs (``BENCH_SOAK_*``) are listed in bench/README.md, "Soak".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson

from bench import upstream as fake
from bench.payloads import chat_body
from bench.procs import Child, start_gateway, tree_rss_bytes
from bench.run import CHAT_PATH, MASTER_KEY, RESULTS, ROOT, bench_config, cpu_model

MB = 1024 * 1024
T = TypeVar("T")
RSS_LIMIT_BYTES = 10 * MB
WARMUP_S = 5.0  # quick mode: RSS baseline starts after this much traffic
SOAK_KEY_REQUEST = {
    "key_alias": "soak",
    "max_budget": 1_000_000,
    "rpm_limit": 100_000_000,
    "tpm_limit": 10_000_000_000,
    "max_parallel_requests": 500,
}


class PacedProtocol(fake.UpstreamProtocol):
    """bench/upstream.py's server, but a stream's events leave ``gap_s`` apart.

    bench/upstream.py writes a whole stream at once (it measures relay cost), so the gateway
    has relayed every event before a client's mid-stream close can reach it; pacing the
    events is what makes cancellations land while the gateway is still relaying.
    """

    def __init__(
        self, responses: fake.Responses, delay_s: float, gap_s: float, parts: dict[int, list[bytes]]
    ) -> None:
        super().__init__(responses, delay_s)
        self._gap = gap_s
        self._parts = parts

    def _write(self, response: bytes, close: bool) -> None:
        parts = self._parts.get(id(response))
        if parts is None:
            super()._write(response, close)
        else:
            self._write_part(parts, 0, close)

    def _write_part(self, parts: list[bytes], index: int, close: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(parts[index])
        if index + 1 < len(parts):
            self._loop.call_later(self._gap, self._write_part, parts, index + 1, close)
        elif close:
            transport.close()


def _stream_parts(chunks: int, with_usage: bool) -> list[bytes]:
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    events = fake._sse_events(chunks, with_usage)
    return [head, *(b"%x\r\n%s\r\n" % (len(event), event) for event in events), b"0\r\n\r\n"]


async def serve_paced_upstream(chunks: int, delay_ms: float, gap_ms: float) -> None:
    responses = fake.Responses(chunks)
    parts = {
        id(responses.stream): _stream_parts(chunks, with_usage=False),
        id(responses.stream_usage): _stream_parts(chunks, with_usage=True),
    }
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: PacedProtocol(responses, delay_ms / 1000, gap_ms / 1000, parts),
        "127.0.0.1",
        0,
        backlog=4096,
    )
    host, port = server.sockets[0].getsockname()[:2]
    print(f"upstream listening on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


@dataclass
class Tally:
    """What the client saw."""

    sent: int = 0
    successes: int = 0
    success_stream: int = 0
    success_plain: int = 0
    cancelled: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, str(default)))


def _admin(base: str, path: str, *, body: object | None = None, timeout: float = 30.0) -> Any:
    request = urllib.request.Request(
        base + path,
        data=None if body is None else orjson.dumps(body),
        headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return orjson.loads(response.read())


async def _read_stream(response: aiohttp.ClientResponse, stop_after: int | None) -> bool:
    """Read SSE events to the end of the body, as an SDK does (so the connection is reused).

    True when ``[DONE]`` arrived; False when cut after ``stop_after`` events or ended early.
    """
    events = 0
    done = False
    buffer = b""
    async for data in response.content.iter_any():
        if done:
            continue  # only the end of the chunked body can follow [DONE]
        buffer += data
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            if event.strip() == b"data: [DONE]":
                done = True
                break
            events += 1
            if stop_after is not None and events >= stop_after:
                response.close()  # drop the connection mid-stream
                return False
    return done


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    stream: bool,
    body: bytes,
    stop_after: int | None,
    tally: Tally,
) -> None:
    async with session.post(url, data=body, headers=headers) as response:
        if response.status != 200:
            await response.read()
            tally.errors[f"HTTP {response.status}"] += 1
            return
        if stream:
            if await _read_stream(response, stop_after):
                tally.successes += 1
                tally.success_stream += 1
            elif stop_after is not None:
                tally.cancelled["stream after N events"] += 1
            else:
                tally.errors["stream ended without [DONE]"] += 1
        else:
            answer = orjson.loads(await response.read())
            if answer.get("choices"):
                tally.successes += 1
                tally.success_plain += 1
            else:
                tally.errors["200 without choices"] += 1


async def drive(
    url: str,
    key: str,
    *,
    seconds: float,
    concurrency: int,
    cancel_share: float,
    stream_share: float,
    chunks: int,
    delay_s: float,
    gap_s: float,
    seed: int,
) -> Tally:
    tally = Tally()
    rng = random.Random(seed)
    bodies = {False: chat_body(), True: chat_body(stream=True)}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    # A cancellation by delay lands anywhere from before the upstream answers to just after
    # the end of a (paced) stream.
    max_cancel_delay = delay_s + chunks * gap_s * 1.2 + 0.005
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while time.monotonic() < stop_at:
                stream = rng.random() < stream_share
                cancel = rng.random() < cancel_share
                stop_after: int | None = None
                cancel_delay: float | None = None
                if cancel:
                    if stream and rng.random() < 0.5:
                        stop_after = rng.randint(1, max(1, chunks - 1))
                    else:
                        cancel_delay = rng.uniform(0, max_cancel_delay)
                tally.sent += 1
                coro = _one(session, url, headers, stream, bodies[stream], stop_after, tally)
                try:
                    if cancel_delay is None:
                        await coro
                    else:
                        await asyncio.wait_for(coro, cancel_delay)
                except TimeoutError:
                    if cancel_delay is None:
                        tally.errors["client timeout (30 s)"] += 1
                    else:
                        tally.cancelled["after a delay"] += 1
                except Exception as exc:  # counted, reported, and the soak goes on
                    tally.errors[type(exc).__name__] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally


def rss_parts(pid: int) -> dict[str, int]:
    """RssAnon / RssFile / RssShmem of one process in bytes (file pages include mmapped DBs)."""
    parts: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                name, value = line.split(":", 1)
                parts[name] = int(value.split()[0]) * 1024
    return parts


def sample_rss(
    pid: int, samples: list[tuple[float, int]], parts: list[dict[str, int]], stop: asyncio.Event
) -> asyncio.Task[None]:
    async def run() -> None:
        start = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - start, tree_rss_bytes(pid)))
            parts.append(rss_parts(pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    return asyncio.get_running_loop().create_task(run())


async def soak(
    url: str, key: str, pid: int, settings: dict[str, Any]
) -> tuple[Tally, list[tuple[float, int]], list[dict[str, int]]]:
    samples: list[tuple[float, int]] = []
    parts: list[dict[str, int]] = []
    stop = asyncio.Event()
    sampler = sample_rss(pid, samples, parts, stop)
    try:
        tally = await drive(url + CHAT_PATH, key, **settings)
    finally:
        stop.set()
        await sampler
    return tally, samples, parts


def rss_check(samples: list[tuple[float, int]], seconds: float) -> dict[str, Any]:
    """Growth from the baseline (after warm-up) to the median of the last 10 s.

    The gateway legitimately grows for its first minute: the ledger's rpm/tpm windows hold
    60 s of admissions, and uvicorn keeps a reset connection's objects until its keep-alive
    timer fires (30 s). So a run of 120 s or more takes the median of 60-90 s as the baseline
    (the median of the first minute is reported too); shorter runs, the median of 5-15 s.
    """
    window = (60.0, 90.0) if seconds >= 120 else (WARMUP_S, WARMUP_S + 10.0)
    base = [r for t, r in samples if window[0] <= t < window[1]]
    first_minute = [r for t, r in samples if t < 60.0]
    last_t = samples[-1][0] if samples else 0.0
    end = [r for t, r in samples if t >= last_t - 10.0]
    if not base or not end:
        return {"ok": False, "reason": "too few RSS samples"}
    baseline = statistics.median(base)
    final = statistics.median(end)
    growth = final - baseline
    return {
        "ok": growth < RSS_LIMIT_BYTES,
        "baseline_bytes": baseline,
        "baseline": f"median of {window[0]:.0f}-{window[1]:.0f} s",
        "end_bytes": final,
        "end": "median of the last 10 s",
        "growth_bytes": growth,
        "growth_from_first_minute_median_bytes": final - statistics.median(first_minute),
        "peak_bytes": max(r for _, r in samples),
        "first_bytes": samples[0][1],
        "last_bytes": samples[-1][1],
        "limit_bytes": RSS_LIMIT_BYTES,
    }


def ledger_check(gateway_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5.0
    while True:
        status = _admin(gateway_url, "/ledger/status")
        if (status["in_flight"] == 0 and status["reserved"] == 0) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return {
        "ok": status["in_flight"] == 0 and status["reserved"] == 0,
        "in_flight": status["in_flight"],
        "reserved": status["reserved"],
        "status": status,
    }


def spend_check(gateway_url: str, db: Path, key: str, tally: Tally) -> dict[str, Any]:
    # /spend/logs flushes before it reads; the ledger count is read after, so nothing settles
    # in between (no traffic is left by now).
    _admin(gateway_url, f"/spend/logs?api_key={key}&page_size=1")
    status = _admin(gateway_url, "/ledger/status")
    requests = int(status["requests"])
    from proxy.auth import hash_key

    key_hash = hash_key(key)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        total_rows = conn.execute("SELECT COUNT(*) FROM spend_logs").fetchone()[0]
        key_rows = conn.execute(
            "SELECT COUNT(*) FROM spend_logs WHERE key_hash = ?", (key_hash,)
        ).fetchone()[0]
        by_status = dict(
            conn.execute(
                "SELECT status, COUNT(*) FROM spend_logs WHERE key_hash = ? GROUP BY status",
                (key_hash,),
            ).fetchall()
        )
        by_code = dict(
            conn.execute(
                "SELECT status_code, COUNT(*) FROM spend_logs WHERE key_hash = ? "
                "GROUP BY status_code",
                (key_hash,),
            ).fetchall()
        )
        duplicates = conn.execute(
            "SELECT COUNT(*) - COUNT(DISTINCT request_id) FROM spend_logs"
        ).fetchone()[0]
        cost_sum = conn.execute(
            "SELECT COALESCE(SUM(cost), 0) FROM spend_logs WHERE key_hash = ?", (key_hash,)
        ).fetchone()[0]
        key_spend = conn.execute(
            "SELECT spend FROM keys WHERE token_hash = ?", (key_hash,)
        ).fetchone()[0]
        estimated = conn.execute(
            "SELECT COUNT(*) FROM spend_logs WHERE key_hash = ? AND estimated != 0", (key_hash,)
        ).fetchone()[0]
    success_rows = int(by_status.get("success", 0))
    problems = []
    if key_rows != requests:
        problems.append(f"{key_rows} rows for the key but the gateway settled {requests} calls")
    if total_rows != key_rows:
        problems.append(f"{total_rows - key_rows} rows belong to no/another key")
    if success_rows < tally.successes:
        problems.append(
            f"{success_rows} 'success' rows < {tally.successes} client-observed successes"
        )
    if duplicates:
        problems.append(f"{duplicates} duplicate request_id")
    if abs(key_spend - cost_sum) > 1e-6:
        problems.append(f"keys.spend {key_spend!r} != SUM(cost) {cost_sum!r}")
    return {
        "ok": not problems,
        "problems": problems,
        "gateway_requests": requests,
        "rows_total": total_rows,
        "rows_for_key": key_rows,
        "rows_by_status": by_status,
        "rows_by_status_code": {str(k): v for k, v in by_code.items()},
        "rows_estimated": estimated,
        "success_rows": success_rows,
        "client_successes": tally.successes,
        "duplicate_request_ids": duplicates,
        "key_spend": key_spend,
        "sum_cost": cost_sum,
        "flush": status.get("flush"),
    }


def _log_findings(path: Path) -> dict[str, Any]:
    """Warnings, errors and tracebacks in the gateway's log (it runs at level warning)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    interesting = [
        line
        for line in lines
        if any(word in line for word in ("ERROR", "WARNING", "Traceback", "Exception"))
    ]
    return {"count": len(interesting), "first": interesting[:20]}


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a gateway dependency on Linux
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--keep-temp", action="store_true", help="keep logs, config and db")
    parser.add_argument("--paced-upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    seconds = _env_float("BENCH_SOAK_SECONDS", 180)
    concurrency = int(os.environ.get("BENCH_SOAK_CONCURRENCY", "32"))
    chunks = int(os.environ.get("BENCH_SOAK_CHUNKS", "32"))
    delay_ms = _env_float("BENCH_SOAK_DELAY_MS", 20)
    gap_ms = _env_float("BENCH_SOAK_GAP_MS", 1)
    if args.paced_upstream:
        with contextlib.suppress(KeyboardInterrupt):
            _run(serve_paced_upstream(chunks, delay_ms, gap_ms))
        return 0
    settings = {
        "seconds": seconds,
        "concurrency": concurrency,
        "cancel_share": _env_float("BENCH_SOAK_CANCEL", 0.2),
        "stream_share": _env_float("BENCH_SOAK_STREAM", 0.5),
        "chunks": chunks,
        "delay_s": delay_ms / 1000,
        "gap_s": gap_ms / 1000,
        "seed": int(os.environ.get("BENCH_SOAK_SEED", "1")),
    }

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="tollway-soak-"))
    timestamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    children: list[Child] = []
    try:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        if gap_ms > 0:
            upstream_argv = ["-m", "bench.soak", "--paced-upstream"]
            env.update(
                BENCH_SOAK_CHUNKS=str(chunks),
                BENCH_SOAK_DELAY_MS=str(delay_ms),
                BENCH_SOAK_GAP_MS=str(gap_ms),
            )
        else:
            upstream_argv = ["-m", "bench.upstream", "--port", "0", "--chunks", str(chunks)]
            upstream_argv += ["--delay-ms", str(delay_ms)]
        upstream = Child("upstream", [sys.executable, *upstream_argv], work, env)
        children.append(upstream)
        upstream_url = upstream.wait_listening(10)
        db = work / "tollway.db"
        gateway = start_gateway(
            work, bench_config(upstream_url), env, TOLLWAY_FLUSH_INTERVAL_MS="200"
        )
        children.append(gateway)
        gateway_url = gateway.url
        key = _admin(gateway_url, "/key/generate", body=SOAK_KEY_REQUEST)["key"]
        rss_ready = tree_rss_bytes(gateway.pid)

        print(
            f"soak: {seconds:.0f} s, {concurrency} concurrent, "
            f"{settings['stream_share']:.0%} streams, {settings['cancel_share']:.0%} cancelled; "
            f"upstream {chunks} chunks after {delay_ms:g} ms, {gap_ms:g} ms apart",
            flush=True,
        )
        started = time.monotonic()
        tally, samples, parts = _run(soak(gateway_url, key, gateway.pid, settings))
        elapsed = time.monotonic() - started
        if gateway.process.poll() is not None:
            raise RuntimeError(f"the gateway died during the soak:\n{gateway.tail()}")

        checks = {
            "no_leaked_reservation": ledger_check(gateway_url),
            "spend_logs_match": spend_check(gateway_url, db, key, tally),
            "rss_flat": rss_check(samples, seconds),
        }
        rss_idle = tree_rss_bytes(gateway.pid)
        result = {
            "timestamp": timestamp,
            "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model()},
            "settings": {**settings, "delay_ms": delay_ms, "elapsed_s": elapsed},
            "client": {
                "sent": tally.sent,
                "successes": tally.successes,
                "successes_stream": tally.success_stream,
                "successes_non_stream": tally.success_plain,
                "cancelled": dict(tally.cancelled),
                "errors": dict(tally.errors),
                "rate_per_s": tally.sent / elapsed if elapsed else 0.0,
            },
            "checks": checks,
            "rss": {
                "ready_bytes": rss_ready,
                "idle_after_bytes": rss_idle,
                "samples": [[round(t, 2), r] for t, r in samples],
                "parts_first": parts[0] if parts else {},
                "parts_last": parts[-1] if parts else {},
            },
            "gateway_log": _log_findings(gateway.log_path),
        }
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"soak-{timestamp}.json"
        out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        report(result)
        print(f"written: bench/results/{out.name}")
        return 0 if all(check["ok"] for check in checks.values()) else 1
    finally:
        for child in reversed(children):
            child.stop()
        if args.keep_temp:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(result: dict[str, Any]) -> None:
    client = result["client"]
    checks = result["checks"]
    print(
        f"client: {client['sent']} sent ({client['rate_per_s']:.0f}/s), "
        f"{client['successes']} succeeded ({client['successes_stream']} streams read to "
        f"[DONE], {client['successes_non_stream']} non-stream), "
        f"cancelled {sum(client['cancelled'].values())} {client['cancelled']}, "
        f"errors {client['errors'] or 0}"
    )
    ledger = checks["no_leaked_reservation"]
    print(
        f"{'PASS' if ledger['ok'] else 'FAIL'}  (a) no leaked reservation: "
        f"in_flight={ledger['in_flight']} reserved={ledger['reserved']}"
    )
    spend = checks["spend_logs_match"]
    print(
        f"{'PASS' if spend['ok'] else 'FAIL'}  (b) spend-log rows equal requests: "
        f"{spend['rows_for_key']} rows for the key, gateway settled {spend['gateway_requests']}; "
        f"'success' rows {spend['success_rows']} >= client successes "
        f"{spend['client_successes']}; by status {spend['rows_by_status']}; duplicate ids "
        f"{spend['duplicate_request_ids']}; keys.spend {spend['key_spend']:.6f} vs "
        f"SUM(cost) {spend['sum_cost']:.6f}"
    )
    for problem in spend["problems"]:
        print(f"      {problem}")
    rss = checks["rss_flat"]
    if "growth_bytes" in rss:
        print(
            f"{'PASS' if rss['ok'] else 'FAIL'}  (c) RSS flat: "
            f"{rss['baseline_bytes'] / MB:.1f} MB ({rss['baseline']}) -> "
            f"{rss['end_bytes'] / MB:.1f} MB ({rss['end']}), growth "
            f"{rss['growth_bytes'] / MB:+.1f} MB (limit {rss['limit_bytes'] / MB:.0f}); "
            f"peak {rss['peak_bytes'] / MB:.1f} MB; from the first minute's median "
            f"{rss['growth_from_first_minute_median_bytes'] / MB:+.1f} MB"
        )
    else:
        print(f"FAIL  (c) RSS flat: {rss['reason']}")
    log = result["gateway_log"]
    if log.get("count"):
        print(f"gateway log: {log['count']} warning/error lines, first: {log['first'][:3]}")


if __name__ == "__main__":
    sys.exit(main())

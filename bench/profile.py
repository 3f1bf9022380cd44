"""Profile the gateway under load: py-spy records a flame graph while a client drives it.

    python -m bench.profile [--seconds 10] [--concurrency 32] [--stream] [--features guardrail]

Starts the fast fake upstream and the gateway (bench config, a virtual key with limits and a
budget), drives it with an aiohttp client for the given time, and writes
``bench/results/profile-<timestamp>.svg`` (py-spy, ``--native`` off, idle frames off).
With ``BENCH_VARY=1`` every request's prompt is unique (``bench.payloads.varied_body``), so
a cache feature is profiled on its miss path, e.g.
``BENCH_VARY=1 python -m bench.profile --features semantic-cache``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.payloads import VARY, chat_body, varied_body
from bench.procs import Child, start_gateway
from bench.run import bench_config, gateway_env, parse_features
from bench.setup_keys import create_bench_key

RESULTS = Path(__file__).parent / "results"
MASTER = "sk-bench-master"


async def drive(url: str, key: str, seconds: float, concurrency: int, stream: bool) -> int:
    body = chat_body(stream=stream)
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    done = 0
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                sent = varied_body(stream=stream) if VARY else body
                async with session.post(url, data=sent, headers=headers) as resp:
                    await resp.read()
                    done += resp.status == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--features",
        default=os.environ.get("BENCH_FEATURES", ""),
        help="comma-separated BENCH_FEATURES to turn on in the profiled gateway",
    )
    parser.add_argument("--raw", action="store_true", help="collapsed stacks (.txt), not SVG")
    args = parser.parse_args(argv)
    features = parse_features(args.features)
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    suffix = ".txt" if args.raw else ".svg"
    out = RESULTS / f"profile-{stamp}{'-stream' if args.stream else ''}{suffix}"
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        upstream = Child(
            "upstream", [sys.executable, "-m", "bench.upstream", "--port", "0"], tmp_path, env
        )
        gateway: Child | None = None
        try:
            upstream_url = upstream.wait_listening(15)
            gateway = start_gateway(
                tmp_path,
                bench_config(upstream_url, features),
                env,
                **gateway_env(features, upstream_url),
            )
            url = gateway.url
            key = create_bench_key(url, MASTER)
            target = f"{url}/v1/chat/completions"
            asyncio.run(drive(target, key, 1.0, args.concurrency, args.stream))  # warm-up
            recorder = subprocess.Popen(
                [
                    str(py_spy),
                    "record",
                    "--pid",
                    str(gateway.pid),
                    "--output",
                    str(out),
                    "--duration",
                    str(int(args.seconds)),
                    "--rate",
                    "250",
                    "--nonblocking",
                    *(["--format", "raw"] if out.suffix == ".txt" else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            done = asyncio.run(drive(target, key, args.seconds, args.concurrency, args.stream))
            _, err = recorder.communicate(timeout=args.seconds + 30)
            if recorder.returncode != 0:
                print(err.decode(errors="replace"), file=sys.stderr)
            print(f"{done} requests in {args.seconds:.0f}s ({done / args.seconds:.0f} req/s)")
            print(f"flame graph: {out}")
        finally:
            if gateway is not None:
                gateway.stop()
            upstream.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

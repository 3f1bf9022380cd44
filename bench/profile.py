"""Profile the gateway under load: py-spy records a flame graph while a client drives it.

    python -m bench.profile [--seconds 10] [--concurrency 32] [--stream] [--features guardrail]
    python -m bench.profile --raw     # collapsed stacks, and the top entries printed

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
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bench.payloads import VARY, chat_body, varied_body
from bench.procs import Child, start_gateway, start_upstream
from bench.run import bench_config, gateway_env, parse_features
from bench.setup_keys import create_bench_key

RESULTS = Path(__file__).parent / "results"
MASTER = "sk-bench-master"


async def drive(
    url: str, key: str, seconds: float, concurrency: int, stream: bool, prompt_bytes: int = 0
) -> int:
    body = chat_body(stream=stream, prompt_bytes=prompt_bytes)
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
        "--prompt-bytes", type=int, default=0, help="a prompt of about this size (0: the usual)"
    )
    parser.add_argument(
        "--features",
        default=os.environ.get("BENCH_FEATURES", ""),
        help="comma-separated BENCH_FEATURES to turn on in the profiled gateway",
    )
    parser.add_argument("--raw", action="store_true", help="collapsed stacks (.txt), not SVG")
    parser.add_argument("--top", type=int, default=15, help="with --raw: entries printed")
    parser.add_argument(
        "--gil",
        action="store_true",
        help="sample only the thread holding the GIL (what competes with the event loop; "
        "the SQLite writer thread's time outside the GIL drops out)",
    )
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
        upstream = start_upstream(tmp_path, env, None)
        gateway: Child | None = None
        try:
            upstream_url = upstream.url
            gateway = start_gateway(
                tmp_path,
                bench_config(upstream_url, features),
                env,
                **gateway_env(features, upstream_url),
            )
            url = gateway.url
            key = create_bench_key(url, MASTER)
            target = f"{url}/v1/chat/completions"
            asyncio.run(drive(target, key, 1.0, args.concurrency, args.stream, args.prompt_bytes))
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
                    *(["--gil"] if args.gil else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            done = asyncio.run(
                drive(target, key, args.seconds, args.concurrency, args.stream, args.prompt_bytes)
            )
            _, err = recorder.communicate(timeout=args.seconds + 30)
            if recorder.returncode != 0:
                print(err.decode(errors="replace"), file=sys.stderr)
            print(f"{done} requests in {args.seconds:.0f}s ({done / args.seconds:.0f} req/s)")
            print(f"flame graph: {out}")
            if args.raw and out.exists():
                print(top_entries(out.read_text(), args.top))
        finally:
            if gateway is not None:
                gateway.stop()
            upstream.stop()
    return 0


def top_entries(collapsed: str, count: int) -> str:
    """The functions with the most samples in py-spy's collapsed stacks: self (on top of the
    stack) and total (anywhere in it), as shares of all samples; the text to quote when a
    change is compared before and after."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, weight = line.rpartition(" ")
        if not stack or not weight.isdigit():
            continue
        n = int(weight)
        samples += n
        frames = [re.sub(r" \(.*/site-packages/", " (", f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return "no samples"
    lines = [f"{samples} samples; self time:"]
    lines += [f"  {n / samples:6.1%}  {frame}" for frame, n in own.most_common(count)]
    lines.append("inclusive (excluding the event loop's own frames):")
    inclusive = [(f, n) for f, n in total.most_common() if n < samples * 0.95][:count]
    lines += [f"  {n / samples:6.1%}  {frame}" for frame, n in inclusive]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

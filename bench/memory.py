"""``python -m bench.memory``: where the gateway's memory goes, and what collections cost.

1. **Imports** (each in a fresh interpreter): RSS after ``import proxy.server.app`` and after
   the app is built with the bench config (every feature off), which optional third-party
   packages that pulled in, and what each of the heavy ones costs on its own.
2. **Under load** (the gateway in this process, on uvicorn with Tollway's protocol, the fake
   upstream and an aiohttp load generator as child processes): RSS after each load phase
   (users x JSON/stream, ``BENCH_MEMORY_USERS``, ``BENCH_MEMORY_SECONDS`` each), the
   ``tracemalloc`` entries that grew most from ready to the end (``--trace``; tracing slows
   the gateway and adds its own memory, so RSS is reported from an untraced run), and every
   garbage collection during the load: count, median and worst pause per generation.

Results: printed, and written to ``bench/results/memory-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import datetime as dt
import gc
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "aiohttp",
    "botocore",
    "jsonschema",
    "re2",
    "prometheus_client",
    "google.protobuf",
    "opentelemetry",
    "yaml",
    "starlette",
    "aiosqlite",
    "redis",
    "wordllama",
    "numpy",
)
# A package whose ``__init__`` imports little is measured by the module Tollway uses.
_REPRESENTATIVE = {"botocore": "botocore.auth", "starlette": "starlette.applications"}
_IMPORT_PROBE = """
import sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) * 1024
start = rss()
import proxy.server.app
imported = rss()
import orjson
from proxy.config import load_config
from proxy.server.app import create_app
from proxy.server.settings import Settings
create_app(Settings(master_key='sk-x', db=DB), load_config(CONFIG))
built = rss()
heavy = [m for m in HEAVY if m in sys.modules]
found = {'interpreter': start, 'imported': imported, 'built': built, 'heavy': heavy}
print(orjson.dumps(found).decode())
"""


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _python(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def import_costs(config_path: Path) -> dict[str, Any]:
    """RSS of a fresh gateway before any request, and each heavy package's own cost."""
    unused_db = config_path.with_suffix(".db")
    header = f"HEAVY = {HEAVY!r}\nCONFIG = {str(config_path)!r}\nDB = {str(unused_db)!r}\n"
    found: dict[str, Any] = orjson.loads(_python(header + _IMPORT_PROBE))
    alone: dict[str, int] = {}
    for name in found["heavy"]:
        module = _REPRESENTATIVE.get(name, name)
        code = (
            "import asyncio, ssl, json, re\n"
            "def rss():\n"
            "    for line in open('/proc/self/status'):\n"
            "        if line.startswith('VmRSS'): return int(line.split()[1]) * 1024\n"
            f"before = rss()\nimport {module}\nprint(rss() - before)"
        )
        alone[name] = int(_python(code))
    found["alone"] = alone
    return found


class GcTimer:
    """Every collection's pause, per generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.cpu: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.collected: dict[int, int] = {0: 0, 1: 0, 2: 0}
        self._started = self._cpu_started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            self._cpu_started = time.thread_time()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)
            self.cpu[info["generation"]].append(time.thread_time() - self._cpu_started)
            self.collected[info["generation"]] += info["collected"]

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for generation, pauses in self.pauses.items():
            pauses.sort()
            cpu = sorted(self.cpu[generation])
            if pauses:
                out[f"gen{generation}"] = {
                    "count": len(pauses),
                    "p50_us": pauses[len(pauses) // 2] * 1e6,
                    "max_us": pauses[-1] * 1e6,
                    # CPU time of this thread: what the collection itself cost, without the
                    # time the machine ran something else.
                    "cpu_p50_us": cpu[len(cpu) // 2] * 1e6,
                    "cpu_max_us": cpu[-1] * 1e6,
                    "total_cpu_ms": sum(cpu) * 1e3,
                    # Objects found in garbage cycles: what requests leave for the collector.
                    "collected": self.collected[generation],
                }
        return out


async def _drive(url: str, key: str, users: int, seconds: float, stream: bool) -> int:
    import aiohttp

    from bench.payloads import chat_body

    body = chat_body("bench-model", stream=stream)
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    done = 0
    end = time.monotonic() + seconds

    async def user(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.monotonic() < end:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                done += response.status == 200

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(user(session) for _ in range(users)))
    return done


def _describe(obj: object) -> str:
    """Where a container lives: the qualified name of a referrer's type."""
    owners = [type(r).__qualname__ for r in gc.get_referrers(obj)[:3]]
    return "held by " + ", ".join(owners)


def _free_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    return sock


async def _under_load(
    config_path: Path, work: Path, phases: list[tuple[int, bool]], seconds: float, trace: bool
) -> dict[str, Any]:
    import uvicorn

    from bench.run import MASTER_KEY
    from bench.setup_keys import create_bench_key
    from proxy.config import load_config
    from proxy.server.app import create_app
    from proxy.server.settings import Settings
    from proxy.server.uvicorn_protocol import TollwayConfig, TollwayHttpToolsProtocol

    config = load_config(str(config_path))
    settings = Settings(master_key=MASTER_KEY, db=str(work / "memory.db"))
    sock = _free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        TollwayConfig(
            create_app(settings, config),
            http=TollwayHttpToolsProtocol,
            lifespan="on",
            log_config=None,
            timeout_keep_alive=5,
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.05)
    key = await asyncio.to_thread(create_bench_key, url, MASTER_KEY)
    if os.environ.get("BENCH_GC_THRESHOLD"):
        # An experiment: the collector's thresholds for the load phases (gen0, gen1, gen2).
        gc.set_threshold(*(int(n) for n in os.environ["BENCH_GC_THRESHOLD"].split(",")))
    result: dict[str, Any] = {"ready": rss_bytes(), "phases": []}
    if trace:
        tracemalloc.start(8)
    before = tracemalloc.take_snapshot() if trace else None
    for users, stream in phases:
        argv = [sys.executable, "-m", "bench.memory", "--drive", url, key, str(users)]
        argv += [str(seconds), "1" if stream else "0"]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        timer = GcTimer()
        gc.callbacks.append(timer)
        child = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE)
        if trace and before is not None:
            # Half-way through the phase: what the load holds while it runs.
            await asyncio.sleep(seconds / 2)
            during = tracemalloc.take_snapshot()
            result.setdefault("during", []).append(
                {
                    "users": users,
                    "stream": stream,
                    "top": [
                        {"where": str(s.traceback[0]), "size_diff": s.size_diff, "count": s.count}
                        for s in during.compare_to(before, "lineno")[:15]
                    ],
                }
            )
            del during
        out, _ = await child.communicate()
        gc.callbacks.remove(timer)
        result["phases"].append(
            {
                "users": users,
                "stream": stream,
                "requests": int(out.decode().strip() or 0),
                "rss": rss_bytes(),
                "gc": timer.summary(),
            }
        )
    # What a full collection walks: the tracked objects outside the frozen start-up set.
    tracked = Counter(type(o).__name__ for o in gc.get_objects())
    result["gc_tracked"] = sum(tracked.values())
    result["gc_tracked_top"] = tracked.most_common(12)
    # The containers a collection spends most of its traversal on.
    sized = sorted(((len(gc.get_referents(o)), o) for o in gc.get_objects()), key=lambda x: -x[0])
    result["gc_largest"] = [f"{type(o).__name__} x{n}: {_describe(o)}" for n, o in sized[:8]]
    del sized
    await asyncio.sleep(1)
    result["after"] = rss_bytes()
    # What the allocator keeps but does not use: glibc hands free pages back on a trim.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    result["after_trim"] = rss_bytes()
    result["pymalloc"] = pymalloc_stats()
    if trace and before is not None:
        after = tracemalloc.take_snapshot()
        result["traced_bytes"] = tracemalloc.get_traced_memory()[0]
        result["growth"] = [
            {"where": str(stat.traceback[0]), "size_diff": stat.size_diff, "count": stat.count}
            for stat in after.compare_to(before, "lineno")[:15]
        ]
        tracemalloc.stop()
    server.should_exit = True
    await serving
    return result


def pymalloc_stats() -> dict[str, int]:
    """CPython's small-object allocator (``sys._debugmallocstats``, written to fd 2): arenas
    held, bytes in live blocks, and bytes free inside held arenas (kept, not returned)."""
    wanted = {
        "# arenas allocated current": "arenas",
        "# bytes in allocated blocks": "live_bytes",
        "# bytes in available blocks": "free_block_bytes",
        "# bytes in free pools": "free_pool_bytes",
        "Total": "total_bytes",
    }
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    stats: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        key = wanted.get(name.strip())
        if sep and key:
            stats[key] = int(value.strip().replace(",", ""))
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.memory", description=__doc__.split("\n")[0])
    parser.add_argument("--trace", action="store_true", help="tracemalloc the load phases")
    parser.add_argument("--drive", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        url, key, users, seconds, stream = args.drive
        path = url + "/v1/chat/completions"
        print(asyncio.run(_drive(path, key, int(users), float(seconds), stream == "1")))
        return 0
    import uvloop

    from bench.procs import start_upstream

    users = [int(u) for u in os.environ.get("BENCH_MEMORY_USERS", "1,32,1000").split(",")]
    seconds = float(os.environ.get("BENCH_MEMORY_SECONDS", "5"))
    phases = [(count, stream) for count in users for stream in (False, True)]
    work = Path(tempfile.mkdtemp(prefix="tollway-memory-"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    upstream = start_upstream(work, env, None)
    try:
        upstream_url = upstream.url
        from bench.run import bench_config

        config_path = work / "bench.yaml"
        config_path.write_text(bench_config(upstream_url))
        report: dict[str, Any] = {"imports": import_costs(config_path)}
        report["load"] = uvloop.run(_under_load(config_path, work, phases, seconds, args.trace))
    finally:
        upstream.stop()
    report["settings"] = {"users": users, "seconds": seconds, "trace": args.trace}
    print(render(report))
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"memory-{stamp}.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0


def _mb(value: float) -> str:
    return f"{value / 1e6:.1f}"


def render(report: dict[str, Any]) -> str:
    imports = report["imports"]
    lines = [
        "## Memory at start (fresh interpreter, MB)",
        "",
        f"interpreter {_mb(imports['interpreter'])}, after `import proxy.server.app` "
        f"{_mb(imports['imported'])}, after building the app (bench config, features off) "
        f"{_mb(imports['built'])}",
        "",
        "| package loaded at start | RSS it costs alone (MB) |",
        "|---|---|",
        *(f"| {name} | {_mb(size)} |" for name, size in imports["alone"].items()),
    ]
    load = report["load"]
    lines += ["", "## Under load (gateway in-process, MB)", ""]
    lines += [f"ready {_mb(load['ready'])}", "", "| users | stream | requests | RSS after |"]
    lines += ["|---|---|---|---|"]
    for phase in load["phases"]:
        lines.append(
            f"| {phase['users']} | {phase['stream']} | {phase['requests']} | {_mb(phase['rss'])} |"
        )
    lines += ["", f"after all phases (+1 s): {_mb(load['after'])}"]
    lines += [f"after malloc_trim(0): {_mb(load['after_trim'])}", ""]
    pym = load.get("pymalloc") or {}
    if pym:
        lines += [
            "pymalloc after all phases: "
            + ", ".join(
                f"{k} {v / 1e6:.1f} MB" if k != "arenas" else f"{k} {v}" for k, v in pym.items()
            ),
            "",
        ]
    lines += ["Garbage collections during each phase (pause = wall time; CPU = this thread's):"]
    lines += ["", "| users | stream | gen | count | pause p50 µs | pause max µs | CPU p50 µs "]
    lines[-1] += "| CPU max µs | CPU total ms | freed |"
    lines += ["|---|---|---|---|---|---|---|---|---|---|"]
    rows = [(ph, gen, st) for ph in load["phases"] for gen, st in ph["gc"].items()]
    for phase, generation, st in rows:
        lines.append(
            f"| {phase['users']} | {phase['stream']} | {generation} | {st['count']} "
            f"| {st['p50_us']:.0f} | {st['max_us']:.0f} "
            f"| {st['cpu_p50_us']:.0f} | {st['cpu_max_us']:.0f} | {st['total_cpu_ms']:.1f} "
            f"| {st['collected']} |"
        )
    lines += ["", f"objects a full collection walks: {load['gc_tracked']}; most common:"]
    lines += [", ".join(f"{name} {count}" for name, count in load["gc_tracked_top"])]
    lines += ["", "largest tracked containers:"] + [f"- {c}" for c in load["gc_largest"]]
    for phase in load.get("during", []):
        lines += ["", f"tracemalloc half-way through {phase['users']} users, stream "]
        lines[-1] += f"{phase['stream']} (growth since ready):"
        lines += [
            f"- {e['size_diff'] / 1e3:+.0f} KB ({e['count']}) {e['where']}" for e in phase["top"]
        ]
    if load.get("growth"):
        lines += ["", "tracemalloc after all phases (growth since ready):"]
    for entry in load.get("growth", []):
        lines.append(f"- {entry['size_diff'] / 1e3:+.0f} KB ({entry['count']}) {entry['where']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

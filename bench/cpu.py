"""CPU time per request of the gateway (server layer + default pipeline), in process.

N fake client connections (protocol objects on recording transports, no client sockets)
each send a chat request with a virtual key that has rpm/tpm limits and a budget, wait for
the whole reply, send the next; the upstream is ``bench.upstream`` in its own process (a real
socket). ``time.process_time()`` / requests = CPU per request (every thread of the process,
the spend-log writer's included; ``time.thread_time()`` of the event loop's thread is printed
beside it as "loop"), so the figure does not depend
on what else the (shared) machine runs. Uvicorn's protocol and the raw httptools one
(``TOLLWAY_SERVER=raw``) run interleaved, rounds alternating their order; the median and the minimum
of the rounds are printed (on a busy machine the minimum is the steadier figure).

Usage: python -m bench.cpu [seconds] [concurrency] [json|stream] [rounds] [--profile N]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from uvicorn.server import ServerState

from bench.payloads import chat_body
from bench.procs import Child
from bench.run import bench_config
from bench.setup_keys import BENCH_KEY_REQUEST
from proxy.config import parse_config
from proxy.server.app import create_app
from proxy.server.raw import RawProtocol
from proxy.server.settings import resolve
from proxy.server.uvicorn_protocol import TollwayConfig, TollwayHttpToolsProtocol


class Conn(asyncio.Transport):
    def __init__(self, on_reply: Any) -> None:
        super().__init__()
        self.buf = bytearray()
        self.on_reply = on_reply
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 4000)}.get(name, default)

    def write(self, data: Any) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            if b"content-length:" in head:
                n = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
                if len(self.buf) < end + 4 + n:
                    return
                reply = bytes(self.buf[: end + 4 + n])
                del self.buf[: end + 4 + n]
            else:
                term = self.buf.find(b"\r\n0\r\n\r\n", end)
                if term < 0:
                    return
                reply = bytes(self.buf[: term + 7])
                del self.buf[: term + 7]
            self.on_reply(reply)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def request(path: str, body: bytes, key: str) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nhost: 127.0.0.1:4000\r\nuser-agent: bench\r\naccept: */*\r\n"
        b"accept-encoding: identity\r\nconnection: keep-alive\r\nauthorization: Bearer %s\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (path.encode(), key.encode(), len(body), body)
    )


async def run(
    upstream: str, seconds: float, conc: int, stream: bool, rounds: int, profile: int
) -> None:
    tmp = Path(tempfile.mkdtemp())
    env = {"TOLLWAY_MASTER_KEY": "sk-bench-master"}
    config = parse_config(bench_config(upstream), str(tmp / "c.yaml"), env)
    settings = resolve({"db": str(tmp / "t.db"), "master_key": "sk-bench-master"}, {}, config)
    app = await asyncio.to_thread(create_app, settings, config)
    await app.state.start()
    try:
        loop = asyncio.get_running_loop()
        cfg = TollwayConfig(
            app, lifespan="off", log_config=None, timeout_keep_alive=5, proxy_headers=False
        )
        cfg.load()
        state = ServerState()

        async def one(proto_cls: Any, data: bytes) -> bytes:
            fut: asyncio.Future[bytes] = loop.create_future()

            def on_reply(reply: bytes) -> None:
                if not fut.done():
                    fut.set_result(reply)

            conn = Conn(on_reply)
            p = proto_cls(cfg, state, {}, _loop=loop)
            p.connection_made(conn)
            p.data_received(data)
            out = await fut
            p.connection_lost(None)
            return out

        gen = json.dumps(BENCH_KEY_REQUEST).encode()
        reply = await one(
            TollwayHttpToolsProtocol, request("/key/generate", gen, "sk-bench-master")
        )
        key = json.loads(reply.split(b"\r\n\r\n", 1)[1])["key"]
        body = chat_body(stream=stream)
        data = request("/v1/chat/completions", body, key)

        async def drive(proto_cls: Any, secs: float) -> tuple[int, float, float]:
            done = 0
            stop = time.monotonic() + secs
            finished = loop.create_future()
            live = conc

            def start() -> None:
                nonlocal live
                p = proto_cls(cfg, state, {}, _loop=loop)

                def on_reply(r: bytes) -> None:
                    nonlocal done, live
                    assert r.startswith(b"HTTP/1.1 200"), r[:300]
                    done += 1
                    if time.monotonic() < stop:
                        loop.call_soon(p.data_received, data)
                    else:
                        live -= 1
                        if live == 0:
                            finished.set_result(None)

                p.connection_made(Conn(on_reply))
                p.data_received(data)

            cpu0 = time.process_time()
            loop0 = time.thread_time()
            for _ in range(conc):
                start()
            await finished
            return done, time.process_time() - cpu0, time.thread_time() - loop0

        await drive(TollwayHttpToolsProtocol, 1.0)
        await drive(RawProtocol, 1.0)
        if profile:
            # Deterministic profile of one run on uvicorn's protocol: calls per request show
            # per-request work that the sampled CPU figures are too noisy to see.
            profiler = cProfile.Profile()
            profiler.enable()
            n, _, _ = await drive(TollwayHttpToolsProtocol, seconds)
            profiler.disable()
            print(f"{n} requests profiled; ncalls / {n} = calls per request")
            pstats.Stats(profiler).sort_stats(
                os.environ.get("BENCH_CPU_SORT", "tottime")
            ).print_stats(profile)
            return
        results: dict[str, list[tuple[float, float]]] = {"uvicorn": [], "raw": []}
        order = [("uvicorn", TollwayHttpToolsProtocol), ("raw", RawProtocol)]
        for i in range(rounds):
            for name, cls in order if i % 2 == 0 else order[::-1]:
                n, cpu, on_loop = await drive(cls, seconds)
                results[name].append((cpu / n * 1e6, on_loop / n * 1e6))
                print(
                    f"round {i} {name:8s} {n:6d} req  {cpu / n * 1e6:7.1f} us CPU/req"
                    f"  (loop {on_loop / n * 1e6:6.1f})",
                    flush=True,
                )
        summary: dict[str, float] = {}
        for name, pairs in results.items():
            total = sorted(cpu for cpu, _ in pairs)
            own = sorted(loop_cpu for _, loop_cpu in pairs)
            summary[name] = total[len(total) // 2]
            print(
                f"{name:8s} CPU/req median {total[len(total) // 2]:.1f} us, min {total[0]:.1f}"
                f"  |  loop thread median {own[len(own) // 2]:.1f}, min {own[0]:.1f}"
            )
        u, r = summary["uvicorn"], summary["raw"]
        print(f"raw/uvicorn CPU per request: {r / u:.3f}  (throughput bound x{u / r:.3f})")
    finally:
        # Also on an error (a closed stdout): the SQLite thread must not outlive the loop.
        await app.state.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seconds", type=float, nargs="?", default=3.0, help="per round")
    parser.add_argument("concurrency", type=int, nargs="?", default=32)
    parser.add_argument("kind", choices=("json", "stream"), nargs="?", default="json")
    parser.add_argument("rounds", type=int, nargs="?", default=5)
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile one run, print N entries"
    )
    args = parser.parse_args()
    seconds, conc, rounds = args.seconds, args.concurrency, args.rounds
    stream = args.kind == "stream"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        upstream = Child(
            "upstream", [sys.executable, "-m", "bench.upstream", "--port", "0"], Path(tmp), env
        )
        try:
            url = upstream.wait_listening(15)
            uvloop.run(run(url, seconds, conc, stream, rounds, args.profile))
        finally:
            upstream.stop()


if __name__ == "__main__":
    main()

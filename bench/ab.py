"""``python -m bench.ab``: which of two gateways costs less CPU per request, on a noisy machine.

Both gateways run at once, pinned to the same CPU, each loaded by its own wrk (on the other
CPU, with the fake upstream) for ``--seconds``, ``--rounds`` times. The kernel shares the CPU
between them, so the ratio of their req/s is the ratio of their CPU per request, and the
machine's drift hits both alike (rounds agree within ±3% where runs one after the other
differed by 50% here). Printed per round and as the median: B's req/s over A's and A's CPU
per request over B's (> 1: B is cheaper).

    python -m bench.ab --a-env TOLLWAY_SERVER=uvicorn --b-env TOLLWAY_SERVER=raw
    python -m bench.ab --a-root /tmp/old-checkout            # another version of the code
    python -m bench.ab --b-key master --stream               # the virtual key's cost

A side is a checkout (``--a-root``/``--b-root``, default this one), extra environment
(``--a-env NAME=VALUE``, repeatable) and a key (``virtual``: limits as ``make bench``'s;
``plain``: a virtual key without limits; ``master``). The gateways are started from a
neutral folder, since ``python -m proxy`` run inside a checkout imports that checkout
whatever ``PYTHONPATH`` says.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from bench.loadgen import CHAT_PATH
from bench.payloads import CHAT_BODY, STREAM_BODY
from bench.procs import Child, neutral_workdir, pin, start_gateway, start_upstream
from bench.run import MASTER_KEY, ROOT, bench_config
from bench.setup_keys import create_bench_key
from bench.wrk import script, summary_row


def _key(url: str, kind: str) -> str:
    if kind == "master":
        return MASTER_KEY
    if kind == "plain":
        return create_bench_key(url, MASTER_KEY, fields={"key_alias": "plain"})
    return create_bench_key(url, MASTER_KEY)


def _ticks(pid: int) -> int:
    """The process's CPU time so far in clock ticks, user + system (threads that have exited
    included)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ab", description=__doc__.split("\n")[0])
    for side in ("a", "b"):
        parser.add_argument(f"--{side}-root", default=str(ROOT))
        parser.add_argument(f"--{side}-env", action="append", default=[], metavar="NAME=VALUE")
        parser.add_argument(
            f"--{side}-key", choices=("virtual", "plain", "master"), default="virtual"
        )
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("bench.ab needs two CPUs: one for the gateways, one for the load")
    gateway_cpu, load_cpu = {cpus[0]}, {cpus[-1]}
    work, env = neutral_workdir("tollway-ab-")  # see the docstring
    children: list[Child] = []
    try:
        upstream = start_upstream(work, env, load_cpu)
        children.append(upstream)
        upstream_url = upstream.url
        sides = {}
        for side in ("a", "b"):
            extra = dict(item.split("=", 1) for item in getattr(args, f"{side}_env"))
            side_env = dict(env, PYTHONPATH=getattr(args, f"{side}_root"))
            gateway = start_gateway(
                work, bench_config(upstream_url), side_env, name=f"gateway-{side}", **extra
            )
            children.append(gateway)
            pin(gateway.pid, gateway_cpu)
            key = _key(gateway.url, getattr(args, f"{side}_key"))
            lua = work / f"{side}.lua"
            lua.write_text(
                script(key, STREAM_BODY if args.stream else CHAT_BODY, work / f"{side}.json", False)
            )
            sides[side] = (gateway, lua)
        rps: dict[str, list[float]] = {"a": [], "b": []}
        cpu: dict[str, list[float]] = {"a": [], "b": []}
        p50: dict[str, list[float]] = {"a": [], "b": []}
        p99: dict[str, list[float]] = {"a": [], "b": []}
        for _ in range(args.rounds):
            for side in sides:  # a round whose wrk wrote nothing must not read the last one's
                (work / f"{side}.json").unlink(missing_ok=True)
            before = {side: _ticks(gateway.pid) for side, (gateway, _) in sides.items()}
            loads = {
                side: subprocess.Popen(
                    [
                        "wrk",
                        "-t1",
                        f"-c{args.connections}",
                        f"-d{args.seconds}s",
                        "-s",
                        str(lua),
                        gateway.url + CHAT_PATH,
                    ],
                    stdout=subprocess.DEVNULL,
                )
                for side, (gateway, lua) in sides.items()
            }
            try:
                for load in loads.values():
                    os.sched_setaffinity(load.pid, load_cpu)
                for side, load in loads.items():
                    if load.wait(timeout=args.seconds + 60) != 0:
                        raise SystemExit(f"wrk for side {side} exited with {load.returncode}")
            finally:
                for load in loads.values():
                    if load.poll() is None:
                        load.kill()
                        load.wait()
            for side, (gateway, _) in sides.items():
                row = summary_row(json.loads((work / f"{side}.json").read_text()))
                requests = row["requests"]
                rps[side].append(row["rps"])
                p50[side].append(row["p50"])
                p99[side].append(row["p99"])
                cpu[side].append(
                    (_ticks(gateway.pid) - before[side]) * 1e6 / os.sysconf("SC_CLK_TCK") / requests
                )
    finally:
        for child in reversed(children):
            child.stop()
    for side in ("a", "b"):
        median = statistics.median(cpu[side])
        print(
            f"{side.upper()}: req/s {[round(x) for x in rps[side]]}, CPU µs/request {median:.1f}, "
            f"latency p50 {[round(x, 1) for x in p50[side]]}"
            f" p99 {[round(x, 1) for x in p99[side]]} ms"
        )
    ratios = [b / a for a, b in zip(rps["a"], rps["b"], strict=True)]
    costs = [a / b for a, b in zip(cpu["a"], cpu["b"], strict=True)]
    print(f"B/A req/s {[round(r, 3) for r in ratios]}, median {statistics.median(ratios):.3f}")
    print(f"A/B CPU/request {[round(c, 3) for c in costs]}, median {statistics.median(costs):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

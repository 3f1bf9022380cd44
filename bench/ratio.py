"""``python -m bench.ratio``: Tollway's req/s over the LiteLLM proxy's, alternated, median.

The full run (``make bench``) measures each target once, seconds to minutes apart, on a
machine whose speed drifts by ±25% within minutes, and not alike for both: a drift in the cost
of syscalls and wake-ups moves Tollway (I/O-bound) more than LiteLLM (CPU-bound in Python).
Here the two are loaded one after the other, ``--rounds`` times per scenario (wrk, the same
fake upstream, the same pinning as ``make bench``: each gateway on CPU 0, the upstream and wrk
on the last CPU), and each round's ratio is printed with their median.

    python -m bench.ratio [--rounds 3] [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from bench.loadgen import CHAT_PATH, ensure_litellm, start_litellm
from bench.procs import Child, neutral_workdir, pin, start_gateway, start_upstream
from bench.run import MASTER_KEY, bench_config, cpu_plan
from bench.setup_keys import create_bench_key
from bench.wrk import run_wrk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ratio", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    litellm = ensure_litellm()
    if litellm is None:
        raise SystemExit("the LiteLLM proxy could not be installed (see bench/README.md)")
    server_cpus, load_cpus = cpu_plan(True)
    work, env = neutral_workdir("tollway-ratio-")
    children: list[Child] = []
    try:
        upstream = start_upstream(work, env, load_cpus)
        children.append(upstream)
        upstream_url = upstream.url
        gateway = start_gateway(work, bench_config(upstream_url), env)
        children.append(gateway)
        pin(gateway.pid, server_cpus)
        key = create_bench_key(gateway.url, MASTER_KEY)
        proxy = start_litellm(litellm, work / "tollway.yaml", work, server_cpus)
        children.append(proxy)
        litellm_url = proxy.url
        targets = {"tollway": (gateway.url, key), "litellm": (litellm_url, MASTER_KEY)}
        for scenario in ("chat", "stream"):
            ratios = []
            for round_ in range(args.rounds):
                rps = {
                    name: run_wrk(
                        scenario=scenario,
                        users=args.connections,
                        seconds=args.seconds,
                        url=url + CHAT_PATH,
                        key=target_key,
                        work=work,
                        tag=f"{name}-{scenario}-{round_}",
                        cpus=load_cpus,
                    )["rps"]
                    for name, (url, target_key) in targets.items()
                }
                ratios.append(rps["tollway"] / rps["litellm"])
                print(
                    f"{scenario} round {round_ + 1}: tollway {rps['tollway']:.0f} req/s, "
                    f"litellm {rps['litellm']:.0f} req/s, {ratios[-1]:.1f}x",
                    flush=True,
                )
            shown = ", ".join(f"{r:.1f}" for r in ratios)
            print(f"{scenario}: median {statistics.median(ratios):.1f}x ({shown})", flush=True)
    finally:
        for child in reversed(children):
            child.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

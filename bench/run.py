"""``make bench``: direct-to-upstream vs through-the-gateway latency under the same load.

    fake upstream → (direct | Tollway | Tollway+feature per BENCH_FEATURES
                     | LiteLLM when BENCH_COMPARE=litellm) ← locust

Order of a run: start the upstream and the gateway (plus one more gateway per feature in
BENCH_FEATURES: the same config with that feature's fragment merged in), make the bench key
on each, warm up and run the precise probe (on a quiet machine), then for each scenario and
user count run locust once per target, back to back. Every child process is stopped in
``finally``.

Environment: BENCH_SECONDS (10), BENCH_QUICK=1 (3 s runs, users 1 and 32), BENCH_USERS
("1,32,1000"), BENCH_FEATURE_USERS ("1,32": the feature targets' user counts), BENCH_SCALING
(1; the prompt-size and stream-length rows of ``bench/scaling.py``), BENCH_KEY (skip
/key/generate and send this key), BENCH_PROBE_REQUESTS (2000),
BENCH_PIN=0 (no CPU pinning), BENCH_ONE_USER_UPSTREAM ("gateway": for one-user rows and
the probe the fake upstream runs on the gateways' CPU; "load": on the load generator's, as
in the rows above one user), BENCH_COMPARE=litellm, BENCH_FEATURES (comma-separated names
from ``FEATURES``, e.g. "guardrail", "cache", "semantic-cache"). A feature in
``FEATURE_CLIENT_ENV`` gets that environment in its own target's clients only (locust and the
probe): ``semantic-cache`` sets BENCH_VARY=1, a unique prompt per request. A feature in
``FEATURE_GATEWAY_ENV`` gets that environment in its gateway process: ``observe`` points its
OTLP and webhook sinks at the fake upstream.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import shutil
import signal
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench.jitter import cpu_jitter
from bench.jitter import describe as describe_jitter
from bench.loadgen import (
    CHAT_PATH,
    MODEL,
    USER_CLASSES,
    WRK_METRICS,
    ensure_litellm,
    loadgen,
    run_locust,
    start_litellm,
)
from bench.probe import run_probe
from bench.procs import (
    Child,
    RSSSampler,
    pin,
    start_gateway,
    start_upstream,
    tree_rss_bytes,
)
from bench.redis_server import start_redis
from bench.report import METRICS, added_latency, feature_cost, markdown, summarise
from bench.scaling import run_scaling, scaling_rows
from bench.setup_keys import create_bench_key
from bench.wrk import run_wrk

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
MASTER_KEY = "sk-bench-master"

# BENCH_FEATURES: feature name -> the config fragment that turns it on. Each feature listed
# runs as its own target, ``tollway+<name>``: another gateway process with the plain bench
# config plus that fragment (mappings merged, lists appended), so its rows show what the
# feature costs on top of plain ``tollway``. A new feature is one more entry here.
GUARDRAIL_PATTERNS = (
    "email",
    "phone",
    "us_ssn",
    "credit_card",
    "openai_api_key",
    "aws_access_key",
)
FEATURES: dict[str, dict[str, Any]] = {
    # One default-on content filter masking the common PII and secrets, on the request
    # (pre_call) and on the reply (post_call; on streams: every text delta).
    "guardrail": {
        "guardrails": [
            {
                "guardrail_name": "bench-pii-mask",
                "litellm_params": {
                    "guardrail": "litellm_content_filter",
                    "mode": ["pre_call", "post_call"],
                    "default_on": True,
                    "patterns": [
                        {"pattern_type": "prebuilt", "pattern_name": name, "action": "MASK"}
                        for name in GUARDRAIL_PATTERNS
                    ],
                },
            }
        ]
    },
    # The in-memory exact cache. The bench sends one body over and over, so every request
    # after the first is a hit: these rows are the hit path (no upstream call at all).
    "cache": {"litellm_settings": {"cache": True, "cache_params": {"type": "local"}}},
    # The same exact cache, but every prompt is new (``FEATURE_CLIENT_ENV``): every request
    # is a miss that pays the lookup, the upstream call and the store.
    "cache-miss": {"litellm_settings": {"cache": True, "cache_params": {"type": "local"}}},
    # The in-memory semantic cache (WordLlama on the last user turn). Its clients vary the
    # prompt (``FEATURE_CLIENT_ENV``), so every request is a miss: exact lookup, embedding,
    # semantic lookup, upstream call, then store + embed + index.
    "semantic-cache": {
        "litellm_settings": {"cache": True, "cache_params": {"type": "local-semantic"}}
    },
    # Every observability sink at once: LiteLLM's Prometheus series (updated per call on the
    # settle path), one OTLP span per call and one generic-webhook record per call, the last
    # two batched by background workers. Their receiver is the fake upstream
    # (``FEATURE_GATEWAY_ENV``), which answers 200 at once, so these rows are the gateway's
    # own cost of producing and shipping the telemetry.
    "observe": {"litellm_settings": {"callbacks": ["prometheus", "otel", "generic_api"]}},
    # The common production pair: LiteLLM's Prometheus series plus one callback sink (the
    # generic webhook, batched by its worker, received by the fake upstream).
    "metrics-webhook": {"litellm_settings": {"callbacks": ["prometheus", "generic_api"]}},
    # The shared Redis ledger (``FEATURE_REDIS_ENV``): same config, admission and settle in
    # a redis-server started for the run. ``workers2``: the same, with 2 worker processes
    # on one port; its rows beside ``tollway``'s show what a second core buys.
    "redis": {},
    "workers2": {},
}
# Features whose gateway runs on the shared Redis ledger: TOLLWAY_REDIS_URL (a redis-server
# started for the run, pinned with the servers) plus this environment.
FEATURE_REDIS_ENV: dict[str, dict[str, str]] = {
    "redis": {},
    "workers2": {"TOLLWAY_WORKERS": "2"},
}
# Extra environment for a feature's gateway process; ``{upstream}`` is the fake upstream's
# base URL (it serves ``POST /v1/traces`` and ``POST /webhook`` too, see bench/upstream.py).
FEATURE_GATEWAY_ENV: dict[str, dict[str, str]] = {
    "observe": {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "{upstream}",
        "GENERIC_LOGGER_ENDPOINT": "{upstream}/webhook",
    },
    "metrics-webhook": {"GENERIC_LOGGER_ENDPOINT": "{upstream}/webhook"},
}
# Extra environment for the clients (locust and the probe) of a feature's target.
# BENCH_VARY=1: every request's last user turn ends in a unique marker (bench/payloads.py).
FEATURE_CLIENT_ENV: dict[str, dict[str, str]] = {
    "semantic-cache": {"BENCH_VARY": "1"},
    "cache-miss": {"BENCH_VARY": "1"},
}


# Seconds of no load before the last memory reading (one trim interval and a margin).
IDLE_AFTER_S = 13
# The targets of the one-user latency probe that stands for the latency target.
PAIR = ("direct", "tollway")


def parse_features(value: str) -> list[str]:
    """``BENCH_FEATURES`` as a list of known feature names (in the order given)."""
    names: list[str] = []
    for name in (n.strip() for n in value.split(",")):
        if not name or name in names:
            continue
        if name not in FEATURES:
            raise SystemExit(
                f"BENCH_FEATURES: unknown feature {name!r}; known: {', '.join(FEATURES)}"
            )
        names.append(name)
    return names


def gateway_env(features: list[str] | tuple[str, ...], upstream_url: str) -> dict[str, str]:
    """The extra gateway environment of ``features`` (``FEATURE_GATEWAY_ENV``), filled in."""
    env: dict[str, str] = {}
    for name in features:
        for key, value in FEATURE_GATEWAY_ENV.get(name, {}).items():
            env[key] = value.format(upstream=upstream_url)
    return env


def callback_counts(gateway_url: str) -> dict[str, float]:
    """``tollway_callback_*`` counters from the gateway's ``/metrics`` (series -> value), so a
    run shows its sinks delivered (and dropped nothing) rather than silently failing."""
    counts: dict[str, float] = {}
    with urllib.request.urlopen(gateway_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("tollway_callback_") and not line.startswith("tollway_callback_queue"):
            series, _, value = line.rpartition(" ")
            counts[series] = float(value)
    return counts


def _merge(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = [*out[key], *value]
        else:
            out[key] = value
    return out


def bench_config(upstream_url: str, features: list[str] | tuple[str, ...] = ()) -> str:
    """The gateway's config; with ``features``, their ``FEATURES`` fragments merged in."""
    text = _plain_config(upstream_url)
    if not features:
        return text
    config: dict[str, Any] = yaml.safe_load(text)
    for name in features:
        config = _merge(config, FEATURES[name])
    return yaml.safe_dump(config, sort_keys=False)


def _plain_config(upstream_url: str) -> str:
    return textwrap.dedent(
        f"""\
        model_list:
          - model_name: {MODEL}
            litellm_params:
              model: openai/{MODEL}
              api_base: {upstream_url}/v1
              api_key: sk-bench-upstream
            model_info:
              input_cost_per_token: 0.000001
              output_cost_per_token: 0.000002
        general_settings:
          master_key: {MASTER_KEY}
        """
    )


def cpu_plan(pinning: bool) -> tuple[set[int] | None, set[int] | None]:
    """(CPUs for the gateways under test, CPUs for everything else): the last CPU runs the
    load generator, the fake upstream and redis-server, so each gateway (and LiteLLM) has
    the other CPU(s) to itself — the per-core figure the throughput claim is about.

    One-user rows measure added latency instead, and there the fake upstream moves to the
    gateways' CPU (``upstream_cpus``): a call then crosses between the CPUs twice whether it
    goes direct (client → upstream → client) or through a gateway (client → gateway →
    upstream → gateway → client). With the upstream beside the client, the direct call
    never left its CPU while the gateway's crossed four times, and each crossing wakes an
    idle vCPU: up to milliseconds on a VM, which the added-latency column then charged to
    the gateway."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pinning or len(cpus) < 2:
        return None, None
    return set(cpus[:-1]), {cpus[-1]}


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--key",
        default=os.environ.get("BENCH_KEY"),
        help="key sent to the gateway (default: make one via /key/generate)",
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep logs and configs")
    args = parser.parse_args(argv)

    quick = os.environ.get("BENCH_QUICK") == "1"
    seconds = int(os.environ.get("BENCH_SECONDS", "3" if quick else "10"))
    users_env = os.environ.get("BENCH_USERS", "1,32" if quick else "1,32,1000")
    user_counts = [int(u) for u in users_env.split(",") if u.strip()]
    # Feature targets run at these counts only (their cost, not the 1,000-connection tail).
    feature_users = {int(u) for u in os.environ.get("BENCH_FEATURE_USERS", "1,32").split(",")}
    scaling = os.environ.get("BENCH_SCALING", "0" if quick else "1") == "1"
    probe_requests = int(os.environ.get("BENCH_PROBE_REQUESTS", "2000"))
    one_user_requests = int(os.environ.get("BENCH_ONE_USER_REQUESTS", "10000"))
    compare = {c.strip() for c in os.environ.get("BENCH_COMPARE", "").split(",") if c.strip()}
    pinning = os.environ.get("BENCH_PIN", "1") != "0"
    features = parse_features(os.environ.get("BENCH_FEATURES", ""))
    server_cpus, load_cpus = cpu_plan(pinning)
    placement = os.environ.get("BENCH_ONE_USER_UPSTREAM", "gateway")
    if placement not in ("gateway", "load"):
        raise SystemExit(f"BENCH_ONE_USER_UPSTREAM must be gateway or load, not {placement!r}")
    one_user_cpus = (server_cpus if placement == "gateway" else None) or load_cpus
    generator = loadgen()

    # A SIGTERM (e.g. from make being interrupted) unwinds through the finally blocks below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="tollway-bench-"))
    timestamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    children: list[Child] = []
    notes: list[str] = []
    try:
        if load_cpus is not None:
            # The probe client shares the load generator's CPU, not the servers'.
            os.sched_setaffinity(0, load_cpus)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        upstream = start_upstream(work, env, load_cpus)
        children.append(upstream)
        upstream_url = upstream.url

        gateway = start_gateway(work, bench_config(upstream_url), env)
        children.append(gateway)
        gateway_url = gateway.url
        pin(gateway.pid, server_cpus)

        key = args.key or create_bench_key(gateway_url, MASTER_KEY)
        key_kind = "master key" if key == MASTER_KEY else "virtual key"
        if key == MASTER_KEY:
            notes.append(
                "Gateway called with the master key: virtual-key limit checks are "
                "not part of these numbers."
            )

        # target name -> (base URL, key, pid to sample or None)
        targets: dict[str, tuple[str, str, int | None]] = {
            "direct": (upstream_url, key, None),
            "tollway": (gateway_url, key, gateway.pid),
        }
        client_env: dict[str, dict[str, str]] = {}
        redis_url = ""
        if any(feature in FEATURE_REDIS_ENV for feature in features):
            redis = start_redis(work, env)
            children.append(redis)
            pin(redis.pid, load_cpus)
            redis_url = redis.url
        # One more gateway per feature: same config plus the feature, its own process and
        # database (so its own bench key), pinned like the plain one.
        for feature in features:
            name = f"tollway+{feature}"
            featured = start_gateway(
                work,
                bench_config(upstream_url, [feature]),
                env,
                name=name,
                **gateway_env([feature], upstream_url),
                **(
                    {"TOLLWAY_REDIS_URL": redis_url, **FEATURE_REDIS_ENV[feature]}
                    if feature in FEATURE_REDIS_ENV
                    else {}
                ),
            )
            children.append(featured)
            pin(featured.pid, server_cpus)
            featured_key = args.key or create_bench_key(featured.url, MASTER_KEY)
            targets[name] = (featured.url, featured_key, featured.pid)
            if feature in FEATURE_CLIENT_ENV:
                client_env[name] = FEATURE_CLIENT_ENV[feature]
        if "litellm" in compare:
            litellm = ensure_litellm()
            if litellm is not None:
                try:
                    proxy = start_litellm(litellm, work / "tollway.yaml", work, server_cpus)
                    children.append(proxy)
                    targets["litellm"] = (proxy.url, MASTER_KEY, proxy.pid)
                except RuntimeError as exc:
                    print(f"LiteLLM comparison skipped: {exc}")
                    notes.append("LiteLLM was requested but did not start (see the log).")

        memory: dict[str, dict[str, int]] = {
            name: {"idle": tree_rss_bytes(pid)}
            for name, (_, _, pid) in targets.items()
            if pid is not None
        }

        def upstream_cpus(users: int) -> None:
            """Move the fake upstream for a row of ``users`` (see ``cpu_plan``)."""
            pin(upstream.pid, one_user_cpus if users == 1 else load_cpus)

        upstream_cpus(1)
        # Tollway's own added latency at one user (the latency target) comes from a
        # probe of direct and tollway alone, and a long one: interleaved with eight other
        # servers, each request found the CPU's caches full of the others' (LiteLLM's most
        # of all); and in 2,000 requests (under a second) one of this VM's ~100 ms slow
        # bursts (``bench/jitter.py``, measured first) held 10% of the sample.
        jitter = cpu_jitter(min(server_cpus) if server_cpus else None)
        print(f"machine: {describe_jitter(jitter)}")
        print(f"probe: {one_user_requests} sequential requests, direct and tollway alone ...")
        probe_alone = run_probe(
            {name: (targets[name][0] + CHAT_PATH, targets[name][1]) for name in PAIR},
            requests=one_user_requests,
        )
        print(f"probe: {probe_requests} sequential requests per target and scenario ...")
        probe = run_probe(
            {name: (url + CHAT_PATH, k) for name, (url, k, _) in targets.items()},
            requests=probe_requests,
            vary={name for name, extra in client_env.items() if extra.get("BENCH_VARY") == "1"},
        )
        for name, (_, _, pid) in targets.items():
            if pid is not None:
                memory[name]["after_warmup"] = tree_rss_bytes(pid)

        def locust(
            scenario: str, users: int, name: str, tag: str, extra: dict[str, str] | None
        ) -> dict[str, Any]:
            """One bounded locust run of ``users`` against target ``name``."""
            url, target_key, _ = targets[name]
            return run_locust(
                scenario=scenario,
                users=users,
                seconds=seconds,
                host=url,
                key=target_key,
                work=work,
                tag=tag,
                cpus=load_cpus,
                extra_env=extra,
            )

        runs: list[dict[str, Any]] = []
        for scenario in USER_CLASSES:
            for users in user_counts:
                # LiteLLM right after plain tollway: the ratio compares rows seconds apart, not
                # a minute of feature rows apart on a machine whose speed drifts.
                for name in sorted(
                    targets, key=lambda n: (n != "direct", n != "tollway", n != "litellm")
                ):
                    url, target_key, pid = targets[name]
                    if name.startswith("tollway+") and users not in feature_users:
                        continue
                    tag = f"{scenario}-{users}-{name}"
                    use_wrk = generator == "wrk" and users > 1
                    upstream_cpus(users)
                    print(f"{'wrk' if use_wrk else 'locust'}: {tag} ({seconds} s) ...", flush=True)
                    with RSSSampler(pid) as sampler:
                        if use_wrk:
                            summaries = {
                                WRK_METRICS[scenario]: run_wrk(
                                    scenario=scenario,
                                    users=users,
                                    seconds=seconds,
                                    url=url + CHAT_PATH,
                                    key=target_key,
                                    work=work,
                                    tag=tag,
                                    cpus=load_cpus,
                                    extra_env=client_env.get(name),
                                )
                            }
                        else:
                            raw = locust(scenario, users, name, tag, client_env.get(name))
                            summaries = {m: summarise(raw, m) for m in METRICS[scenario]}
                            if raw["failures"]:
                                top = sorted(raw["failures"].items(), key=lambda kv: -kv[1])[:3]
                                notes.append(
                                    f"{tag}: errors " + "; ".join(f"{n} x {t}" for t, n in top)
                                )
                    if pid is not None:
                        memory[name]["peak"] = max(memory[name].get("peak", 0), sampler.peak)
                    for metric, summary in summaries.items():
                        row = {
                            "scenario": scenario,
                            "users": users,
                            "target": name,
                            "metric": metric,
                            "loadgen": "wrk" if use_wrk else "locust",
                            **summary,
                        }
                        if pid is not None:
                            row["peak_rss_bytes"] = sampler.peak
                        runs.append(row)
                        kinds = summary.get("error_kinds")
                        if kinds:
                            shown = ", ".join(f"{k} {v}" for k, v in kinds.items())
                            notes.append(f"{tag}: wrk errors {shown}")
                    for child in children:
                        if child.process.poll() is not None:
                            raise RuntimeError(f"{child.name} died during {tag}:\n{child.tail()}")

        def scaling_run(label: str, scenario: str, name: str, extra: dict[str, str]) -> Any:
            tag = f"{label}-1-{name}"
            print(f"locust: {tag} ({seconds} s) ...", flush=True)
            upstream_cpus(1)
            return locust(scenario, 1, name, tag, extra)

        scaled = run_scaling(scaling_run, summarise) if scaling else []
        runs.extend(scaled)
        # Resident memory once every load (1 to 1,000 users, JSON and streams) has run.
        for name, (_, _, pid) in targets.items():
            if pid is not None:
                memory[name]["after_all"] = tree_rss_bytes(pid)
        # And once the load is over: a gateway gives a burst's memory back in a quiet spell
        # (TOLLWAY_MEMORY_TRIM_S, 10 s by default), so it is read again after one.
        time.sleep(IDLE_AFTER_S)
        for name, (_, _, pid) in targets.items():
            if pid is not None:
                memory[name]["after_idle"] = tree_rss_bytes(pid)

        # Telemetry sinks of the feature targets: what they delivered, dropped or failed.
        callbacks: dict[str, dict[str, float]] = {}
        for feature in features:
            if feature not in FEATURE_GATEWAY_ENV:
                continue
            name = f"tollway+{feature}"
            time.sleep(2.5)  # the sinks' last batches (flushed every second)
            callbacks[name] = callback_counts(targets[name][0])
            shown = ", ".join(f"{k} = {v:.0f}" for k, v in sorted(callbacks[name].items()))
            notes.append(f"{name} telemetry sinks after the runs: {shown or 'no counters'}")

        result = {
            "timestamp": timestamp,
            "machine": {
                "cpus": os.cpu_count(),
                "cpu_model": cpu_model(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "settings": {
                "seconds": seconds,
                "idle_after_s": IDLE_AFTER_S,
                "users": user_counts,
                "quick": quick,
                "probe_requests": probe_requests,
                "one_user_requests": one_user_requests,
                "features": features,
                "client_env": client_env,
                "loadgen": generator,
                "pinning": (
                    f"gateways on CPUs {sorted(server_cpus)}; the load generator, the probe, "
                    f"the fake upstream and redis-server on {sorted(load_cpus)}"
                    + (
                        f", but the fake upstream on {sorted(one_user_cpus)} for one user"
                        if one_user_cpus != load_cpus
                        else ""
                    )
                )
                if load_cpus and server_cpus
                else "off",
            },
            "key_kind": key_kind,
            "targets": list(targets),
            "runs": runs,
            "added": added_latency(runs, baseline="direct"),
            "scaling": scaling_rows(scaled),
            "feature_cost": feature_cost(
                runs, probe, [f"tollway+{feature}" for feature in features], baseline="tollway"
            ),
            "probe": probe,
            "probe_alone": probe_alone,
            "jitter": jitter,
            "memory": memory,
            "callbacks": callbacks,
            "notes": notes,
        }
        RESULTS.mkdir(exist_ok=True)
        table = markdown(result)
        (RESULTS / f"{timestamp}.json").write_bytes(
            orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
        (RESULTS / f"{timestamp}.md").write_text(table)
        print()
        print(table)
        print(f"written: bench/results/{timestamp}.json and .md")
        return 0
    finally:
        for child in reversed(children):
            child.stop()
        if args.keep_temp:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

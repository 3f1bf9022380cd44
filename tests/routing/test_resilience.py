"""Routing and resilience against real gateway processes and scripted fake upstreams.

Every fake counts its hits, so each test shows which deployment was tried how often.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, start_gateway
from tests.fakes.flaky_upstream import FlakyUpstream

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


NAMES = [
    "a",
    "b",
    "c",
    "small",
    "big",
    "other",
    "strict",
    "lenient",
    "slow",
    "fast",
    "free",
    "paid",
    "dflt",
    "safe",
    "thinker",
    "good",
    "bad",
]


@pytest.fixture
def upstreams() -> Iterator[dict[str, FlakyUpstream]]:
    # Started here, outside the event loop: starting a server thread blocks briefly.
    pool = {name: FlakyUpstream(name).start() for name in NAMES}
    yield pool
    for upstream in pool.values():
        upstream.stop()


def config(models: list[tuple[str, FlakyUpstream, dict[str, Any]]], router: str = "") -> str:
    lines = ["model_list:"]
    for name, upstream, extra in models:
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            f"      model: openai/{upstream.name}",
            f"      api_base: {upstream.base_url}",
            "      api_key: os.environ/TEST_UPSTREAM_KEY",
        ]
        info = extra.pop("model_info", None)
        lines += [f"      {k}: {v}" for k, v in extra.items()]
        if info:
            lines += ["    model_info:"] + [f"      {k}: {v}" for k, v in info.items()]
    lines += ["general_settings:", "  master_key: os.environ/TEST_MASTER_KEY"]
    lines += ["router_settings:", "  retry_after: 0.01", *("  " + r for r in router.splitlines())]
    return "\n".join(lines) + "\n"


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    yield started
    for gateway in started:
        gateway.stop()


async def launch(tmp_path: Path, gateways: list[GatewayProcess], text: str) -> GatewayProcess:
    gateway = await asyncio.to_thread(start_gateway, tmp_path, text)
    gateways.append(gateway)
    return gateway


async def chat(
    gateway: GatewayProcess, model: str, *, stream: bool = False, **extra: Any
) -> httpx.Response:
    headers = {**AUTH, **extra.pop("headers", {})}
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}
    if stream:
        body["stream"] = True
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        return await client.post("/v1/chat/completions", json=body, headers=headers)


def served_by(resp: httpx.Response) -> str:
    return resp.headers["x-tollway-model"].removeprefix("openai/")


# -- 2. retries -------------------------------------------------------------------------------


async def test_5xx_is_retried_on_the_same_deployment_with_backoff(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(("status", 500), ("status", 503))
    gw = await launch(tmp_path, gateways, config([("m", a, {})], "num_retries: 2"))
    resp = await chat(gw, "m")
    assert resp.status_code == 200
    assert a.hits == 3
    assert resp.headers["x-tollway-attempted-retries"] == "2"
    assert resp.headers["x-tollway-attempted-fallbacks"] == "0"


async def test_retries_are_bounded_by_num_retries(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(default=("status", 500))
    gw = await launch(tmp_path, gateways, config([("m", a, {})], "num_retries: 1"))
    resp = await chat(gw, "m")
    assert resp.status_code == 502
    assert a.hits == 2
    assert resp.headers["x-tollway-attempted-retries"] == "1"


async def test_deployment_max_retries_overrides_num_retries(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(default=("status", 500))
    text = config([("m", a, {"max_retries": 0})], "num_retries: 3")
    gw = await launch(tmp_path, gateways, text)
    assert (await chat(gw, "m")).status_code == 502
    assert a.hits == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_and_auth_errors_are_never_retried(
    tmp_path: Path,
    upstreams: dict[str, FlakyUpstream],
    gateways: list[GatewayProcess],
    status: int,
) -> None:
    a = upstreams["a"].then(default=("status", status))
    b = upstreams["b"]
    gw = await launch(tmp_path, gateways, config([("m", a, {}), ("m", b, {})], "num_retries: 3"))
    a.default = ("status", status)
    # Send until the erroring deployment was picked; it is tried exactly once per request.
    for _ in range(20):
        resp = await chat(gw, "m")
        if served_by(resp) == "a":
            assert resp.status_code == status
            assert resp.headers["x-tollway-attempted-retries"] == "0"
            break
    else:
        pytest.fail("deployment a was never picked")
    assert b.hits + a.hits == _requests_sent(a, b)


def _requests_sent(*upstreams: FlakyUpstream) -> int:
    return sum(u.hits for u in upstreams)


async def test_429_moves_to_a_sibling_at_once_and_cools_the_deployment(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(default=("status", 429, "30"))
    b = upstreams["b"]
    gw = await launch(tmp_path, gateways, config([("m", a, {}), ("m", b, {})], "num_retries: 2"))
    started = time.monotonic()
    replies = [await chat(gw, "m") for _ in range(8)]
    assert all(r.status_code == 200 and served_by(r) == "b" for r in replies)
    assert a.hits <= 1  # once cooled (30 s, its Retry-After) it gets no traffic
    assert time.monotonic() - started < 5  # a sibling was usable: no backoff wait


async def test_short_retry_after_is_waited_for_on_a_single_deployment(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(("status", 429, "1"))
    gw = await launch(tmp_path, gateways, config([("m", a, {})], "num_retries: 1"))
    started = time.monotonic()
    resp = await chat(gw, "m")
    assert resp.status_code == 200
    assert time.monotonic() - started >= 0.9
    assert resp.headers["x-tollway-attempted-retries"] == "1"


async def test_long_retry_after_is_not_waited_for_and_reaches_the_client(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(default=("status", 429, "60"))
    gw = await launch(tmp_path, gateways, config([("m", a, {})], "num_retries: 3"))
    resp = await chat(gw, "m")
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "60"
    assert a.hits == 1


# -- 3. cooldowns -----------------------------------------------------------------------------


async def test_every_deployment_cooling_is_503_with_retry_after_and_no_upstream_hit(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(default=("status", 500))
    text = config([("m", a, {})], "num_retries: 0\nallowed_fails: 1\ncooldown_time: 30")
    gw = await launch(tmp_path, gateways, text)
    assert (await chat(gw, "m")).status_code == 502
    assert (await chat(gw, "m")).status_code == 502  # second failure in a minute: cooled
    resp = await chat(gw, "m")
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "no_deployment_available"
    assert 1 <= int(resp.headers["retry-after"]) <= 30
    assert a.hits == 2
    async with httpx.AsyncClient(base_url=gw.url) as client:
        ready = (await client.get("/health/readiness")).json()
        info = (await client.get("/model/info", headers=AUTH)).json()
        metrics = (await client.get("/metrics")).text
    assert ready["unusable_model_groups"] == ["m"]
    state = info["data"][0]["model_info"]["deployment_state"]
    assert state["healthy"] is False
    assert state["cooling_until"] > time.time()
    assert state["failures"] == 2
    assert 'tollway_deployment_cooling{deployment="openai/a",model="m"' in metrics
    assert "tollway_deployment_cooldowns_total" in metrics


# -- 4. fallbacks -----------------------------------------------------------------------------


async def test_failed_group_falls_back_in_order(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(default=("status", 500))
    b = upstreams["b"].then(default=("status", 503))
    c = upstreams["c"]
    text = config(
        [("m", a, {}), ("backup", b, {}), ("last", c, {})],
        "num_retries: 1\nfallbacks: [{m: [backup, last]}]\ncooldown_time: 0",
    )
    gw = await launch(tmp_path, gateways, text)
    resp = await chat(gw, "m")
    assert resp.status_code == 200
    assert served_by(resp) == "c"
    assert (a.hits, b.hits, c.hits) == (2, 2, 1)
    assert resp.headers["x-tollway-attempted-fallbacks"] == "2"
    assert resp.headers["x-tollway-attempted-retries"] == "2"
    async with httpx.AsyncClient(base_url=gw.url) as client:
        metrics = (await client.get("/metrics")).text
    assert 'tollway_fallbacks_total{model="m"} 2' in metrics
    assert 'tollway_retries_total{model="m"} 2' in metrics


async def test_max_fallbacks_bounds_the_attempts(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a, b, c = (upstreams[n].then(default=("status", 500)) for n in "abc")
    text = config(
        [("m", a, {}), ("b", b, {}), ("c", c, {})],
        "num_retries: 0\nmax_fallbacks: 1\nfallbacks: [{m: [b, c]}]\ncooldown_time: 0",
    )
    gw = await launch(tmp_path, gateways, text)
    resp = await chat(gw, "m")
    assert resp.status_code == 502
    assert (a.hits, b.hits, c.hits) == (1, 1, 0)


async def test_default_fallbacks_apply_to_groups_without_their_own(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(default=("status", 500))
    safe = upstreams["safe"]
    text = config([("m", a, {}), ("safe", safe, {})], "num_retries: 0\ndefault_fallbacks: [safe]")
    gw = await launch(tmp_path, gateways, text)
    resp = await chat(gw, "m")
    assert resp.status_code == 200
    assert served_by(resp) == "safe"


async def test_a_400_does_not_fall_back(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(default=("status", 400))
    b = upstreams["b"]
    text = config([("m", a, {}), ("b", b, {})], "fallbacks: [{m: [b]}]")
    gw = await launch(tmp_path, gateways, text)
    assert (await chat(gw, "m")).status_code == 400
    assert b.hits == 0


async def test_context_length_error_goes_to_context_window_fallbacks(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    small = upstreams["small"].then(default=("context",))
    big = upstreams["big"]
    other = upstreams["other"]
    text = config(
        [("m", small, {}), ("big", big, {}), ("other", other, {})],
        "fallbacks: [{m: [other]}]\ncontext_window_fallbacks: [{m: [big]}]",
    )
    gw = await launch(tmp_path, gateways, text)
    resp = await chat(gw, "m")
    assert resp.status_code == 200
    assert served_by(resp) == "big"
    assert (small.hits, big.hits, other.hits) == (1, 1, 0)


async def test_prompt_over_max_input_tokens_goes_straight_to_the_bigger_model(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    small = upstreams["small"]
    big = upstreams["big"]
    text = config(
        [("m", small, {"model_info": {"max_input_tokens": 50}}), ("big", big, {})],
        "context_window_fallbacks: [{m: [big]}]",
    )
    gw = await launch(tmp_path, gateways, text)
    assert served_by(await chat(gw, "m")) == "small"
    long = [{"role": "user", "content": "word " * 200}]
    resp = await chat(gw, "m", messages=long)
    assert resp.status_code == 200
    assert served_by(resp) == "big"
    assert small.hits == 1


async def test_content_policy_refusal_goes_to_content_policy_fallbacks(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    strict = upstreams["strict"].then(("policy",))
    lenient = upstreams["lenient"]
    text = config(
        [("m", strict, {}), ("lenient", lenient, {})],
        "content_policy_fallbacks: [{m: [lenient]}]",
    )
    gw = await launch(tmp_path, gateways, text)
    resp = await chat(gw, "m")
    assert resp.status_code == 200
    assert served_by(resp) == "lenient"
    assert resp.headers["x-tollway-attempted-fallbacks"] == "1"


async def test_billed_refusal_is_logged_under_the_same_request_and_the_fallback_is_billed(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    strict = upstreams["strict"].then(("filtered",))
    lenient = upstreams["lenient"]
    prices = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
    text = config(
        [("m", strict, {"model_info": prices}), ("lenient", lenient, {"model_info": prices})],
        "content_policy_fallbacks: [{m: [lenient]}]",
    )
    gw = await launch(tmp_path, gateways, text)
    resp = await chat(gw, "m", headers={"x-request-id": "req-refused-1"})
    assert resp.status_code == 200
    assert served_by(resp) == "lenient"
    assert resp.json()["choices"][0]["message"]["content"] == "from lenient"
    rows: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=gw.url) as client:
        for _ in range(50):
            rows = (await client.get("/spend/logs", headers=AUTH)).json()
            if len(rows) >= 2:
                break
            await asyncio.sleep(0.1)
    rows = [r for r in rows if r.get("call_id", "req-refused-1") == "req-refused-1"]
    by_id = {r["request_id"]: r for r in rows}
    refused = [r for rid, r in by_id.items() if rid.endswith("#1")]
    served = [r for rid, r in by_id.items() if "#" not in rid]
    assert len(refused) == 1 and len(served) == 1
    assert refused[0]["request_id"] == served[0]["request_id"] + "#1"
    assert refused[0]["deployment"] == "openai/strict"
    assert served[0]["deployment"] == "openai/lenient"
    assert refused[0]["spend"] == pytest.approx(10 * 0.001 + 5 * 0.002)
    assert served[0]["spend"] == pytest.approx(10 * 0.001 + 5 * 0.002)


# -- 5. timeouts ------------------------------------------------------------------------------


async def test_first_byte_timeout_is_retried_on_a_sibling(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    slow = upstreams["slow"].then(default=("hang",))
    fast = upstreams["fast"]
    text = config(
        [("m", slow, {"timeout": 0.5}), ("m", fast, {"timeout": 0.5})],
        "routing_strategy: least-busy\nnum_retries: 1",
    )
    gw = await launch(tmp_path, gateways, text)
    for _ in range(4):
        resp = await chat(gw, "m")
        assert resp.status_code == 200
        assert served_by(resp) == "fast"


async def test_a_stream_silent_before_its_first_chunk_is_retried(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(("silent_stream",))
    text = config([("m", a, {"timeout": 0.5})], "num_retries: 1")
    gw = await launch(tmp_path, gateways, text)
    resp = await chat(gw, "m", stream=True)
    assert resp.status_code == 200
    assert "from a" in resp.text
    assert resp.text.rstrip().endswith("data: [DONE]")
    assert a.hits == 2
    assert resp.headers["x-tollway-attempted-retries"] == "1"


async def test_a_stream_that_stalls_after_it_started_ends_with_an_error_event(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(("stall", 2))
    text = config([("m", a, {"timeout": 30, "stream_timeout": 0.5})], "num_retries: 2")
    gw = await launch(tmp_path, gateways, text)
    started = time.monotonic()
    resp = await chat(gw, "m", stream=True)
    assert time.monotonic() - started < 10
    assert resp.status_code == 200
    assert "from a" in resp.text
    assert "[DONE]" not in resp.text
    assert '"timeout_error"' in resp.text.strip().splitlines()[-1]
    assert a.hits == 1  # never retried once bytes reached the client


async def test_router_stream_timeout_is_the_global_idle_deadline(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(("stall", 1))
    text = config([("m", a, {})], "stream_timeout: 0.5\ntimeout: 30")
    gw = await launch(tmp_path, gateways, text)
    started = time.monotonic()
    resp = await chat(gw, "m", stream=True)
    assert time.monotonic() - started < 10
    assert "[DONE]" not in resp.text
    assert "error" in resp.text.strip().splitlines()[-1]


async def test_total_timeout_bounds_a_slow_non_streaming_answer(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"].then(default=("ok", 3))
    text = config([("m", a, {})], "timeout: 0.5\nnum_retries: 0")
    gw = await launch(tmp_path, gateways, text)
    started = time.monotonic()
    resp = await chat(gw, "m")
    assert resp.status_code == 504
    assert time.monotonic() - started < 2.5


# -- 6. tags, aliases, wildcards -------------------------------------------------------------


async def test_request_tags_restrict_the_deployments(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    free = upstreams["free"]
    paid = upstreams["paid"]
    fallback = upstreams["dflt"]
    text = config(
        [
            ("m", free, {"tags": "[free]"}),
            ("m", paid, {"tags": "[paid]"}),
            ("m", fallback, {"tags": "[default]"}),
        ],
        "model_group_alias: {mm: m}",
    )
    gw = await launch(tmp_path, gateways, text)
    for _ in range(5):
        assert served_by(await chat(gw, "m", metadata={"tags": ["paid"]})) == "paid"
        assert served_by(await chat(gw, "mm", headers={"x-tollway-tags": "free"})) == "free"
        assert served_by(await chat(gw, "m")) == "dflt"
        assert served_by(await chat(gw, "m", metadata={"tags": ["unknown"]})) == "dflt"


async def test_wildcard_group_passes_the_model_name_through(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"]
    text = (
        "model_list:\n  - model_name: 'acme/*'\n    litellm_params:\n      model: 'openai/*'\n"
        f"      api_base: {a.base_url}\n"
        "general_settings: {master_key: os.environ/TEST_MASTER_KEY}\n"
    )
    gw = await launch(tmp_path, gateways, text)
    resp = await chat(gw, "acme/some-model")
    assert resp.status_code == 200
    assert a.requests[-1]["model"] == "acme/some-model"


# -- 7. complexity auto-router ---------------------------------------------------------------


async def test_auto_router_sends_each_tier_to_its_model_and_names_the_tier(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    small, thinker = upstreams["small"], upstreams["thinker"]
    text = config([("small", small, {}), ("thinker", thinker, {})]).replace(
        "general_settings:",
        "  - model_name: auto\n"
        "    litellm_params:\n"
        "      model: auto_router/complexity_router\n"
        "      complexity_router_config:\n"
        "        tiers: {SIMPLE: small, MEDIUM: small, COMPLEX: thinker, REASONING: thinker}\n"
        "general_settings:",
    )
    gw = await launch(tmp_path, gateways, text)
    easy = await chat(gw, "auto", messages=[{"role": "user", "content": "hi"}])
    assert easy.headers["x-tollway-complexity-tier"] == "SIMPLE"
    assert served_by(easy) == "small"
    proof = [{"role": "user", "content": "Prove rigorously that sqrt(2) is irrational."}]
    hard = await chat(gw, "auto", messages=proof)
    assert hard.headers["x-tollway-complexity-tier"] == "REASONING"
    assert served_by(hard) == "thinker"
    plain = await chat(gw, "small")
    assert "x-tollway-complexity-tier" not in plain.headers


# -- 8. health --------------------------------------------------------------------------------


async def test_health_checks_every_deployment_and_is_rate_limited(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    good = upstreams["good"]
    bad = upstreams["bad"].then(default=("status", 500))
    gw = await launch(tmp_path, gateways, config([("g", good, {}), ("b", bad, {})]))
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        denied = await client.get("/health")
        first = (await client.get("/health", headers=AUTH)).json()
        second = (await client.get("/health", headers=AUTH)).json()
        ready = await client.get("/health/readiness")
    assert denied.status_code == 401
    assert [e["model_name"] for e in first["healthy_endpoints"]] == ["g"]
    assert [e["model_name"] for e in first["unhealthy_endpoints"]] == ["b"]
    assert "500" in first["unhealthy_endpoints"][0]["error"]
    assert second["cached"] is True
    assert (good.hits, bad.hits) == (1, 1)  # the second call sent nothing upstream
    assert good.requests[0]["max_tokens"] == 1
    assert ready.status_code == 200
    assert ready.json()["all_model_groups_usable"] is True


async def test_metrics_expose_requests_in_flight_and_ledger_state(
    tmp_path: Path, upstreams: dict[str, FlakyUpstream], gateways: list[GatewayProcess]
) -> None:
    a = upstreams["a"]
    gw = await launch(tmp_path, gateways, config([("m", a, {})]))
    await chat(gw, "m")
    async with httpx.AsyncClient(base_url=gw.url) as client:
        resp = await client.get("/metrics")
    assert resp.status_code == 200
    text = resp.text
    assert 'tollway_deployment_requests_total{deployment="openai/a",model="m"' in text
    assert 'status="200"} 1' in text
    assert 'tollway_requests_total{status="200"} 1' in text
    assert "tollway_deployment_in_flight" in text
    assert "tollway_ledger_in_flight 0" in text
    assert "tollway_flush_flushed" in text

"""Budgets usable to the last cent, the guarantee kept: output capping, refusals, money.

Ledger units first, then the whole gateway (in process, the priced mock model, which honours
``max_tokens`` as a real upstream does).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.errors import BudgetExceeded, RateLimited
from proxy.ledger.memory import Ledger, Limits
from tests.ledger import FakeClock
from tests.ledger.hierarchy_gateway import (
    MASTER,
    bearer,
    chat,
    gateway,
    new_key,
    started,
)

KEY = "key:abc"
TEAM = "team:t"


def test_output_is_capped_to_what_the_tightest_budget_pays_for() -> None:
    ledger = Ledger(clock=FakeClock())
    ledger.set_account(KEY, Limits(max_budget=1.0))
    ledger.set_account(TEAM, Limits(max_budget=0.1))
    # prompt 0.02 + 1000 output tokens at 0.0001 = 0.12 > the team's 0.1
    reservation = ledger.admit(
        "r",
        [KEY, TEAM],
        tokens=1100,
        cost=0.12,
        output_price=0.0001,
        max_output_tokens=1000,
        min_output_tokens=16,
    )
    assert reservation.output_cap == 800
    assert reservation.cost == pytest.approx(0.1)
    assert reservation.tokens == 900  # the 200 output tokens no longer reserved
    assert ledger.account(TEAM).reserved <= 0.1
    ledger.release(reservation)
    # A request that counted no output for tpm (no max_tokens) keeps its token count.
    uncounted = ledger.admit(
        "s", [TEAM], tokens=100, cost=0.12, output_price=0.0001, max_output_tokens=1000
    )
    assert (uncounted.output_cap, uncounted.tokens) == (800, 100)


def test_a_fitting_call_is_not_capped() -> None:
    ledger = Ledger(clock=FakeClock())
    ledger.set_account(KEY, Limits(max_budget=1.0))
    reservation = ledger.admit(
        "r", [KEY], tokens=10, cost=0.5, output_price=0.001, max_output_tokens=400
    )
    assert reservation.output_cap is None
    assert reservation.cost == 0.5


def test_refusal_below_the_minimum_says_would_exceed_with_the_remaining_budget() -> None:
    ledger = Ledger(clock=FakeClock())
    ledger.set_account(KEY, Limits(max_budget=0.05))
    ledger.settle(ledger.admit("a", [KEY], tokens=1, cost=0.04), cost=0.04, tokens=1)
    with pytest.raises(BudgetExceeded) as info:
        # prompt 0.009 + 16 tokens at 0.0001 = 0.0106 > the 0.01 left
        ledger.admit(
            "b",
            [KEY],
            tokens=100,
            cost=0.009 + 0.1,
            output_price=0.0001,
            max_output_tokens=1000,
            min_output_tokens=16,
        )
    message = info.value.message
    assert message.startswith("Budget has been exceeded! ")
    assert "would exceed the key budget" in message
    assert "0.01 remains of max_budget 0.05" in message
    assert "exceeded for" not in message
    assert ledger.account(KEY).in_flight == 0


def test_without_an_output_price_nothing_can_be_capped() -> None:
    ledger = Ledger(clock=FakeClock())
    ledger.set_account(KEY, Limits(max_budget=0.1))
    with pytest.raises(BudgetExceeded, match=r"needs up to 0\.2"):
        ledger.admit("r", [KEY], tokens=1, cost=0.2)


def test_spend_is_exact_money_without_float_dust() -> None:
    ledger = Ledger(clock=FakeClock())
    ledger.set_account(KEY, Limits(max_budget=1.0))
    for i in range(3):
        ledger.settle(ledger.admit(f"r{i}", [KEY], tokens=1, cost=0.00032), cost=0.00032, tokens=1)
    assert 0.00032 + 0.00032 + 0.00032 == 0.0009600000000000001  # what a float total shows
    assert repr(ledger.account(KEY).spend) == "0.00096"
    assert ledger.drain_dirty() == [(KEY, 0.00096, None)]


def test_rpm_retry_after_is_when_the_window_admits_and_headers_agree() -> None:
    clock = FakeClock()
    ledger = Ledger(clock=clock)
    ledger.set_account(KEY, Limits(rpm_limit=3))
    start = clock.now
    for offset in (0.0, 10.0, 20.0, 25.0):
        clock.now = start + offset
        ledger.release(ledger.admit(f"r{offset}", [KEY], tokens=1, cost=0.0))
        if offset == 20.0:
            ledger.set_account(KEY, Limits(rpm_limit=4))
    ledger.set_account(KEY, Limits(rpm_limit=2))  # lowered: two must leave, not one
    clock.now = start + 30.5
    with pytest.raises(RateLimited) as info:
        ledger.admit("late", [KEY], tokens=1, cost=0.0)
    # 4 in the window, limit 2: the 3rd oldest (at +20) must leave: 49.5 s, rounded up.
    assert info.value.headers["retry-after"] == "50"
    assert info.value.headers["x-ratelimit-reset-requests"] == "50s"
    assert ledger.ratelimit_headers(KEY)["x-ratelimit-reset-requests"] == "50s"
    clock.now = start + 80.0
    ledger.admit("then", [KEY], tokens=1, cost=0.0)


async def test_budget_b_with_calls_of_cost_c_spends_at_least_b_minus_c_never_more(
    tmp_path: Path,
) -> None:
    budget = 0.002
    async with gateway(tmp_path) as client:
        key = await new_key(client, max_budget=budget)
        costs: list[float] = []
        capped = []
        for _ in range(40):
            reply = await client.post("/v1/chat/completions", json=chat(100), headers=bearer(key))
            if reply.status_code != 200:
                break
            costs.append(float(reply.headers["x-tollway-response-cost"]))
            if "x-tollway-max-tokens-capped" in reply.headers:
                capped.append(int(reply.headers["x-tollway-max-tokens-capped"]))
        assert reply.status_code == 429
        error = reply.json()["error"]
        assert error["type"] == "budget_exceeded"
        assert error["message"].startswith("Budget has been exceeded! ")
        assert "would exceed" in error["message"] and "remains" in error["message"]
        info = (await client.get("/key/info", params={"key": key}, headers=MASTER)).json()
        spend = info["info"]["spend"]
    call_cost = max(costs)
    assert budget - call_cost <= spend <= budget
    assert spend == pytest.approx(sum(costs))
    # Without capping the first call's worst case (1000 output tokens) would not have fit.
    assert capped and capped[0] < 1000


async def test_capped_output_is_sent_upstream_in_the_request(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        key = await new_key(client, max_budget=0.0002)
        reply = await client.post("/v1/chat/completions", json=chat(100), headers=bearer(key))
        assert reply.status_code == 200, reply.text
        cap = int(reply.headers["x-tollway-max-tokens-capped"])
        assert 16 <= cap < 100
        # The mock model stops at the limit it was sent, as an upstream does.
        assert reply.json()["usage"]["completion_tokens"] == cap
        assert reply.json()["choices"][0]["finish_reason"] == "length"


async def test_a_tiny_budget_still_makes_a_call(tmp_path: Path) -> None:
    async with gateway(tmp_path) as client:
        key = await new_key(client, max_budget=0.0001)
        reply = await client.post("/v1/chat/completions", json=chat(2), headers=bearer(key))
        assert reply.status_code == 200, reply.text
        assert "x-tollway-max-tokens-capped" in reply.headers


async def test_min_capped_tokens_setting_refuses_smaller_caps(tmp_path: Path) -> None:
    async with gateway(tmp_path, min_capped_tokens=200) as client:
        key = await new_key(client, max_budget=0.0002)
        reply = await client.post("/v1/chat/completions", json=chat(100), headers=bearer(key))
        assert reply.status_code == 429
        assert "output capped to 200 tokens" in reply.json()["error"]["message"]


async def test_rpm_refusal_retry_after_matches_the_window(tmp_path: Path) -> None:
    async with started(tmp_path) as (client, built):
        key = await new_key(client, rpm_limit=2)
        for _ in range(2):
            ok = await client.post("/v1/chat/completions", json=chat(1), headers=bearer(key))
            assert ok.status_code == 200
            built.clock.advance(10)
        refused = await client.post("/v1/chat/completions", json=chat(1), headers=bearer(key))
    assert refused.status_code == 429
    # The first call left at +0 leaves the window at +60; it is now +20.
    assert refused.headers["retry-after"] == "40"
    assert refused.headers["x-ratelimit-reset-requests"] == "40s"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.parametrize(
    ("path", "body", "used"),
    [
        pytest.param(
            "/v1/messages",
            {"model": "priced", "max_tokens": 900, "messages": [{"role": "user", "content": ""}]},
            lambda reply: reply["usage"]["output_tokens"],
            id="anthropic-max_tokens",
        ),
        pytest.param(
            "/v1/responses",
            {"model": "priced", "input": ""},
            lambda reply: reply["usage"]["output_tokens"],
            id="responses-max_output_tokens",
        ),
        pytest.param(
            "/v1/completions",
            {"model": "priced", "prompt": ""},
            lambda reply: reply["usage"]["completion_tokens"],
            id="completions-max_tokens",
        ),
        pytest.param(
            "/v1/chat/completions",
            {"model": "priced", "max_completion_tokens": 900, "messages": [{"role": "user"}]},
            lambda reply: reply["usage"]["completion_tokens"],
            id="chat-max_completion_tokens",
        ),
    ],
)
async def test_every_format_gets_its_own_output_limit_capped(
    tmp_path: Path, path: str, body: dict[str, Any], used: Callable[[dict[str, Any]], int]
) -> None:
    text = " ".join(["w"] * 100)
    if "messages" in body:
        body["messages"][0]["content"] = text
    else:
        body["input" if "input" in body else "prompt"] = text
    async with gateway(tmp_path) as client:
        key = await new_key(client, max_budget=0.0002)
        reply = await client.post(path, json=body, headers=bearer(key))
        assert reply.status_code == 200, reply.text
        cap = int(reply.headers["x-tollway-max-tokens-capped"])
        assert 16 <= cap < 100
        assert used(reply.json()) == cap


def test_fits_reads_every_budget_with_what_is_reserved_and_changes_nothing() -> None:
    ledger = Ledger(clock=lambda: 1000.0)
    ledger.set_account("key:a", Limits(max_budget=1.0))
    ledger.set_account("team:t", Limits(max_budget=0.5))
    ledger.set_account("user:u", Limits())
    ids = ["key:a", "team:t", "user:u", "unknown"]
    assert ledger.fits(ids, 0.5)
    assert not ledger.fits(ids, 0.51)  # the team's budget is the tighter one
    held = ledger.admit("r1", ids, tokens=1, cost=0.3)
    assert not ledger.fits(ids, 0.21)  # 0.3 reserved of the team's 0.5
    assert ledger.fits(ids, 0.2)
    assert ledger.account("team:t").reserved == pytest.approx(0.3)
    ledger.release(held)


async def test_the_tight_prompt_estimate_runs_only_when_the_loose_bound_does_not_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import proxy.pipeline.accounting as accounting

    estimated: list[int] = []
    real = accounting.prompt_token_bound

    def counting(body: bytes) -> int:
        estimated.append(len(body))
        return real(body)

    monkeypatch.setattr(accounting, "prompt_token_bound", counting)
    async with gateway(tmp_path) as client:
        roomy = await new_key(client, max_budget=100.0)
        reply = await client.post("/v1/chat/completions", json=chat(2), headers=bearer(roomy))
        assert reply.status_code == 200, reply.text
        assert estimated == []  # a budget far from its end never pays for the estimate
        tight = await new_key(client, max_budget=0.0001)
        reply = await client.post("/v1/chat/completions", json=chat(2), headers=bearer(tight))
        assert reply.status_code == 200, reply.text
        assert len(estimated) == 1  # near the end of a budget, the tight estimate decides
        assert "x-tollway-max-tokens-capped" in reply.headers

"""The complexity classifier: a table of prompts and their tiers, and the tier → model map."""

from __future__ import annotations

import time

import pytest

from proxy.dialects.openai import parse
from proxy.request import Kind
from proxy.routing.complexity import Tier, TierMap, classify, classify_text

CODE_PROMPT = (
    "Refactor this code:\n```python\ndef f(x):\n    return x*2\n```\n"
    "and add unit tests, then explain the algorithm"
)


@pytest.mark.parametrize(
    ("prompt", "tier"),
    [
        pytest.param("hi", Tier.SIMPLE, id="greeting"),
        pytest.param("What is the capital of France?", Tier.SIMPLE, id="fact"),
        pytest.param("Translate 'cat' to German", Tier.SIMPLE, id="translate"),
        pytest.param("Tell me a joke about cats", Tier.SIMPLE, id="joke"),
        pytest.param(
            "Write a python function that parses a CSV file and returns the rows as dicts",
            Tier.MEDIUM,
            id="small-code-task",
        ),
        pytest.param(
            "Summarise this for me: " + "The committee met on Tuesday to discuss the budget. " * 4,
            Tier.MEDIUM,
            id="long-plain-text",
        ),
        pytest.param(CODE_PROMPT, Tier.COMPLEX, id="code-block-refactor"),
        pytest.param(
            "Design the architecture of a distributed rate limiter: compare token bucket and "
            "sliding window, plan the migration, then finally list the trade-offs",
            Tier.COMPLEX,
            id="multi-step-design",
        ),
        pytest.param(
            "Prove that there are infinitely many prime numbers.", Tier.REASONING, id="proof"
        ),
        pytest.param(
            "Think step by step: a train leaves at 3pm at 60 km/h; when does it meet the other?",
            Tier.REASONING,
            id="step-by-step",
        ),
        pytest.param(
            "Derive the derivative of x^2 * sin(x) and justify each step rigorously",
            Tier.REASONING,
            id="maths-derivation",
        ),
    ],
)
def test_prompt_is_classified_into_its_tier(prompt: str, tier: Tier) -> None:
    assert classify_text(prompt) is tier


def test_tool_use_raises_a_trivial_prompt_to_medium() -> None:
    assert classify_text("what's the weather", tools=False) is Tier.SIMPLE
    assert classify_text("what's the weather", tools=True) is Tier.MEDIUM


def test_classify_reads_the_last_user_message_and_sees_tools() -> None:
    body = (
        b'{"model":"auto","messages":[{"role":"user","content":"Prove Fermat\'s little theorem'
        b' rigorously"},{"role":"assistant","content":"ok"},{"role":"user","content":"hi"}]}'
    )
    assert classify(parse(Kind.CHAT, body)) is Tier.SIMPLE
    with_tools = body[:-1] + b',"tools":[{"type":"function","function":{"name":"f"}}]}'
    assert classify(parse(Kind.CHAT, with_tools)) is Tier.MEDIUM


def test_classifier_cost_is_bounded_for_huge_prompts() -> None:
    # The classifier scans a bounded prefix, so a 1 MB prompt costs what a short one does.
    prompt = CODE_PROMPT * 10_000
    runs = 200
    started = time.perf_counter()
    for _ in range(runs):
        classify_text(prompt)
    per_call = (time.perf_counter() - started) / runs
    assert per_call < 0.001  # generous: the benchmark measures it (tens of microseconds)


def test_missing_tiers_use_the_default_model_else_the_nearest_tier() -> None:
    tiers = TierMap({"tiers": {"SIMPLE": "small", "COMPLEX": "large"}}, None)
    assert tiers.model_for(Tier.SIMPLE) == "small"
    assert tiers.model_for(Tier.MEDIUM) == "large"
    assert tiers.model_for(Tier.REASONING) == "large"
    with_default = TierMap({"tiers": {"SIMPLE": "small"}}, "mid")
    assert with_default.model_for(Tier.REASONING) == "mid"


def test_unknown_tier_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown complexity tiers"):
        TierMap({"tiers": {"TRIVIAL": "small"}}, None)

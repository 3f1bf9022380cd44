"""Every built-in finishes in time proportional to its input on pathological texts.

A guard against catastrophic backtracking and quadratic scans, not a benchmark: the bound is
generous (about 1 s a megabyte).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from proxy.guardrails.base import CheckContext
from proxy.guardrails.builtin import BUILTINS
from proxy.guardrails.builtin.patterns import PREBUILTS

CTX = CheckContext(call_id="t")
SECONDS_PER_MB = 1.0

PARAMS = {
    "litellm_content_filter": {
        "patterns": [
            *({"pattern_type": "prebuilt", "pattern_name": n, "action": "MASK"} for n in PREBUILTS),
            {
                "pattern_type": "regex",
                "pattern": r"\bEMP-\d{4,8}\b",
                "name": "emp",
                "action": "MASK",
            },
            {"pattern_type": "regex", "pattern": r"(?:a|@\.)+!", "name": "bang", "action": "MASK"},
        ],
        "blocked_words": [{"keyword": "aaaa!", "action": "MASK"}],
    },
    "prompt_injection": {},
    "max_input_tokens": {"max_tokens": 10},
    "json_output": {"json_schema": {"type": "object"}},
}

INPUTS = [
    pytest.param("a" * 5_000_000, id="5MB-of-a"),
    pytest.param("@." * 500_000, id="1MB-of-at-dot"),
    pytest.param(("a" * 1000 + "!") * 1000, id="repeated-a-bang"),
    pytest.param("[" * 1_000_000, id="1MB-open-brackets"),
    pytest.param("-----BEGIN PRIVATE KEY-----" + "A" * 1_000_000, id="unterminated-pem"),
    pytest.param("1 " * 500_000, id="1MB-digits-and-spaces"),
]


@pytest.mark.parametrize("kind", list(PARAMS))
@pytest.mark.parametrize("text", INPUTS)
async def test_builtin_is_linear_on_pathological_input(kind: str, text: str) -> None:
    guard = BUILTINS[kind]("g", PARAMS[kind], Path("."))
    bound = SECONDS_PER_MB * max(1, len(text) / 1_000_000)
    for check in (guard.check_input, guard.check_output):
        started = time.perf_counter()
        await check([text], CTX)
        assert time.perf_counter() - started < bound
    checker = guard.stream_checker(CTX)
    if checker is not None:
        started = time.perf_counter()
        for i in range(0, len(text), 1000):
            checker.feed(text[i : i + 1000])
        checker.finish()
        assert time.perf_counter() - started < bound

"""Building guardrails from configuration: nothing configured is silently ignored."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from proxy.guardrails.registry import GuardrailSetupError, build_guardrails
from proxy.upstream.aiohttp_transport import AiohttpTransport


def build(*entries: dict[str, Any]) -> dict[str, Any]:
    return build_guardrails(
        list(entries), transport=AiohttpTransport(), environ={}, config_dir=Path.cwd()
    )


def filter_entry(**params: Any) -> dict[str, Any]:
    patterns = [{"pattern_type": "prebuilt", "pattern_name": "email", "action": "MASK"}]
    return {
        "guardrail_name": "g",
        "litellm_params": {"guardrail": "litellm_content_filter", "patterns": patterns, **params},
    }


def test_a_parameter_no_guardrail_reads_is_warned_about_by_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="tollway.guardrails"):
        build(filter_entry(paterns_typo=1))
    assert "'paterns_typo' is not supported by litellm_content_filter" in caplog.text


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        pytest.param(
            {"guardrail_name": "g", "litellm_params": {"guardrail": "x", "mode": "sometimes"}},
            "$.guardrails[0].litellm_params.mode",
            id="bad-mode",
        ),
        pytest.param(
            {"guardrail_name": "g", "litellm_params": {"guardrail": "nope"}},
            "$.guardrails[0].litellm_params.guardrail",
            id="unknown-kind",
        ),
        pytest.param(
            {"guardrail_name": "g", "litellm_params": {"guardrail": "x"}, "extra": 1},
            "$.guardrails[0].extra",
            id="unknown-key",
        ),
    ],
)
def test_a_bad_entry_names_its_path(entry: dict[str, Any], path: str) -> None:
    with pytest.raises(GuardrailSetupError) as caught:
        build(entry)
    assert caught.value.path == path


def test_a_name_used_twice_is_refused() -> None:
    with pytest.raises(GuardrailSetupError, match="defined twice"):
        build(filter_entry(), filter_entry())

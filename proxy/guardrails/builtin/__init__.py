"""The in-process guardrails, by the ``guardrail:`` type name a config gives them.

Each entry builds a guardrail from its ``litellm_params`` (``from_params(name, params,
config_dir)``), raising ``GuardrailConfigError`` for a bad field. Each module's ``PARAMS``
lists the fields it reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.guardrails.base import Guardrail
from proxy.guardrails.builtin import content_filter, injection, json_output, limits

Factory = Callable[[str, dict[str, Any], Path], Guardrail]

BUILTINS: dict[str, Factory] = {
    **dict.fromkeys(content_filter.NAMES, content_filter.ContentFilter.from_params),
    **dict.fromkeys(injection.NAMES, injection.PromptInjection.from_params),
    **dict.fromkeys(limits.NAMES, limits.MaxInputTokens.from_params),
    **dict.fromkeys(json_output.NAMES, json_output.JsonOutput.from_params),
}

__all__ = ["BUILTINS", "Factory"]

"""The in-process guardrails, by the ``guardrail:`` type name a config gives them.

Each entry builds a guardrail from its ``litellm_params`` (``from_params(name, params,
config_dir)``), raising ``GuardrailConfigError`` for a bad field. Each module's ``PARAMS``
lists the fields it reads.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.guardrails.base import Guardrail

Factory = Callable[[str, dict[str, Any], Path], Guardrail]


def _on_first_use(module: str, cls: str) -> Factory:
    """A factory that imports its module when a config first names it: ``re2`` and
    ``jsonschema`` (about 9 MB resident) are loaded only by a gateway that uses them."""

    def build(name: str, params: dict[str, Any], config_dir: Path) -> Guardrail:
        found = importlib.import_module(f"proxy.guardrails.builtin.{module}")
        built: Guardrail = getattr(found, cls).from_params(name, params, config_dir)
        return built

    return build


# The type names; each module's ``NAMES`` holds the same tuple.
BUILTINS: dict[str, Factory] = {
    **dict.fromkeys(
        ("litellm_content_filter", "content_filter"),
        _on_first_use("content_filter", "ContentFilter"),
    ),
    **dict.fromkeys(
        ("prompt_injection", "detect_prompt_injection"),
        _on_first_use("injection", "PromptInjection"),
    ),
    **dict.fromkeys(("max_input_tokens",), _on_first_use("limits", "MaxInputTokens")),
    **dict.fromkeys(("json_output",), _on_first_use("json_output", "JsonOutput")),
}

__all__ = ["BUILTINS", "Factory"]

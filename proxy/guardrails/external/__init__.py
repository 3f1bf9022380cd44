"""Guardrails that call an external engine over its HTTP API.

``EXTERNAL`` maps a guardrail type (LiteLLM's ``guardrail:`` value) to the factory that
validates its params and builds it: ``factory(name, params, transport, environ)``. Every
engine reads ``timeout`` (seconds for the whole check, default 5) and ``fail_open`` (default
false: an engine that errors, times out or answers something unreadable makes the check raise
``GuardrailUnavailable``; with ``fail_open: true`` it allows, with a warning naming the
guardrail). None of these engines checks text incrementally: only ``presidio`` with
``output_parse_pii`` returns a stream checker (restoring its tokens as the reply streams).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ...upstream.transport import Transport
from ..base import Guardrail
from .bedrock_guardrail import BedrockGuardrail
from .generic import GenericGuardrail
from .lakera import LakeraGuardrail
from .openai_moderation import OpenAIModerationGuardrail
from .presidio import PresidioGuardrail

Factory = Callable[[str, dict[str, Any], Transport, Mapping[str, str]], Guardrail]

EXTERNAL: dict[str, Factory] = {
    "presidio": PresidioGuardrail.from_params,
    "lakera_v2": LakeraGuardrail.from_params,
    "openai_moderation": OpenAIModerationGuardrail.from_params,
    "bedrock": BedrockGuardrail.from_params,
    "generic_guardrail_api": GenericGuardrail.from_params,
}

__all__ = [
    "EXTERNAL",
    "BedrockGuardrail",
    "Factory",
    "GenericGuardrail",
    "LakeraGuardrail",
    "OpenAIModerationGuardrail",
    "PresidioGuardrail",
]

"""The ``guardrails:`` section of a LiteLLM config, read into typed entries.

    guardrails:
      - guardrail_name: pii-mask
        litellm_params:
          guardrail: litellm_content_filter      # the kind (or ``my_module.MyGuardrail``)
          mode: [pre_call, post_call]            # one mode or a list
          default_on: true                       # run on every call
          fail_open: false                       # an engine that errors blocks (default)
          patterns: [...]                        # the kind's own parameters

The kind's own parameters are validated by the kind (``proxy.guardrails.registry``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from .base import Mode
from .errors import GuardrailConfigError

_COMMON = frozenset({"guardrail", "mode", "default_on", "fail_open"})


class GuardrailEntry(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str
    modes: frozenset[Mode]
    default_on: bool
    fail_open: bool
    # The kind's parameters (everything in ``litellm_params`` but the common keys).
    params: dict[str, Any]
    info: dict[str, Any] | None = None


def read_entry(raw: Any) -> GuardrailEntry:
    """One ``guardrails[i]`` mapping; raises ``GuardrailConfigError`` naming the field."""
    if not isinstance(raw, dict):
        raise GuardrailConfigError("", "each guardrail must be a mapping")
    name = raw.get("guardrail_name")
    if not isinstance(name, str) or not name.strip():
        raise GuardrailConfigError("guardrail_name", "must be a non-empty string")
    unknown = sorted(set(raw) - {"guardrail_name", "litellm_params", "guardrail_info"})
    if unknown:
        raise GuardrailConfigError(unknown[0], "is not a guardrail key")
    params = raw.get("litellm_params")
    if not isinstance(params, dict):
        raise GuardrailConfigError("litellm_params", "must be a mapping")
    kind = params.get("guardrail")
    if not isinstance(kind, str) or not kind.strip():
        raise GuardrailConfigError("litellm_params.guardrail", "must name the guardrail's kind")
    info = raw.get("guardrail_info")
    if info is not None and not isinstance(info, dict):
        raise GuardrailConfigError("guardrail_info", "must be a mapping")
    return GuardrailEntry(
        name=name,
        kind=kind,
        modes=_modes(params.get("mode", "pre_call")),
        default_on=_flag(params, "default_on"),
        fail_open=_flag(params, "fail_open"),
        params={k: v for k, v in params.items() if k not in _COMMON},
        info=info,
    )


def _modes(value: Any) -> frozenset[Mode]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise GuardrailConfigError("litellm_params.mode", "must be a mode or a list of modes")
    modes = set()
    for name in names:
        try:
            modes.add(Mode(name))
        except ValueError:
            valid = ", ".join(m.value for m in Mode)
            raise GuardrailConfigError(
                "litellm_params.mode", f"{name!r} is not a mode (one of {valid})"
            ) from None
    return frozenset(modes)


def _flag(params: dict[str, Any], key: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):
        raise GuardrailConfigError(f"litellm_params.{key}", "must be true or false")
    return value

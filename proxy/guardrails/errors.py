"""Errors a guardrail raises while it is being built from configuration.

    ValueError
    └── GuardrailConfigError   a guardrail's ``litellm_params`` are invalid (at startup or
                               reload; never on a request)

Runtime failures are ``proxy.guardrails.base.GuardrailUnavailable``.
"""

from __future__ import annotations


class GuardrailConfigError(ValueError):
    """One invalid field of a guardrail's ``litellm_params``.

    ``field`` is the dotted path inside ``litellm_params`` (``patterns[1].pattern``,
    ``threshold``), for the config loader to point at the offending line.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

"""``max_input_tokens``: blocks an input longer than a token budget, estimated cheaply.

The estimate never reads a tokenizer. It is the larger of two counts, so it leans high:

* ``proxy.usage.estimate_tokens`` over the UTF-8 bytes (about four bytes a token: English
  prose is 4-5 characters a token on current tokenizers, so this overcounts it slightly);
* one token for every two bytes beyond the first of each non-ASCII character, which counts
  a CJK character (3 bytes) as a token and an emoji (4 bytes) as one and a half, where the
  byte rule alone would undercount those scripts.

Each text is rounded up on its own. Dense digit runs or random strings can still take more
tokens than this; the limit is a guard against oversized prompts, not a bill.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from proxy.guardrails.base import ALLOW, CheckContext, Verdict, block
from proxy.guardrails.builtin import params as p
from proxy.guardrails.errors import GuardrailConfigError
from proxy.usage import estimate_tokens

NAMES = ("max_input_tokens",)
PARAMS = frozenset({"max_tokens", "max_input_tokens"})


def estimate_text_tokens(text: str) -> int:
    if text.isascii():
        return estimate_tokens(len(text))
    size = len(text.encode("utf-8", "surrogatepass"))
    return max(estimate_tokens(size), (size - len(text) + 1) // 2)


class MaxInputTokens:
    """Blocks inputs estimated above ``max_tokens``; replies are not checked."""

    def __init__(self, name: str, max_tokens: int) -> None:
        self.name = name
        self.max_tokens = max_tokens

    @classmethod
    def from_params(cls, name: str, params: dict[str, Any], config_dir: Path) -> MaxInputTokens:
        given = [key for key in ("max_tokens", "max_input_tokens") if key in params]
        if not given:
            raise GuardrailConfigError("max_tokens", "required (the input token limit)")
        if len(given) > 1:
            raise GuardrailConfigError("max_input_tokens", "give max_tokens or max_input_tokens")
        return cls(name, p.positive_int(params[given[0]], given[0]))

    def estimate(self, texts: Sequence[str]) -> int:
        return sum(estimate_text_tokens(text) for text in texts)

    async def check_input(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        tokens = self.estimate(texts)
        if tokens > self.max_tokens:
            return block(f"input is ~{tokens} tokens; the limit is {self.max_tokens}")
        return ALLOW

    async def check_output(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return ALLOW

    def stream_checker(self, context: CheckContext) -> None:
        return None

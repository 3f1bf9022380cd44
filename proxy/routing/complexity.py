"""The complexity auto-router: a local, rule-based classifier of how hard a prompt is.

A deployment with ``model: auto_router/complexity_router`` maps four tiers to model groups::

    - model_name: auto
      litellm_params:
        model: auto_router/complexity_router
        complexity_router_config:
          tiers: {SIMPLE: small, MEDIUM: medium, COMPLEX: large, REASONING: thinker}
        complexity_router_default_model: medium

The classifier reads the last user message (its first ``SCAN_CHARS`` characters, so cost is
bounded whatever the prompt's size) and scores cues: code, maths, multi-step structure,
reasoning requests, length, conversation depth and tool use. It runs in a few microseconds
(no tokenizer, no model call) and is deterministic.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any

from ..request import Kind, ParsedRequest


class Tier(enum.Enum):
    SIMPLE = "SIMPLE"
    MEDIUM = "MEDIUM"
    COMPLEX = "COMPLEX"
    REASONING = "REASONING"


TIER_ORDER = (Tier.SIMPLE, Tier.MEDIUM, Tier.COMPLEX, Tier.REASONING)
SCAN_CHARS = 1500


# Single words, matched against the prompt's lowercased words (one C-level set intersection).
# Everything runs on UTF-8 bytes: bytes.translate and bytes.split are far cheaper than str's.
def _words(text: str) -> frozenset[bytes]:
    return frozenset(text.encode().split())


_CODE_WORDS = _words(
    "function class def import return traceback stacktrace exception compile compiler "
    "refactor debug debugging implement implementation algorithm regex api bug segfault "
    "python javascript typescript rust golang java sql bash kotlin code script endpoint "
    "async await null pointer query schema"
)
_MATH_WORDS = _words(
    "integral derivative equation equations matrix matrices probability theorem lemma "
    "eigenvalue eigenvalues polynomial statistics calculus prime primes logarithm "
    "variance integrate differentiate"
)
_STEP_WORDS = _words(
    "then finally afterwards plan design architecture tradeoffs trade-offs compare "
    "multi-step steps migrate pipeline workflow"
)
_REASON_WORDS = _words(
    "prove proof derive rigorous rigorously justify formally counterexample reasoning deduce "
    "step-by-step \\frac \\sum"
)
# Symbols found by substring search, and phrases searched only when their first word is there.
_CODE_MARKS = (b"```", b"=>", b"();")
_REASON_PHRASES = {
    b"step": (b"step by step",),
    b"think": (b"think carefully", b"think hard", b"think through"),
    b"reason": (b"reason through",),
    b"chain": (b"chain of thought",),
    b"worst": (b"worst case",),
    b"logic": (b"logic puzzle",),
}
_MATH_PHRASES = {b"solve": (b"solve for",)}
_GATES = frozenset(_REASON_PHRASES) | frozenset(_MATH_PHRASES)
_ALL_WORDS = _CODE_WORDS | _MATH_WORDS | _STEP_WORDS | _REASON_WORDS | _GATES
_NUMBERED = re.compile(rb"\n\s*\d+[.)]\s")
_ARITHMETIC = re.compile(rb"\d *[\^*/] *\d")
_PUNCTUATION_CHARS = b".,;:!?()[]{}<>\"'`"
_PUNCTUATION = bytes.maketrans(_PUNCTUATION_CHARS, b" " * len(_PUNCTUATION_CHARS))
_SIMPLE_OPENERS = (
    b"hi",
    b"hello",
    b"hey",
    b"thanks",
    b"thank you",
    b"good morning",
    b"what is",
    b"who is",
    b"what's",
    b"translate",
    b"define",
    b"spell",
)


def classify_text(text: str, *, tools: bool = False, turns: int = 1) -> Tier:
    length = len(text)
    scan = text[:SCAN_CHARS].lower().encode("utf-8", "replace")
    if scan.startswith((b"1.", b"1)")):
        scan = b"\n" + scan
    found = _ALL_WORDS.intersection(scan.translate(_PUNCTUATION).split())
    code = len(found & _CODE_WORDS) + sum(2 for mark in _CODE_MARKS if mark in scan)
    maths = len(found & _MATH_WORDS)
    reasoning = len(found & _REASON_WORDS)
    for gate in found & _GATES:
        # An explicit request to reason weighs as much as two reasoning words.
        reasoning += sum(2 for phrase in _REASON_PHRASES.get(gate, ()) if phrase in scan)
        maths += sum(1 for phrase in _MATH_PHRASES.get(gate, ()) if phrase in scan)
    if (b"*" in scan or b"^" in scan) and _ARITHMETIC.search(scan) is not None:
        maths += 1
    steps = len(found & _STEP_WORDS)
    if b"\n" in scan and _NUMBERED.search(scan) is not None:
        steps += 1
    if reasoning and (maths or code or steps or reasoning >= 2 or length > 300):
        return Tier.REASONING
    score = min(code, 3) + min(maths, 2) + min(steps, 4) + reasoning
    if length > 300:
        score += 1
    if length > 1500:
        score += 1
    if length > 5000:
        score += 1
    if tools:
        score += 1
    if turns > 6:
        score += 1
    if score >= 4:
        return Tier.COMPLEX
    if score >= 1 or (length > 120 and not scan.lstrip().startswith(_SIMPLE_OPENERS)):
        return Tier.MEDIUM
    return Tier.SIMPLE


def classify(request: ParsedRequest) -> Tier:
    if request.kind is Kind.EMBEDDING:
        return Tier.SIMPLE
    tools = request.has_tools()
    if request.kind is Kind.COMPLETION:
        return classify_text(request.last_user_text(), tools=tools)
    return classify_text(request.last_user_text(), tools=tools, turns=request.message_count())


class TierMap:
    """Tier → model group of one auto-router deployment; missing tiers use the default model,
    else the nearest configured tier above, else below."""

    __slots__ = ("models",)

    def __init__(self, config: Mapping[str, Any] | None, default_model: str | None) -> None:
        tiers = dict((config or {}).get("tiers") or {})
        unknown = [name for name in tiers if name.upper() not in Tier.__members__]
        if unknown:
            raise ValueError(f"unknown complexity tiers {unknown}; use {[t.value for t in Tier]}")
        given = {Tier[name.upper()]: str(model) for name, model in tiers.items() if model}
        if not given and not default_model:
            raise ValueError("complexity_router_config.tiers maps no tier to a model")
        self.models: dict[Tier, str] = {}
        for i, tier in enumerate(TIER_ORDER):
            model = given.get(tier) or default_model
            if model is None:
                above = [given[t] for t in TIER_ORDER[i + 1 :] if t in given]
                below = [given[t] for t in reversed(TIER_ORDER[:i]) if t in given]
                model = (above or below)[0]
            self.models[tier] = model

    def model_for(self, tier: Tier) -> str:
        return self.models[tier]

"""``prompt_injection``: a heuristic score of how much an input looks like an injection.

Each signal (an instruction-override phrase, a jailbreak persona, a system-prompt
exfiltration ask, a decode-and-run request, hidden characters...) has a weight; the weights of
the signals found in one text are summed and capped at 1. A text scoring at or above
``threshold`` blocks. Phrases that tell the model *what* to do are only counted where they
start a clause or follow a plain lead-in ("please", "now", "you must"), so "never reveal the
system prompt" in an operator's system prompt does not count as an ask to reveal it.

Hidden text is scored as well: zero-width characters are removed before the phrases are
looked for, Unicode tag characters (an invisible copy of ASCII) are decoded and appended, and
long base64 blobs that decode to text are scored on their own.

The usual text matches nothing: one RE2 search over it is the whole cost.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import re2

from proxy.guardrails.base import ALLOW, CheckContext, Verdict, block
from proxy.guardrails.builtin import params as p
from proxy.guardrails.errors import GuardrailConfigError

NAMES = ("prompt_injection", "detect_prompt_injection")
PARAMS = frozenset({"threshold"})
DEFAULT_THRESHOLD = 0.5

# A clause start, or a lead-in word that keeps the phrase an instruction ("please ignore",
# "you must ignore"), but not "never ignore" / "do not ignore".
_LEAD = (
    r"(?:^|[.!?:;,\n(\[\"'*>\-]\s*|\b(?:please|now|and|then|first|just|also|simply|to|must|"
    r"should|will|can|could|you|so|but|hey|ok|okay|kindly|immediately|instead)\s+)"
)
_QUALIFIER = (
    r"(?:all|your|previous|prior|above|earlier|preceding|initial|original|system|developer|"
    r"safety|existing|current|default)"
)
_RULES = (
    r"(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails|filters|"
    r"constraints|restrictions|programming|polic(?:y|ies)|training)"
)

# (name, weight, RE2 pattern); all matched case-insensitively.
SIGNALS: tuple[tuple[str, float, str], ...] = (
    (
        "instruction override",
        0.6,
        _LEAD + r"(?:ignore|disregard|forget|override|bypass|skip|drop|abandon)\s+"
        r"(?:(?:the|these|those|my|any|of)\s+){0,2}"
        r"(?:" + _QUALIFIER + r"\s+(?:(?:of\s+)?the\s+)?){1,3}" + _RULES + r"\b",
    ),
    (
        "system prompt exfiltration",
        0.5,
        _LEAD + r"(?:repeat|print|reveal|show|output|display|dump|leak|recite|tell\s+me|"
        r"give\s+me|write\s+out|what\s+(?:is|are|was|were))\s+(?:me\s+)?"
        r"(?:(?:back|out|all|everything|verbatim|exactly)\s+)?(?:(?:of\s+)?(?:the|your|all|my)\s+)?"
        r"(?:(?:text|words|content|instructions|prompt|messages?|conversation|lines)\s+"
        r"(?:above|before\s+this|preceding|so\s+far|you\s+were\s+given|verbatim)|"
        r"(?:system|initial|hidden|original|secret|developer)\s+(?:prompt|instructions|message))",
    ),
    (
        "jailbreak persona",
        0.5,
        r"\byou\s+are\s+(?:now\s+)?(?:going\s+to\s+be\s+|to\s+act\s+as\s+)?"
        r"(?:dan|stan|dude|an?\s+(?:unrestricted|unfiltered|uncensored|jailbroken)\b|"
        r"jailbroken|unfiltered|uncensored|free\s+from\s+(?:all|any|your))\b|"
        r"\bdo\s+anything\s+now\b",
    ),
    (
        "role-play without rules",
        0.5,
        r"\b(?:pretend|act|roleplay|role-play|imagine|behave)\s+(?:to\s+be\s+|as\s+(?:if\s+)?|"
        r"like\s+|that\s+)?(?:you\s+(?:are|were)\s+)?(?:[a-z0-9'\-]+\s+){0,5}?"
        r"(?:without|with\s+no|free\s+(?:of|from)|that\s+(?:has|have)\s+no|who\s+(?:has|have)\s+no|"
        r"not\s+bound\s+by)\s+(?:any\s+)?(?:restrictions|rules|filters|limits|limitations|"
        r"guidelines|censorship|morals|ethics|boundaries)",
    ),
    (
        "mode switch",
        0.35,
        r"\b(?:developer|dev|god|debug|admin|sudo|jailbreak|unrestricted|unfiltered|evil)\s+mode\b",
    ),
    (
        "chat-template markers",
        0.35,
        r"<\|im_start\|>|<\|im_end\|>|<\|system\|>|<\|endoftext\|>|\[/?INST\]|<</?SYS>>|"
        r"(?m:^\s*#{2,}\s*(?:system|new\s+instructions?)\b)|\bnew\s+instructions\s*:",
    ),
    (
        "decode and execute",
        0.4,
        r"\b(?:decode|decrypt|base64|b64|rot13|deobfuscate)\b[^.\n]{0,80}\b(?:execute|run|follow|"
        r"obey|perform|carry\s+out|act\s+on|do\s+what)\b|"
        r"\b(?:execute|run|follow|obey)\b[^.\n]{0,40}\b(?:decoded|base64|encoded)\b",
    ),
    ("jailbreak word", 0.25, r"\bjailbr(?:eak|oken)\w*"),
    ("persona switch", 0.15, r"\byou\s+are\s+now\b|\bfrom\s+now\s+on,?\s+you\b"),
    (
        "no limits",
        0.2,
        r"\b(?:no|without|free\s+(?:of|from))\s+(?:any\s+)?(?:ethical\s+|moral\s+|content\s+|"
        r"safety\s+)?(?:restrictions|filters|censorship|guidelines|limitations|guardrails)\b|"
        r"\bno\s+longer\s+(?:bound|restricted|limited)\b",
    ),
    ("encoded blob", 0.2, r"[A-Za-z0-9+/]{40,}={0,2}"),
)
_BLOB_INDEX = len(SIGNALS) - 1  # the "encoded blob" signal

# Characters that render as nothing: removed before the phrases are looked for. (Not the
# zero-width joiner/non-joiner: emoji sequences and Persian or Indic words use them.)
_INVISIBLE = "\u200b\u2060\u2061\u2062\u2063\u2064\ufeff\u180e"
_STRIP = {ord(c): None for c in _INVISIBLE} | {cp: None for cp in range(0xE0000, 0xE0080)}
# (name, weight, pattern) looked for in the original, non-ASCII text.
HIDDEN_SIGNALS: tuple[tuple[str, float, str], ...] = (
    ("zero-width characters inside words", 0.3, r"\pL[\x{200B}\x{2060}-\x{2064}\x{FEFF}]+\pL"),
    (
        # Tag characters spell ASCII invisibly. Subdivision flags (black flag + lower-case
        # tags + cancel tag) are the one legitimate use; anything else is smuggling.
        "unicode tag characters",
        0.6,
        r"[\x{E0000}-\x{E002F}\x{E003A}-\x{E0060}\x{E007B}-\x{E007E}]|[\x{E0020}-\x{E007F}]{8}|"
        r"(?:^|[^\x{1F3F4}\x{E0020}-\x{E007F}])[\x{E0020}-\x{E007F}]",
    ),
)
_MAX_BLOBS = 3


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True
    options.case_sensitive = False
    options.max_mem = 32 << 20
    return options


class _SignalSet:
    """Which of several weighted patterns occur in a text: one search when none does."""

    def __init__(self, signals: Sequence[tuple[str, float, str]]) -> None:
        options = _options()
        self.signals = tuple(signals)
        self.regexes = tuple(re2.compile(pattern, options) for _, _, pattern in signals)
        self.any = re2.compile("|".join(f"(?:{s})" for _, _, s in signals), options)
        self.set = re2.Set.SearchSet(options)
        for _, _, pattern in signals:
            self.set.Add(pattern)
        self.set.Compile()

    def found(self, data: bytes) -> list[int]:
        if self.any.search(data) is None:
            return []
        indices = cast("list[int] | None", self.set.Match(data))
        if indices is None:  # the Set's DFA ran out of memory: ask each pattern
            indices = [i for i, r in enumerate(self.regexes) if r.search(data) is not None]
        return sorted(indices)


class PromptInjection:
    """Blocks inputs whose injection score reaches ``threshold``; replies are not checked."""

    def __init__(self, name: str, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.name = name
        self.threshold = threshold
        self._phrases = _SignalSet(SIGNALS)
        self._hidden = _SignalSet(HIDDEN_SIGNALS)
        self._blob = re2.compile(SIGNALS[_BLOB_INDEX][2].encode(), _options())

    @classmethod
    def from_params(cls, name: str, params: dict[str, Any], config_dir: Path) -> PromptInjection:
        threshold = p.fraction(params.get("threshold", DEFAULT_THRESHOLD), "threshold")
        if threshold == 0:
            raise GuardrailConfigError("threshold", "0 would block every input")
        return cls(name, threshold)

    def score(self, text: str) -> float:
        """The injection score of one text, in [0, 1]."""
        return min(1.0, sum(weight for _, weight in self.signals(text)))

    def signals(self, text: str, *, decode_blobs: bool = True) -> list[tuple[str, float]]:
        """The signals found in ``text``, with their weights."""
        found: list[tuple[str, float]] = []
        if not text.isascii():
            raw = text.encode("utf-8", "surrogatepass")
            found += [self._hidden.signals[i][:2] for i in self._hidden.found(raw)]
            smuggled = "".join(chr(ord(c) - 0xE0000) for c in text if 0xE0020 <= ord(c) < 0xE007F)
            text = text.translate(_STRIP)
            if smuggled:
                text += "\n" + smuggled
        data = text.encode("utf-8", "surrogatepass")
        indices = self._phrases.found(data)
        found += [self._phrases.signals[i][:2] for i in indices]
        if decode_blobs and _BLOB_INDEX in indices:
            found += self._decoded_blob_signals(data)
        return found

    def _decoded_blob_signals(self, data: bytes) -> list[tuple[str, float]]:
        best: list[tuple[str, float]] = []
        for i, match in enumerate(self._blob.finditer(data)):
            if i == _MAX_BLOBS:
                break
            blob = match.group()
            try:
                decoded = base64.b64decode(blob + b"=" * (-len(blob) % 4))
            except (binascii.Error, ValueError):
                continue
            if not decoded or not decoded.isascii():
                continue
            text = decoded.decode("ascii")
            if sum(c.isprintable() or c.isspace() for c in text) < 0.9 * len(text):
                continue
            inner = self.signals(text, decode_blobs=False)
            inner = [(f"{name} (base64-encoded)", weight) for name, weight in inner]
            if sum(w for _, w in inner) > sum(w for _, w in best):
                best = inner
        return best

    async def check_input(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        score = max((self.score(text) for text in texts), default=0.0)
        if score >= self.threshold:
            return block(f"prompt injection suspected (score {score:.2f})")
        return ALLOW

    async def check_output(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return ALLOW

    def stream_checker(self, context: CheckContext) -> None:
        return None

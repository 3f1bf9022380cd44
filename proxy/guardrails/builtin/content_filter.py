"""``litellm_content_filter``: prebuilt patterns, custom regexes and blocked words.

Every regex is RE2 (linear time, no backtracking), matched on the UTF-8 bytes of a text. One
combined alternation of all rules is searched first: on the usual text nothing matches and
that single pass is the whole cost. Only when it finds something does an ``RE2::Set`` name
the rules that matched, and only those rules look for their matches one by one.

Actions: any BLOCK match anywhere blocks (the reason names the rule, never the match);
otherwise MASK matches are replaced by ``[<NAME>_REDACTED]`` tags.

Streams (``ContentStream``) hold back the last ``hold`` bytes — the longest match a rule can
produce — and whatever a match that is still open covers; everything before is released,
masked. A match in the released part was already whole when it was found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import re2

from proxy.guardrails.base import ALLOW, CheckContext, Verdict, block, modify
from proxy.guardrails.builtin import params as p
from proxy.guardrails.builtin.patterns import PREBUILTS
from proxy.guardrails.errors import GuardrailConfigError

if TYPE_CHECKING:
    from re2 import _Regexp

NAMES = ("litellm_content_filter", "content_filter")
PARAMS = frozenset(
    {
        "patterns",
        "blocked_words",
        "blocked_words_file",
        "stream_window",
        "pattern_redaction_format",
        "keyword_redaction_tag",
    }
)

Action = Literal["BLOCK", "MASK"]
DEFAULT_STREAM_WINDOW = 256
# A stream whose held-back text grows past this (a match that keeps growing) releases it.
MAX_HELD_BYTES = 64 * 1024
# Released bytes kept in front of the held text so ``\b`` and word checks see their left side.
CONTEXT_BYTES = 16


def _options(max_mem: int | None = None) -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True
    if max_mem is not None:
        options.max_mem = max_mem
    return options


_RULE_OPTIONS = _options()
# The combined search and the Set hold every rule: give their DFA room so it does not thrash.
_COMBINED_OPTIONS = _options(64 << 20)


def _is_word_byte_at(data: bytes, start: int, end: int) -> bool:
    """Whether the character in ``data[start:end]`` is a word character (letter, digit, _)."""
    if end - start == 1:
        c = data[start]
        return c == 95 or 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122
    char = data[start:end].decode("utf-8", "replace")
    return char.isalnum()


def _word_before(data: bytes, i: int) -> bool:
    if i == 0:
        return False
    j = i - 1
    while j > 0 and 0x80 <= data[j] < 0xC0:
        j -= 1
    return _is_word_byte_at(data, j, i)


def _word_after(data: bytes, i: int) -> bool:
    n = len(data)
    if i >= n:
        return False
    j = i + 1
    while j < n and 0x80 <= data[j] < 0xC0:
        j += 1
    return _is_word_byte_at(data, i, j)


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    name: str
    action: Action
    regex: _Regexp[bytes]
    source: bytes  # the regex text, for the combined search
    tag: bytes  # the mask
    reason: str  # the block reason
    hold: int  # bytes a stream holds back to see a whole match
    check: Callable[[bytes], bool] | None = None
    value_suffix: int = 0
    word_edges: tuple[bool, bool] = (False, False)  # keyword: word boundary needed left/right
    window: int = 0  # custom regex: search in windows of this many bytes (linear time)

    def candidates(self, data: bytes, start: int) -> list[tuple[int, int]]:
        """The regex's matches, before word-boundary and checksum checks."""
        return list(self._windowed(data, start) if self.window else self._spans(data, start))

    def accept(self, data: bytes, s: int, e: int) -> tuple[int, int] | None:
        """The span to act on for one candidate, or None if the checks reject it."""
        left, right = self.word_edges
        if (left and _word_before(data, s)) or (right and _word_after(data, e)):
            return None
        if self.check is not None and not self.check(data[s:e]):
            return None
        if self.value_suffix:
            s = max(s, e - self.value_suffix)
        return s, e

    def _spans(self, data: bytes, start: int) -> Iterator[tuple[int, int]]:
        for match in self.regex.finditer(data, start):
            s, e = match.span()
            if e > s:
                yield s, e

    def _windowed(self, data: bytes, start: int) -> Iterator[tuple[int, int]]:
        # A user regex may be unbounded (``a+b|a``); a plain finditer would rescan to the end
        # of the text for each match. Each search here sees at most ``span`` bytes, and a
        # match is taken only where a whole ``window``-long match fits after its start.
        window = self.window
        span = 4 * window
        n = len(data)
        pos = start
        while pos < n:
            end = min(n, pos + span)
            match = self.regex.search(data, pos, end)
            if match is None:
                if end == n:
                    return
                pos = end - window
                continue
            s, e = match.span()
            if end < n and s > end - window and s > pos:
                pos = s  # search again with the match at the front of the window
                continue
            if e > s:
                yield s, e
            pos = max(e, s + 1)


Hit = tuple[int, int, Rule]


def _mask(data: bytes, start: int, end: int, hits: Sequence[Hit]) -> bytes:
    out: list[bytes] = []
    pos = start
    for s, e, rule in sorted(hits, key=lambda h: (h[0], -h[1])):
        if s < pos:  # overlaps the previous mask: extend it
            pos = max(pos, e)
            continue
        out.append(data[pos:s])
        out.append(rule.tag)
        pos = e
    out.append(data[pos:end])
    return b"".join(out)


def _mask_reason(hits: Sequence[Hit]) -> str:
    names = sorted({h[2].name for h in hits})
    return "content filter: masked " + ", ".join(f"'{n}'" for n in names)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


class ContentFilter:
    """Blocks or masks prebuilt patterns, custom regexes and keywords in the texts."""

    def __init__(self, name: str, rules: Sequence[Rule]) -> None:
        if not rules:
            raise GuardrailConfigError("patterns", "no patterns or blocked_words configured")
        self.name = name
        self.rules = tuple(rules)
        # The longest match any rule makes, plus one byte for the right-hand \b / word check.
        self.hold = max(rule.hold for rule in self.rules) + 1
        combined = b"|".join(b"(?:" + rule.source + b")" for rule in self.rules)
        try:
            self._any = re2.compile(combined, _COMBINED_OPTIONS)
            self._set = re2.Set.SearchSet(_COMBINED_OPTIONS)
            for rule in self.rules:
                self._set.Add(rule.source)
            self._set.Compile()
        except re2.error as exc:
            raise GuardrailConfigError("patterns", f"rules too large to combine: {exc}") from exc

    @classmethod
    def from_params(cls, name: str, params: dict[str, Any], config_dir: Path) -> ContentFilter:
        window = params.get("stream_window", DEFAULT_STREAM_WINDOW)
        window = p.positive_int(window, "stream_window")
        pattern_format = params.get("pattern_redaction_format", "[{pattern_name}_REDACTED]")
        pattern_format = p.string(pattern_format, "pattern_redaction_format")
        if "{pattern_name}" not in pattern_format:
            raise GuardrailConfigError(
                "pattern_redaction_format", "must contain the {pattern_name} placeholder"
            )
        keyword_tag = p.string(
            params.get("keyword_redaction_tag", "[KEYWORD_REDACTED]"), "keyword_redaction_tag"
        )
        if "categories" in params:
            raise GuardrailConfigError(
                "categories", "content categories are not supported; use blocked_words"
            )
        rules: list[Rule] = []
        patterns = params.get("patterns") or []
        if not isinstance(patterns, list):
            raise GuardrailConfigError("patterns", "must be a list")
        for i, entry in enumerate(patterns):
            rules.append(_pattern_rule(entry, f"patterns[{i}]", window, pattern_format))
        words = params.get("blocked_words") or []
        if not isinstance(words, list):
            raise GuardrailConfigError("blocked_words", "must be a list")
        for i, entry in enumerate(words):
            rules.append(_word_rule(entry, f"blocked_words[{i}]", keyword_tag))
        if params.get("blocked_words_file") is not None:
            for entry, field in _words_file(config_dir, params["blocked_words_file"]):
                rules.append(_word_rule(entry, field, keyword_tag))
        return cls(name, rules)

    def scan(self, data: bytes, start: int = 0) -> list[Hit]:
        """Every rule's matches in ``data[start:]`` (``data[:start]`` is context only)."""
        if self._any.search(data, start) is None:
            return []
        # Set.Match returns None both for "no match" and for a DFA out of memory; the
        # combined search above already said something matches, so None means "try all".
        indices = cast("list[int] | None", self._set.Match(data))
        rules = [self.rules[i] for i in sorted(indices)] if indices else self.rules
        hits: list[Hit] = []
        # Rules sharing a regex (credit_card, visa, ...) share its candidates.
        candidates: dict[bytes, list[tuple[int, int]]] = {}
        for rule in rules:
            found = candidates.get(rule.source)
            if found is None:
                found = candidates[rule.source] = rule.candidates(data, start)
            for s, e in found:
                span = rule.accept(data, s, e)
                if span is not None:
                    hits.append((*span, rule))
        return hits

    def check(self, texts: Sequence[str]) -> Verdict:
        out: list[str] = []
        masked: list[Hit] = []
        for text in texts:
            data = _encode(text)
            hits = self.scan(data)
            if not hits:
                out.append(text)
                continue
            blocking = [h for h in hits if h[2].action == "BLOCK"]
            if blocking:
                return block(min(blocking, key=lambda h: h[0])[2].reason)
            out.append(_decode(_mask(data, 0, len(data), hits)))
            masked += hits
        if not masked:
            return ALLOW
        return modify(out, _mask_reason(masked))

    async def check_input(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return self.check(texts)

    async def check_output(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return self.check(texts)

    def stream_checker(self, context: CheckContext) -> ContentStream:
        return ContentStream(self)


class ContentStream:
    """The content filter over a streamed reply: see the module docstring."""

    def __init__(self, content_filter: ContentFilter) -> None:
        self._filter = content_filter
        self._context = b""
        self._held = b""
        self._blocked: Verdict | None = None

    def feed(self, text: str) -> tuple[str, Verdict]:
        if self._blocked is not None:
            return "", self._blocked
        self._held += _encode(text)
        if len(self._held) <= self._filter.hold:
            # Nothing can be released (or decided) before more than ``hold`` bytes are held:
            # scanning now would find only what the next scan finds again.
            return "", ALLOW
        return self._release(final=len(self._held) > MAX_HELD_BYTES)

    def finish(self) -> tuple[str, Verdict]:
        if self._blocked is not None:
            return "", self._blocked
        return self._release(final=True)

    def _release(self, *, final: bool) -> tuple[str, Verdict]:
        data = self._context + self._held
        base, n = len(self._context), len(data)
        hits = self._filter.scan(data, base)
        hold = self._filter.hold
        if final:
            cut = n
        else:
            cut = max(base, n - hold)
            while cut > base and 0x80 <= data[cut] < 0xC0:  # not inside a character
                cut -= 1
            # A match reaching past the cut (or still open at the end) stays held whole.
            for s, e, _ in sorted(hits, key=lambda h: h[0], reverse=True):
                if s < cut < e:
                    cut = s
        for s, e, rule in hits:
            # Whole: every longer match starting at ``s`` would already be in the buffer.
            whole = final or (s < n - hold and e < n)
            if rule.action == "BLOCK" and whole:
                self._blocked = block(rule.reason)
                return "", self._blocked
        released = [h for h in hits if h[1] <= cut]
        out = _decode(_mask(data, base, cut, released))
        self._context = data[max(0, cut - CONTEXT_BYTES) : cut]
        self._held = data[cut:]
        if released:
            return out, Verdict("modify", texts=(out,), reason=_mask_reason(released))
        return out, ALLOW


def _action(value: object, field: str) -> Action:
    action = str(value).upper() if isinstance(value, str) else None
    if action not in ("BLOCK", "MASK"):
        raise GuardrailConfigError(field, f"must be BLOCK or MASK, not {value!r}")
    return cast(Action, action)


def _pattern_rule(entry: object, field: str, window: int, pattern_format: str) -> Rule:
    item = p.mapping(entry, field)
    action = _action(item.get("action"), f"{field}.action")
    kind = item.get("pattern_type") or ("prebuilt" if "pattern_name" in item else "regex")
    if kind == "prebuilt":
        prebuilt_name = item.get("pattern_name")
        prebuilt = PREBUILTS.get(prebuilt_name) if isinstance(prebuilt_name, str) else None
        if prebuilt is None:
            raise GuardrailConfigError(
                f"{field}.pattern_name",
                f"unknown prebuilt pattern {prebuilt_name!r}; valid: {', '.join(PREBUILTS)}",
            )
        return Rule(
            name=prebuilt.name,
            action=action,
            regex=re2.compile(prebuilt.regex, _RULE_OPTIONS),
            source=prebuilt.regex,
            tag=pattern_format.format(pattern_name=prebuilt.label).encode(),
            reason=f"content filter: pattern '{prebuilt.name}' matched",
            hold=prebuilt.hold,
            check=prebuilt.check,
            value_suffix=prebuilt.value_suffix,
        )
    if kind != "regex":
        raise GuardrailConfigError(
            f"{field}.pattern_type", f"must be prebuilt or regex, not {kind!r}"
        )
    source = p.string(item.get("pattern"), f"{field}.pattern").encode()
    label = p.string(item.get("name", "custom_regex"), f"{field}.name")
    try:
        regex = re2.compile(source, _RULE_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise GuardrailConfigError(
            f"{field}.pattern", f"not a valid RE2 regex (no lookaround or backreferences): {detail}"
        ) from exc
    if regex.search(b"") is not None:
        raise GuardrailConfigError(f"{field}.pattern", "matches the empty string")
    return Rule(
        name=label,
        action=action,
        regex=regex,
        source=source,
        tag=pattern_format.format(pattern_name=label.upper()).encode(),
        reason=f"content filter: pattern '{label}' matched",
        hold=window,
        window=window,
    )


def _word_rule(entry: object, field: str, keyword_tag: str) -> Rule:
    item = p.mapping(entry, field)
    keyword = p.string(item.get("keyword"), f"{field}.keyword").strip()
    action = _action(item.get("action", "BLOCK"), f"{field}.action")
    description = item.get("description")
    reason = f"content filter: blocked word '{keyword}'"
    if description:
        reason += f" ({description})"
    source = b"(?i:" + re2.escape(keyword.encode()) + b")"
    return Rule(
        name=keyword,
        action=action,
        regex=re2.compile(source, _RULE_OPTIONS),
        source=source,
        tag=keyword_tag.encode(),
        reason=reason,
        # A case-insensitive match may differ in UTF-8 length (e.g. "k" and KELVIN SIGN).
        hold=3 * len(keyword.encode()),
        word_edges=(_is_word_char(keyword[0]), _is_word_char(keyword[-1])),
    )


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _words_file(config_dir: Path, value: object) -> Iterator[tuple[dict[str, Any], str]]:
    field = "blocked_words_file"
    path, text = p.read_file(config_dir, value, field)
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        for line in text.splitlines():
            word = line.strip()
            if word and not word.startswith("#"):
                yield {"keyword": word, "action": "BLOCK"}, field
        return
    document = p.load_structured(path, text, field)
    if isinstance(document, dict) and "blocked_words" in document:
        document = document["blocked_words"]
    if not isinstance(document, list):
        raise GuardrailConfigError(field, f"{path} must hold a list of blocked words")
    for i, entry in enumerate(document):
        if isinstance(entry, str):
            entry = {"keyword": entry, "action": "BLOCK"}
        yield entry, f"{field}[{i}]"

"""Microsoft Presidio: PII found by its analyzer is masked, or blocks the call.

Wire format (Presidio's REST API): ``POST {analyzer}/analyze`` with ``{"text", "language",
"entities"?, "score_threshold"?}`` answers ``[{"entity_type", "start", "end", "score"}]``;
``POST {anonymizer}/anonymize`` with ``{"text", "analyzer_results", "anonymizers": {ENTITY:
{"type": "replace", "new_value": "<ENTITY>"}}}`` answers ``{"text", "items"}``.

Params (LiteLLM's): ``presidio_analyzer_api_base`` / ``presidio_anonymizer_api_base`` (else
``PRESIDIO_ANALYZER_API_BASE`` / ``PRESIDIO_ANONYMIZER_API_BASE``), ``presidio_language``
("en"), ``pii_entities_config: {ENTITY: MASK|BLOCK}`` (when given, only those entities are
looked for; without it every entity found is masked), ``presidio_score_thresholds: {ENTITY
or "ALL": score}``, ``output_parse_pii``, ``timeout``, ``fail_open``.

With ``output_parse_pii`` each value is replaced by a numbered token (``<PERSON_1>``; the
same value keeps its token within a call) and the reply's tokens are turned back into the
values. Presidio's ``replace`` operator gives every entity of a type the same value, so these
tokens are placed here, from the analyzer's spans, without calling the anonymizer. The
token → value map of a call is kept under its ``call_id`` until its output is checked
(bounded in count and age, see ``TokenVault``); the output is then restored, not analyzed.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from ...clock import Clock, SystemClock
from ...upstream.transport import Transport
from ..base import ALLOW, CheckContext, StreamChecker, Verdict, block, modify
from ..errors import GuardrailConfigError
from ._client import EngineClient, EngineFailed, gather
from ._params import Params, http_base

_ACTIONS = ("MASK", "BLOCK")
# How long, and for how many calls at once, a call's tokens wait for its reply.
TOKEN_TTL_SECONDS = 3600.0
MAX_CALLS_WITH_TOKENS = 10_000


class _Detection(msgspec.Struct):
    entity_type: str
    start: int
    end: int
    score: float


class _Anonymized(msgspec.Struct):
    text: str


_DETECTIONS = msgspec.json.Decoder(list[_Detection])
_ANONYMIZED = msgspec.json.Decoder(_Anonymized)
_TOKEN = re.compile(r"<[A-Za-z0-9_]+_[0-9]+>")


class CallTokens:
    """The numbered tokens given out during one call, and the values they stand for."""

    __slots__ = ("_counts", "_given", "originals")

    def __init__(self) -> None:
        self.originals: dict[str, str] = {}
        self._given: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}

    def token_for(self, entity_type: str, value: str) -> str:
        token = self._given.get((entity_type, value))
        if token is None:
            number = self._counts.get(entity_type, 0) + 1
            self._counts[entity_type] = number
            token = f"<{entity_type}_{number}>"
            self._given[(entity_type, value)] = token
            self.originals[token] = value
        return token


class TokenVault:
    """Each call's tokens, by ``call_id``, until its output takes them.

    Bounded: a call whose reply never comes (client gone, upstream error) is dropped after
    ``ttl`` seconds, and the oldest call goes when ``max_calls`` are held.
    """

    __slots__ = ("_calls", "_clock", "max_calls", "ttl")

    def __init__(
        self, clock: Clock, ttl: float = TOKEN_TTL_SECONDS, max_calls: int = MAX_CALLS_WITH_TOKENS
    ) -> None:
        self._clock = clock
        self.ttl = ttl
        self.max_calls = max_calls
        self._calls: OrderedDict[str, tuple[float, CallTokens]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._calls)

    def open(self, call_id: str) -> CallTokens:
        """The call's tokens, created on first use; a call without an id keeps none."""
        if not call_id:
            return CallTokens()
        now = self._clock.monotonic()
        self._expire(now)
        held = self._calls.get(call_id)
        if held is not None:
            return held[1]
        while len(self._calls) >= self.max_calls:
            self._calls.popitem(last=False)
        tokens = CallTokens()
        self._calls[call_id] = (now, tokens)
        return tokens

    def take(self, call_id: str) -> CallTokens | None:
        self._expire(self._clock.monotonic())
        held = self._calls.pop(call_id, None) if call_id else None
        return None if held is None else held[1]

    def _expire(self, now: float) -> None:
        # Calls are inserted in time order, so the expired ones are all at the front.
        calls = self._calls
        while calls:
            created, _ = next(iter(calls.values()))
            if now - created < self.ttl:
                return
            calls.popitem(last=False)


def restore(text: str, originals: Mapping[str, str]) -> str:
    if not originals or "<" not in text:
        return text
    return _TOKEN.sub(lambda match: originals.get(match[0], match[0]), text)


class TokenRestorer:
    """Restores a streamed reply's tokens; a token split across chunks waits for its end."""

    __slots__ = ("_held", "_longest", "_originals")

    def __init__(self, originals: Mapping[str, str]) -> None:
        self._originals = originals
        self._longest = max(map(len, originals), default=0)
        self._held = ""

    def feed(self, text: str) -> tuple[str, Verdict]:
        buffer = self._held + text
        cut = self._hold_from(buffer)
        self._held = buffer[cut:]
        return restore(buffer[:cut], self._originals), ALLOW

    def finish(self) -> tuple[str, Verdict]:
        held, self._held = self._held, ""
        return held, ALLOW

    def _hold_from(self, buffer: str) -> int:
        """Where the tail that could still become a token starts (``len`` when none)."""
        index = buffer.find("<", max(0, len(buffer) - self._longest + 1))
        while index >= 0:
            tail = buffer[index:]
            if any(len(tail) < len(token) and token.startswith(tail) for token in self._originals):
                return index
            index = buffer.find("<", index + 1)
        return len(buffer)


class PresidioGuardrail:
    def __init__(
        self,
        name: str,
        client: EngineClient,
        *,
        analyzer: str,
        anonymizer: str | None,
        language: str,
        actions: Mapping[str, str] | None,
        thresholds: Mapping[str, float],
        parse_pii: bool,
        clock: Clock,
    ) -> None:
        self.name = name
        self._client = client
        self._analyze_url = f"{analyzer}/analyze"
        self._anonymize_url = f"{anonymizer}/anonymize" if anonymizer else None
        self._language = language
        self._actions = actions
        self._thresholds = thresholds
        self._parse_pii = parse_pii
        self._vault = TokenVault(clock)

    @classmethod
    def from_params(
        cls,
        name: str,
        params: dict[str, Any],
        transport: Transport,
        environ: Mapping[str, str],
        *,
        clock: Clock | None = None,
    ) -> PresidioGuardrail:
        read = Params(params)
        analyzer = read.required_text(
            "presidio_analyzer_api_base", environ.get("PRESIDIO_ANALYZER_API_BASE")
        )
        actions: dict[str, str] | None = None
        config = read.mapping("pii_entities_config")
        if config is not None:
            actions = {}
            for entity, action in config.items():
                if not isinstance(action, str) or action.upper() not in _ACTIONS:
                    raise GuardrailConfigError(
                        "pii_entities_config", f"the action for {entity!r} must be MASK or BLOCK"
                    )
                actions[entity] = action.upper()
        parse_pii = read.flag("output_parse_pii")
        anonymizer = read.text(
            "presidio_anonymizer_api_base", environ.get("PRESIDIO_ANONYMIZER_API_BASE")
        )
        masks = actions is None or "MASK" in actions.values()
        if anonymizer is None and masks and not parse_pii:
            raise GuardrailConfigError(
                "presidio_anonymizer_api_base",
                "is required to mask (or set PRESIDIO_ANONYMIZER_API_BASE)",
            )
        return cls(
            name,
            EngineClient.from_params(name, read, transport),
            analyzer=http_base("presidio_analyzer_api_base", analyzer),
            anonymizer=anonymizer and http_base("presidio_anonymizer_api_base", anonymizer),
            language=read.text("presidio_language", "en") or "en",
            actions=actions,
            thresholds=read.score_mapping("presidio_score_thresholds"),
            parse_pii=parse_pii,
            clock=clock or SystemClock(),
        )

    async def check_input(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return await self._client.run(self._check(texts, context.call_id, self._parse_pii))

    async def check_output(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        if not self._parse_pii:
            return await self._client.run(self._check(texts, context.call_id, False))
        tokens = self._vault.take(context.call_id)
        if tokens is None:
            return ALLOW
        restored = [restore(text, tokens.originals) for text in texts]
        return ALLOW if restored == list(texts) else modify(restored)

    def stream_checker(self, context: CheckContext) -> StreamChecker | None:
        if not self._parse_pii:
            return None
        tokens = self._vault.take(context.call_id)
        return TokenRestorer(tokens.originals if tokens is not None else {})

    async def _check(self, texts: Sequence[str], call_id: str, numbered: bool) -> Verdict:
        found = await gather(self._analyze(text) for text in texts)
        blocked = {d.entity_type for ds in found for d in ds if self._action(d) == "BLOCK"}
        if blocked:
            return block(f"presidio: {', '.join(sorted(blocked))} not allowed")
        types = sorted({d.entity_type for ds in found for d in ds})
        if not types:
            return ALLOW
        if numbered:
            tokens = self._vault.open(call_id)
            masked = [_tokenize(text, ds, tokens) for text, ds in zip(texts, found, strict=True)]
        else:
            masked = list(texts)
            indexes = [i for i, ds in enumerate(found) if ds]
            results = await gather(self._anonymize(texts[i], found[i]) for i in indexes)
            for i, text in zip(indexes, results, strict=True):
                masked[i] = text
        return modify(masked, reason=f"presidio: masked {', '.join(types)}")

    def _action(self, detection: _Detection) -> str:
        return "MASK" if self._actions is None else self._actions[detection.entity_type]

    async def _analyze(self, text: str) -> list[_Detection]:
        if not text.strip():
            return []
        payload: dict[str, Any] = {"text": text, "language": self._language}
        if self._actions is not None:
            payload["entities"] = list(self._actions)
        if "ALL" in self._thresholds:
            payload["score_threshold"] = self._thresholds["ALL"]
        detections = await self._client.post(self._analyze_url, payload, _DETECTIONS)
        kept = []
        for d in detections:
            if not 0 <= d.start < d.end <= len(text):
                raise EngineFailed("the analyzer answered a span outside the text")
            if self._actions is not None and d.entity_type not in self._actions:
                continue
            threshold = self._thresholds.get(d.entity_type, self._thresholds.get("ALL", 0.0))
            if d.score >= threshold:
                kept.append(d)
        return kept

    async def _anonymize(self, text: str, detections: list[_Detection]) -> str:
        if self._anonymize_url is None:
            raise EngineFailed("no anonymizer configured")
        types = {d.entity_type for d in detections}
        payload = {
            "text": text,
            "analyzer_results": [
                {"entity_type": d.entity_type, "start": d.start, "end": d.end, "score": d.score}
                for d in detections
            ],
            "anonymizers": {t: {"type": "replace", "new_value": f"<{t}>"} for t in sorted(types)},
        }
        answer = await self._client.post(self._anonymize_url, payload, _ANONYMIZED)
        return answer.text


def _tokenize(text: str, detections: list[_Detection], tokens: CallTokens) -> str:
    if not detections:
        return text
    pieces: list[str] = []
    position = 0
    for d in _without_overlaps(detections):
        pieces += (text[position : d.start], tokens.token_for(d.entity_type, text[d.start : d.end]))
        position = d.end
    pieces.append(text[position:])
    return "".join(pieces)


def _without_overlaps(detections: list[_Detection]) -> list[_Detection]:
    """Where spans overlap, the higher score (then the longer span) wins, as in Presidio."""
    chosen: list[_Detection] = []
    ranked = sorted(detections, key=lambda d: (-d.score, d.start - d.end, d.start))
    for d in ranked:
        if all(d.end <= c.start or c.end <= d.start for c in chosen):
            chosen.append(d)
    return sorted(chosen, key=lambda d: d.start)

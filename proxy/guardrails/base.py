"""What a guardrail is: a named check on the texts going to a model and coming back.

A guardrail sees plain texts (the messages' text parts, or the reply's text) and answers
with a ``Verdict``: allow, modify (the texts to send instead: masked, redacted, restored) or
block (the rule that tripped — never the matched secret itself). Where it runs (``Mode``)
and which calls it runs on are configuration (``proxy.guardrails.config``); the pipeline
stages in ``proxy.guardrails.stage`` apply it on every inbound format, JSON and streams.

On a stream, a guardrail that can look at text incrementally returns a ``StreamChecker``:
it is fed the reply's text as it arrives and releases only what can no longer become part of
a match (the smallest window that could still complete one stays held back), masked in place
or ending the stream. A guardrail without one is checked on whole segments by the stage.

Nothing here fails open: an engine that errors or times out raises ``GuardrailUnavailable``,
which blocks unless that guardrail was configured ``fail_open: true``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec


class Mode(enum.Enum):
    PRE_CALL = "pre_call"  # before the upstream is called: may block or modify the input
    DURING_CALL = "during_call"  # in parallel with the upstream call: may block the input
    POST_CALL = "post_call"  # on the reply, and on every stream event before the client
    LOGGING_ONLY = "logging_only"  # runs on what is logged, never changes what is served


class Verdict(msgspec.Struct, frozen=True):
    action: Literal["allow", "modify", "block"]
    # ``modify``: the texts to use instead, one for each text given, in the same order.
    texts: tuple[str, ...] | None = None
    # ``block`` (and ``modify``): which rule tripped, fit to show the client; never the match.
    reason: str | None = None

    @property
    def blocked(self) -> bool:
        return self.action == "block"


ALLOW = Verdict("allow")


def block(reason: str) -> Verdict:
    return Verdict("block", reason=reason)


def modify(texts: Sequence[str], reason: str | None = None) -> Verdict:
    return Verdict("modify", texts=tuple(texts), reason=reason)


class CheckContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a guardrail may know about the call it checks (no credentials)."""

    call_id: str = ""
    model: str = ""  # the model group the client asked for
    user: str | None = None  # the request's ``user`` (end user)
    key_alias: str | None = None
    team_id: str | None = None


class GuardrailUnavailable(Exception):
    """The guardrail could not decide (engine down, timeout, bad answer)."""


class StreamChecker(Protocol):
    """Incremental check of a streamed reply's text (one per stream)."""

    def feed(self, text: str) -> tuple[str, Verdict]:
        """Take the next piece of text; return the text that may be released now (already
        masked when the guardrail masks) and the verdict (block ends the stream)."""
        ...

    def finish(self) -> tuple[str, Verdict]:
        """The stream's text ended: release whatever is still held back."""
        ...


class Guardrail(Protocol):
    name: str

    async def check_input(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        """The texts going to the model (messages' text, in order)."""
        ...

    async def check_output(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        """The reply's texts."""
        ...

    def stream_checker(self, context: CheckContext) -> StreamChecker | None:
        """An incremental checker for a stream, or None to be checked on whole segments."""
        ...

"""Guardrails in the pipeline: which run on a call, and where.

    pre_call     after admission, before the upstream: a block costs nothing and reaches no
                 upstream; a mask changes what the upstream receives
    during_call  in parallel with the upstream call; the reply is held until it passes, and a
                 block cancels the upstream call
    post_call    on the reply before the client sees it; on a stream, on every text delta as
                 it arrives (``GuardedStream``): masked in place or ended in band

Which run: those with ``default_on``, those the key's or its team's ``guardrails`` list
names, and those the request names (``guardrails`` or ``metadata.guardrails``). A request
can add guardrails, never remove one that is on by default or imposed by its key or team.
An engine that cannot decide blocks (503) unless its entry says ``fail_open``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..errors import GuardrailBlocked, InvalidRequest, TollwayError
from ..model import ChatReply, Finish, StreamEvent, TextDelta
from ..pipeline.call import Call
from ..request import ParsedRequest
from ..upstream.engine import Reply
from ..upstream.stream import StreamStage
from .base import ALLOW, CheckContext, GuardrailUnavailable, Mode, StreamChecker, Verdict
from .registry import Configured
from .texts import replace_reply_texts, replace_request_texts, reply_texts, request_texts

log = logging.getLogger("tollway.guardrails")


class GuardrailUnavailableError(TollwayError):
    status = 503
    type = "guardrail_error"
    code = "guardrail_unavailable"


class Guardrails:
    """The configured guardrails, as the around-call and post-call stages of the pipeline."""

    def __init__(self, configured: dict[str, Configured]) -> None:
        self.configured = configured
        self._default_on = tuple(c for c in configured.values() if c.entry.default_on)

    # -- selection ------------------------------------------------------------------------
    def selected(self, call: Call) -> tuple[Configured, ...]:
        """This call's guardrails (kept on the call: selected once)."""
        if call.guardrails_selected is not None:
            return call.guardrails_selected
        names: list[str] = []
        principal = call.principal
        if principal is not None:
            for row in (principal.key, principal.team):
                if row is not None:
                    names.extend(_names(row.metadata.get("guardrails")))
        request = call.request
        if request is not None:
            names.extend(_names(request.guardrails()))
        chosen = list(self._default_on)
        for name in names:
            configured = self.configured.get(name)
            if configured is None:
                raise InvalidRequest(
                    f"guardrail {name!r} does not exist; configured: "
                    f"{', '.join(sorted(self.configured)) or 'none'}",
                    param="guardrails",
                )
            if configured not in chosen:
                chosen.append(configured)
        call.guardrails_selected = selected = tuple(chosen)
        return selected

    # -- pre_call and during_call (an around-call stage) ----------------------------------
    async def __call__(
        self, call: Call, request: ParsedRequest, proceed: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        selected = self.selected(call)
        pre = [c for c in selected if c.runs(Mode.PRE_CALL)]
        during = [c for c in selected if c.runs(Mode.DURING_CALL)]
        if not pre and not during:
            return await proceed()
        context = _context(call)
        texts = request_texts(request)
        for configured in pre:
            verdict = await self._check(call, configured, "input", texts, context)
            if verdict.action == "modify" and verdict.texts is not None:
                replace_request_texts(request, verdict.texts)
                texts = request_texts(request)
        if not during:
            return await proceed()
        checks = asyncio.ensure_future(
            asyncio.gather(*(self._check(call, c, "input", texts, context) for c in during))
        )
        upstream = asyncio.ensure_future(proceed())
        try:
            # The guardrails decide first: a block cancels the upstream call.
            await checks
        except BaseException:
            upstream.cancel()
            reply = await _settled(upstream)
            if reply is not None and reply.stream is not None:
                await reply.stream.aclose()
            raise
        return await upstream

    # -- post_call ------------------------------------------------------------------------
    async def reply(self, call: Call, reply: ChatReply) -> ChatReply:
        post = [c for c in self.selected(call) if c.runs(Mode.POST_CALL)]
        if not post:
            return reply
        context = _context(call)
        texts = reply_texts(reply)
        for configured in post:
            verdict = await self._check(call, configured, "output", texts, context)
            if verdict.action == "modify" and verdict.texts is not None:
                reply = replace_reply_texts(reply, verdict.texts)
                texts = reply_texts(reply)
        return reply

    def stream_stage(self, call: Call) -> StreamStage | None:
        post = [c for c in self.selected(call) if c.runs(Mode.POST_CALL)]
        if not post:
            return None
        return GuardedStream(self, call, post)

    async def apply(self, configured: Configured, text: str) -> str:
        """One guardrail's input check on ``text`` (``/guardrails/apply_guardrail``)."""
        call = Call("apply", "apply", echo_request_id=False)
        verdict = await self._check(call, configured, "input", [text], _context(call))
        if verdict.action == "modify" and verdict.texts:
            return verdict.texts[0]
        return text

    # -- one check ------------------------------------------------------------------------
    async def _check(
        self,
        call: Call,
        configured: Configured,
        direction: str,
        texts: list[str],
        context: CheckContext,
    ) -> Verdict:
        guardrail = configured.guardrail
        started = time.perf_counter()
        try:
            if direction == "input":
                verdict = await guardrail.check_input(texts, context)
            else:
                verdict = await guardrail.check_output(texts, context)
        except GuardrailUnavailable as exc:
            verdict = self._unavailable(call, configured, exc)
        record(call, configured.name, direction, verdict, started)
        return _enforced(configured.name, verdict)

    def _unavailable(self, call: Call, configured: Configured, exc: Exception) -> Verdict:
        if configured.entry.fail_open:
            log.warning("guardrail %s unavailable; failing open: %s", configured.name, exc)
            return ALLOW
        raise GuardrailUnavailableError(
            f"guardrail {configured.name!r} could not check this request (failing closed)",
            code="guardrail_unavailable",
        )


class GuardedStream:
    """Post-call guardrails on a stream: every text delta passes each guardrail's incremental
    checker (held back only as long as a match could still complete); guardrails without
    one see the whole text before any of it is released."""

    def __init__(self, owner: Guardrails, call: Call, post: list[Configured]) -> None:
        self._owner = owner
        self._call = call
        self._context = context = _context(call)
        self._checkers: list[tuple[Configured, StreamChecker]] = []
        self._whole: list[Configured] = []
        for configured in post:
            checker = configured.guardrail.stream_checker(context)
            if checker is None:
                self._whole.append(configured)
            else:
                self._checkers.append((configured, checker))
        self._held: list[str] = []  # text held for the whole-text guardrails
        self._masked: set[str] = set()  # checkers that masked something on the way
        self._ended = False

    async def on_event(self, event: StreamEvent) -> Sequence[StreamEvent]:
        if isinstance(event, TextDelta) and event.choice == 0:
            text = self._through_checkers(event.text, final=False)
            if self._whole:
                self._held.append(text)
                return []
            return [TextDelta(text)] if text else []
        if isinstance(event, Finish) and event.choice == 0:
            # Release what the checkers hold before the stream says it is finished.
            return [*await self._release(), event]
        return [event]

    async def on_end(self) -> Sequence[StreamEvent]:
        return await self._release()

    async def _release(self) -> list[StreamEvent]:
        if self._ended:
            return []
        self._ended = True
        text = self._through_checkers("", final=True)
        if self._whole:
            whole = "".join(self._held) + text
            for configured in self._whole:
                verdict = await self._owner._check(
                    self._call, configured, "output", [whole], self._context
                )
                if verdict.action == "modify" and verdict.texts:
                    whole = verdict.texts[0]
            text = whole
        return [TextDelta(text)] if text else []

    def _through_checkers(self, text: str, *, final: bool) -> str:
        """``text`` through every incremental checker in turn; what each may release goes
        on to the next. A block ends the stream (raised)."""
        for configured, checker in self._checkers:
            started = time.perf_counter()
            released, verdict = checker.feed(text) if text else ("", ALLOW)
            if verdict.action == "modify":
                self._masked.add(configured.name)
            if final:
                tail, at_end = checker.finish()
                released += tail
                if at_end.action != "allow":
                    verdict = at_end
                if configured.name in self._masked and verdict.action == "allow":
                    verdict = Verdict("modify", reason=verdict.reason)
            if verdict.blocked or final:
                record(self._call, configured.name, "output", verdict, started)
            _enforced(configured.name, verdict)
            text = released
        return text


def record(call: Call, name: str, direction: str, verdict: Verdict, started: float) -> None:
    """What ran on the call, for the reply's headers and the spend log."""
    call.guardrails.append(
        {
            "name": name,
            "direction": direction,
            "action": verdict.action,
            "reason": verdict.reason,
            "ms": round((time.perf_counter() - started) * 1000, 3),
        }
    )


def _enforced(name: str, verdict: Verdict) -> Verdict:
    if verdict.blocked:
        raise GuardrailBlocked(
            f"blocked by guardrail {name!r}: {verdict.reason or 'policy violation'}", code=name
        )
    return verdict


def _context(call: Call) -> CheckContext:
    principal = call.principal
    request = call.request
    return CheckContext(
        call_id=call.uid,
        model=request.model if request is not None else "",
        user=request.end_user() if request is not None else None,
        key_alias=principal.key.key_alias if principal is not None and principal.key else None,
        team_id=principal.team.team_id if principal is not None and principal.team else None,
    )


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidRequest("`guardrails` must be a list of guardrail names", param="guardrails")


async def _settled(task: asyncio.Future[Reply]) -> Reply | None:
    try:
        return await task
    except BaseException:
        return None

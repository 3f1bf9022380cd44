"""How an external engine is called, and what happens when it cannot answer.

Every check is bounded by the guardrail's ``timeout`` as a whole (all of its HTTP calls
together). An error status, a timeout, an unreachable engine or an answer that does not
decode into the documented shape is ``EngineFailed`` inside this package; ``EngineClient.run``
turns it into ``GuardrailUnavailable`` — or, for a ``fail_open`` guardrail, into ALLOW with a
warning naming the guardrail and the kind of failure (never the text checked, never the
engine's answer, which may quote it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

import msgspec
import orjson

from ...errors import UpstreamTimeout, UpstreamUnreachable
from ...upstream.transport import Deadlines, Transport
from ..base import ALLOW, GuardrailUnavailable, Verdict
from ._params import Params

log = logging.getLogger("tollway.guardrails")

T = TypeVar("T")


class EngineFailed(Exception):
    """The engine did not give a usable answer (the message is safe to log)."""


class EngineClient:
    """One guardrail's access to its engine: transport, deadline and failure policy."""

    __slots__ = ("_deadlines", "fail_open", "name", "timeout", "transport")

    def __init__(self, name: str, transport: Transport, timeout: float, fail_open: bool) -> None:
        self.name = name
        self.transport = transport
        self.timeout = timeout
        self.fail_open = fail_open
        self._deadlines = Deadlines(connect=timeout, read=timeout, total=timeout)

    @classmethod
    def from_params(cls, name: str, params: Params, transport: Transport) -> EngineClient:
        return cls(name, transport, params.seconds("timeout"), params.flag("fail_open"))

    async def run(self, check: Coroutine[Any, Any, Verdict]) -> Verdict:
        """The verdict of ``check``, or the failure policy's answer when the engine failed."""
        try:
            async with asyncio.timeout(self.timeout):
                return await check
        except (TimeoutError, UpstreamTimeout):
            cause = f"no answer within {self.timeout:g}s"
        except UpstreamUnreachable:
            cause = "engine unreachable"
        except EngineFailed as exc:
            cause = str(exc)
        if self.fail_open:
            log.warning("guardrail %s failed open: %s", self.name, cause)
            return ALLOW
        raise GuardrailUnavailable(f"guardrail {self.name} is unavailable: {cause}")

    async def post(
        self,
        url: str,
        payload: object,
        decoder: msgspec.json.Decoder[T],
        headers: Mapping[str, str] | None = None,
    ) -> T:
        body = orjson.dumps(payload)
        sent = {"content-type": "application/json", "accept": "application/json"}
        if headers:
            sent.update(headers)
        return await self.post_bytes(url, body, sent, decoder)

    async def post_bytes(
        self, url: str, body: bytes, headers: Mapping[str, str], decoder: msgspec.json.Decoder[T]
    ) -> T:
        """POST ``body`` as is (already signed headers must see the exact bytes)."""
        response = await self.transport.post(url, body, headers, self._deadlines)
        try:
            raw = await response.read()
        finally:
            response.close()
        if not 200 <= response.status < 300:
            raise EngineFailed(f"engine answered HTTP {response.status}")
        try:
            return decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise EngineFailed("unreadable answer from the engine") from None


async def gather(checks: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """All results in order; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(check) for check in checks]
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]

"""Any guardrail service that speaks LiteLLM's Generic Guardrail API.

Contract (LiteLLM's, so a service written for LiteLLM works unchanged):

``POST {api_base}/beta/litellm_basic_guardrail_api`` (the path is appended unless
``api_base`` already ends with it), ``content-type: application/json``, the configured
``headers`` and, when ``api_key`` is set, ``authorization: Bearer {api_key}``::

    {
      "texts": ["...", ...],            # the texts checked, in order (messages' or reply's)
      "input_type": "request" | "response",
      "litellm_call_id": "..." | null,  # the same id for a call's request and response
      "model": "...",                   # the model group the client asked for
      "request_data": {                 # what is known of the caller (keys may be absent)
        "user_api_key_alias": "...", "user_api_key_team_id": "...",
        "user_api_key_end_user_id": "..."
      },
      "additional_provider_specific_params": {...}   # from the guardrail's config
    }

The answer, ``2xx`` with::

    {
      "action": "NONE" | "BLOCKED" | "GUARDRAIL_INTERVENED",
      "blocked_reason": "...",          # shown to the client when BLOCKED
      "texts": ["...", ...]             # GUARDRAIL_INTERVENED: one replacement per text sent
    }

``NONE`` allows; ``BLOCKED`` blocks; ``GUARDRAIL_INTERVENED`` replaces the texts (without
``texts`` it changes nothing, as in LiteLLM). The simpler spelling ``"allow" | "block" |
"modify"`` with ``"reason"`` is accepted too (any case). Unlike LiteLLM, an answer without an
``action``, with an unknown one, or whose ``texts`` do not match the texts sent one for one
is a failure of the service (``GuardrailUnavailable``, or ALLOW when ``fail_open``), never a
silent allow.

Params: ``api_base`` (else ``GENERIC_GUARDRAIL_API_BASE``), ``api_key``, ``headers``,
``additional_provider_specific_params``, ``timeout``, ``fail_open``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from ...upstream.transport import Transport
from ..base import ALLOW, CheckContext, StreamChecker, Verdict, block, modify
from ._client import EngineClient, EngineFailed
from ._params import Params, http_base

PATH = "/beta/litellm_basic_guardrail_api"
_REASON_LIMIT = 500
_ALLOW = frozenset({"NONE", "ALLOW"})
_BLOCK = frozenset({"BLOCKED", "BLOCK"})
_MODIFY = frozenset({"GUARDRAIL_INTERVENED", "MODIFY"})


class _Answer(msgspec.Struct):
    action: str
    blocked_reason: str | None = None
    reason: str | None = None
    texts: list[str] | None = None


_ANSWER = msgspec.json.Decoder(_Answer)


class GenericGuardrail:
    def __init__(
        self,
        name: str,
        client: EngineClient,
        *,
        url: str,
        headers: Mapping[str, str],
        extra: Mapping[str, Any],
    ) -> None:
        self.name = name
        self._client = client
        self._url = url
        self._headers = dict(headers)
        self._extra = dict(extra)

    @classmethod
    def from_params(
        cls, name: str, params: dict[str, Any], transport: Transport, environ: Mapping[str, str]
    ) -> GenericGuardrail:
        read = Params(params)
        base = http_base(
            "api_base", read.required_text("api_base", environ.get("GENERIC_GUARDRAIL_API_BASE"))
        )
        headers: dict[str, str] = {}
        api_key = read.text("api_key")
        if api_key is not None:
            headers["authorization"] = f"Bearer {api_key}"
        # Configured headers win over the key (a service may want its own scheme).
        for header, value in read.text_mapping("headers").items():
            headers[header.lower()] = value
        return cls(
            name,
            EngineClient.from_params(name, read, transport),
            url=base if base.endswith(PATH) else base + PATH,
            headers=headers,
            extra=read.mapping("additional_provider_specific_params") or {},
        )

    async def check_input(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return await self._client.run(self._check(texts, "request", context))

    async def check_output(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return await self._client.run(self._check(texts, "response", context))

    def stream_checker(self, context: CheckContext) -> StreamChecker | None:
        return None

    async def _check(
        self,
        texts: Sequence[str],
        input_type: Literal["request", "response"],
        context: CheckContext,
    ) -> Verdict:
        if not any(text.strip() for text in texts):
            return ALLOW
        caller = {
            "user_api_key_alias": context.key_alias,
            "user_api_key_team_id": context.team_id,
            "user_api_key_end_user_id": context.user,
        }
        payload = {
            "texts": list(texts),
            "input_type": input_type,
            "litellm_call_id": context.call_id or None,
            "model": context.model,
            "request_data": {key: value for key, value in caller.items() if value is not None},
            "additional_provider_specific_params": self._extra,
        }
        answer = await self._client.post(self._url, payload, _ANSWER, self._headers)
        action = answer.action.upper()
        if action in _ALLOW:
            return ALLOW
        if action in _BLOCK:
            reason = answer.blocked_reason or answer.reason or "content violates policy"
            return block(reason[:_REASON_LIMIT])
        if action not in _MODIFY:
            raise EngineFailed("the guardrail service answered an unknown action")
        if answer.texts is None:
            return ALLOW
        if len(answer.texts) != len(texts):
            raise EngineFailed("the guardrail service answered a different number of texts")
        if answer.texts == list(texts):
            return ALLOW
        note = answer.reason or answer.blocked_reason
        return modify(answer.texts, reason=note[:_REASON_LIMIT] if note else None)

"""Lakera Guard (API v2): a flagged conversation is blocked.

Wire format: ``POST {api_base}/v2/guard`` with ``Authorization: Bearer {key}`` and
``{"messages": [{"role", "content"}], "project_id"?, "breakdown": true}``; the answer is
``{"flagged": bool, "breakdown"?: [{"detector_type", "detected", ...}], ...}``. The input's
texts go as ``user`` messages, a reply's as ``assistant`` messages.

Params (LiteLLM's ``lakera_v2``): ``api_key`` (else ``LAKERA_API_KEY``), ``api_base``
(default ``https://api.lakera.ai``), ``project_id``, ``timeout``, ``fail_open``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from ...upstream.transport import Transport
from ..base import ALLOW, CheckContext, StreamChecker, Verdict, block
from ._client import EngineClient
from ._params import Params, http_base

DEFAULT_API_BASE = "https://api.lakera.ai"


class _Detector(msgspec.Struct):
    detector_type: str = ""
    detected: bool = False


class _Answer(msgspec.Struct):
    flagged: bool
    breakdown: list[_Detector] | None = None


_ANSWER = msgspec.json.Decoder(_Answer)


class LakeraGuardrail:
    def __init__(
        self, name: str, client: EngineClient, *, url: str, api_key: str, project_id: str | None
    ) -> None:
        self.name = name
        self._client = client
        self._url = url
        self._headers = {"authorization": f"Bearer {api_key}"}
        self._project_id = project_id

    @classmethod
    def from_params(
        cls, name: str, params: dict[str, Any], transport: Transport, environ: Mapping[str, str]
    ) -> LakeraGuardrail:
        read = Params(params)
        api_base = http_base("api_base", read.text("api_base", DEFAULT_API_BASE) or "")
        return cls(
            name,
            EngineClient.from_params(name, read, transport),
            url=f"{api_base}/v2/guard",
            api_key=read.required_text("api_key", environ.get("LAKERA_API_KEY")),
            project_id=read.text("project_id"),
        )

    async def check_input(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return await self._client.run(self._check(texts, "user"))

    async def check_output(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return await self._client.run(self._check(texts, "assistant"))

    def stream_checker(self, context: CheckContext) -> StreamChecker | None:
        return None

    async def _check(self, texts: Sequence[str], role: str) -> Verdict:
        messages = [{"role": role, "content": text} for text in texts if text.strip()]
        if not messages:
            return ALLOW
        payload: dict[str, Any] = {"messages": messages, "breakdown": True}
        if self._project_id is not None:
            payload["project_id"] = self._project_id
        answer = await self._client.post(self._url, payload, _ANSWER, self._headers)
        if not answer.flagged:
            return ALLOW
        detectors = sorted({d.detector_type for d in answer.breakdown or () if d.detected} - {""})
        listed = f" ({', '.join(detectors)})" if detectors else ""
        return block(f"lakera: flagged{listed}")

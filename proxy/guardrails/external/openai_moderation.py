"""OpenAI's moderation endpoint: any flagged text blocks.

Wire format: ``POST {api_base}/moderations`` with ``Authorization: Bearer {key}`` and
``{"model", "input": [texts]}``; the answer is ``{"results": [{"flagged", "categories":
{name: bool}, ...}]}``, one result per input text, in order.

Params: ``api_key`` (else ``OPENAI_API_KEY``; required unless ``api_base`` points elsewhere),
``api_base`` (default ``https://api.openai.com/v1``), ``model`` (default
``omni-moderation-latest``), ``timeout``, ``fail_open``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from ...upstream.transport import Transport
from ..base import ALLOW, CheckContext, StreamChecker, Verdict, block
from ..errors import GuardrailConfigError
from ._client import EngineClient, EngineFailed
from ._params import Params, http_base

DEFAULT_API_BASE = "https://api.openai.com/v1"
DEFAULT_MODEL = "omni-moderation-latest"


class _Result(msgspec.Struct):
    flagged: bool
    categories: dict[str, bool | None] = {}


class _Answer(msgspec.Struct):
    results: list[_Result]


_ANSWER = msgspec.json.Decoder(_Answer)


class OpenAIModerationGuardrail:
    def __init__(
        self, name: str, client: EngineClient, *, url: str, api_key: str | None, model: str
    ) -> None:
        self.name = name
        self._client = client
        self._url = url
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._model = model

    @classmethod
    def from_params(
        cls, name: str, params: dict[str, Any], transport: Transport, environ: Mapping[str, str]
    ) -> OpenAIModerationGuardrail:
        read = Params(params)
        api_base = read.text("api_base")
        api_key = read.text("api_key", environ.get("OPENAI_API_KEY"))
        if api_key is None and api_base is None:
            raise GuardrailConfigError("api_key", "is required (or set OPENAI_API_KEY)")
        base = http_base("api_base", api_base or DEFAULT_API_BASE)
        return cls(
            name,
            EngineClient.from_params(name, read, transport),
            url=f"{base}/moderations",
            api_key=api_key,
            model=read.text("model", DEFAULT_MODEL) or DEFAULT_MODEL,
        )

    async def check_input(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return await self._client.run(self._check(texts))

    async def check_output(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return await self._client.run(self._check(texts))

    def stream_checker(self, context: CheckContext) -> StreamChecker | None:
        return None

    async def _check(self, texts: Sequence[str]) -> Verdict:
        inputs = [text for text in texts if text.strip()]
        if not inputs:
            return ALLOW
        payload = {"model": self._model, "input": inputs}
        answer = await self._client.post(self._url, payload, _ANSWER, self._headers)
        if len(answer.results) != len(inputs):
            raise EngineFailed("the moderation answer does not have one result per text")
        flagged = [result for result in answer.results if result.flagged]
        if not flagged:
            return ALLOW
        categories = sorted({name for r in flagged for name, hit in r.categories.items() if hit})
        listed = f" ({', '.join(categories)})" if categories else ""
        return block(f"openai_moderation: flagged{listed}")

"""Fake guardrail engines on 127.0.0.1, port 0, speaking each engine's documented wire format.

Each fake records what it received (path, lower-cased headers, raw body, JSON) and decides
from the texts, so a test states its case by the text it sends:

* Presidio analyzer (``POST /analyze``): e-mail addresses (EMAIL_ADDRESS, 1.0), the names in
  ``NAMES`` (PERSON, 0.85) and ``ddd-dd-dddd`` (US_SSN, 0.5), filtered by ``entities`` and
  ``score_threshold`` as Presidio does; anonymizer (``POST /anonymize``): the ``replace``
  operator, applied from the end of the text back.
* Lakera Guard (``POST /v2/guard``): "ignore previous instructions" is a prompt attack.
* OpenAI moderation (``POST /v1/moderations``): "kill" is violence.
* Bedrock ApplyGuardrail: checks the SigV4 signature as AWS does (403 otherwise); "bomb" is
  blocked by the content policy, e-mail addresses are anonymized to ``{EMAIL}``.
* Generic Guardrail API: "forbidden" is BLOCKED, "secret" is replaced (GUARDRAIL_INTERVENED),
  "simple-block" answers in the lower-case spelling, "miscount" replaces with two texts.

``Broken`` answers every POST with a 500, garbage, or never.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Self

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.credentials import Credentials  # type: ignore[import-untyped]

from proxy.upstream.aiohttp_transport import AiohttpTransport
from proxy.upstream.lean import LeanTransport
from proxy.upstream.transport import Transport
from tests.providers.harness_bedrock import sigv4_problem

NAMES = ("John Smith", "Jane Doe")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")

LAKERA_KEY = "lk-test-0123456789"
OPENAI_KEY = "sk-moderation-test-0123456789"
AWS_ACCESS_KEY_ID = "AKIAFAKEGUARDRAIL001"
AWS_SECRET_ACCESS_KEY = "fake/Guardrail+Secret0123456789abcdefghij"
AWS_SESSION_TOKEN = "FwoGZXIvYXdzEFAKEguardrailtoken0123456789"
AWS_REGION = "eu-west-1"


@pytest.fixture(name="transport", params=["aiohttp", "lean"])
async def transport_fixture(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    """Both of the gateway's clients: the engines must work over either."""
    client: Transport = AiohttpTransport() if request.param == "aiohttp" else LeanTransport()
    yield client
    await client.close()


@dataclass
class Received:
    path: str
    raw_path: str
    headers: dict[str, str]
    raw: bytes
    json: Any


class FakeEngine:
    """One aiohttp app on a ``TestServer``; ``release()`` lets hanging handlers finish."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._released = asyncio.Event()
        self.server = TestServer(self.build_app(), host="127.0.0.1", port=0)

    def build_app(self) -> web.Application:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._released.set()
        await self.server.close()

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def record(self, request: web.Request) -> Received:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        received = Received(
            request.path,
            request.raw_path,
            {k.lower(): v for k, v in request.headers.items()},
            raw,
            body,
        )
        self.requests.append(received)
        return received

    async def hang(self) -> web.Response:
        await self._released.wait()
        return web.Response(status=503)


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


class Broken(FakeEngine):
    """Every POST fails the same way: ``500``, ``garbage`` (not JSON), ``wrong-shape`` (JSON
    that is not the engine's answer) or ``hang`` (never answers)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        super().__init__()

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        await self.record(request)
        if self.mode == "500":
            return _json({"error": "internal"}, status=500)
        if self.mode == "garbage":
            return web.Response(body=b"<html>oops", content_type="text/html")
        if self.mode == "wrong-shape":
            return _json({"action": 7, "flagged": "maybe", "results": None, "text": 1})
        return await self.hang()


class FakePresidio(FakeEngine):
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/analyze", self._analyze)
        app.router.add_post("/anonymize", self._anonymize)
        return app

    async def _analyze(self, request: web.Request) -> web.Response:
        body = (await self.record(request)).json
        text: str = body["text"]
        found: list[dict[str, Any]] = []
        for match in EMAIL.finditer(text):
            found.append(_detection("EMAIL_ADDRESS", match.start(), match.end(), 1.0))
        for name in NAMES:
            for match in re.finditer(re.escape(name), text):
                found.append(_detection("PERSON", match.start(), match.end(), 0.85))
        for match in SSN.finditer(text):
            found.append(_detection("US_SSN", match.start(), match.end(), 0.5))
        wanted = body.get("entities")
        threshold = body.get("score_threshold", 0.0)
        found = [
            d
            for d in found
            if (wanted is None or d["entity_type"] in wanted) and d["score"] >= threshold
        ]
        return _json(found)

    async def _anonymize(self, request: web.Request) -> web.Response:
        body = (await self.record(request)).json
        text: str = body["text"]
        items = []
        for result in sorted(body["analyzer_results"], key=lambda r: r["start"], reverse=True):
            operator = body["anonymizers"][result["entity_type"]]
            assert operator["type"] == "replace"
            new = operator["new_value"]
            text = text[: result["start"]] + new + text[result["end"] :]
            items.append(
                {
                    "start": result["start"],
                    "end": result["start"] + len(new),
                    "entity_type": result["entity_type"],
                    "text": new,
                    "operator": "replace",
                }
            )
        return _json({"text": text, "items": items})


def _detection(entity: str, start: int, end: int, score: float) -> dict[str, Any]:
    return {
        "entity_type": entity,
        "start": start,
        "end": end,
        "score": score,
        "analysis_explanation": None,
        "recognition_metadata": {"recognizer_name": "fake"},
    }


class FakeLakera(FakeEngine):
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/guard", self._guard)
        return app

    async def _guard(self, request: web.Request) -> web.Response:
        received = await self.record(request)
        if received.headers.get("authorization") != f"Bearer {LAKERA_KEY}":
            return _json({"error": "Unauthorized"}, status=401)
        attack = any(
            "ignore previous instructions" in m["content"].lower()
            for m in received.json["messages"]
        )
        breakdown = [
            {
                "project_id": received.json.get("project_id", "project-default"),
                "policy_id": "policy-lakera-default",
                "detector_id": "detector-lakera-default-prompt-attack",
                "detector_type": "prompt_attack",
                "detected": attack,
                "message_id": 0,
            },
            {
                "project_id": "project-default",
                "policy_id": "policy-lakera-default",
                "detector_id": "detector-lakera-pii-email",
                "detector_type": "pii/email",
                "detected": False,
                "message_id": 0,
            },
        ]
        answer: dict[str, Any] = {"flagged": attack, "metadata": {"request_uuid": "r-1"}}
        if received.json.get("breakdown"):
            answer["breakdown"] = breakdown
        return _json(answer)


class FakeOpenAIModeration(FakeEngine):
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/moderations", self._moderate)
        return app

    async def _moderate(self, request: web.Request) -> web.Response:
        received = await self.record(request)
        if received.headers.get("authorization") != f"Bearer {OPENAI_KEY}":
            return _json({"error": {"message": "Incorrect API key"}}, status=401)
        results = []
        for text in received.json["input"]:
            violent = "kill" in text.lower()
            categories = {"harassment": False, "violence": violent, "self-harm/intent": False}
            scores = {name: (0.97 if hit else 0.01) for name, hit in categories.items()}
            results.append(
                {
                    "flagged": violent,
                    "categories": categories,
                    "category_scores": scores,
                    "category_applied_input_types": {"violence": ["text"]},
                }
            )
        return _json({"id": "modr-1", "model": received.json["model"], "results": results})


class FakeBedrockGuardrail(FakeEngine):
    def __init__(self, *, one_output: bool = False) -> None:
        # ``one_output``: answer a masking with one output for all the blocks together.
        self.one_output = one_output
        self.credentials = Credentials(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
        self.signature_failures: list[str] = []
        super().__init__()

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/guardrail/{identifier}/version/{version}/apply", self._apply)
        return app

    async def _apply(self, request: web.Request) -> web.Response:
        received = await self.record(request)
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        problem = sigv4_problem(
            request.method, url, received.headers, received.raw, self.credentials, AWS_REGION
        )
        if problem is not None:
            self.signature_failures.append(problem)
            return _json({"message": f"bad signature: {problem}"}, status=403)
        texts = [block["text"]["text"] for block in received.json["content"]]
        if any("bomb" in text for text in texts):
            return _json(
                {
                    "action": "GUARDRAIL_INTERVENED",
                    "actionReason": "Guardrail blocked.",
                    "outputs": [{"text": "Sorry, the model cannot answer this question."}],
                    "assessments": [
                        {
                            "contentPolicy": {
                                "filters": [
                                    {"type": "VIOLENCE", "confidence": "HIGH", "action": "BLOCKED"}
                                ]
                            },
                            "wordPolicy": {"customWords": [{"match": "bomb", "action": "BLOCKED"}]},
                        }
                    ],
                }
            )
        if any(EMAIL.search(text) for text in texts):
            masked = [EMAIL.sub("{EMAIL}", text) for text in texts]
            outputs = [{"text": "\n".join(masked)}] if self.one_output else masked
            return _json(
                {
                    "action": "GUARDRAIL_INTERVENED",
                    "outputs": [o if isinstance(o, dict) else {"text": o} for o in outputs],
                    "assessments": [
                        {
                            "sensitiveInformationPolicy": {
                                "piiEntities": [
                                    {"type": "EMAIL", "match": m, "action": "ANONYMIZED"}
                                    for text in texts
                                    for m in EMAIL.findall(text)
                                ]
                            }
                        }
                    ],
                }
            )
        return _json({"action": "NONE", "outputs": [], "assessments": [{}]})


class FakeGenericGuardrail(FakeEngine):
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/beta/litellm_basic_guardrail_api", self._apply)
        return app

    async def _apply(self, request: web.Request) -> web.Response:
        texts: list[str] = (await self.record(request)).json["texts"]
        if any("simple-block" in text for text in texts):
            return _json({"action": "block", "reason": "simple spelling"})
        if any("miscount" in text for text in texts):
            return _json({"action": "GUARDRAIL_INTERVENED", "texts": ["only one", "two"]})
        if any("forbidden" in text for text in texts):
            return _json({"action": "BLOCKED", "blocked_reason": "forbidden topic"})
        if any("secret" in text for text in texts):
            replaced = [text.replace("secret", "[REDACTED]") for text in texts]
            return _json({"action": "GUARDRAIL_INTERVENED", "texts": replaced})
        return _json({"action": "NONE"})

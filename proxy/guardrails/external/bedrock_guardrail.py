"""Amazon Bedrock Guardrails through the ApplyGuardrail API.

Wire format: ``POST https://bedrock-runtime.{region}.amazonaws.com/guardrail/{id}/version/
{version}/apply``, signed with SigV4 (service ``bedrock``), with ``{"source": "INPUT" |
"OUTPUT", "content": [{"text": {"text": ...}}]}``; the answer is ``{"action": "NONE" |
"GUARDRAIL_INTERVENED", "outputs": [{"text"}], "assessments": [{policy: {...}}]}``.

An intervention where some assessed entry's ``action`` is ``BLOCKED`` blocks, naming the
policies (``contentPolicy``, ``topicPolicy`` ...; never the matched words). One where the
entries were only ``ANONYMIZED`` (sensitive information masked) modifies the texts with the
guardrail's outputs; anything else it calls an intervention blocks too.

Params (LiteLLM's ``bedrock``): ``guardrailIdentifier``, ``guardrailVersion``,
``aws_region_name`` (else ``AWS_REGION_NAME`` / ``AWS_REGION`` / ``AWS_DEFAULT_REGION``,
default ``us-west-2``), ``aws_access_key_id`` / ``aws_secret_access_key`` /
``aws_session_token`` (else ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN``), or a Bedrock API key (``api_key``, else
``AWS_BEARER_TOKEN_BEDROCK``) when there is no key pair, ``api_base``, ``timeout``,
``fail_open``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

import msgspec
import orjson

from ...upstream.sigv4 import DEFAULT_REGION, Signer
from ...upstream.transport import Transport
from ..base import ALLOW, CheckContext, StreamChecker, Verdict, block, modify
from ..errors import GuardrailConfigError
from ._client import EngineClient, EngineFailed, gather
from ._params import Params, http_base


class _Output(msgspec.Struct):
    text: str = ""


class _Answer(msgspec.Struct):
    action: str
    outputs: list[_Output] = []
    assessments: list[dict[str, Any]] = []


_ANSWER = msgspec.json.Decoder(_Answer)


class BedrockGuardrail:
    def __init__(self, name: str, client: EngineClient, *, url: str, signer: Signer) -> None:
        self.name = name
        self._client = client
        self._url = url
        self._signer = signer

    @classmethod
    def from_params(
        cls, name: str, params: dict[str, Any], transport: Transport, environ: Mapping[str, str]
    ) -> BedrockGuardrail:
        read = Params(params)
        identifier = read.required_text("guardrailIdentifier")
        version = read.required_text("guardrailVersion")
        region = (
            read.text("aws_region_name")
            or environ.get("AWS_REGION_NAME")
            or environ.get("AWS_REGION")
            or environ.get("AWS_DEFAULT_REGION")
            or DEFAULT_REGION
        )
        access_key = read.text("aws_access_key_id")
        secret_key = read.text("aws_secret_access_key")
        token = read.text("aws_session_token")
        if not (access_key and secret_key):
            if access_key or secret_key:
                missing = "aws_secret_access_key" if access_key else "aws_access_key_id"
                raise GuardrailConfigError(missing, "is required with its pair")
            access_key = environ.get("AWS_ACCESS_KEY_ID")
            secret_key = environ.get("AWS_SECRET_ACCESS_KEY")
            token = environ.get("AWS_SESSION_TOKEN")
        credentials = None
        if access_key and secret_key:
            # Imported here: botocore costs about 8 MB resident, paid only when used.
            from botocore.credentials import Credentials  # type: ignore[import-untyped]

            credentials = Credentials(access_key, secret_key, token or None)
        bearer = read.text("api_key", environ.get("AWS_BEARER_TOKEN_BEDROCK"))
        if credentials is None and bearer is None:
            raise GuardrailConfigError(
                "aws_access_key_id",
                "AWS credentials are required (aws_access_key_id and aws_secret_access_key, "
                "the AWS_* environment variables, or a Bedrock api_key)",
            )
        endpoint = http_base(
            "api_base",
            read.text("api_base") or f"https://bedrock-runtime.{region}.amazonaws.com",
        )
        # The identifier may be an ARN: its ``/`` is escaped to keep it one path segment; its
        # ``:`` stays literal (as for model ids), because aiohttp's URL handling would unescape
        # a ``%3A`` after it was signed.
        ident, ver = quote(identifier, safe=":"), quote(version, safe=":")
        path = f"/guardrail/{ident}/version/{ver}/apply"
        return cls(
            name,
            EngineClient.from_params(name, read, transport),
            url=endpoint + path,
            signer=Signer(endpoint, region, credentials, bearer),
        )

    async def check_input(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return await self._client.run(self._check(texts, "INPUT"))

    async def check_output(self, texts: Sequence[str], context: CheckContext) -> Verdict:
        return await self._client.run(self._check(texts, "OUTPUT"))

    def stream_checker(self, context: CheckContext) -> StreamChecker | None:
        return None

    async def _check(self, texts: Sequence[str], source: Literal["INPUT", "OUTPUT"]) -> Verdict:
        # Bedrock refuses empty text blocks: only the texts with content are sent.
        indexes = [i for i, text in enumerate(texts) if text.strip()]
        if not indexes:
            return ALLOW
        sent = [texts[i] for i in indexes]
        answer = await self._apply(sent, source)
        if answer.action == "NONE":
            return ALLOW
        if answer.action != "GUARDRAIL_INTERVENED":
            raise EngineFailed("unreadable answer from the engine")
        blocked, anonymized = _assessed(answer.assessments)
        if blocked:
            return block(f"bedrock: blocked by {', '.join(sorted(blocked))}")
        if not anonymized:
            return block("bedrock: guardrail intervened")
        outputs = [output.text for output in answer.outputs]
        if len(outputs) != len(sent):
            # The masked text did not come back one output per block: ask for each text on
            # its own so every masked text lands where its original was.
            outputs = await gather(self._masked(text, source) for text in sent)
        masked = list(texts)
        for i, text in zip(indexes, outputs, strict=True):
            masked[i] = text
        return modify(masked, reason=f"bedrock: masked by {', '.join(sorted(anonymized))}")

    async def _masked(self, text: str, source: Literal["INPUT", "OUTPUT"]) -> str:
        answer = await self._apply([text], source)
        if answer.action == "NONE":
            return text
        blocked, _ = _assessed(answer.assessments)
        if blocked or len(answer.outputs) != 1:
            raise EngineFailed("the guardrail's answer changed between calls")
        return answer.outputs[0].text

    async def _apply(self, texts: list[str], source: str) -> _Answer:
        body = orjson.dumps({"source": source, "content": [{"text": {"text": t}} for t in texts]})
        headers = self._signer.headers(self._url, body, stream=False)
        return await self._client.post_bytes(self._url, body, headers, _ANSWER)


def _assessed(assessments: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """The policies with a ``BLOCKED`` entry and those with an ``ANONYMIZED`` one.

    Every policy lists its findings the same way (``{policy: {kind: [{..., "action"}]}}``),
    so they are read generically and a policy added later still blocks.
    """
    blocked: set[str] = set()
    anonymized: set[str] = set()
    for assessment in assessments:
        for policy, findings in assessment.items():
            if not isinstance(findings, dict):
                continue
            for entries in findings.values():
                if not isinstance(entries, list):
                    continue
                for entry in entries:
                    action = entry.get("action") if isinstance(entry, dict) else None
                    if action == "BLOCKED":
                        blocked.add(policy)
                    elif action == "ANONYMIZED":
                        anonymized.add(policy)
    return blocked, anonymized

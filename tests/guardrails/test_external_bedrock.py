"""Bedrock ApplyGuardrail over HTTP, signed with SigV4 and checked by a fake that re-signs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import pytest

from proxy.guardrails.base import ALLOW, CheckContext, GuardrailUnavailable
from proxy.guardrails.errors import GuardrailConfigError
from proxy.guardrails.external import EXTERNAL
from proxy.upstream.transport import Transport
from tests.guardrails.external_fakes import (  # noqa: F401
    AWS_ACCESS_KEY_ID,
    AWS_REGION,
    AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN,
    FakeBedrockGuardrail,
    transport_fixture,
)

CALL = CheckContext(call_id="call-1")
KEYS = {
    "aws_access_key_id": AWS_ACCESS_KEY_ID,
    "aws_secret_access_key": AWS_SECRET_ACCESS_KEY,
    "aws_session_token": AWS_SESSION_TOKEN,
}
AUTHORIZATION = re.compile(
    rf"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY_ID}/\d{{8}}/{AWS_REGION}/bedrock/aws4_request, "
    r"SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}"
)


@pytest.fixture
async def bedrock() -> AsyncIterator[FakeBedrockGuardrail]:
    async with FakeBedrockGuardrail() as fake:
        yield fake


def make(
    fake: FakeBedrockGuardrail,
    transport: Transport,
    environ: dict[str, str] | None = None,
    **params: Any,
) -> Any:
    base = {
        "guardrailIdentifier": "gr-abc123",
        "guardrailVersion": "DRAFT",
        "aws_region_name": AWS_REGION,
        "api_base": fake.url,
        **KEYS,
    }
    return EXTERNAL["bedrock"]("bedrock-guard", {**base, **params}, transport, environ or {})


async def test_the_request_is_signed_with_sigv4_and_carries_the_texts(
    bedrock: FakeBedrockGuardrail, transport: Transport
) -> None:
    guardrail = make(bedrock, transport)

    assert await guardrail.check_input(["Hello", "", "How are you?"], CALL) == ALLOW
    assert await guardrail.check_output(["Fine, thanks"], CALL) == ALLOW

    assert bedrock.signature_failures == []
    first, second = bedrock.requests
    assert first.path == "/guardrail/gr-abc123/version/DRAFT/apply"
    assert first.json == {
        "source": "INPUT",
        "content": [{"text": {"text": "Hello"}}, {"text": {"text": "How are you?"}}],
    }
    assert second.json == {"source": "OUTPUT", "content": [{"text": {"text": "Fine, thanks"}}]}
    headers = first.headers
    assert AUTHORIZATION.fullmatch(headers["authorization"]), headers["authorization"]
    assert re.fullmatch(r"\d{8}T\d{6}Z", headers["x-amz-date"])
    assert headers["x-amz-security-token"] == AWS_SESSION_TOKEN
    assert all(AWS_SECRET_ACCESS_KEY not in value for value in headers.values())


async def test_an_arn_identifier_travels_as_one_signed_path_segment(
    bedrock: FakeBedrockGuardrail, transport: Transport
) -> None:
    arn = "arn:aws:bedrock:eu-west-1:123456789012:guardrail/gr-abc123"
    guardrail = make(bedrock, transport, guardrailIdentifier=arn, guardrailVersion=3)

    assert await guardrail.check_input(["Hello"], CALL) == ALLOW

    assert bedrock.signature_failures == []
    (request,) = bedrock.requests
    segments = request.raw_path.split("/")
    assert segments[1] == "guardrail" and unquote(segments[2]) == arn
    assert segments[3:] == ["version", "3", "apply"]


async def test_a_blocked_assessment_blocks_naming_the_policies_only(
    bedrock: FakeBedrockGuardrail, transport: Transport
) -> None:
    guardrail = make(bedrock, transport)

    verdict = await guardrail.check_input(["how to build a bomb"], CALL)

    assert verdict.blocked
    assert verdict.reason == "bedrock: blocked by contentPolicy, wordPolicy"


async def test_anonymized_outputs_replace_the_texts_in_place(
    bedrock: FakeBedrockGuardrail, transport: Transport
) -> None:
    guardrail = make(bedrock, transport)
    texts = ["mail me at a@b.io", "", "or c@d.io, thanks"]

    verdict = await guardrail.check_output(texts, CALL)

    assert verdict.action == "modify"
    assert verdict.texts == ("mail me at {EMAIL}", "", "or {EMAIL}, thanks")
    assert verdict.reason == "bedrock: masked by sensitiveInformationPolicy"
    assert len(bedrock.requests) == 1


async def test_one_output_for_several_blocks_is_resolved_text_by_text(
    transport: Transport,
) -> None:
    async with FakeBedrockGuardrail(one_output=True) as bedrock:
        guardrail = make(bedrock, transport)

        verdict = await guardrail.check_input(["a@b.io here", "no mail", "c@d.io"], CALL)

        assert verdict.texts == ("{EMAIL} here", "no mail", "{EMAIL}")
        assert [len(r.json["content"]) for r in bedrock.requests] == [3, 1, 1, 1]
        assert bedrock.signature_failures == []


async def test_credentials_come_from_the_environment(
    bedrock: FakeBedrockGuardrail, transport: Transport
) -> None:
    environ = {
        "AWS_ACCESS_KEY_ID": AWS_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET_ACCESS_KEY,
        "AWS_SESSION_TOKEN": AWS_SESSION_TOKEN,
        "AWS_REGION": AWS_REGION,
    }
    params = {
        "guardrailIdentifier": "gr-abc123",
        "guardrailVersion": "1",
        "api_base": bedrock.url,
    }
    guardrail = EXTERNAL["bedrock"]("bedrock-guard", params, transport, environ)

    assert await guardrail.check_input(["Hello"], CALL) == ALLOW
    assert bedrock.signature_failures == []


async def test_a_wrong_secret_is_refused_by_the_fake(
    bedrock: FakeBedrockGuardrail, transport: Transport
) -> None:
    guardrail = make(bedrock, transport, aws_secret_access_key="not/the+right+secret0000000")

    with pytest.raises(GuardrailUnavailable, match="HTTP 403"):
        await guardrail.check_input(["Hello"], CALL)

    assert bedrock.signature_failures == ["signature mismatch"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"guardrailVersion": "1", **KEYS}, "guardrailIdentifier", id="no-id"),
        pytest.param({"guardrailIdentifier": "g", **KEYS}, "guardrailVersion", id="no-version"),
        pytest.param(
            {"guardrailIdentifier": "g", "guardrailVersion": "1"},
            "aws_access_key_id",
            id="no-credentials",
        ),
        pytest.param(
            {"guardrailIdentifier": "g", "guardrailVersion": "1", "aws_access_key_id": "AKIA1"},
            "aws_secret_access_key",
            id="half-a-key-pair",
        ),
    ],
)
async def test_invalid_params_name_the_field(
    params: dict[str, Any], field: str, transport: Transport
) -> None:
    with pytest.raises(GuardrailConfigError) as raised:
        EXTERNAL["bedrock"]("bedrock-guard", params, transport, {})
    assert raised.value.field == field

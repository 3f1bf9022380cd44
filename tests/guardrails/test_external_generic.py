"""The Generic Guardrail API (LiteLLM's contract): request shape and the three actions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from proxy.guardrails.base import ALLOW, CheckContext, GuardrailUnavailable
from proxy.guardrails.errors import GuardrailConfigError
from proxy.guardrails.external import EXTERNAL
from proxy.guardrails.external.generic import GenericGuardrail
from proxy.upstream.transport import Transport
from tests.guardrails.external_fakes import FakeGenericGuardrail, transport_fixture  # noqa: F401

CALL = CheckContext(
    call_id="call-7", model="gpt-test", user="end-user-1", key_alias="ci-key", team_id="team-a"
)


@pytest.fixture
async def service() -> AsyncIterator[FakeGenericGuardrail]:
    async with FakeGenericGuardrail() as fake:
        yield fake


def make(service: FakeGenericGuardrail, transport: Transport, **params: object) -> GenericGuardrail:
    guardrail = EXTERNAL["generic_guardrail_api"](
        "house", {"api_base": service.url, **params}, transport, {}
    )
    assert isinstance(guardrail, GenericGuardrail)
    return guardrail


async def test_the_request_follows_the_contract(
    service: FakeGenericGuardrail, transport: Transport
) -> None:
    guardrail = make(
        service,
        transport,
        api_key="house-key",
        headers={"X-Tenant": "acme"},
        additional_provider_specific_params={"threshold": 0.8},
    )

    assert await guardrail.check_input(["Hello", "there"], CALL) == ALLOW
    assert await guardrail.check_output(["Hi!"], CheckContext(call_id="call-7")) == ALLOW

    first, second = service.requests
    assert first.path == "/beta/litellm_basic_guardrail_api"
    assert first.headers["authorization"] == "Bearer house-key"
    assert first.headers["x-tenant"] == "acme"
    assert first.headers["content-type"] == "application/json"
    assert first.json == {
        "texts": ["Hello", "there"],
        "input_type": "request",
        "litellm_call_id": "call-7",
        "model": "gpt-test",
        "request_data": {
            "user_api_key_alias": "ci-key",
            "user_api_key_team_id": "team-a",
            "user_api_key_end_user_id": "end-user-1",
        },
        "additional_provider_specific_params": {"threshold": 0.8},
    }
    assert second.json["input_type"] == "response"
    assert second.json["request_data"] == {}


async def test_blocked_blocks_with_the_services_reason(
    service: FakeGenericGuardrail, transport: Transport
) -> None:
    verdict = await make(service, transport).check_input(["a forbidden question"], CALL)

    assert verdict.blocked
    assert verdict.reason == "forbidden topic"


async def test_intervened_replaces_the_texts(
    service: FakeGenericGuardrail, transport: Transport
) -> None:
    verdict = await make(service, transport).check_output(["the secret is 42", "ok"], CALL)

    assert verdict.action == "modify"
    assert verdict.texts == ("the [REDACTED] is 42", "ok")


async def test_the_simple_spelling_is_understood(
    service: FakeGenericGuardrail, transport: Transport
) -> None:
    verdict = await make(service, transport).check_input(["simple-block"], CALL)

    assert verdict.blocked
    assert verdict.reason == "simple spelling"


async def test_replacement_texts_must_match_the_texts_sent(
    service: FakeGenericGuardrail, transport: Transport
) -> None:
    with pytest.raises(GuardrailUnavailable, match="number of texts"):
        await make(service, transport).check_input(["miscount", "a", "b"], CALL)


async def test_a_base_that_already_names_the_path_is_used_as_is(
    service: FakeGenericGuardrail, transport: Transport
) -> None:
    guardrail = EXTERNAL["generic_guardrail_api"](
        "house",
        {},
        transport,
        {"GENERIC_GUARDRAIL_API_BASE": f"{service.url}/beta/litellm_basic_guardrail_api"},
    )

    assert await guardrail.check_input(["Hello"], CALL) == ALLOW
    assert service.requests[0].path == "/beta/litellm_basic_guardrail_api"


async def test_invalid_params_name_the_field(transport: Transport) -> None:
    with pytest.raises(GuardrailConfigError) as no_base:
        EXTERNAL["generic_guardrail_api"]("house", {}, transport, {})
    with pytest.raises(GuardrailConfigError) as bad_headers:
        EXTERNAL["generic_guardrail_api"](
            "house", {"api_base": "http://h", "headers": {"x": 1}}, transport, {}
        )

    assert no_base.value.field == "api_base"
    assert bad_headers.value.field == "headers"

"""Every external engine fails closed when its service errors, hangs or answers garbage —
and allows, with a warning naming the guardrail (never the text), when ``fail_open``."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from proxy.guardrails.base import ALLOW, CheckContext, GuardrailUnavailable
from proxy.guardrails.external import EXTERNAL
from proxy.upstream.transport import Transport
from tests.guardrails.external_fakes import (  # noqa: F401
    AWS_ACCESS_KEY_ID,
    AWS_REGION,
    AWS_SECRET_ACCESS_KEY,
    Broken,
    transport_fixture,
)

TEXT = "my card is 4111 1111 1111 1111, call John Smith"
TIMEOUT = 0.3


def _params(kind: str, url: str) -> dict[str, Any]:
    if kind == "presidio":
        return {"presidio_analyzer_api_base": url, "presidio_anonymizer_api_base": url}
    if kind == "lakera_v2":
        return {"api_base": url, "api_key": "lk-test"}
    if kind == "openai_moderation":
        return {"api_base": f"{url}/v1", "api_key": "sk-test"}
    if kind == "bedrock":
        return {
            "api_base": url,
            "guardrailIdentifier": "gr-1",
            "guardrailVersion": "1",
            "aws_region_name": AWS_REGION,
            "aws_access_key_id": AWS_ACCESS_KEY_ID,
            "aws_secret_access_key": AWS_SECRET_ACCESS_KEY,
        }
    return {"api_base": url}


def test_the_registry_names_every_engine() -> None:
    assert sorted(EXTERNAL) == [
        "bedrock",
        "generic_guardrail_api",
        "lakera_v2",
        "openai_moderation",
        "presidio",
    ]


@pytest.mark.parametrize("kind", sorted(EXTERNAL))
@pytest.mark.parametrize("mode", ["500", "garbage", "wrong-shape", "hang"])
async def test_an_engine_that_cannot_answer_fails_closed(
    kind: str, mode: str, transport: Transport
) -> None:
    async with Broken(mode) as broken:
        params = {**_params(kind, broken.url), "timeout": TIMEOUT}
        guardrail = EXTERNAL[kind]("guard-x", params, transport, {})
        started = time.monotonic()

        with pytest.raises(GuardrailUnavailable) as raised:
            await guardrail.check_input([TEXT], CheckContext(call_id="c1"))

        assert time.monotonic() - started < TIMEOUT + 1.0
        assert broken.requests, "the engine was never called"
        assert "guard-x" in str(raised.value)
        assert "4111" not in str(raised.value)


@pytest.mark.parametrize("kind", sorted(EXTERNAL))
@pytest.mark.parametrize("mode", ["500", "garbage", "hang"])
async def test_fail_open_allows_and_warns_without_the_text(
    kind: str, mode: str, transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    async with Broken(mode) as broken:
        params = {**_params(kind, broken.url), "timeout": TIMEOUT, "fail_open": True}
        guardrail = EXTERNAL[kind]("guard-open", params, transport, {})

        with caplog.at_level(logging.WARNING, logger="tollway.guardrails"):
            verdict = await guardrail.check_output([TEXT], CheckContext(call_id="c1"))

        assert verdict == ALLOW
        (warning,) = [r for r in caplog.records if r.name == "tollway.guardrails"]
        assert warning.levelno == logging.WARNING
        assert "guard-open" in warning.getMessage()
        assert "4111" not in warning.getMessage() and "John" not in warning.getMessage()


async def test_an_unreachable_engine_fails_closed(transport: Transport) -> None:
    async with Broken("500") as broken:
        url = broken.url
    # The server is closed: nothing listens on its port any more.
    guardrail = EXTERNAL["lakera_v2"]("guard-x", _params("lakera_v2", url), transport, {})

    with pytest.raises(GuardrailUnavailable, match="unreachable"):
        await guardrail.check_input([TEXT], CheckContext())

"""Guardrails in a real gateway process: configured the LiteLLM way, enforced end to end
through the OpenAI SDK's wire, and bad configuration stopped before the socket is bound."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, free_port, gateway_config, start_gateway
from tests.fakes.openai_upstream import FakeOpenAI

GUARDRAILS = """\
guardrails:
  - guardrail_name: pii
    litellm_params:
      guardrail: litellm_content_filter
      mode: [pre_call, post_call]
      default_on: true
      patterns:
        - pattern_type: prebuilt
          pattern_name: credit_card
          action: BLOCK
        - pattern_type: regex
          pattern: '\\bfox\\b'
          name: animal
          action: MASK
  - guardrail_name: house-rules
    litellm_params:
      guardrail: house_rules.NoShouting
      mode: pre_call
"""

CUSTOM = '''\
from proxy.guardrails.base import ALLOW, block


class NoShouting:
    """A custom guardrail loaded by import path from the config file's folder."""

    def __init__(self, name, params):
        self.name = name

    async def check_input(self, texts, context):
        if any(text.isupper() and len(text) > 3 for text in texts):
            return block("no shouting")
        return ALLOW

    async def check_output(self, texts, context):
        return ALLOW

    def stream_checker(self, context):
        return None
'''


@pytest.fixture(scope="module")
def guarded(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("guarded")
    (tmp / "house_rules.py").write_text(CUSTOM)
    proc = start_gateway(tmp, gateway_config(fake_openai, free_port()) + GUARDRAILS)
    yield proc
    proc.stop()


def post(proc: GatewayProcess, content: str, **extra: object) -> httpx.Response:
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(
        f"{proc.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    )


def test_a_card_number_is_refused_with_a_400_naming_the_guardrail(guarded: GatewayProcess) -> None:
    response = post(guarded, "charge 4111 1111 1111 1111 please")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("guardrail_error", "pii")
    assert "4111" not in response.text
    assert response.headers["x-litellm-applied-guardrails"] == "pii"


def test_the_reply_is_masked_on_json_and_on_streams(guarded: GatewayProcess) -> None:
    reply = post(guarded, "say the sentence")
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == (
        "The quick brown [ANIMAL_REDACTED] jumps over the lazy dog"
    )
    streamed = post(guarded, "say the sentence", stream=True)
    assert streamed.status_code == 200
    assert "fox" not in streamed.text
    assert "[ANIMAL_REDACTED]" in streamed.text
    assert streamed.text.rstrip().endswith("data: [DONE]")


def test_a_custom_guardrail_is_loaded_from_the_config_folder(guarded: GatewayProcess) -> None:
    response = post(guarded, "HELLO THERE", guardrails=["house-rules"])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "house-rules"
    assert "no shouting" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("guardrail", "field", "line"),
    [
        pytest.param(
            "guardrail: litellm_content_filter\n      patterns:\n"
            "        - pattern_type: regex\n          pattern: '(unclosed'\n"
            "          action: BLOCK",
            "guardrails[0].litellm_params.patterns[0].pattern",
            "line 9",
            id="bad-regex",
        ),
        pytest.param(
            "guardrail: litellm_content_filter\n      patterns:\n"
            "        - pattern_type: prebuilt\n          pattern_name: us_sssn\n"
            "          action: BLOCK",
            "guardrails[0].litellm_params.patterns[0].pattern_name",
            "line 9",
            id="unknown-prebuilt",
        ),
        pytest.param(
            "guardrail: no_such_kind",
            "guardrails[0].litellm_params.guardrail",
            "line 6",
            id="unknown-kind",
        ),
        pytest.param(
            "guardrail: missing_module.Guard",
            "guardrails[0].litellm_params.guardrail",
            "line 6",
            id="import-fails",
        ),
    ],
)
def test_a_bad_guardrail_stops_start_up_naming_field_and_line(
    tmp_path: Path, guardrail: str, field: str, line: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list: []\nguardrails:\n  - guardrail_name: g\n    litellm_params:\n"
        "      mode: pre_call\n      " + textwrap.dedent(guardrail) + "\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--config", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert field in result.stderr
    assert line in result.stderr
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stdout

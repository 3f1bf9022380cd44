"""A client-supplied upstream address or credential (``api_base``, ``base_url``, ``api_key`` in
the body) is refused with a 400 naming the field, in every inbound format, and never reaches
an upstream; the same words elsewhere in a body (a message, a tool's schema) are no trigger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.errors import InvalidRequest
from proxy.request import CLIENT_CREDENTIAL_FIELDS, refuse_client_credentials
from tests.inprocess import InProcessGateway, bearer
from tests.pipeline.test_inprocess import COMPLETION
from tests.providers.scripted import Canned, ScriptedTransport

CONFIG = """\
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-up
      api_base: http://upstream.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
"""

EMBEDDING = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
    "model": "gpt-up",
    "usage": {"prompt_tokens": 1, "total_tokens": 1},
}

# (path, a valid body for that inbound format)
FORMATS = [
    pytest.param(
        "/v1/chat/completions",
        {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]},
        id="openai-chat",
    ),
    pytest.param("/v1/completions", {"model": "gpt", "prompt": "hi"}, id="openai-completions"),
    pytest.param("/v1/embeddings", {"model": "gpt", "input": "hi"}, id="openai-embeddings"),
    pytest.param(
        "/v1/messages",
        {"model": "gpt", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
        id="anthropic-messages",
    ),
    pytest.param("/v1/responses", {"model": "gpt", "input": "hi"}, id="responses"),
]


def error_of(body: dict[str, Any]) -> tuple[str, str]:
    """(type, message) of an error body, in the contract's or Anthropic's shape."""
    error = body["error"]
    return error["type"], error["message"]


@pytest.mark.parametrize("field", CLIENT_CREDENTIAL_FIELDS)
@pytest.mark.parametrize(("path", "body"), FORMATS)
async def test_a_client_side_credential_is_refused_and_never_forwarded(
    tmp_path: Path, path: str, body: dict[str, Any], field: str
) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        resp = await client.post(
            path, json={**body, field: "http://169.254.169.254/v1"}, headers=bearer()
        )
        assert resp.status_code == 400, resp.text
        kind, message = error_of(resp.json())
        assert kind == "invalid_request_error"
        assert message.startswith(f"client-side {field} is not allowed")
        if path != "/v1/messages":  # Anthropic's error shape has no param or code
            assert resp.json()["error"]["param"] == field
        assert upstream.sent == []


@pytest.mark.parametrize(("path", "body"), FORMATS)
async def test_an_escaped_or_null_key_is_refused_too(
    tmp_path: Path, path: str, body: dict[str, Any]
) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        # ``"api\\u005fbase"`` is the JSON key ``api_base``; a null value is still the field.
        raw = orjson.dumps(body)[:-1] + rb',"api\u005fbase":"http://evil.test","base_url":null}'
        resp = await client.post(
            path, content=raw, headers={**bearer(), "content-type": "application/json"}
        )
        assert resp.status_code == 400, resp.text
        assert "client-side api_base is not allowed" in resp.text
        raw = orjson.dumps(body)[:-1] + b',"base_url":null}'
        resp = await client.post(
            path, content=raw, headers={**bearer(), "content-type": "application/json"}
        )
        assert resp.status_code == 400, resp.text
        assert "client-side base_url is not allowed" in resp.text
        assert upstream.sent == []


@pytest.mark.parametrize(("path", "body"), FORMATS)
async def test_the_words_inside_a_body_are_no_trigger(
    tmp_path: Path, path: str, body: dict[str, Any]
) -> None:
    reply = EMBEDDING if path == "/v1/embeddings" else COMPLETION
    upstream = ScriptedTransport(Canned.json(reply))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        text = 'api_base "api_key" base_url \\u00e9 é'
        sent = {**body, "metadata": {"api_base": "x"}}
        for name in ("messages", "prompt", "input"):
            if name in sent and isinstance(sent[name], str):
                sent[name] = "api_base"
            elif name in sent:
                sent[name] = [{"role": "user", "content": text}]
        resp = await client.post(path, json=sent, headers=bearer())
        assert resp.status_code == 200, resp.text
        assert len(upstream.sent) == 1


def test_only_top_level_keys_count_escaped_or_not() -> None:
    refuse_client_credentials(b'{"model":"m","input":"hi"}')
    refuse_client_credentials(b'{"model":"m","tools":[{"properties":{"api_key":{}}}]}')
    refuse_client_credentials(b'{"model":"m","input":"\\u00e9 \\"api_base\\""}')
    with pytest.raises(InvalidRequest, match="client-side api_key is not allowed"):
        refuse_client_credentials(b'{"model":"m","\\u0061pi_key":"sk-x"}')
    with pytest.raises(InvalidRequest, match="client-side base_url is not allowed"):
        refuse_client_credentials(b'{"model":"m","base_url":null}')

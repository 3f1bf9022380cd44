"""Guardrails in the pipeline, in process: where each mode runs, on every inbound format,
what the client gets, what is billed and logged."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.upstream.transport import Deadlines
from tests.inprocess import InProcessGateway, bearer
from tests.pipeline.test_inprocess import COMPLETION, chat, chunk
from tests.providers.scripted import Canned, ScriptedTransport

MODELS = """\
model_list:
  - model_name: gpt-x
    litellm_params:
      model: openai/gpt-x-upstream
      api_base: http://upstream.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
"""

GUARDRAILS = """\
guardrails:
  - guardrail_name: no-ssn
    litellm_params:
      guardrail: litellm_content_filter
      mode: {mode}
      default_on: {default_on}
      patterns:
        - pattern_type: prebuilt
          pattern_name: us_ssn
          action: BLOCK
        - pattern_type: prebuilt
          pattern_name: email
          action: MASK
  - guardrail_name: words
    litellm_params:
      guardrail: litellm_content_filter
      mode: pre_call
      blocked_words:
        - keyword: project-falcon
          action: BLOCK
"""

SSN = "123-45-6789"
EMAIL = "jane.doe@example.com"


def config(mode: str = "[pre_call, post_call]", default_on: str = "true") -> str:
    return MODELS + GUARDRAILS.format(mode=mode, default_on=default_on)


def reply_saying(text: str) -> Canned:
    body = {**COMPLETION, "choices": [{**COMPLETION["choices"][0]}]}
    body["choices"][0] = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": "stop",
    }
    return Canned.json(body)


def stream_saying(*pieces: str) -> Canned:
    data = chunk({"role": "assistant", "content": ""})
    for piece in pieces:
        data += chunk({"content": piece})
    data += chunk({}, "stop")
    data += (
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}\n\n'
        b"data: [DONE]\n\n"
    )
    return Canned(chunks=[data], headers={"content-type": "text/event-stream"})


def contents(text: str) -> str:
    out = []
    for line in text.splitlines():
        if line.startswith("data: {"):
            for choice in orjson.loads(line[6:]).get("choices", []):
                out.append(choice.get("delta", {}).get("content") or "")
    return "".join(out)


async def test_a_pre_call_block_reaches_no_upstream_and_costs_nothing(tmp_path: Path) -> None:
    upstream = ScriptedTransport()
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat(f"my ssn is {SSN}"), headers=bearer()
        )
        await gateway.state.flusher.flush()
        logs = (await client.get("/spend/logs", headers=bearer())).json()
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "guardrail_error"
    assert error["code"] == "no-ssn"
    assert "us_ssn" in error["message"] and SSN not in error["message"]
    assert SSN not in response.text
    assert response.headers["x-tollway-applied-guardrails"] == "no-ssn"
    assert response.headers["x-litellm-applied-guardrails"] == "no-ssn"
    assert upstream.sent == []
    assert logs[0]["spend"] == 0
    assert logs[0]["status_code"] == 400
    assert logs[0]["guardrails"][0]["name"] == "no-ssn"
    assert logs[0]["guardrails"][0]["action"] == "block"
    assert gateway.state.ledger.outstanding() == (0, 0)


async def test_a_pre_call_mask_changes_what_the_upstream_receives(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat(f"write to {EMAIL} today"), headers=bearer()
        )
    assert response.status_code == 200
    sent = upstream.last.json
    assert sent["messages"][0]["content"] == "write to [EMAIL_REDACTED] today"
    assert EMAIL not in upstream.last.raw.decode()
    assert sent["model"] == "gpt-x-upstream"


async def test_a_post_call_mask_applies_to_a_pass_through_reply(tmp_path: Path) -> None:
    upstream = ScriptedTransport(reply_saying(f"mail {EMAIL} please"))
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        response = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
    assert response.json()["choices"][0]["message"]["content"] == "mail [EMAIL_REDACTED] please"
    assert EMAIL not in response.text


async def test_an_email_split_over_three_chunks_is_masked_before_the_client_sees_it(
    tmp_path: Path,
) -> None:
    upstream = ScriptedTransport(stream_saying("write to jane.d", "oe@exam", "ple.com now"))
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat(stream=True), headers=bearer()
        )
    assert contents(response.text) == "write to [EMAIL_REDACTED] now"
    assert "jane" not in response.text and "exam" not in response.text
    assert response.text.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize(
    ("path", "body", "ending"),
    [
        pytest.param("/v1/chat/completions", chat(stream=True), '"guardrail_error"', id="openai"),
        pytest.param(
            "/v1/messages",
            {
                "model": "gpt-x",
                "max_tokens": 20,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
            "event: error",
            id="anthropic",
        ),
        pytest.param(
            "/v1/responses",
            {"model": "gpt-x", "input": "hi", "stream": True},
            "response.failed",
            id="responses",
        ),
    ],
)
async def test_a_blocked_stream_ends_in_band_in_the_clients_format(
    tmp_path: Path, path: str, body: dict[str, Any], ending: str
) -> None:
    upstream = ScriptedTransport(stream_saying("the number is ", SSN[:5], SSN[5:], " ok"))
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        response = await client.post(path, json=body, headers=bearer())
        assert gateway.state.ledger.outstanding() == (0, 0)
    assert response.status_code == 200
    assert SSN not in response.text and SSN[:5] not in response.text
    assert ending in response.text
    assert "[DONE]" not in response.text


async def test_a_key_imposed_guardrail_runs_and_a_request_cannot_drop_it(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(
        tmp_path, config(mode="pre_call", default_on="false"), transport=upstream
    )
    async with gateway.running() as client:
        made = await client.post("/key/generate", json={"guardrails": ["no-ssn"]}, headers=bearer())
        key = made.json()["key"]
        blocked = await client.post(
            "/v1/chat/completions",
            json=chat(f"ssn {SSN}", guardrails=[]),
            headers=bearer(key),
        )
        free = await client.post("/v1/chat/completions", json=chat(f"ssn {SSN}"), headers=bearer())
    assert blocked.status_code == 400
    assert blocked.json()["error"]["code"] == "no-ssn"
    # The master key's call has no guardrail imposed and none on by default.
    assert free.status_code == 200


async def test_a_request_may_add_a_guardrail_by_name(tmp_path: Path) -> None:
    upstream = ScriptedTransport()
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        response = await client.post(
            "/v1/chat/completions",
            json=chat("about project-falcon", metadata={"guardrails": ["words"]}),
            headers=bearer(),
        )
        unknown = await client.post(
            "/v1/chat/completions", json=chat("x", guardrails=["nope"]), headers=bearer()
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "words"
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "guardrails"


class HangingUpstream(ScriptedTransport):
    """Answers after ``delay`` seconds; records whether it was cancelled first."""

    def __init__(self, delay: float) -> None:
        super().__init__(Canned.json(COMPLETION))
        self.delay = delay
        self.cancelled = False

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadlines: Deadlines
    ) -> Any:
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return await super().post(url, body, headers, deadlines)


async def test_a_during_call_block_cancels_the_upstream_call(tmp_path: Path) -> None:
    upstream = HangingUpstream(delay=30)
    gateway = await InProcessGateway.build(tmp_path, config(mode="during_call"), transport=upstream)
    async with gateway.running() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat(f"ssn {SSN}"), headers=bearer()
        )
        assert gateway.state.ledger.outstanding() == (0, 0)
    assert response.status_code == 400
    assert upstream.cancelled


async def test_a_during_call_pass_holds_the_reply_until_it_passes(tmp_path: Path) -> None:
    upstream = HangingUpstream(delay=0)
    gateway = await InProcessGateway.build(tmp_path, config(mode="during_call"), transport=upstream)
    async with gateway.running() as client:
        response = await client.post("/v1/chat/completions", json=chat("hello"), headers=bearer())
    assert response.status_code == 200
    assert response.headers["x-tollway-applied-guardrails"] == "no-ssn"


async def test_guardrails_are_listed_without_secrets_and_can_be_applied(tmp_path: Path) -> None:
    gateway = await InProcessGateway.build(tmp_path, config(), transport=ScriptedTransport())
    async with gateway.running() as client:
        listing = await client.get("/guardrails/list", headers=bearer())
        applied = await client.post(
            "/guardrails/apply_guardrail",
            json={"guardrail_name": "no-ssn", "text": f"reach me at {EMAIL}"},
            headers=bearer(),
        )
        blocked = await client.post(
            "/guardrails/apply_guardrail",
            json={"guardrail_name": "no-ssn", "text": f"ssn {SSN}"},
            headers=bearer(),
        )
    names = [g["guardrail_name"] for g in listing.json()["guardrails"]]
    assert names == ["no-ssn", "words"]
    assert "patterns" not in listing.text
    assert applied.json() == {"response_text": "reach me at [EMAIL_REDACTED]"}
    assert blocked.status_code == 400
    assert blocked.json()["error"]["type"] == "guardrail_error"


async def test_an_engine_that_errors_fails_closed_unless_told_otherwise(tmp_path: Path) -> None:
    engine = """\
guardrails:
  - guardrail_name: pii
    litellm_params:
      guardrail: presidio
      mode: pre_call
      default_on: true
      presidio_analyzer_api_base: http://presidio.test
      presidio_anonymizer_api_base: http://presidio.test
      timeout: 1
      fail_open: {fail_open}
"""
    broken = Canned.json({"error": "analyzer crashed"}, status=500)
    for fail_open, status in (("false", 503), ("true", 200)):
        # The engine's calls and the model's share the gateway's transport: the analyzer
        # answers 500 first, then (only if the call goes on) the model answers.
        upstream = ScriptedTransport(broken, Canned.json(COMPLETION))
        folder = tmp_path / fail_open
        await asyncio.to_thread(folder.mkdir)
        gateway = await InProcessGateway.build(
            folder, MODELS + engine.format(fail_open=fail_open), transport=upstream
        )
        async with gateway.running() as client:
            response = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
        assert response.status_code == status, response.text
        assert upstream.sent[0].url == "http://presidio.test/analyze"
        if status == 503:
            assert response.json()["error"]["type"] == "guardrail_error"
            assert len(upstream.sent) == 1
        else:
            assert upstream.sent[-1].url == "http://upstream.test/v1/chat/completions"


async def test_a_key_or_team_may_only_impose_guardrails_that_exist(tmp_path: Path) -> None:
    gateway = await InProcessGateway.build(tmp_path, config(), transport=ScriptedTransport())
    async with gateway.running() as client:
        key = await client.post("/key/generate", json={"guardrails": ["nope"]}, headers=bearer())
        team = await client.post("/team/new", json={"guardrails": ["nope"]}, headers=bearer())
        good = await client.post("/team/new", json={"guardrails": ["words"]}, headers=bearer())
    for response in (key, team):
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "guardrails"
    assert good.status_code == 200
    assert good.json()["metadata"]["guardrails"] == ["words"]


EMBEDDING_REPLY = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
    "model": "gpt-x-upstream",
    "usage": {"prompt_tokens": 3, "total_tokens": 3},
}


async def test_embeddings_and_completions_inputs_are_checked(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(EMBEDDING_REPLY), Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    async with gateway.running() as client:
        embedded = await client.post(
            "/v1/embeddings", json={"model": "gpt-x", "input": [f"mail {EMAIL}"]}, headers=bearer()
        )
        completed = await client.post(
            "/v1/completions", json={"model": "gpt-x", "prompt": f"to {EMAIL}"}, headers=bearer()
        )
        blocked = await client.post(
            "/v1/embeddings", json={"model": "gpt-x", "input": f"ssn {SSN}"}, headers=bearer()
        )
    assert embedded.status_code == 200
    assert upstream.sent[0].json["input"] == ["mail [EMAIL_REDACTED]"]
    assert completed.status_code == 200
    assert upstream.sent[1].json["prompt"] == "to [EMAIL_REDACTED]"
    assert blocked.status_code == 400
    assert len(upstream.sent) == 2


async def test_a_messages_client_gets_the_block_in_anthropics_shape(tmp_path: Path) -> None:
    upstream = ScriptedTransport()
    gateway = await InProcessGateway.build(tmp_path, config(), transport=upstream)
    request = {
        "model": "gpt-x",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": f"ssn {SSN}"}],
    }
    async with gateway.running() as client:
        response = await client.post("/v1/messages", json=request, headers=bearer())
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "no-ssn" in body["error"]["message"] and SSN not in response.text
    assert upstream.sent == []

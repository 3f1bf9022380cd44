"""Provider-native routes: Gemini, Cohere and Bedrock clients, and Responses upstreams.

A client speaking a provider's own API is served by any deployment: its bytes pass through
untouched to a deployment of the same provider, and are translated through the common model
for any other; a ``<provider>/responses/<model>`` deployment is called through the Responses
API (a ``/v1/responses`` client's bytes pass straight through to it).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from proxy.upstream.eventstream import EventStreamDecoder
from tests.inprocess import InProcessGateway, bearer
from tests.pipeline.test_inprocess import COMPLETION, STREAM
from tests.providers.scripted import Canned, ScriptedTransport

CONFIG = """\
model_list:
  - model_name: gpt-x
    litellm_params:
      model: openai/gpt-x-upstream
      api_base: http://upstream.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
  - model_name: gemini-x
    litellm_params:
      model: gemini/gemini-2.0-flash
      api_base: http://gemini.test
      api_key: os.environ/TEST_UPSTREAM_KEY
  - model_name: responses-x
    litellm_params:
      model: openai/responses/gpt-4.1
      api_base: http://upstream.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
"""

GEMINI_REPLY = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": "hi from gemini"}]},
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7},
    "modelVersion": "gemini-2.0-flash",
}
GEMINI_REQUEST = {
    "contents": [{"role": "user", "parts": [{"text": "hello"}]}],
    "generationConfig": {"temperature": 0.2},
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
}
RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "model": "gpt-4.1",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "hi from responses", "annotations": []}],
        }
    ],
    "usage": {"input_tokens": 6, "output_tokens": 4, "total_tokens": 10},
}


def gemini_key() -> dict[str, str]:
    return {"x-goog-api-key": bearer()["authorization"].removeprefix("Bearer ")}


async def test_a_gemini_client_is_passed_through_to_a_gemini_deployment(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(GEMINI_REPLY))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    body = orjson.dumps(GEMINI_REQUEST)
    async with gateway.running() as client:
        response = await client.post(
            "/v1beta/models/gemini-x:generateContent", content=body, headers=gemini_key()
        )
    assert response.status_code == 200, response.text
    assert response.content == orjson.dumps(GEMINI_REPLY)
    sent = upstream.last
    # The client's bytes, safetySettings included: nothing the common model lacks is lost.
    assert sent.raw == body
    assert sent.url == "http://gemini.test/v1beta/models/gemini-2.0-flash:generateContent"
    assert response.headers["x-tollway-model"] == "gemini/gemini-2.0-flash"


async def test_a_gemini_client_is_translated_for_an_openai_deployment(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        response = await client.post(
            "/gemini/v1beta/models/gpt-x:generateContent", json=GEMINI_REQUEST, headers=gemini_key()
        )
    assert response.status_code == 200, response.text
    assert upstream.last.json["messages"] == [{"role": "user", "content": "hello"}]
    reply = response.json()
    assert reply["candidates"][0]["content"]["parts"] == [{"text": "hi there"}]
    assert reply["usageMetadata"]["promptTokenCount"] == 10


async def test_a_gemini_stream_from_an_openai_deployment(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.stream(STREAM, piece=7))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    async with gateway.running() as client:
        response = await client.post(
            "/v1beta/models/gpt-x:streamGenerateContent?alt=sse",
            json=GEMINI_REQUEST,
            headers=gemini_key(),
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = [
        orjson.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    text = "".join(
        part.get("text", "")
        for chunk in chunks
        for part in chunk["candidates"][0]["content"]["parts"]
    )
    assert text == "Hello"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 2


async def test_a_cohere_client_is_translated_for_an_openai_deployment(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    request = {"model": "gpt-x", "messages": [{"role": "user", "content": "hello"}]}
    async with gateway.running() as client:
        response = await client.post("/v2/chat", json=request, headers=bearer())
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["message"]["content"] == [{"type": "text", "text": "hi there"}]
    assert reply["finish_reason"] == "COMPLETE"


async def test_a_bedrock_client_gets_an_aws_event_stream(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.stream(STREAM, piece=5))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    request = {"messages": [{"role": "user", "content": [{"text": "hello"}]}]}
    async with gateway.running() as client:
        response = await client.post(
            "/bedrock/model/gpt-x/converse-stream", json=request, headers=bearer()
        )
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    messages = EventStreamDecoder().feed(response.content)
    kinds = [m.header(":event-type") for m in messages]
    assert kinds[0] == "messageStart" and "messageStop" in kinds and kinds[-1] == "metadata"
    text = "".join(
        orjson.loads(m.payload)["delta"].get("text", "")
        for m in messages
        if m.header(":event-type") == "contentBlockDelta"
    )
    assert text == "Hello"


async def test_a_bedrock_error_names_its_exception_type(tmp_path: Path) -> None:
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=ScriptedTransport())
    async with gateway.running() as client:
        response = await client.post(
            "/model/no-such-model/converse",
            json={"messages": [{"role": "user", "content": [{"text": "x"}]}]},
            headers=bearer(),
        )
    assert response.status_code == 404
    assert response.headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert set(response.json()) == {"message"}


async def test_a_responses_client_is_passed_through_to_a_responses_deployment(
    tmp_path: Path,
) -> None:
    upstream = ScriptedTransport(Canned.json(RESPONSE))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    body = {"model": "responses-x", "input": "hello", "store": False}
    async with gateway.running() as client:
        response = await client.post("/v1/responses", json=body, headers=bearer())
    assert response.status_code == 200, response.text
    assert response.json() == RESPONSE
    assert upstream.last.url == "http://upstream.test/v1/responses"
    assert upstream.last.json == {**body, "model": "gpt-4.1"}
    assert float(response.headers["x-tollway-response-cost"]) >= 0


async def test_a_chat_client_reaches_a_responses_deployment_through_its_api(
    tmp_path: Path,
) -> None:
    upstream = ScriptedTransport(Canned.json(RESPONSE))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream)
    request = {
        "model": "responses-x",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    }
    async with gateway.running() as client:
        response = await client.post("/v1/chat/completions", json=request, headers=bearer())
    assert response.status_code == 200, response.text
    sent = upstream.last.json
    assert upstream.last.url == "http://upstream.test/v1/responses"
    assert sent["instructions"] == "be brief"
    assert sent["model"] == "gpt-4.1"
    reply = response.json()
    assert reply["choices"][0]["message"]["content"] == "hi from responses"
    assert reply["usage"]["prompt_tokens"] == 6

"""A custom provider (``litellm_settings.custom_provider_map``): a Python class loaded by
import path serves a ``provider/`` prefix; driven here with the OpenAI SDK, streaming too."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.inprocess import InProcessGateway, bearer

HANDLER = '''
from proxy.model import ChatReply, Choice, Finish, Message, Start, TextDelta, UsageReport, usage


class EchoLLM:
    """Answers "echo: <last message>"; streams it word by word when asked to."""

    async def chat(self, request):
        text = "echo: " + str(request.messages[-1].content)
        if "boom" in text:
            raise RuntimeError("secret-internal-detail")
        if request.stream:
            return self._stream(request.model, text)
        return ChatReply(
            id="echo-1",
            model=request.model,
            choices=[Choice(Message(role="assistant", content=text))],
            usage=usage(10, 3),
        )

    async def _stream(self, model, text):
        yield Start(id="echo-2", model=model)
        words = text.split(" ")
        for i, word in enumerate(words):
            yield TextDelta(word if i == 0 else " " + word)
        yield Finish("stop")
        yield UsageReport(usage(10, len(words)))


class GeneratorLLM:
    """``chat`` itself an async generator: a client that does not stream gets a reply."""

    async def chat(self, request):
        yield Start(id="gen-1", model=request.model)
        yield TextDelta("all ")
        yield TextDelta("at once")
        yield Finish("stop")
        yield UsageReport(usage(4, 2))
'''

CONFIG = """\
model_list:
  - model_name: echo
    litellm_params:
      model: echo-llm/echo-1
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: gen
    litellm_params:
      model: gen-llm/g
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
litellm_settings:
  custom_provider_map:
    - {{provider: echo-llm, custom_handler: {module}.EchoLLM}}
    - {{provider: gen-llm, custom_handler: {module}.GeneratorLLM}}
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
"""


@pytest.fixture
def module(tmp_path: Path) -> str:
    name = f"echo_llm_{uuid.uuid4().hex[:8]}"  # a fresh module per test
    (tmp_path / f"{name}.py").write_text(HANDLER)
    return name


@pytest.fixture
async def sdk(
    tmp_path: Path, module: str
) -> AsyncIterator[tuple[openai.AsyncOpenAI, InProcessGateway]]:
    config_path = tmp_path / "config.yaml"
    gateway = await InProcessGateway.build(
        tmp_path, CONFIG.format(module=module), config=str(config_path)
    )
    async with gateway.running() as client:
        response = await client.post("/key/generate", json={"max_budget": 1.0}, headers=bearer())
        key = response.json()["key"]
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app))
        async with openai.AsyncOpenAI(
            base_url="http://tollway.test/v1", api_key=key, http_client=http, max_retries=0
        ) as sdk_client:
            yield sdk_client, gateway


MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "hello there"}
]


async def test_sdk_chat_is_answered_by_the_custom_class_and_billed(
    sdk: tuple[openai.AsyncOpenAI, InProcessGateway],
) -> None:
    client, _gateway = sdk
    raw = await client.chat.completions.with_raw_response.create(model="echo", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.usage is not None and completion.usage.total_tokens == 13
    assert raw.headers["x-tollway-model"] == "echo-llm/echo-1"
    assert float(raw.headers["x-tollway-response-cost"]) == pytest.approx(10e-6 + 6e-6)


async def test_sdk_stream_relays_the_custom_events_with_usage(
    sdk: tuple[openai.AsyncOpenAI, InProcessGateway],
) -> None:
    client, _gateway = sdk
    stream = await client.chat.completions.create(
        model="echo",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


async def test_a_stream_answer_serves_a_client_that_does_not_stream(
    sdk: tuple[openai.AsyncOpenAI, InProcessGateway],
) -> None:
    client, _gateway = sdk
    completion = await client.chat.completions.create(model="gen", messages=MESSAGES)
    assert completion.choices[0].message.content == "all at once"
    assert completion.usage is not None and completion.usage.prompt_tokens == 4


async def test_a_handler_exception_is_a_502_without_its_text(
    sdk: tuple[openai.AsyncOpenAI, InProcessGateway],
) -> None:
    client, _gateway = sdk
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "boom"}]
        )
    assert info.value.status_code in (502, 503)
    assert "secret-internal-detail" not in info.value.response.text
    assert "echo-llm" in info.value.response.text

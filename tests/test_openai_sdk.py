"""The official ``openai`` SDK, sync and async, pointed at the gateway with ``base_url``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess
from tests.fakes.openai_upstream import REPLY_TEXT

MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(gateway: GatewayProcess) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0
    ) as c:
        yield c


def test_sync_chat_returns_content_usage_and_gateway_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == REPLY_TEXT
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(REPLY_TEXT.split(" "))
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 3
    assert raw.headers["x-tollway-model"] == "openai/fake-ok"
    assert raw.headers["x-tollway-call-id"]
    assert float(raw.headers["x-tollway-overhead-ms"]) >= 0


def test_sync_chat_stream_yields_the_text_and_no_usage_unless_asked(
    client: openai.OpenAI,
) -> None:
    stream = client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY_TEXT
    assert all(c.choices for c in chunks)


def test_sync_chat_stream_with_include_usage_gets_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-test", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 11 + len(REPLY_TEXT.split(" "))


def test_sync_completions_and_embeddings_and_models(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="legacy", prompt="Once upon")
    assert completion.choices[0].text == REPLY_TEXT
    assert completion.usage is not None and completion.usage.prompt_tokens == 11
    embeddings = client.embeddings.create(model="embed-test", input=["a", "b", "c"])
    assert [e.index for e in embeddings.data] == [0, 1, 2]
    assert embeddings.usage.prompt_tokens == 15
    models = [m.id for m in client.models.list()]
    assert "gpt-test" in models


def test_sync_sdk_sees_contract_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model="bad-request", messages=MESSAGES)
    assert "maximum context length" in str(excinfo.value)
    with (
        openai.OpenAI(base_url=client.base_url, api_key="sk-nope", max_retries=0) as bad_key,
        pytest.raises(openai.AuthenticationError),
    ):
        bad_key.chat.completions.create(model="gpt-test", messages=MESSAGES)


async def test_async_chat_and_stream(aclient: openai.AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert completion.choices[0].message.content == REPLY_TEXT
    stream = await aclient.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == REPLY_TEXT


async def test_async_completion_stream_embeddings_models(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.completions.create(model="legacy", prompt="Once", stream=True)
    text = "".join([c.choices[0].text async for c in stream])
    assert text == REPLY_TEXT
    embeddings = await aclient.embeddings.create(model="embed-test", input="hello")
    assert embeddings.data[0].embedding == [0.1, 0.2, 0.3]
    page = await aclient.models.list()
    assert "embed-test" in [m.id for m in page.data]


async def test_async_stream_error_midway_raises_in_the_sdk(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model="stream-break", messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass

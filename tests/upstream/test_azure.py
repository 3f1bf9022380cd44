"""``azure/`` through the engine: Azure OpenAI's deployment URLs and ``api-key`` header around
the pass-through."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.config import ConfigError
from proxy.errors import UpstreamStatusError
from proxy.request import Kind
from proxy.upstream.providers import AZURE_API_VERSION as DEFAULT_API_VERSION
from tests.providers.scripted import (
    Canned,
    ScriptedTransport,
    chat_request,
    collect,
    make_deployment,
)
from tests.providers.scripted import send as engine_send

KEY = "0123456789abcdef0123456789abcdef"
BASE = "https://my-resource.openai.azure.com"
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}  # fmt: skip


async def send(
    kind: Kind = Kind.CHAT, model: str = "azure/gpt4o-prod", **params: Any
) -> tuple[Any, ScriptedTransport]:
    params.setdefault("api_base", BASE)
    transport = ScriptedTransport(Canned.json(COMPLETION))
    target = make_deployment(model, api_key=KEY, **params)
    body: dict[str, Any] = {"model": "test-model"}
    if kind is Kind.COMPLETION:
        body["prompt"] = "hi"
    elif kind is Kind.EMBEDDING:
        body["input"] = "hi"
    request = chat_request(kind, **body)
    result = await engine_send(transport, request, target)
    return result, transport


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        pytest.param(Kind.CHAT, "chat/completions", id="chat"),
        pytest.param(Kind.COMPLETION, "completions", id="completions"),
        pytest.param(Kind.EMBEDDING, "embeddings", id="embeddings"),
    ],
)
async def test_requests_go_to_the_deployment_url_with_the_api_version(
    kind: Kind, path: str
) -> None:
    _, transport = await send(kind)
    assert transport.last.url == (
        f"{BASE}/openai/deployments/gpt4o-prod/{path}?api-version={DEFAULT_API_VERSION}"
    )


async def test_the_key_goes_in_api_key_and_never_as_a_bearer_or_in_the_url() -> None:
    _, transport = await send(organization="org-1")
    headers = transport.last.headers
    assert headers["api-key"] == KEY
    assert "authorization" not in headers
    assert "openai-organization" not in headers
    assert KEY not in transport.last.url


async def test_api_version_comes_from_litellm_params() -> None:
    _, transport = await send(api_version="2025-01-01-preview")
    assert transport.last.url.endswith("/chat/completions?api-version=2025-01-01-preview")


async def test_a_wildcard_group_names_the_deployment_from_the_request() -> None:
    transport = ScriptedTransport(Canned.json(COMPLETION))
    target = make_deployment("azure/*", api_key=KEY, api_base=BASE)
    request = chat_request(model="azure/eu-gpt-4o")
    await engine_send(transport, request, target)
    assert "/openai/deployments/eu-gpt-4o/chat/completions?" in transport.last.url


async def test_the_versionless_v1_api_uses_openai_paths() -> None:
    _, transport = await send(api_base=f"{BASE}/openai/v1/")
    assert transport.last.url == f"{BASE}/openai/v1/chat/completions"
    assert transport.last.json["model"] == "gpt4o-prod"


async def test_the_body_and_reply_pass_through() -> None:
    result, transport = await send()
    assert transport.last.json["messages"] == [{"role": "user", "content": "hello"}]
    assert result.format == "openai" and result.typed is None
    assert orjson.loads(result.body) == COMPLETION
    assert result.usage.total_tokens == 6


async def test_azure_errors_keep_status_and_code_and_lose_the_key() -> None:
    error = {
        "error": {
            "code": "content_filter",
            "message": f"The response was filtered (key {KEY}).",
            "param": "prompt",
            "status": 400,
        }
    }
    transport = ScriptedTransport(Canned.json(error, 400))
    target = make_deployment("azure/gpt4o-prod", api_key=KEY, api_base=BASE)
    with pytest.raises(UpstreamStatusError) as caught:
        await engine_send(transport, chat_request(), target)
    assert caught.value.status == 400
    assert caught.value.code == "content_filter"
    assert KEY not in caught.value.body().decode()


async def test_a_throttled_deployment_is_retryable_with_its_retry_after() -> None:
    error = {"error": {"code": "429", "message": "Rate limit is exceeded."}}
    transport = ScriptedTransport(Canned.json(error, 429, **{"retry-after": "7"}))
    target = make_deployment("azure/gpt4o-prod", api_key=KEY, api_base=BASE)
    with pytest.raises(UpstreamStatusError) as caught:
        await engine_send(transport, chat_request(), target)
    assert caught.value.retryable
    assert caught.value.headers["retry-after"] == "7"


def test_an_azure_model_without_api_base_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="api_base"):
        make_deployment("azure/gpt4o-prod", api_key=KEY)


def _chunk(choices: list[Any], **extra: Any) -> bytes:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    return b"data: " + orjson.dumps({**head, "choices": choices, **extra}) + b"\n\n"


CONTENT = _chunk([{"index": 0, "delta": {"role": "assistant", "content": "hi"}}]) + _chunk(
    [{"index": 0, "delta": {}, "finish_reason": "stop"}]
)
USAGE = _chunk([], usage={"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6})
STREAM = CONTENT + USAGE + b"data: [DONE]\n\n"


@pytest.mark.parametrize("piece", [1, 9, len(STREAM)])
@pytest.mark.parametrize("include_usage", [True, False])
async def test_a_stream_is_relayed_as_bytes_and_billed_however_it_is_cut(
    piece: int, include_usage: bool
) -> None:
    transport = ScriptedTransport(Canned.stream(STREAM, piece=piece))
    target = make_deployment("azure/gpt4o-prod", api_key=KEY, api_base=BASE)
    body: dict[str, Any] = {"stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    request = chat_request(**body)
    reply = await engine_send(transport, request, target)
    # The gateway always asks for usage; the client sees the usage chunk only if it asked.
    assert transport.last.json["stream_options"]["include_usage"] is True
    assert transport.last.headers["accept"] == "text/event-stream"
    raw = await collect(reply, request)
    assert raw == (STREAM if include_usage else CONTENT + b"data: [DONE]\n\n")
    usage = reply.final_usage()
    assert usage is not None and usage.total_tokens == 6

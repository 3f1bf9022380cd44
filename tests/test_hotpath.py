"""The inference routes end to end: a real gateway process against a fake OpenAI upstream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, GatewayProcess, chat_body
from tests.fakes.openai_upstream import REPLY_TEXT, FakeOpenAI


async def post(
    gateway: GatewayProcess, path: str, body: object, **kwargs: object
) -> httpx.Response:
    headers = kwargs.pop("headers", {"authorization": f"Bearer {MASTER_KEY}"})
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await client.post(path, content=content, headers=headers)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def open_stream(gateway: GatewayProcess, body: object) -> AsyncIterator[httpx.Response]:
    """A streamed chat request with the master key; the client closes on exit."""
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=20) as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {MASTER_KEY}"},
        ) as resp,
    ):
        yield resp


def error_of(resp: httpx.Response) -> dict[str, object]:
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


async def test_chat_is_proxied_with_model_rewritten_and_bytes_otherwise_untouched(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    raw = (
        b'{"model": "gpt-test", "messages": [{"role": "user", "content": '
        b'"caf\\u00e9 \xe2\x9c\x93"}], "temperature": 0.25, "x_vendor": {"a": [1, 2.50]}}'
    )
    resp = await post(gateway, "/v1/chat/completions", raw)
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == REPLY_TEXT
    sent = fake_openai.last_request()
    assert sent["json"]["model"] == "fake-ok"
    # Nested values reach the upstream as the client's own bytes (escapes and number format kept).
    assert b'[{"role": "user", "content": "caf\\u00e9 \xe2\x9c\x93"}]' in sent["raw"]
    assert b'{"a": [1, 2.50]}' in sent["raw"]
    assert sent["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"


async def test_body_forwarded_unchanged_when_model_name_matches(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    raw = b'{"model":"fake-ok",  "messages":[{"role":"user","content":"hi"}]}'
    resp = await post(gateway, "/v1/chat/completions", raw)
    assert resp.status_code == 200
    assert fake_openai.last_request()["raw"] == raw


async def test_every_reply_carries_call_id_model_and_overhead_headers(
    gateway: GatewayProcess,
) -> None:
    resp = await post(gateway, "/chat/completions", chat_body())
    again = await post(gateway, "/chat/completions", chat_body())
    assert resp.status_code == 200
    assert resp.headers["x-tollway-call-id"]
    assert resp.headers["x-tollway-call-id"] != again.headers["x-tollway-call-id"]
    assert resp.headers["x-tollway-model"] == "openai/fake-ok"
    overhead = float(resp.headers["x-tollway-overhead-ms"])
    assert 0 <= overhead < 1000
    assert "x-request-id" not in resp.headers


async def test_client_request_id_is_echoed_and_used_as_call_id(gateway: GatewayProcess) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}", "x-request-id": "trace-42.a:b"}
    resp = await post(gateway, "/v1/chat/completions", chat_body(), headers=headers)
    assert resp.headers["x-request-id"] == "trace-42.a:b"
    assert resp.headers["x-tollway-call-id"] == "trace-42.a:b"


async def test_unsafe_request_id_is_replaced_not_echoed(gateway: GatewayProcess) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}", "x-request-id": "a b<script>"}
    resp = await post(gateway, "/v1/chat/completions", chat_body(), headers=headers)
    assert "x-request-id" not in resp.headers
    assert resp.headers["x-tollway-call-id"] != "a b<script>"


async def test_completions_and_embeddings_are_proxied(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    resp = await post(gateway, "/v1/completions", {"model": "legacy", "prompt": "Once"})
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["text"] == REPLY_TEXT
    assert fake_openai.last_request()["path"] == "/v1/completions"
    resp = await post(gateway, "/v1/embeddings", {"model": "embed-test", "input": ["a", "b"]})
    assert resp.status_code == 200
    assert len(resp.json()["data"]) == 2
    assert fake_openai.last_request()["path"] == "/v1/embeddings"


async def stream_events(resp: httpx.Response) -> list[bytes]:
    raw = b"".join([chunk async for chunk in resp.aiter_raw()])
    return [event for event in raw.split(b"\n\n") if event]


async def test_stream_relays_sse_and_hides_the_usage_chunk_it_asked_for(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    async with open_stream(gateway, chat_body(stream=True)) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-accel-buffering"] == "no"
        events = await stream_events(resp)
    sent = fake_openai.last_request()["json"]
    assert sent["stream_options"] == {"include_usage": True}
    assert events[-1] == b"data: [DONE]"
    chunks = [orjson.loads(e[6:]) for e in events[:-1]]
    assert all(c["choices"] for c in chunks), "the usage-only chunk must not reach the client"
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    assert text == REPLY_TEXT


async def test_stream_keeps_usage_chunk_when_client_asked_for_it(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    body = chat_body(stream=True, stream_options={"include_usage": True})
    async with open_stream(gateway, body) as resp:
        events = await stream_events(resp)
    usage_chunk = orjson.loads(events[-2][6:])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == len(REPLY_TEXT.split(" "))


async def test_stream_first_byte_arrives_before_the_stream_ends(
    gateway: GatewayProcess,
) -> None:
    async with open_stream(gateway, chat_body("slow", stream=True)) as resp:
        started = time.monotonic()
        chunks = resp.aiter_raw()
        first = await anext(chunks)
        assert first.startswith(b"data: ")
        # The fake sends one chunk every 50 ms for 10 s: no buffering means we see it at once.
        assert time.monotonic() - started < 2


async def test_stream_broken_by_upstream_ends_with_an_error_event_not_done(
    gateway: GatewayProcess,
) -> None:
    async with open_stream(gateway, chat_body("stream-break", stream=True)) as resp:
        events = await stream_events(resp)
    assert b"data: [DONE]" not in events
    error = orjson.loads(events[-1][6:])["error"]
    assert error["type"] == "upstream_error"


async def test_client_disconnect_mid_stream_closes_the_upstream_within_a_second(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    before = fake_openai.closed_streams
    async with open_stream(gateway, chat_body("slow", stream=True)) as resp:
        chunks = resp.aiter_raw()
        await anext(chunks)
        await anext(chunks)
        assert fake_openai.open_streams == 1
        # Leaving the block closes the client's connection mid-stream.
    deadline = time.monotonic() + 1.0
    while fake_openai.open_streams and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert fake_openai.open_streams == 0
    assert fake_openai.closed_streams == before + 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param(b'{"model": "gpt-test", "messages": [', None, id="truncated-json"),
        pytest.param(b"not json", None, id="not-json"),
        pytest.param(b"", None, id="empty"),
        pytest.param(b'{"model": 7, "messages": []}', "model", id="model-not-string"),
        pytest.param(b'{"model": "gpt-test"}', None, id="messages-missing"),
        pytest.param(b'{"model": "gpt-test", "messages": "hi"}', "messages", id="messages-str"),
        pytest.param(
            b'{"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], '
            b'"max_tokens": "ten"}',
            "max_tokens",
            id="max-tokens-str",
        ),
        pytest.param(b"[1, 2]", None, id="not-an-object"),
    ],
)
async def test_malformed_body_is_400_in_contract_shape(
    gateway: GatewayProcess, body: bytes, param: str | None
) -> None:
    resp = await post(gateway, "/v1/chat/completions", body)
    assert resp.status_code == 400
    error = error_of(resp)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert "Traceback" not in resp.text


async def test_unknown_model_is_404(gateway: GatewayProcess) -> None:
    resp = await post(gateway, "/v1/chat/completions", chat_body("no-such-model"))
    assert resp.status_code == 404
    assert error_of(resp)["type"] == "not_found_error"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"authorization": "Bearer sk-wrong"}, id="wrong-bearer"),
        pytest.param({"x-api-key": "sk-wrong"}, id="wrong-x-api-key"),
        pytest.param({"authorization": "Bearer " + "a" * 10_000}, id="10kb"),
        pytest.param({"authorization": "Bearer ' OR 1=1 --"}, id="sql"),
        pytest.param({"authorization": 'Bearer "quoted"'}, id="quotes"),
    ],
)
async def test_missing_or_wrong_key_is_401(
    gateway: GatewayProcess, headers: dict[str, str]
) -> None:
    resp = await post(gateway, "/v1/chat/completions", chat_body(), headers=headers)
    assert resp.status_code == 401
    assert error_of(resp)["type"] == "authentication_error"


async def test_master_key_accepted_in_x_api_key(gateway: GatewayProcess) -> None:
    resp = await post(
        gateway, "/v1/chat/completions", chat_body(), headers={"x-api-key": MASTER_KEY}
    )
    assert resp.status_code == 200


async def test_upstream_4xx_is_passed_through_with_status_and_message(
    gateway: GatewayProcess,
) -> None:
    resp = await post(gateway, "/v1/chat/completions", chat_body("bad-request"))
    assert resp.status_code == 400
    error = error_of(resp)
    assert error["message"] == "This model's maximum context length is 8192 tokens."
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "messages"
    assert resp.headers["x-tollway-model"] == "openai/fake-400"


async def test_upstream_429_keeps_its_retry_after(gateway: GatewayProcess) -> None:
    resp = await post(gateway, "/v1/chat/completions", chat_body("throttled"))
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "7"


async def test_upstream_5xx_becomes_502(gateway: GatewayProcess) -> None:
    resp = await post(gateway, "/v1/chat/completions", chat_body("upstream-500"))
    assert resp.status_code == 502
    assert error_of(resp)["type"] == "upstream_error"


async def test_unreachable_upstream_is_502(gateway: GatewayProcess) -> None:
    resp = await post(gateway, "/v1/chat/completions", chat_body("unreachable"))
    assert resp.status_code == 502
    error = error_of(resp)
    assert error["type"] == "upstream_error"
    assert error["code"] == "upstream_unreachable"


async def test_upstream_first_byte_timeout_is_504(gateway: GatewayProcess) -> None:
    started = time.monotonic()
    resp = await post(gateway, "/v1/chat/completions", chat_body("hang"))
    assert resp.status_code == 504
    assert error_of(resp)["type"] == "timeout_error"
    assert time.monotonic() - started < 5


async def test_get_on_inference_route_is_405(gateway: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/v1/chat/completions")
    assert resp.status_code == 405
    assert error_of(resp)["type"] == "invalid_request_error"


async def test_unknown_route_is_404_in_contract_shape(gateway: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/nope")
    assert resp.status_code == 404
    assert error_of(resp)["type"] == "not_found_error"


async def test_health_routes_need_no_key(gateway: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        live = await client.get("/health/liveliness")
        ready = await client.get("/health/readiness")
    assert live.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_models_lists_model_groups_and_needs_a_key(gateway: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        denied = await client.get("/v1/models")
        resp = await client.get("/v1/models", headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert denied.status_code == 401
    ids = [m["id"] for m in resp.json()["data"]]
    assert "gpt-test" in ids
    assert "embed-test" in ids


async def test_no_secret_in_any_response_or_log_line(gateway: GatewayProcess) -> None:
    # The fake upstream puts its own API key in a 401 message; the client's key is sent too.
    responses = [
        await post(gateway, "/v1/chat/completions", chat_body("leaky-401")),
        await post(gateway, "/v1/chat/completions", chat_body("unreachable")),
        await post(gateway, "/v1/chat/completions", b"{bad"),
        await post(
            gateway,
            "/v1/chat/completions",
            chat_body(),
            headers={"authorization": "Bearer sk-client-wrong-key-123456"},
        ),
    ]
    assert responses[0].status_code == 401
    assert "[redacted]" in error_of(responses[0])["message"]  # type: ignore[operator]
    for resp in responses:
        for secret in (UPSTREAM_KEY, MASTER_KEY, "sk-client-wrong-key-123456"):
            assert secret not in resp.text
            assert all(secret not in value for value in resp.headers.values())
    logs = await asyncio.to_thread(gateway.logs)
    for secret in (UPSTREAM_KEY, MASTER_KEY, "sk-client-wrong-key-123456"):
        assert secret not in logs

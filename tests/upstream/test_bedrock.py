"""``bedrock/``: Converse through the provider engine both ways, the event-stream decoder,
SigV4 and errors.

Each engine test sends through ``Engine`` at the transport seam and checks what went on the
wire and the bytes the OpenAI client would see.
"""

from __future__ import annotations

import random
import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import orjson
import pytest
from botocore.credentials import Credentials

from proxy.config import ModelEntry, RouterSettings, parse_config
from proxy.dialects import openai
from proxy.dialects.bedrock import JSON_TOOL, from_converse, to_converse
from proxy.errors import TollwayError, UpstreamStatusError, UpstreamTimeout
from proxy.request import Kind, ParsedRequest
from proxy.server.settings import Settings
from proxy.upstream.aiohttp_transport import AiohttpTransport
from proxy.upstream.deployment import Deployment
from proxy.upstream.engine import Engine
from proxy.upstream.eventstream import (
    EventStreamDecoder,
    EventStreamError,
    encode_message,
)
from proxy.upstream.lean import LeanTransport
from proxy.upstream.providers import build_deployment, build_registry
from proxy.upstream.sigv4 import make_signer
from proxy.upstream.transport import Deadlines, Transport
from tests.dialects.bedrock_payloads import CONVERSE_REPLY, tool_stream
from tests.providers.harness_bedrock import (
    ACCESS_KEY_ID,
    MODEL_ID,
    REGION,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    BedrockHarness,
    event,
    sigv4_problem,
)
from tests.upstream.common import Result

CREDENTIALS = Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN)


def deployment(api_base: str = "http://127.0.0.1:9", **params: str) -> Deployment:
    fields = {
        "model": f"bedrock/{MODEL_ID}",
        "api_base": api_base,
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": SECRET_ACCESS_KEY,
        "aws_session_token": SESSION_TOKEN,
        "aws_region_name": REGION,
        **params,
    }
    lines = "".join(f"      {k}: {v!r}\n" for k, v in fields.items() if v)
    config = parse_config(
        f"model_list:\n  - model_name: claude\n    litellm_params:\n{lines}", "b.yaml", {}
    )
    entry: ModelEntry = config.model_list[0]
    return build_deployment(0, entry, RouterSettings(), Settings())


def chat(content: Any = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "claude", "messages": [{"role": "user", "content": content}], **extra}


def parse(body: dict[str, Any]) -> ParsedRequest:
    return openai.parse(Kind.CHAT, orjson.dumps(body))


def converse(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    return to_converse(parse(body).chat())


class FakeResponse:
    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        chunks: list[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.chunks = chunks or []
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.closed = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    async def read(self) -> bytes:
        return self.body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    def close(self) -> None:
        self.closed = True


class FakeTransport:
    """The seam: records what would go on the wire, answers with a canned response."""

    def __init__(self, response: FakeResponse) -> None:
        self.response = response
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadlines: Deadlines
    ) -> FakeResponse:
        self.sent.append((url, body, dict(headers)))
        return self.response

    async def close(self) -> None:
        pass


async def send_via(
    transport: Transport, body: dict[str, Any], dep: Deployment, model: str = MODEL_ID
) -> Result:
    request = parse(body)
    return Result(request, await Engine(transport).send(request, dep, model))


async def send(
    body: dict[str, Any], response: FakeResponse, dep: Deployment | None = None
) -> tuple[Result, FakeTransport]:
    transport = FakeTransport(response)
    result = await send_via(transport, body, dep or deployment())  # type: ignore[arg-type]
    return result, transport


def chunks_of(raw: bytes) -> tuple[list[dict[str, Any]], bool]:
    events = [e for e in raw.split(b"\n\n") if e.strip()]
    done = events[-1] == b"data: [DONE]"
    return [orjson.loads(e[6:]) for e in events if e != b"data: [DONE]"], done


# -- the event-stream decoder ------------------------------------------------------------------
def _frames(n: int) -> list[tuple[dict[str, str], bytes]]:
    return [
        ({":event-type": f"e{i}", ":message-type": "event"}, orjson.dumps({"i": i, "p": "x" * i}))
        for i in range(n)
    ]


def _splits(data: bytes, rng: random.Random) -> Iterator[bytes]:
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 2, 3, 7, 12, 13, 50, 200])
        yield data[pos : pos + step]
        pos += step


@pytest.mark.parametrize("seed", range(20))
def test_event_stream_decodes_the_same_messages_however_the_bytes_are_split(seed: int) -> None:
    frames = _frames(12)
    wire = b"".join(encode_message(h, p) for h, p in frames)
    decoder = EventStreamDecoder()
    got = []
    for piece in _splits(wire, random.Random(seed)):
        got.extend(decoder.feed(piece))
    assert [(m.headers, m.payload) for m in got] == frames
    assert decoder.pending == 0


def test_event_stream_waits_for_the_rest_of_a_message() -> None:
    wire = encode_message({":event-type": "a"}, b"{}")
    decoder = EventStreamDecoder()
    assert decoder.feed(wire[:-1]) == []
    assert decoder.pending == len(wire) - 1
    (message,) = decoder.feed(wire[-1:])
    assert message.header(":event-type") == "a"


@pytest.mark.parametrize(
    "offset",
    [
        pytest.param(5, id="prelude"),
        pytest.param(-6, id="payload"),
        pytest.param(-1, id="message-crc"),
    ],
)
def test_event_stream_refuses_a_corrupt_frame(offset: int) -> None:
    wire = bytearray(encode_message({":event-type": "a"}, b'{"text": "hi"}'))
    wire[offset] ^= 0x01
    with pytest.raises(EventStreamError):
        EventStreamDecoder().feed(bytes(wire))


def test_event_stream_refuses_a_length_out_of_bounds() -> None:
    prelude = struct.pack(">II", 8, 0)
    wire = prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\x00" * 8
    with pytest.raises(EventStreamError, match="out of bounds"):
        EventStreamDecoder().feed(wire)


def test_event_stream_reads_every_header_type() -> None:
    ident = uuid.uuid4()
    headers = b""
    for name, kind, value in [
        (b"t", 0, b""),
        (b"f", 1, b""),
        (b"b", 2, struct.pack(">b", -3)),
        (b"s", 3, struct.pack(">h", 300)),
        (b"i", 4, struct.pack(">i", 70000)),
        (b"l", 5, struct.pack(">q", 2**40)),
        (b"y", 6, struct.pack(">H", 3) + b"\x00\x01\x02"),
        (b"str", 7, struct.pack(">H", 2) + b"ok"),
        (b"ts", 8, struct.pack(">q", 1_700_000_000_000)),
        (b"u", 9, ident.bytes),
    ]:
        headers += bytes([len(name)]) + name + bytes([kind]) + value
    total = 12 + len(headers) + 2 + 4
    prelude = struct.pack(">II", total, len(headers))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + b"{}"
    wire = body + struct.pack(">I", zlib.crc32(body))
    (message,) = EventStreamDecoder().feed(wire)
    assert message.headers == {
        "t": True,
        "f": False,
        "b": -3,
        "s": 300,
        "i": 70000,
        "l": 2**40,
        "y": b"\x00\x01\x02",
        "str": "ok",
        "ts": 1_700_000_000_000,
        "u": ident,
    }
    assert message.payload == b"{}"


# -- request translation ---------------------------------------------------------------------
_TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def test_json_schema_mode_forces_a_tool_and_answers_with_its_input_as_text() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    body = chat(
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    )
    payload, json_tool = converse(body)
    assert json_tool == JSON_TOOL
    (spec,) = payload["toolConfig"]["tools"]
    assert spec["toolSpec"]["inputSchema"]["json"] == schema
    assert payload["toolConfig"]["toolChoice"] == {"tool": {"name": JSON_TOOL}}
    reply = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"toolUse": {"toolUseId": "x", "name": JSON_TOOL, "input": {"ok": True}}}
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
    }
    answer = from_converse(reply, JSON_TOOL, MODEL_ID)
    assert orjson.loads(answer.message.text()) == {"ok": True}
    assert not answer.message.tool_calls
    assert answer.finish_reason == "stop"


# -- response translation --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("content_filtered", "content_filter"),
        ("guardrail_intervened", "content_filter"),
    ],
)
def test_stop_reason_maps_to_finish_reason(stop_reason: str, finish: str) -> None:
    answer = from_converse({**CONVERSE_REPLY, "stopReason": stop_reason}, None, MODEL_ID)
    assert answer.finish_reason == finish


async def test_reply_is_a_chat_completion_with_tool_calls_and_cached_usage() -> None:
    reply_body = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "Let me look."},
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_9",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    },
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": CONVERSE_REPLY["usage"],
    }
    reply, _ = await send(chat(), FakeResponse(body=orjson.dumps(reply_body)))
    payload = orjson.loads(reply.body)
    assert payload["object"] == "chat.completion"
    assert payload["model"] == MODEL_ID
    (choice,) = payload["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me look."
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "tooluse_9"
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}
    # Converse counts cache reads apart from inputTokens; OpenAI's prompt_tokens includes them.
    assert payload["usage"]["prompt_tokens"] == 10
    assert payload["usage"]["completion_tokens"] == 5
    assert payload["usage"]["total_tokens"] == 15
    assert payload["usage"]["prompt_tokens_details"]["cached_tokens"] == 2
    assert reply.usage is not None and reply.usage.cached_tokens == 2


# -- streaming -------------------------------------------------------------------------------


@pytest.mark.parametrize("include_usage", [True, False])
async def test_stream_becomes_chat_chunks_with_tool_argument_deltas(include_usage: bool) -> None:
    wire = b"".join(tool_stream())
    pieces = list(_splits(wire, random.Random(7)))
    body = chat(stream=True, tools=[_TOOL])
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    reply, transport = await send(body, FakeResponse(chunks=pieces))
    raw = await reply.stream()
    url, _, headers = transport.sent[0]
    assert url.endswith("/converse-stream")
    assert headers["accept"] == "application/vnd.amazon.eventstream"
    chunks, done = chunks_of(raw)
    assert done
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Hm"
    calls = [call for d in deltas for call in d.get("tool_calls") or []]
    assert calls[0] == {
        "index": 0,
        "id": "tooluse_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert [c["function"]["arguments"] for c in calls[1:]] == ['{"city": ', '"Paris"}']
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [f for f in finishes if f] == ["tool_calls"]
    usage_chunks = [c for c in chunks if c.get("usage")]
    assert len(usage_chunks) == (1 if include_usage else 0)
    # Usage reaches the ledger either way.
    usage = reply.final_usage()
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (10, 5, 2)


async def test_stream_exception_event_ends_the_stream_with_a_mapped_error() -> None:
    wire = [
        event("messageStart", {"role": "assistant"}),
        encode_message(
            {":message-type": "exception", ":exception-type": "throttlingException"},
            orjson.dumps({"message": f"slow down {SECRET_ACCESS_KEY}"}),
        ),
    ]
    reply, _ = await send(chat(stream=True), FakeResponse(chunks=wire))
    with pytest.raises(UpstreamStatusError) as caught:
        await reply.stream()
    assert caught.value.status == 429
    assert caught.value.retryable
    assert SECRET_ACCESS_KEY not in caught.value.message


async def test_stream_with_a_bad_crc_ends_with_an_error() -> None:
    frame = bytearray(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}}))
    frame[-8] ^= 0xFF
    reply, _ = await send(chat(stream=True), FakeResponse(chunks=[bytes(frame)]))
    with pytest.raises(TollwayError, match="corrupt event stream"):
        await reply.stream()


async def test_stream_cut_before_message_stop_is_an_error() -> None:
    wire = tool_stream()[:4]
    reply, _ = await send(chat(stream=True), FakeResponse(chunks=wire))
    with pytest.raises(TollwayError, match="before its messageStop"):
        await reply.stream()


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "kind", "expected", "retryable"),
    [
        pytest.param(400, "ValidationException", 400, False, id="validation"),
        pytest.param(403, "AccessDeniedException", 403, False, id="access-denied"),
        pytest.param(403, "UnrecognizedClientException", 401, False, id="bad-credentials"),
        pytest.param(404, "ResourceNotFoundException", 404, False, id="not-found"),
        pytest.param(429, "ThrottlingException", 429, True, id="throttled"),
        pytest.param(503, "ServiceUnavailableException", 502, True, id="unavailable"),
        pytest.param(429, "ModelNotReadyException", 502, True, id="model-not-ready"),
        pytest.param(500, "InternalServerException", 502, True, id="internal"),
    ],
)
async def test_error_replies_map_to_the_contract(
    status: int, kind: str, expected: int, retryable: bool
) -> None:
    raw = orjson.dumps({"message": f"nope (key {SECRET_ACCESS_KEY}, id {ACCESS_KEY_ID})"})
    headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    with pytest.raises(UpstreamStatusError) as caught:
        await send(chat(), FakeResponse(status=status, body=raw, headers=headers))
    error = caught.value
    assert error.status == expected
    assert error.retryable is retryable
    rendered = error.body().decode()
    assert SECRET_ACCESS_KEY not in rendered
    assert ACCESS_KEY_ID not in rendered
    assert kind in rendered


async def test_error_kind_is_read_from_the_body_type_when_the_header_is_absent() -> None:
    raw = orjson.dumps(
        {"__type": "com.amazon.coral.validate#ValidationException", "Message": "bad"}
    )
    with pytest.raises(UpstreamStatusError) as caught:
        await send(chat(), FakeResponse(status=400, body=raw))
    error = caught.value
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert error.code == "ValidationException"
    assert "bad" in error.message


async def test_model_timeout_is_a_gateway_timeout() -> None:
    headers = {"x-amzn-ErrorType": "ModelTimeoutException"}
    raw = orjson.dumps({"message": f"slow (key {SECRET_ACCESS_KEY})"})
    with pytest.raises(UpstreamTimeout) as caught:
        await send(chat(), FakeResponse(status=408, body=raw, headers=headers))
    assert caught.value.status == 504
    assert SECRET_ACCESS_KEY not in caught.value.message


# -- signing ---------------------------------------------------------------------------------
async def test_request_is_sigv4_signed_and_the_secret_never_leaves() -> None:
    _, transport = await send(chat(), FakeResponse(body=orjson.dumps(CONVERSE_REPLY)))
    url, body, headers = transport.sent[0]
    assert url == "http://127.0.0.1:9/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse"
    assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/")
    assert f"/{REGION}/bedrock/aws4_request" in headers["authorization"]
    assert headers["x-amz-security-token"] == SESSION_TOKEN
    assert SECRET_ACCESS_KEY not in url
    assert SECRET_ACCESS_KEY.encode() not in body
    assert all(SECRET_ACCESS_KEY not in value for value in headers.values())
    wire_headers = {**headers, "host": "127.0.0.1:9"}
    assert sigv4_problem("POST", url, wire_headers, body, CREDENTIALS, REGION) is None
    tampered = body.replace(b"hello", b"hullo")
    assert sigv4_problem("POST", url, wire_headers, tampered, CREDENTIALS, REGION) == (
        "signature mismatch"
    )


async def test_arn_model_ids_are_escaped_in_the_path() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude"
    transport = FakeTransport(FakeResponse(body=orjson.dumps(CONVERSE_REPLY)))
    await send_via(transport, chat(), deployment(), arn)  # type: ignore[arg-type]
    url = transport.sent[0][0]
    assert url.endswith(
        "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.anthropic.claude/converse"
    )


def test_region_and_endpoint_default_from_the_environment() -> None:
    dep = deployment(api_base="", aws_region_name="")
    signer = make_signer(dep, {"AWS_REGION": "eu-west-3"})
    assert signer.region == "eu-west-3"
    assert signer.endpoint == "https://bedrock-runtime.eu-west-3.amazonaws.com"


def test_credentials_come_from_the_environment_when_not_configured() -> None:
    dep = deployment(aws_access_key_id="", aws_secret_access_key="", aws_session_token="")
    env = {"AWS_ACCESS_KEY_ID": "AKIAENV0000", "AWS_SECRET_ACCESS_KEY": "envsecret0000"}
    headers = make_signer(dep, env).headers("http://127.0.0.1:9/model/m/converse", b"{}", False)
    assert "Credential=AKIAENV0000/" in headers["authorization"]
    assert "x-amz-security-token" not in headers


def test_a_bedrock_api_key_is_sent_as_a_bearer_token() -> None:
    dep = deployment(aws_access_key_id="", aws_secret_access_key="", api_key="bedrock-api-key-1")
    headers = make_signer(dep, {}).headers("http://127.0.0.1:9/model/m/converse", b"{}", False)
    assert headers["authorization"] == "Bearer bedrock-api-key-1"
    assert headers["accept-encoding"] == "identity"


async def test_no_credentials_at_all_is_a_401_before_any_call() -> None:
    dep = deployment(aws_access_key_id="", aws_secret_access_key="", aws_session_token="")
    transport = FakeTransport(FakeResponse())
    # No credentials in the (empty) environment either.
    engine = Engine(transport, registry=build_registry({}))  # type: ignore[arg-type]
    with pytest.raises(UpstreamStatusError) as caught:
        await engine.send(parse(chat()), dep, MODEL_ID)
    assert caught.value.status == 401
    assert caught.value.type == "authentication_error"
    assert transport.sent == []


# -- over the wire, against the fake Bedrock (which checks the signature) ---------------------
@pytest.fixture(scope="module")
def fake_bedrock() -> Iterator[BedrockHarness]:
    harness = BedrockHarness()
    harness.start()
    yield harness
    harness.stop()


def _transports() -> list[Any]:
    return [
        pytest.param(AiohttpTransport, id="aiohttp"),
        pytest.param(LeanTransport, id="lean"),
    ]


@pytest.mark.parametrize("transport_type", _transports())
@pytest.mark.parametrize("stream", [False, True])
async def test_signed_calls_are_accepted_by_the_fake_bedrock(
    fake_bedrock: BedrockHarness, transport_type: Any, stream: bool
) -> None:
    transport: Transport = transport_type(pool_size=4)
    try:
        body = chat("CASE stream_text" if stream else "CASE text", stream=stream)
        reply = await send_via(transport, body, deployment(fake_bedrock.origin))
        if stream:
            chunks, done = chunks_of(await reply.stream())
            assert done
            text = "".join(
                c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
            )
        else:
            text = orjson.loads(reply.body)["choices"][0]["message"]["content"]
        assert text == "pong"
        assert fake_bedrock.signature_failures == []
        usage = reply.final_usage()
        assert usage is not None and usage.prompt_tokens == 10
    finally:
        await transport.close()

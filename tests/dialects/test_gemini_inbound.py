"""The ``gemini`` dialect, inbound (``generateContent`` / ``streamGenerateContent?alt=sse``):
requests decoded to ``ChatRequest``\\ s, replies and stream events encoded as Gemini's,
errors in Google's shape; and round trips through the outbound face."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.dialects.base import Frame, Inbound, Target
from proxy.dialects.gemini import DIALECT, SIGNATURE_MARK
from proxy.dialects.gemini.inbound import INBOUND, GeminiInbound
from proxy.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    TollwayError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from proxy.model import (
    AudioPart,
    ChatReply,
    ChatRequest,
    Choice,
    FilePart,
    Finish,
    FunctionCall,
    ImagePart,
    Message,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    UsageReport,
    usage,
)

MODEL = "gemini-2.0-flash"
WEATHER_DECL = {
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "OBJECT",
        "properties": {"city": {"type": "STRING"}, "unit": {"type": "STRING", "nullable": True}},
        "required": ["city"],
    },
}


def decode(body: dict[str, Any], model: str = MODEL, stream: bool = False) -> ChatRequest:
    return INBOUND.decode_request(orjson.dumps(body), model, stream)


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def refused(body: dict[str, Any] | bytes, param: str | None) -> InvalidRequest:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(InvalidRequest) as caught:
        INBOUND.decode_request(raw, MODEL)
    assert caught.value.param == param
    return caught.value


def test_the_class_implements_inbound_named_gemini() -> None:
    inbound: Inbound = GeminiInbound()
    assert inbound.name == "gemini"


# -- request -------------------------------------------------------------------------------
def test_model_and_stream_come_from_the_url() -> None:
    request = decode({"contents": [user({"text": "hi"})]}, "models/gemini-2.0-flash", True)
    assert request.model == MODEL
    assert request.stream is True and request.wants_usage
    plain = decode({"contents": [user({"text": "hi"})]})
    assert plain.stream is None and plain.stream_options is None
    assert plain.messages == [Message(role="user", content="hi")]


def test_system_instruction_and_turns_map_to_messages() -> None:
    request = decode(
        {
            "systemInstruction": {"parts": [{"text": "be brief"}, {"text": "be kind"}]},
            "contents": [
                user({"text": "hi"}),
                {"role": "model", "parts": [{"text": "Hel"}, {"text": "lo"}]},
                user({"text": "a"}, {"text": "b"}),
            ],
        }
    )
    assert request.messages == [
        Message(role="system", content="be brief"),
        Message(role="system", content="be kind"),
        Message(role="user", content="hi"),
        Message(role="assistant", content="Hello"),
        Message(role="user", content=[TextPart(text="a"), TextPart(text="b")]),
    ]


def test_snake_case_fields_are_read_too() -> None:
    request = decode(
        {
            "system_instruction": {"parts": [{"text": "sys"}]},
            "contents": [user({"inline_data": {"mime_type": "image/png", "data": "AAAA"}})],
            "generation_config": {"max_output_tokens": 5},
        }
    )
    assert request.messages[0] == Message(role="system", content="sys")
    (part,) = request.messages[1].parts()
    assert isinstance(part, ImagePart) and part.image_url.url == "data:image/png;base64,AAAA"
    assert request.max_tokens == 5


def test_media_parts_become_image_audio_or_file_parts_by_mime() -> None:
    request = decode(
        {
            "contents": [
                user(
                    {"text": "look"},
                    {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                    {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
                    {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/a.jpg"}},
                    {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/v.mp4"}},
                )
            ]
        }
    )
    text, image, audio, pdf, linked, video = request.messages[0].parts()
    assert text == TextPart(text="look")
    assert isinstance(image, ImagePart) and image.image_url.url == "data:image/png;base64,AAAA"
    assert isinstance(audio, AudioPart)
    assert (audio.input_audio.data, audio.input_audio.format) == ("UklG", "wav")
    assert isinstance(pdf, FilePart)
    assert pdf.file.file_data == "data:application/pdf;base64,JVBE"
    assert pdf.file.format == "application/pdf"
    assert isinstance(linked, ImagePart) and linked.image_url.url == "https://x.test/a.jpg"
    assert isinstance(video, FilePart)
    assert (video.file.file_id, video.file.format) == ("gs://b/v.mp4", "video/mp4")


def test_function_calls_and_responses_pair_up_by_name() -> None:
    request = decode(
        {
            "contents": [
                user({"text": "weather in Paris and Rome?"}),
                {
                    "role": "model",
                    "parts": [
                        {"text": "Checking."},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                        {"functionCall": {"name": "get_time"}},
                    ],
                },
                user(
                    {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 20}}},
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 25}}},
                    {"text": "thanks"},
                ),
            ]
        }
    )
    _, assistant, time, paris, rome, thanks = request.messages
    assert assistant.content == "Checking."
    calls = assistant.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_weather", "get_time"]
    assert [c.function.arguments for c in calls] == ['{"city":"Paris"}', '{"city":"Rome"}', "{}"]
    assert all(c.id.startswith("call_") for c in calls) and len({c.id for c in calls}) == 3
    assert (time.role, time.tool_call_id, time.content) == ("tool", calls[2].id, "noon")
    assert (paris.tool_call_id, paris.content) == (calls[0].id, '{"temp":20}')
    assert (rome.tool_call_id, rome.content) == (calls[1].id, '{"temp":25}')
    assert thanks == Message(role="user", content="thanks")


def test_call_ids_and_signatures_are_kept() -> None:
    part = {"functionCall": {"id": "fc-1", "name": "f", "args": {}}, "thoughtSignature": "c2ln"}
    request = decode(
        {
            "contents": [
                {"role": "model", "parts": [part]},
                user({"functionResponse": {"id": "fc-1", "name": "f", "response": {}}}),
            ]
        }
    )
    call = (request.messages[0].tool_calls or [])[0]
    assert call.id == "fc-1" + SIGNATURE_MARK + "c2ln"
    assert request.messages[1].tool_call_id == call.id


def test_a_response_without_a_call_keeps_its_name() -> None:
    request = decode({"contents": [user({"functionResponse": {"name": "f", "response": {}}})]})
    (message,) = request.messages
    assert message.role == "tool" and message.name == "f" and message.tool_call_id


def test_tools_config_and_generation_config_map_to_the_request() -> None:
    request = decode(
        {
            "contents": [user({"text": "hi"})],
            "tools": [{"functionDeclarations": [WEATHER_DECL]}, {"googleSearch": {}}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
            "generationConfig": {
                "temperature": 0.5,
                "topP": 0.9,
                "topK": 40,
                "maxOutputTokens": 100,
                "stopSequences": ["END"],
                "candidateCount": 1,
                "seed": 7,
                "presencePenalty": 0.1,
                "frequencyPenalty": 0.2,
            },
        }
    )
    (tool,) = request.tools or []
    assert tool.function.name == "get_weather"
    assert tool.function.description == "Weather in a city"
    assert tool.function.parameters == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"]}},
        "required": ["city"],
    }
    assert request.tool_choice == "auto"
    assert (request.temperature, request.top_p, request.top_k) == (0.5, 0.9, 40)
    assert (request.max_tokens, request.stop, request.n, request.seed) == (100, ["END"], 1, 7)
    assert (request.presence_penalty, request.frequency_penalty) == (0.1, 0.2)


@pytest.mark.parametrize(
    ("config", "choice", "tools"),
    [
        pytest.param({"mode": "ANY"}, "required", ["a", "b", "c"], id="any"),
        pytest.param({"mode": "NONE"}, "none", ["a", "b", "c"], id="none"),
        pytest.param(
            {"mode": "ANY", "allowedFunctionNames": ["b"]},
            {"type": "function", "function": {"name": "b"}},
            ["a", "b", "c"],
            id="one-allowed-is-forced",
        ),
        pytest.param(
            {"mode": "ANY", "allowedFunctionNames": ["a", "c"]},
            "required",
            ["a", "c"],
            id="several-allowed-are-the-only-tools",
        ),
        pytest.param({}, None, ["a", "b", "c"], id="unset"),
    ],
)
def test_function_calling_config_maps_to_tool_choice(
    config: dict[str, Any], choice: Any, tools: list[str]
) -> None:
    declarations = [{"name": n} for n in ("a", "b", "c")]
    request = decode(
        {
            "contents": [user({"text": "hi"})],
            "tools": [{"functionDeclarations": declarations}],
            "toolConfig": {"functionCallingConfig": config},
        }
    )
    assert request.tool_choice == choice
    assert [t.function.name for t in request.tools or []] == tools


def test_json_mode_and_response_schema_map_to_response_format() -> None:
    plain = decode(
        {"contents": [user({"text": "hi"})], "generationConfig": {"responseMimeType": "text/plain"}}
    )
    assert plain.response_format is None
    json_mode = decode(
        {
            "contents": [user({"text": "hi"})],
            "generationConfig": {"responseMimeType": "application/json"},
        }
    )
    assert json_mode.response_format is not None
    assert json_mode.response_format.type == "json_object"
    schema = decode(
        {
            "contents": [user({"text": "hi"})],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseSchema": {"type": "ARRAY", "items": {"type": "INTEGER"}},
            },
        }
    )
    assert schema.response_format is not None
    assert schema.response_format.type == "json_schema"
    assert schema.response_format.json_schema == {
        "name": "response",
        "schema": {"type": "array", "items": {"type": "integer"}},
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param(b"", None, id="empty"),
        pytest.param(b"{not json", None, id="not-json"),
        pytest.param(b"[]", None, id="not-an-object"),
        pytest.param({"contents": []}, "contents", id="no-contents"),
        pytest.param({"contents": ["hi"]}, "contents[0]", id="content-not-object"),
        pytest.param({"contents": [{"role": "user"}]}, "contents[0].parts", id="no-parts"),
        pytest.param(
            {"contents": [{"role": "bot", "parts": []}]}, "contents[0].role", id="unknown-role"
        ),
        pytest.param(
            {"contents": [user({"text": "a"}, {"executableCode": {}})]},
            "contents[0].parts[1]",
            id="unknown-part",
        ),
        pytest.param(
            {"contents": [user({"inlineData": {"data": "AAAA"}})]},
            "contents[0].parts[0].inlineData.mimeType",
            id="inline-without-mime",
        ),
        pytest.param(
            {"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]},
            "contents[0].parts[0].functionCall.name",
            id="call-without-name",
        ),
        pytest.param(
            {
                "contents": [
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": 1}}]}
                ]
            },
            "contents[0].parts[0].functionCall.args",
            id="args-not-object",
        ),
        pytest.param(
            {"contents": [user({"functionCall": {"name": "f"}})]},
            "contents[0].parts[0]",
            id="user-calls",
        ),
        pytest.param(
            {"contents": [user({"text": "a"})], "generationConfig": {"maxOutputTokens": 0}},
            "generationConfig.maxOutputTokens",
            id="max-tokens",
        ),
        pytest.param(
            {"contents": [user({"text": "a"})], "generationConfig": {"temperature": "hot"}},
            "generationConfig.temperature",
            id="temperature",
        ),
        pytest.param(
            {"contents": [user({"text": "a"})], "generationConfig": {"stopSequences": "END"}},
            "generationConfig.stopSequences",
            id="stops",
        ),
        pytest.param(
            {
                "contents": [user({"text": "a"})],
                "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}},
            },
            "toolConfig.functionCallingConfig.mode",
            id="mode",
        ),
        pytest.param(
            {"contents": [user({"text": "a"})], "tools": [{"functionDeclarations": [{}]}]},
            "tools[0].functionDeclarations[0].name",
            id="declaration-without-name",
        ),
    ],
)
def test_invalid_bodies_are_refused_naming_the_field(
    body: dict[str, Any] | bytes, param: str | None
) -> None:
    refused(body, param)


def test_an_empty_model_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        INBOUND.decode_request(orjson.dumps({"contents": [user({"text": "a"})]}))
    assert caught.value.param == "model"


# -- reply ---------------------------------------------------------------------------------
def chat_reply(message: Message, finish: str = "stop") -> ChatReply:
    return ChatReply(
        id="chatcmpl-r1",
        model=MODEL,
        choices=[Choice(message=message, finish_reason=finish)],
        usage=usage(100, 30, cached=40, reasoning=10),
    )


def test_a_reply_is_a_generate_content_response_with_usage_metadata() -> None:
    message = Message(role="assistant", content="Hello", reasoning_content="hmm")
    body = orjson.loads(INBOUND.encode_reply(chat_reply(message)))
    assert body == {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"text": "hmm", "thought": True}, {"text": "Hello"}],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 100,
            "candidatesTokenCount": 20,
            "totalTokenCount": 130,
            "cachedContentTokenCount": 40,
            "thoughtsTokenCount": 10,
        },
        "modelVersion": MODEL,
        "responseId": "r1",
    }


def test_tool_calls_become_function_call_parts_with_their_signature() -> None:
    calls = [
        ToolCall(id="fc-1" + SIGNATURE_MARK + "c2ln",
                 function=FunctionCall(name="f", arguments='{"a": 1}')),
        ToolCall(id="call_2", function=FunctionCall(name="g", arguments="not json")),
    ]  # fmt: skip
    message = Message(role="assistant", tool_calls=calls)
    body = orjson.loads(INBOUND.encode_reply(chat_reply(message, "tool_calls")))
    (candidate,) = body["candidates"]
    assert candidate["finishReason"] == "STOP"
    assert candidate["content"]["parts"] == [
        {"functionCall": {"name": "f", "args": {"a": 1}, "id": "fc-1"}, "thoughtSignature": "c2ln"},
        {"functionCall": {"name": "g", "args": {}, "id": "call_2"}},
    ]


@pytest.mark.parametrize(
    ("finish", "reason"),
    [("stop", "STOP"), ("length", "MAX_TOKENS"), ("content_filter", "SAFETY"),
     ("tool_calls", "STOP")],
)  # fmt: skip
def test_finish_reasons_map_to_gemini_names(finish: str, reason: str) -> None:
    message = Message(role="assistant", content="x")
    body = orjson.loads(INBOUND.encode_reply(chat_reply(message, finish)))
    assert body["candidates"][0]["finishReason"] == reason


# -- stream --------------------------------------------------------------------------------
def chunks(raw: bytes) -> list[dict[str, Any]]:
    assert raw.endswith(b"\r\n\r\n")
    out = []
    for event in raw.split(b"\r\n\r\n")[:-1]:
        assert event.startswith(b"data: ")
        out.append(orjson.loads(event[len(b"data: ") :]))
    return out


STREAM: list[StreamEvent] = [
    Start(id="chatcmpl-r1", model=MODEL),
    ReasoningDelta("think"),
    TextDelta("Hel"),
    TextDelta("lo"),
    ToolCallDelta(index=0, id="call_a", name="get_weather", arguments='{"ci'),
    ToolCallDelta(index=0, arguments='ty": "Paris"}'),
    ToolCallDelta(index=1, id="call_b", name="get_time", arguments=""),
    Finish("tool_calls"),
    UsageReport(usage(12, 8, cached=2, reasoning=3)),
]


def encode_stream(events: list[StreamEvent]) -> bytes:
    encoder = INBOUND.stream_encoder(ChatRequest(model=MODEL, messages=[], stream=True))
    return b"".join(encoder.encode(e) for e in events) + encoder.finish()


def test_a_stream_is_one_event_per_delta_and_calls_whole_in_the_last() -> None:
    raw = encode_stream(STREAM)
    events = chunks(raw)
    parts = [e["candidates"][0]["content"]["parts"] for e in events]
    assert parts == [
        [{"text": "think", "thought": True}],
        [{"text": "Hel"}],
        [{"text": "lo"}],
        [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_a"}},
            {"functionCall": {"name": "get_time", "args": {}, "id": "call_b"}},
        ],
    ]
    assert all(e["responseId"] == "r1" and e["modelVersion"] == MODEL for e in events)
    assert ["finishReason" in e["candidates"][0] for e in events] == [False] * 3 + [True]
    assert ["usageMetadata" in e for e in events] == [False] * 3 + [True]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert events[-1]["usageMetadata"] == {
        "promptTokenCount": 12,
        "candidatesTokenCount": 5,
        "totalTokenCount": 20,
        "cachedContentTokenCount": 2,
        "thoughtsTokenCount": 3,
    }


def test_nothing_is_written_after_finish_or_error() -> None:
    encoder = INBOUND.stream_encoder(ChatRequest(model=MODEL, messages=[]))
    assert encoder.finish()
    assert encoder.encode(TextDelta("late")) == b"" and encoder.finish() == b""


def test_an_error_mid_stream_is_an_in_band_error_event() -> None:
    encoder = INBOUND.stream_encoder(ChatRequest(model=MODEL, messages=[]))
    encoder.encode(TextDelta("partial"))
    raw = encoder.error(UpstreamStatusError(429, "slow down", retry_after="7"))
    (event,) = chunks(raw)
    assert event == {
        "error": {
            "code": 429,
            "message": "slow down",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}],
        }
    }
    assert encoder.encode(TextDelta("late")) == b"" and encoder.finish() == b""


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "code", "status"),
    [
        pytest.param(InvalidRequest("bad"), 400, "INVALID_ARGUMENT", id="400"),
        pytest.param(AuthenticationFailed("who"), 401, "UNAUTHENTICATED", id="401"),
        pytest.param(PermissionDenied("no"), 403, "PERMISSION_DENIED", id="403"),
        pytest.param(NotFound("gone"), 404, "NOT_FOUND", id="404"),
        pytest.param(RateLimited("slow", retry_after=2), 429, "RESOURCE_EXHAUSTED", id="429"),
        pytest.param(TollwayError("oops"), 500, "INTERNAL", id="500"),
        pytest.param(UpstreamError("down"), 502, "UNAVAILABLE", id="502"),
        pytest.param(UpstreamTimeout("late"), 504, "DEADLINE_EXCEEDED", id="504"),
    ],
)
def test_errors_take_googles_shape_by_status(exc: TollwayError, code: int, status: str) -> None:
    error = orjson.loads(INBOUND.encode_error(exc))["error"]
    assert (error["code"], error["message"], error["status"]) == (code, exc.message, status)


# -- round trips through the outbound face -------------------------------------------------
def test_inbound_decode_then_outbound_encode_gives_back_the_request() -> None:
    body = {
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [
            {"role": "user", "parts": [
                {"text": "weather?"},
                {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
            ]},
            {"role": "model", "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                 "thoughtSignature": "c2ln"},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 20}}},
                {"text": "and?"},
            ]},
            {"role": "model", "parts": [{"text": "Sunny."}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
            ]},
        ],
        "tools": [{"functionDeclarations": [WEATHER_DECL]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                                                 "allowedFunctionNames": ["get_weather"]}},
        "generationConfig": {
            "temperature": 0.5, "topP": 0.9, "topK": 40, "maxOutputTokens": 100,
            "stopSequences": ["END"], "seed": 7,
            "responseMimeType": "application/json",
            "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
        },
    }  # fmt: skip
    request = decode(body)
    sent = orjson.loads(DIALECT.chat(request, Target(model=MODEL)).body)
    assert sent == body


def test_outbound_stream_decode_of_the_inbound_stream_gives_back_the_events() -> None:
    raw = encode_stream(STREAM)
    decoder = DIALECT.chat(ChatRequest(model=MODEL, messages=[]), Target(model=MODEL))
    stream = decoder.stream_decoder()
    frames = [Frame(data=e.removeprefix(b"data: ")) for e in raw.split(b"\r\n\r\n") if e]
    events = [event for frame in frames for event in stream.feed(frame)]
    events += stream.finish()
    start = events[0]
    assert isinstance(start, Start) and (start.id, start.model) == ("chatcmpl-r1", MODEL)
    assert events[1:] == [
        ReasoningDelta("think"),
        TextDelta("Hel"),
        TextDelta("lo"),
        # Gemini streams a call whole: the pieces come back as one delta.
        ToolCallDelta(index=0, id="call_a", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCallDelta(index=1, id="call_b", name="get_time", arguments="{}"),
        Finish("tool_calls"),
        UsageReport(usage(12, 8, cached=2, reasoning=3)),
    ]


def test_an_in_band_error_comes_back_as_the_same_status() -> None:
    encoder = INBOUND.stream_encoder(ChatRequest(model=MODEL, messages=[]))
    raw = encoder.encode(Start(id="chatcmpl-r1", model=MODEL)) + encoder.encode(TextDelta("a"))
    raw += encoder.error(UpstreamStatusError(429, "slow down", retry_after="7"))
    stream = DIALECT.chat(ChatRequest(model=MODEL, messages=[]), Target(model=MODEL))
    decoder = stream.stream_decoder()
    data = [e.removeprefix(b"data: ") for e in raw.split(b"\r\n\r\n") if e]
    assert decoder.feed(Frame(data=data[0]))[1] == TextDelta("a")
    with pytest.raises(UpstreamStatusError) as caught:
        decoder.feed(Frame(data=data[1]))
    assert (caught.value.status, caught.value.message) == (429, "slow down")
    assert caught.value.headers["retry-after"] == "7"

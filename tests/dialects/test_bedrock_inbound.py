"""``bedrock`` inbound: a Converse client's request decoded, replies, event-stream messages and
errors encoded, as pure functions; streams round-trip through the outbound decoder."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.dialects.base import Frame, Inbound, Target
from proxy.dialects.bedrock import DIALECT as OUTBOUND
from proxy.dialects.bedrock import to_converse
from proxy.dialects.bedrock.inbound import INBOUND, STREAM_CONTENT_TYPE, error_type
from proxy.errors import (
    BudgetExceeded,
    InvalidRequest,
    RateLimited,
    TollwayError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from proxy.model import (
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
from proxy.upstream.eventstream import EventStreamDecoder
from proxy.upstream.framing import EventStreamFramer

MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"


def decode(body: dict[str, Any], stream: bool = False) -> ChatRequest:
    return INBOUND.decode_request(orjson.dumps(body), MODEL_ID, stream)


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def test_the_class_implements_inbound() -> None:
    inbound: Inbound = INBOUND
    assert inbound.name == "bedrock"
    assert STREAM_CONTENT_TYPE == "application/vnd.amazon.eventstream"


# -- requests --------------------------------------------------------------------------------
def test_a_full_converse_request_maps_onto_the_chat_request() -> None:
    body = {
        "system": [{"text": "be brief"}, {"cachePoint": {"type": "default"}}, {"text": "be kind"}],
        "messages": [
            user(
                {"text": "what is this?"},
                {"image": {"format": "png", "source": {"bytes": PNG_BASE64}}},
            ),
            {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "look", "signature": "s"}}},
                    {"text": "Checking."},
                    {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Paris"}}},
                ],
            },
            user(
                {
                    "toolResult": {
                        "toolUseId": "t1",
                        "content": [{"text": "sunny"}, {"json": {"c": 21}}],
                        "status": "success",
                    }
                },
                {"text": "thanks"},
            ),
        ],
        "inferenceConfig": {
            "maxTokens": 100,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "weather",
                        "description": "Weather in a city",
                        "inputSchema": {"json": {"type": "object"}},
                    }
                },
                {"cachePoint": {"type": "default"}},
            ],
            "toolChoice": {"auto": {}},
        },
        "additionalModelRequestFields": {"top_k": 5},
        "requestMetadata": {"user": "user-42"},
    }
    request = decode(body)
    assert request.model == MODEL_ID
    assert [(m.role, m.content) for m in request.messages[:2]] == [
        ("system", "be brief"),
        ("system", "be kind"),
    ]
    question = request.messages[2]
    assert question.role == "user"
    assert isinstance(question.content, list)
    image = question.content[1]
    assert isinstance(image, ImagePart)
    assert image.image_url.url == "data:image/png;base64," + PNG_BASE64
    answer = request.messages[3]
    assert answer.content == "Checking."
    assert answer.reasoning_content == "look"
    assert answer.tool_calls == [
        ToolCall(id="t1", function=FunctionCall(name="weather", arguments='{"city":"Paris"}'))
    ]
    assert (request.messages[4].role, request.messages[4].tool_call_id) == ("tool", "t1")
    assert request.messages[4].content == 'sunny\n{"c":21}'
    assert (request.messages[5].role, request.messages[5].content) == ("user", "thanks")
    assert request.max_tokens == 100
    assert (request.temperature, request.top_p, request.stop) == (0.2, 0.9, ["END"])
    assert request.tools is not None and len(request.tools) == 1
    assert request.tools[0].function.name == "weather"
    assert request.tools[0].function.description == "Weather in a city"
    assert request.tools[0].function.parameters == {"type": "object"}
    assert request.tool_choice == "auto"
    assert (request.top_k, request.user) == (5, "user-42")
    assert request.stream is None


def test_the_outbound_mapping_of_the_decoded_request_gives_the_converse_body_back() -> None:
    body: dict[str, Any] = {
        "messages": [
            user({"text": "hi"}),
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}}],
            },
            user({"toolResult": {"toolUseId": "t1", "content": [{"text": "ok"}]}}),
        ],
        "system": [{"text": "sys"}],
        "inferenceConfig": {"maxTokens": 10, "temperature": 0.5},
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}],
            "toolChoice": {"tool": {"name": "f"}},
        },
    }
    payload, json_tool = to_converse(decode(body))
    assert json_tool is None
    result = {"toolUseId": "t1", "content": [{"text": "ok"}], "status": "success"}
    assert payload["messages"] == [
        body["messages"][0],
        body["messages"][1],
        {"role": "user", "content": [{"toolResult": result}]},
    ]
    assert payload["system"] == body["system"]
    assert payload["toolConfig"] == body["toolConfig"]
    assert payload["inferenceConfig"] == body["inferenceConfig"]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        pytest.param({"auto": {}}, "auto", id="auto"),
        pytest.param({"any": {}}, "required", id="any"),
        pytest.param(
            {"tool": {"name": "f"}}, {"type": "function", "function": {"name": "f"}}, id="tool"
        ),
    ],
)
def test_tool_choice_maps_to_chat(choice: dict[str, Any], expected: Any) -> None:
    tools = [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}]
    body = {"messages": [user({"text": "x"})], "toolConfig": {"tools": tools, "toolChoice": choice}}
    assert decode(body).tool_choice == expected


def test_documents_become_file_parts_or_text() -> None:
    body = {
        "messages": [
            user(
                {"document": {"format": "pdf", "name": "report", "source": {"bytes": "JVBERi0="}}},
                {"document": {"format": "txt", "name": "notes", "source": {"text": "plain"}}},
            )
        ]
    }
    content = decode(body).messages[0].content
    assert isinstance(content, list)
    pdf, text = content
    assert isinstance(pdf, FilePart)
    assert pdf.file.file_data == "data:application/pdf;base64,JVBERi0="
    assert (pdf.file.filename, pdf.file.format) == ("report", "application/pdf")
    assert text == TextPart(text="plain")


def test_a_cache_point_marks_the_part_before_it() -> None:
    body = {
        "messages": [user({"text": "long"}, {"cachePoint": {"type": "default"}}, {"text": "q"})]
    }
    content = decode(body).messages[0].content
    assert content == [TextPart(text="long", cache_control={"type": "ephemeral"}), TextPart("q")]


def test_streaming_comes_from_the_url_and_always_asks_for_usage() -> None:
    request = decode({"messages": [user({"text": "x"})]}, stream=True)
    assert request.stream is True
    assert request.wants_usage


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param({}, "messages", id="no-messages"),
        pytest.param({"messages": []}, "messages", id="empty-messages"),
        pytest.param(
            {"messages": [{"role": "system", "content": []}]}, "messages[0].role", id="role"
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": "x"}]}, "messages[0].content", id="str"
        ),
        pytest.param(
            {"messages": [user({"video": {}})]}, "messages[0].content[0]", id="video-block"
        ),
        pytest.param(
            {"messages": [user({"image": {"format": "bmp", "source": {"bytes": "AA"}}})]},
            "messages[0].content[0].image.format",
            id="image-format",
        ),
        pytest.param(
            {"messages": [user({"image": {"format": "png", "source": {"s3Location": {}}}})]},
            "messages[0].content[0].image.source.bytes",
            id="image-s3",
        ),
        pytest.param(
            {"messages": [{"role": "assistant", "content": [{"toolUse": {"name": "f"}}]}]},
            "messages[0].content[0].toolUse.toolUseId",
            id="tool-use-id",
        ),
        pytest.param(
            {"messages": [user({"text": "x"})], "inferenceConfig": {"maxTokens": 0}},
            "inferenceConfig.maxTokens",
            id="max-tokens",
        ),
        pytest.param(
            {"messages": [user({"text": "x"})], "inferenceConfig": {"temperature": "hot"}},
            "inferenceConfig.temperature",
            id="temperature",
        ),
        pytest.param(
            {"messages": [user({"text": "x"})], "inferenceConfig": {"stopSequences": [1]}},
            "inferenceConfig.stopSequences",
            id="stop",
        ),
        pytest.param(
            {"messages": [user({"text": "x"})], "toolConfig": {"tools": [{"toolSpec": {}}]}},
            "toolConfig.tools[0].toolSpec.name",
            id="tool-name",
        ),
        pytest.param(
            {"messages": [user({"text": "x"})], "toolConfig": {"toolChoice": {"some": {}}}},
            "toolConfig.toolChoice",
            id="tool-choice",
        ),
        pytest.param(
            {"messages": [user({"text": "x"})], "guardrailConfig": {"guardrailIdentifier": "g"}},
            "guardrailConfig",
            id="guardrail",
        ),
    ],
)
def test_invalid_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode(body)
    assert caught.value.param == param


def test_bodies_that_are_not_objects_and_missing_model_ids_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        INBOUND.decode_request(b"[]", MODEL_ID)
    with pytest.raises(InvalidRequest):
        INBOUND.decode_request(b"{", MODEL_ID)
    with pytest.raises(InvalidRequest) as caught:
        INBOUND.decode_request(orjson.dumps({"messages": [user({"text": "x"})]}), "")
    assert caught.value.param == "modelId"


# -- replies ---------------------------------------------------------------------------------
def reply(message: Message, finish: str = "stop") -> ChatReply:
    return ChatReply(
        id="chatcmpl-1",
        model="m",
        choices=[Choice(message=message, finish_reason=finish)],
        usage=usage(10, 5, cached=2, reasoning=1),
    )


def test_a_reply_is_a_converse_response_with_bedrock_usage() -> None:
    call = ToolCall(id="t1", function=FunctionCall(name="f", arguments='{"a": 1}'))
    message = Message(
        role="assistant", content="hi", tool_calls=[call], reasoning_content="thought"
    )
    body = orjson.loads(INBOUND.encode_reply(reply(message, "tool_calls")))
    assert body == {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "thought"}}},
                    {"text": "hi"},
                    {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {
            "inputTokens": 8,
            "outputTokens": 5,
            "totalTokens": 15,
            "cacheReadInputTokens": 2,
        },
        "metrics": {"latencyMs": 0},
    }


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        pytest.param("stop", "end_turn", id="stop"),
        pytest.param("length", "max_tokens", id="length"),
        pytest.param("tool_calls", "tool_use", id="tool_calls"),
        pytest.param("content_filter", "content_filtered", id="content_filter"),
    ],
)
def test_finish_reasons_become_stop_reasons(finish: str, stop_reason: str) -> None:
    body = orjson.loads(INBOUND.encode_reply(reply(Message(role="assistant", content="x"), finish)))
    assert body["stopReason"] == stop_reason


def test_an_empty_reply_still_has_one_text_block() -> None:
    body = orjson.loads(INBOUND.encode_reply(reply(Message(role="assistant", content=""))))
    assert body["output"]["message"]["content"] == [{"text": ""}]


def test_the_outbound_decoder_reads_the_encoded_reply_back() -> None:
    call = ToolCall(id="t1", function=FunctionCall(name="f", arguments='{"a":1}'))
    original = reply(Message(role="assistant", content="hi", tool_calls=[call]), "tool_calls")
    exchange = OUTBOUND.chat(ChatRequest(model="m", messages=[]), Target(model="m"))
    decoded = exchange.decode_reply(INBOUND.encode_reply(original))
    assert decoded.message.content == "hi"
    assert decoded.message.tool_calls == [call]
    assert decoded.finish_reason == "tool_calls"
    assert decoded.usage == usage(10, 5, cached=2)


# -- streams ---------------------------------------------------------------------------------
def round_trip(events: list[StreamEvent]) -> tuple[bytes, list[StreamEvent]]:
    """Events → the encoder's event-stream bytes → the engine's framer → the outbound
    decoder (fed a few bytes at a time, as the network cuts them)."""
    encoder = INBOUND.stream_encoder(ChatRequest(model="m", messages=[]))
    wire = b"".join(encoder.encode(e) for e in events) + encoder.finish()
    framer = EventStreamFramer()
    decoder = OUTBOUND.chat(ChatRequest(model="m", messages=[]), Target(model="m")).stream_decoder()
    out: list[StreamEvent] = []
    for cut in range(0, len(wire), 7):
        for frame in framer.feed(wire[cut : cut + 7]):
            out += decoder.feed(frame)
    framer.finish()
    out += decoder.finish()
    return wire, out


def event_types(wire: bytes) -> list[str | None]:
    return [m.header(":event-type") for m in EventStreamDecoder().feed(wire)]


def test_a_stream_round_trips_through_the_outbound_decoder() -> None:
    events: list[StreamEvent] = [
        Start(id="chatcmpl-1", model="m"),
        ReasoningDelta("hmm"),
        TextDelta("Hel"),
        TextDelta("lo"),
        ToolCallDelta(index=0, id="t1", name="f"),
        ToolCallDelta(index=0, arguments='{"a"'),
        ToolCallDelta(index=1, id="t2", name="g", arguments="{}"),
        ToolCallDelta(index=0, arguments=":1}"),
        Finish("tool_calls"),
        UsageReport(usage(10, 5, cached=2)),
    ]
    wire, decoded = round_trip(events)
    assert isinstance(decoded[0], Start)
    # A call's first piece of arguments comes in a delta of its own after the block's start.
    assert decoded[1:] == [
        *events[1:6],
        ToolCallDelta(index=1, id="t2", name="g"),
        ToolCallDelta(index=1, arguments="{}"),
        *events[7:],
    ]
    assert event_types(wire) == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockStop",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockStop",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]


def test_every_message_is_a_json_event() -> None:
    wire, _ = round_trip([Start(id="x", model="m"), TextDelta("hi"), Finish("stop")])
    for message in EventStreamDecoder().feed(wire):
        assert message.header(":message-type") == "event"
        assert message.header(":content-type") == "application/json"
        assert isinstance(orjson.loads(message.payload), dict)


def test_a_stream_without_finish_or_usage_still_stops_with_zero_usage() -> None:
    wire, decoded = round_trip([Start(id="x", model="m"), TextDelta("hi")])
    assert decoded[1:] == [TextDelta("hi"), Finish("stop"), UsageReport(usage(0, 0))]
    assert event_types(wire)[-2:] == ["messageStop", "metadata"]


def test_usage_reported_twice_sends_the_latest_once() -> None:
    _, decoded = round_trip(
        [TextDelta("x"), UsageReport(usage(1, 1)), Finish("length"), UsageReport(usage(4, 3))]
    )
    assert decoded[1:] == [TextDelta("x"), Finish("length"), UsageReport(usage(4, 3))]


def test_other_choices_and_events_after_finish_are_not_relayed() -> None:
    _, decoded = round_trip(
        [TextDelta("a"), TextDelta("b", choice=1), Finish("stop"), TextDelta("c")]
    )
    assert [e for e in decoded if isinstance(e, TextDelta)] == [TextDelta("a")]


@pytest.mark.parametrize(
    ("exc", "name", "status"),
    [
        pytest.param(RateLimited("slow down", retry_after=1), "ThrottlingException", 429, id="429"),
        pytest.param(InvalidRequest("bad"), "ValidationException", 400, id="400"),
        pytest.param(TollwayError("boom"), "InternalServerException", 502, id="500"),
    ],
)
def test_a_stream_error_is_an_exception_message_the_outbound_decoder_raises(
    exc: TollwayError, name: str, status: int
) -> None:
    encoder = INBOUND.stream_encoder(ChatRequest(model="m", messages=[]))
    wire = encoder.encode(TextDelta("x")) + encoder.error(exc)
    assert encoder.finish() == b""
    messages = EventStreamDecoder().feed(wire)
    last = messages[-1]
    assert last.header(":message-type") == "exception"
    assert last.header(":exception-type") == name
    assert orjson.loads(last.payload) == {"message": exc.message}
    decoder = OUTBOUND.chat(ChatRequest(model="m", messages=[]), Target(model="m")).stream_decoder()
    frames: list[Frame] = EventStreamFramer().feed(wire)
    decoder.feed(frames[0])
    with pytest.raises(UpstreamStatusError) as caught:
        decoder.feed(frames[-1])
    assert caught.value.status == status


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "ValidationException"),
        (401, "UnrecognizedClientException"),
        (403, "AccessDeniedException"),
        (404, "ResourceNotFoundException"),
        (413, "ValidationException"),
        (429, "ThrottlingException"),
        (500, "InternalServerException"),
        (502, "InternalServerException"),
        (503, "ServiceUnavailableException"),
        (504, "ModelTimeoutException"),
    ],
)
def test_error_type_names_the_bedrock_exception_of_a_status(status: int, name: str) -> None:
    assert error_type(status) == name


def test_a_spent_budget_is_not_a_throttle_the_sdk_would_retry() -> None:
    exc = BudgetExceeded("budget spent")
    assert INBOUND.error_type(exc) == "ServiceQuotaExceededException"
    assert INBOUND.error_type(UpstreamTimeout("slow")) == "ModelTimeoutException"


def test_error_bodies_are_bedrock_messages() -> None:
    assert orjson.loads(INBOUND.encode_error(InvalidRequest("bad field"))) == {
        "message": "bad field"
    }

"""``responses`` dialect: OpenAI Responses requests ↔ the common model, as pure functions.

Fixtures follow the OpenAI Responses API reference; ``response`` objects are read with the
``openai`` SDK's own types, as its client reads them.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest
from openai.types.responses import Response

from proxy.dialects.base import Inbound
from proxy.dialects.responses import DIALECT
from proxy.errors import InvalidRequest, TollwayError, UpstreamStatusError, UpstreamUnreachable
from proxy.model import (
    ChatReply,
    ChatRequest,
    Choice,
    FilePart,
    FileRef,
    Finish,
    FunctionCall,
    FunctionSpec,
    ImagePart,
    ImageURL,
    Message,
    ReasoningDelta,
    ResponseFormat,
    Start,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
    usage,
)

TOOL_NAME = "get_weather"
TOOL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
WEATHER: dict[str, Any] = {
    "type": "function",
    "name": TOOL_NAME,
    "description": "The weather in a city",
    "parameters": TOOL_PARAMETERS,
}
REPLY_TEXT = "The quick brown fox jumps over the lazy dog"


def decode(body: dict[str, Any]) -> ChatRequest:
    return DIALECT.decode_request(orjson.dumps(body))


def reply(message: Message, finish: str = "stop", used: Usage | None = None) -> ChatReply:
    return ChatReply(
        id="chatcmpl-1",
        model="upstream-model",
        choices=[Choice(message=message, finish_reason=finish)],
        usage=used,
    )


def response_of(body: bytes) -> Response:
    """The ``response`` as the ``openai`` SDK reads it (leniently, as its client does)."""
    return Response.model_construct(**orjson.loads(body))


def run_stream(request: ChatRequest, events: list[StreamEvent]) -> bytes:
    encoder = DIALECT.stream_encoder(request)
    return b"".join(encoder.encode(event) for event in events) + encoder.finish()


def parse_sse(raw: bytes) -> list[dict[str, Any]]:
    """The events of a Responses stream; each ``event:`` line names its payload's type."""
    out = []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        name_line, data_line = block.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        payload = orjson.loads(data_line[len(b"data: ") :])
        assert payload["type"] == name_line[len(b"event: ") :].decode()
        out.append(payload)
    return out


def test_the_dialect_implements_inbound() -> None:
    inbound: Inbound = DIALECT
    assert inbound.name == "responses"


# -- request ---------------------------------------------------------------------------------
def test_instructions_and_string_input_become_system_and_user_messages() -> None:
    request = decode(
        {
            "model": "gpt-test",
            "instructions": "be brief",
            "input": "Say hello",
            "max_output_tokens": 50,
            "temperature": 0.5,
            "top_p": 0.9,
            "user": "u-1",
        }
    )
    assert request.model == "gpt-test"
    assert request.messages == [
        Message(role="system", content="be brief"),
        Message(role="user", content="Say hello"),
    ]
    assert request.max_completion_tokens == 50
    assert (request.temperature, request.top_p, request.user) == (0.5, 0.9, "u-1")
    assert request.stream is None
    assert request.stream_options is None


def test_input_items_become_chat_messages() -> None:
    request = decode(
        {
            "model": "m",
            "input": [
                {"type": "message", "role": "developer", "content": "rules"},
                {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Let me check."}],
                },
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
                {"type": "function_call_output", "call_id": "c2", "output": "two"},
            ],
            "reasoning": {"effort": "low"},
            "text": {"format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}}},
        }
    )
    assert request.messages == [
        Message(role="developer", content="rules"),
        Message(role="user", content=[TextPart(text="hi")]),
        Message(
            role="assistant",
            content="Let me check.",
            tool_calls=[
                ToolCall(id="c1", function=FunctionCall(name="f", arguments="{}")),
                ToolCall(id="c2", function=FunctionCall(name="g", arguments="{}")),
            ],
        ),
        Message(role="tool", tool_call_id="c1", content="one"),
        Message(role="tool", tool_call_id="c2", content="two"),
    ]
    assert request.reasoning_effort == "low"
    assert request.response_format == ResponseFormat(
        type="json_schema", json_schema={"name": "r", "schema": {"type": "object"}}
    )
    assert request.stream is None


def test_function_tools_parts_and_json_format_map_to_chat() -> None:
    request = decode(
        {
            "model": "gpt-test",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                        {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
                        {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE"},
                        {
                            "type": "input_file",
                            "file_data": "data:application/pdf;base64,JVBE",
                            "filename": "a.pdf",
                        },
                    ],
                }
            ],
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "name": TOOL_NAME},
            "parallel_tool_calls": False,
            "text": {"format": {"type": "json_object"}},
        }
    )
    assert request.tools == [
        Tool(
            function=FunctionSpec(
                name=TOOL_NAME, description="The weather in a city", parameters=TOOL_PARAMETERS
            )
        )
    ]
    assert request.tool_choice == {"type": "function", "function": {"name": TOOL_NAME}}
    assert request.parallel_tool_calls is False
    assert request.response_format == ResponseFormat(type="json_object")
    assert request.messages[0].content == [
        TextPart(text="What is this?"),
        ImagePart(image_url=ImageURL(url="data:image/png;base64,AAAA")),
        ImagePart(image_url=ImageURL(url="https://x/y.png", detail="low")),
        FilePart(file=FileRef(file_data="data:application/pdf;base64,JVBE")),
        FilePart(file=FileRef(file_data="data:application/pdf;base64,JVBE", filename="a.pdf")),
    ]
    # The common model encodes as the chat body the old translation sent.
    chat = msgspec.to_builtins(request)
    assert chat["messages"][0]["content"][:2] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]


def test_a_function_call_round_trip_becomes_assistant_calls_and_tool_results() -> None:
    request = decode(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "CASE tool_result"},
                {"type": "function_call", "call_id": "call_1", "name": TOOL_NAME},
                {
                    "type": "function_call_output",
                    "call_id": "call_1",
                    "output": [
                        {"type": "input_text", "text": "sun"},
                        {"type": "text", "text": "ny"},
                    ],
                },
            ],
        }
    )
    assert request.messages == [
        Message(role="user", content="CASE tool_result"),
        Message(
            role="assistant",
            content=None,
            tool_calls=[ToolCall(id="call_1", function=FunctionCall(TOOL_NAME, "{}"))],
        ),
        Message(role="tool", tool_call_id="call_1", content="sunny"),
    ]


def test_consecutive_assistant_texts_are_one_message_until_a_call() -> None:
    request = decode(
        {
            "model": "m",
            "input": [
                {"role": "assistant", "content": "a"},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "b"}]},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"role": "assistant", "content": "c"},
            ],
        }
    )
    assert [(m.role, m.content) for m in request.messages] == [
        ("assistant", "ab"),
        ("assistant", "c"),
    ]
    assert request.messages[0].tool_calls is not None


def test_streaming_requests_ask_the_upstream_for_usage() -> None:
    request = decode({"model": "m", "input": "hi", "stream": True})
    assert request.stream is True
    assert request.wants_usage


def test_parallel_tool_calls_and_metadata_stay_out_of_the_chat_request() -> None:
    request = decode(
        {"model": "m", "input": "hi", "parallel_tool_calls": False, "metadata": {"k": "v"}}
    )
    assert request.parallel_tool_calls is None
    assert request.metadata is None
    assert b"metadata" not in msgspec.json.encode(request)


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        pytest.param(b'{"model": "m"}', "`input` is required", "input", id="no-input"),
        pytest.param(b"", "the request body is empty", None, id="empty"),
        pytest.param(b"{", "not valid JSON", None, id="bad-json"),
        pytest.param(
            b'{"model": "m", "input": [{"type": "item_reference", "id": "x"}]}',
            "item_reference",
            "input[0].type",
            id="item-reference",
        ),
        pytest.param(
            b'{"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", '
            b'"file_id": "file-1"}]}]}',
            "file ids",
            "input[0].content",
            id="image-file-id",
        ),
        pytest.param(
            b'{"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", '
            b'"file_id": "file-1"}]}]}',
            "'input_file' is not supported",
            "input[0].content",
            id="file-id",
        ),
        pytest.param(
            b'{"model": "m", "input": [{"role": "tool", "content": "x"}]}',
            "role 'tool' is not supported",
            "input[0].role",
            id="bad-role",
        ),
        pytest.param(
            b'{"model": "m", "input": [{"role": "user", "content": 3}]}',
            "must be a string or a list",
            "input[0]",
            id="bad-content",
        ),
        pytest.param(b'{"model": "m", "input": []}', "holds no message", "input", id="empty"),
        pytest.param(
            b'{"model": "m", "input": "hi", "background": true}',
            "background",
            "background",
            id="bg",
        ),
        pytest.param(
            b'{"model": "m", "input": "hi", "previous_response_id": "resp_1"}',
            "previous_response_id",
            "previous_response_id",
            id="previous-response",
        ),
        pytest.param(
            b'{"model": "m", "input": "hi", "conversation": "conv_1"}',
            "stores no responses",
            "conversation",
            id="conversation",
        ),
        pytest.param(
            b'{"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}',
            "function tools only",
            "tools[0].type",
            id="hosted-tool",
        ),
        pytest.param(
            b'{"model": "m", "input": "hi", "tool_choice": {"type": "file_search"}}',
            "tool_choice of type 'file_search'",
            "tool_choice",
            id="hosted-tool-choice",
        ),
        pytest.param(b'{"model": 3, "input": "hi"}', "invalid request body", None, id="bad-type"),
        pytest.param(b'{"model": "", "input": "hi"}', "`model` must be", "model", id="no-model"),
        pytest.param(
            b'{"model": "m", "input": "hi", "max_output_tokens": 0}',
            "must be at least 1",
            "max_completion_tokens",
            id="zero-tokens",
        ),
    ],
)
def test_requests_the_gateway_cannot_serve_are_400s(
    body: bytes, message: str, param: str | None
) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        DIALECT.decode_request(body)
    assert caught.value.param == param
    assert caught.value.status == 400


# -- reply -----------------------------------------------------------------------------------
def test_a_text_reply_is_a_completed_response_echoing_the_request() -> None:
    request = decode(
        {
            "model": "gpt-test",
            "instructions": "be brief",
            "input": "Say hello",
            "max_output_tokens": 50,
            "temperature": 0.5,
            "metadata": {"k": "v"},
            "tools": [WEATHER],
            "tool_choice": "auto",
            "text": {"format": {"type": "json_object"}},
            "reasoning": {"effort": "low"},
        }
    )
    used = usage(11, 9, cached=3, reasoning=2)
    body = DIALECT.encode_reply_for(
        request, reply(Message(role="assistant", content=REPLY_TEXT), used=used)
    )
    raw = orjson.loads(body)
    response = response_of(body)
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == REPLY_TEXT
    (message,) = response.output
    assert message.type == "message"
    assert message.role == "assistant"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 9)
    assert response.usage.total_tokens == 20
    assert response.usage.input_tokens_details.cached_tokens == 3
    assert response.usage.output_tokens_details.reasoning_tokens == 2
    assert raw["model"] == "gpt-test"
    assert raw["instructions"] == "be brief"
    assert raw["max_output_tokens"] == 50
    assert raw["temperature"] == 0.5
    assert raw["metadata"] == {"k": "v"}
    assert raw["tools"] == [WEATHER]
    assert raw["tool_choice"] == "auto"
    assert raw["reasoning"] == {"effort": "low", "summary": None}
    assert raw["text"]["format"]["type"] == "json_object"
    assert raw["parallel_tool_calls"] is True
    assert raw["incomplete_details"] is None


def test_a_tool_call_reply_is_a_function_call_item() -> None:
    request = decode({"model": "m", "input": "CASE tools", "tools": [WEATHER]})
    calls = [ToolCall(id="call_w", function=FunctionCall(TOOL_NAME, '{"city": "Paris"}'))]
    body = DIALECT.encode_reply_for(
        request,
        reply(Message(role="assistant", tool_calls=calls), "tool_calls", usage(10, 5)),
    )
    response = response_of(body)
    assert response.status == "completed"
    (call,) = response.output
    assert call.type == "function_call"
    assert call.name == TOOL_NAME
    assert call.call_id == "call_w"
    assert call.status == "completed"
    assert orjson.loads(call.arguments) == {"city": "Paris"}
    assert str(call.id).startswith("fc_")


def test_a_length_cut_reply_is_an_incomplete_response() -> None:
    request = DIALECT.decode_request(b'{"model": "m", "input": "hi", "max_output_tokens": 3}')
    body = orjson.loads(
        DIALECT.encode_reply_for(
            request, reply(Message(role="assistant", content="one two three"), "length")
        )
    )
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["content"][0]["text"] == "one two three"
    assert body["usage"] is None


def test_a_filtered_reply_is_incomplete_for_content_filter() -> None:
    body = orjson.loads(
        DIALECT.encode_reply(reply(Message(role="assistant", content=""), "content_filter"))
    )
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "content_filter"}
    assert body["output"] == []


def test_a_reply_without_choices_is_an_error() -> None:
    broken = ChatReply(id="x", model="m", choices=[])
    with pytest.raises(TollwayError, match="could not be read"):
        DIALECT.encode_reply(broken)


def test_encode_reply_without_the_request_echoes_defaults() -> None:
    raw = orjson.loads(DIALECT.encode_reply(reply(Message(role="assistant", content="hi"))))
    assert raw["model"] == "upstream-model"
    assert raw["instructions"] is None
    assert raw["tools"] == []
    assert raw["tool_choice"] == "auto"
    assert raw["text"] == {"format": {"type": "text"}}
    assert raw["metadata"] == {}


def test_a_plain_chat_request_echoes_what_it_holds() -> None:
    request = ChatRequest(
        model="m",
        messages=[Message(role="system", content="sys"), Message(role="user", content="hi")],
        tools=[Tool(function=FunctionSpec(name="f", parameters={"type": "object"}))],
        tool_choice={"type": "function", "function": {"name": "f"}},
        max_completion_tokens=7,
        response_format=ResponseFormat(type="json_schema", json_schema={"name": "r"}),
    )
    raw = orjson.loads(
        DIALECT.encode_reply_for(request, reply(Message(role="assistant", content="x")))
    )
    assert raw["model"] == "m"
    assert raw["instructions"] == "sys"
    assert raw["max_output_tokens"] == 7
    assert raw["tools"] == [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    assert raw["tool_choice"] == {"type": "function", "name": "f"}
    assert raw["text"]["format"]["type"] == "json_schema"
    assert raw["text"]["format"]["name"] == "r"


def test_a_copied_request_falls_back_to_its_own_fields() -> None:
    request = decode({"model": "m", "input": "hi", "metadata": {"k": "v"}})
    copy = msgspec.structs.replace(request, model="alias")
    raw = orjson.loads(
        DIALECT.encode_reply_for(copy, reply(Message(role="assistant", content="x")))
    )
    assert raw["model"] == "alias"
    assert raw["metadata"] == {}


def test_errors_use_the_contracts_openai_shape() -> None:
    error = UpstreamStatusError(429, "slow down", type="rate_limit_error", code="rate_limited")
    assert orjson.loads(DIALECT.encode_error(error)) == {
        "error": {
            "message": "slow down",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limited",
        }
    }


# -- stream ----------------------------------------------------------------------------------
TEXT_EVENTS: list[StreamEvent] = [
    Start(id="chatcmpl-1", model="upstream"),
    TextDelta("The quick brown fox "),
    ReasoningDelta("thinking"),
    TextDelta("jumps over the lazy dog"),
    TextDelta("ignored", choice=1),
    Finish("stop"),
    UsageReport(usage(11, 9, cached=3)),
]


def test_streamed_text_events() -> None:
    request = decode({"model": "gpt-test", "input": "Say hello", "stream": True})
    events = parse_sse(run_stream(request, TEXT_EVENTS))
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == REPLY_TEXT
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["model"] == "gpt-test"
    done = [e for e in events if e["type"] == "response.output_text.done"]
    assert done[0]["text"] == REPLY_TEXT
    completed = Response.model_construct(**events[-1]["response"])
    assert completed.id == events[0]["response"]["id"]
    assert completed.output_text == REPLY_TEXT
    assert completed.usage is not None
    assert completed.usage.input_tokens == 11
    assert completed.usage.input_tokens_details.cached_tokens == 3
    assert b"[DONE]" not in run_stream(request, TEXT_EVENTS)


def test_streamed_function_call_events() -> None:
    request = decode({"model": "m", "input": "CASE stream_tools", "tools": [WEATHER]})
    raw = run_stream(
        request,
        [
            Start(id="x", model="up"),
            ToolCallDelta(index=0, id="call_w", name=TOOL_NAME),
            ToolCallDelta(index=0, arguments='{"city": '),
            ToolCallDelta(index=0, arguments='"Paris"}'),
            Finish("tool_calls"),
            UsageReport(usage(10, 5)),
        ],
    )
    events = parse_sse(raw)
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [e["item"]["type"] for e in added] == ["function_call"]
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert deltas == ['{"city": ', '"Paris"}']
    (done,) = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert orjson.loads(done["arguments"]) == {"city": "Paris"}
    assert done["name"] == TOOL_NAME
    completed = Response.model_construct(**events[-1]["response"])
    assert events[-1]["type"] == "response.completed"
    (call,) = completed.output
    assert call.type == "function_call"
    assert call.name == TOOL_NAME
    assert call.call_id == "call_w"
    assert orjson.loads(call.arguments) == {"city": "Paris"}
    assert completed.usage is not None
    assert completed.usage.output_tokens == 5


def test_text_then_calls_close_the_message_first_and_keep_output_order() -> None:
    request = decode({"model": "m", "input": "hi", "tools": [WEATHER]})
    events = parse_sse(
        run_stream(
            request,
            [
                Start(id="x", model="up"),
                TextDelta("Checking."),
                ToolCallDelta(index=0, id="c0", name="a", arguments="{}"),
                ToolCallDelta(index=1, id="c1", name="b", arguments="{}"),
                Finish("tool_calls"),
            ],
        )
    )
    kinds = [e["type"] for e in events]
    assert kinds.index("response.output_item.done") < kinds.index(
        "response.function_call_arguments.delta"
    )
    added = [
        (e["output_index"], e["item"]["type"])
        for e in events
        if "item" in e and e["type"] == "response.output_item.added"
    ]
    assert added == [(0, "message"), (1, "function_call"), (2, "function_call")]
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["message", "function_call", "function_call"]
    assert [item.get("name") for item in output[1:]] == ["a", "b"]
    assert events[-1]["response"]["usage"] is None


def test_a_length_cut_stream_ends_with_response_incomplete() -> None:
    request = decode({"model": "m", "input": "hi", "max_output_tokens": 2, "stream": True})
    events = parse_sse(
        run_stream(request, [Start(id="x", model="up"), TextDelta("one two"), Finish("length")])
    )
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["status"] == "incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        pytest.param(
            UpstreamUnreachable("the upstream went away"), "upstream_unreachable", id="cut"
        ),
        pytest.param(
            UpstreamStatusError(500, "boom", type="server_error"), "upstream_error", id="in-band"
        ),
    ],
)
def test_a_stream_that_breaks_ends_with_error_and_response_failed(
    error: TollwayError, code: str
) -> None:
    request = decode({"model": "m", "input": "hi", "stream": True})
    encoder = DIALECT.stream_encoder(request)
    raw = encoder.encode(Start(id="x", model="up")) + encoder.encode(TextDelta("partial"))
    raw += encoder.error(error)
    events = parse_sse(raw)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["code"] == code
    assert events[-2]["message"] == error.message
    failed = Response.model_construct(**events[-1]["response"])
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.message == error.message
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_a_stream_that_fails_before_any_event_still_opens_the_response() -> None:
    encoder = DIALECT.stream_encoder(decode({"model": "m", "input": "hi", "stream": True}))
    kinds = [e["type"] for e in parse_sse(encoder.error(UpstreamUnreachable("gone")))]
    assert kinds == ["response.created", "response.in_progress", "error", "response.failed"]


def test_a_stream_without_text_completes_with_empty_output() -> None:
    request = decode({"model": "m", "input": "hi", "stream": True})
    events = parse_sse(run_stream(request, [Start(id="x", model="up"), Finish("stop")]))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.completed",
    ]
    assert events[-1]["response"]["output"] == []

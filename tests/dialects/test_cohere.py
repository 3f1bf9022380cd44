"""``cohere`` dialect: the common model ↔ Cohere v2 chat and embed, as pure functions.

Fixtures follow Cohere's v2 API reference (Chat, Chat streaming events, Embed, errors).
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from proxy.dialects.base import EmbeddingOutbound, Frame, Outbound, Target
from proxy.dialects.cohere import DIALECT
from proxy.errors import InvalidRequest, UpstreamError, UpstreamStatusError, UpstreamUnreachable
from proxy.model import (
    ChatRequest,
    EmbeddingRequest,
    Finish,
    FunctionCall,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    UsageReport,
)
from tests.dialects.cohere_payloads import (
    START,
    TEXT_EVENTS,
    TIME,
    WEATHER,
    content,
    end,
    reply_payload,
)
from tests.dialects.replies import ReplyBuilder

MODEL = "command-a-03-2025"
TARGET = Target(model=MODEL, provider="cohere")


def chat_request(**body: Any) -> ChatRequest:
    body.setdefault("model", "test-model")
    body.setdefault("messages", [{"role": "user", "content": "hello"}])
    return msgspec.convert(body, ChatRequest)


def sent_body(**body: Any) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(DIALECT.chat(chat_request(**body), TARGET).body)
    return payload


def reply(message: dict[str, Any], finish: str = "COMPLETE", **extra: Any) -> bytes:
    return orjson.dumps(reply_payload(message, finish, **extra))


def decode(raw: bytes) -> Any:
    return DIALECT.chat(chat_request(), TARGET).decode_reply(raw)


def test_the_dialect_implements_outbound_and_embeddings() -> None:
    outbound: Outbound = DIALECT
    embeddings: EmbeddingOutbound = DIALECT
    assert outbound.name == "cohere" and embeddings is DIALECT


# -- request -------------------------------------------------------------------------------
def test_messages_keep_their_roles_and_tool_turns_round_trip() -> None:
    call = {"id": "get_weather_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}  # fmt: skip
    body = sent_body(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "I will check.", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "get_weather_1", "content": "sunny"},
            {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}]},
            {"role": "user", "content": "thanks"},
        ],
        tools=[WEATHER],
    )
    assert body["model"] == MODEL
    assert body["stream"] is False
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_plan": "I will check.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "get_weather_1", "content": "sunny"},
        {"role": "assistant", "content": "Sunny."},
        {"role": "user", "content": "thanks"},
    ]
    assert body["tools"] == [WEATHER]


def test_the_stream_flag_follows_the_request() -> None:
    assert sent_body(stream=True)["stream"] is True


def test_developer_is_system_and_function_results_are_tool_turns() -> None:
    body = sent_body(
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
            {"role": "user", "content": "hi"},
            {"role": "function", "name": "get_time", "content": "noon"},
        ]
    )
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "get_time", "content": "noon"}


def test_tool_call_arguments_given_as_an_object_are_sent_as_json_text() -> None:
    call = {"id": "c1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    body = sent_body(messages=[{"role": "assistant", "tool_calls": [call]}])
    (sent,) = body["messages"][0]["tool_calls"]
    assert orjson.loads(sent["function"]["arguments"]) == {"city": "Paris"}
    assert "tool_plan" not in body["messages"][0]


def test_images_pass_as_image_url_parts() -> None:
    parts = [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
    ]
    body = sent_body(messages=[{"role": "user", "content": parts}])
    assert body["messages"][0]["content"] == parts


@pytest.mark.parametrize(
    ("part", "kind"),
    [
        pytest.param({"type": "input_audio", "input_audio": {"data": "AAAA"}}, "input_audio",
                     id="audio"),
        pytest.param({"type": "file", "file": {"file_id": "f-1"}}, "file", id="file"),
    ],
)  # fmt: skip
def test_parts_cohere_cannot_carry_are_refused_naming_the_field(
    part: dict[str, Any], kind: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        sent_body(messages=[{"role": "user", "content": [part]}])
    assert caught.value.param == "messages[0].content[0].type"
    assert repr(kind) in caught.value.message and "cohere/" in caught.value.message


def test_an_unknown_role_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidRequest) as caught:
        sent_body(messages=[{"role": "critic", "content": "hi"}])
    assert caught.value.param == "messages[0].role"


@pytest.mark.parametrize(
    ("choice", "expected", "tools"),
    [
        pytest.param("auto", None, ["get_weather", "get_time"], id="auto"),
        pytest.param("none", "NONE", ["get_weather", "get_time"], id="none"),
        pytest.param("required", "REQUIRED", ["get_weather", "get_time"], id="required"),
        pytest.param(
            {"type": "function", "function": {"name": "get_time"}},
            "REQUIRED",
            ["get_time"],
            id="named",
        ),
    ],
)
def test_tool_choice_maps_to_cohere(choice: Any, expected: str | None, tools: list[str]) -> None:
    body = sent_body(tools=[WEATHER, TIME], tool_choice=choice)
    assert body.get("tool_choice") == expected
    assert [t["function"]["name"] for t in body["tools"]] == tools


def test_legacy_functions_and_function_call_are_tools_and_a_forced_tool() -> None:
    body = sent_body(
        functions=[WEATHER["function"], TIME["function"]], function_call={"name": "get_time"}
    )
    assert body["tool_choice"] == "REQUIRED"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]


def test_a_strict_tool_asks_for_strict_tools() -> None:
    strict = {"type": "function", "function": {**WEATHER["function"], "strict": True}}
    assert sent_body(tools=[strict])["strict_tools"] is True
    assert "strict_tools" not in sent_body(tools=[WEATHER])


def test_sampling_and_limits_use_cohere_names() -> None:
    body = sent_body(
        temperature=0.3,
        top_p=0.8,
        top_k=5,
        max_tokens=50,
        stop=["END", "STOP"],
        seed=1,
        frequency_penalty=0.2,
        presence_penalty=0.1,
        user="user-42",
    )
    for key, value in {
        "temperature": 0.3,
        "p": 0.8,
        "k": 5,
        "max_tokens": 50,
        "stop_sequences": ["END", "STOP"],
        "seed": 1,
        "frequency_penalty": 0.2,
        "presence_penalty": 0.1,
    }.items():
        assert body[key] == value
    assert "top_p" not in body and "stop" not in body and "user" not in body


def test_max_completion_tokens_wins_and_a_single_stop_is_a_list() -> None:
    body = sent_body(max_tokens=50, max_completion_tokens=64, stop="END")
    assert (body["max_tokens"], body["stop_sequences"]) == (64, ["END"])


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        pytest.param({"type": "json_object"}, {"type": "json_object"}, id="json-object"),
        pytest.param(
            {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
            {"type": "json_object", "json_schema": {"type": "object"}},
            id="json-schema",
        ),
        pytest.param({"type": "text"}, None, id="text"),
    ],
)
def test_json_mode(response_format: dict[str, Any], expected: dict[str, Any] | None) -> None:
    body = sent_body(response_format=response_format)
    assert body.get("response_format") == expected


def test_more_than_one_choice_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        sent_body(n=3)
    assert caught.value.param == "n"


# -- response ------------------------------------------------------------------------------
def test_text_and_billed_usage_map_to_a_chat_reply() -> None:
    message = {
        "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Hi!"}]
    }
    result = decode(reply(message))
    assert result.id == "chatcmpl-5a50480a"
    assert result.model == MODEL
    (choice,) = result.choices
    assert choice.message.content == "Hi!"
    assert choice.message.reasoning_content == "hmm"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    # billed_units is what Cohere charges; tokens counts its own prompt template too.
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (9, 4)
    assert result.usage.total_tokens == 13


def test_usage_falls_back_to_tokens_without_billed_units() -> None:
    result = decode(
        reply({"content": []}, usage={"tokens": {"input_tokens": 5, "output_tokens": 2}})
    )
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (5, 2)


def test_usage_falls_back_to_tokens_when_billed_units_is_empty() -> None:
    counts = {"billed_units": {}, "tokens": {"input_tokens": 5, "output_tokens": 2}}
    result = decode(reply({"content": []}, usage=counts))
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (5, 2)


def test_a_reply_without_usage_has_none_and_a_fresh_id_without_cohere_id() -> None:
    result = decode(orjson.dumps({"message": {"content": [{"type": "text", "text": "x"}]}}))
    assert result.usage is None
    assert result.id.startswith("chatcmpl-") and len(result.id) > len("chatcmpl-")


def test_tool_calls_keep_cohere_ids_and_the_tool_plan_is_the_content() -> None:
    message = {
        "tool_plan": "I will look it up.",
        "tool_calls": [
            {"id": "get_weather_k3", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
        ],
    }  # fmt: skip
    (choice,) = decode(reply(message, "TOOL_CALL")).choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I will look it up."
    (call,) = choice.message.tool_calls or []
    assert call == ToolCall(
        id="get_weather_k3",
        type="function",
        function=FunctionCall(name="get_weather", arguments='{"city":"Paris"}'),
    )


def test_a_reply_that_only_calls_tools_has_no_content() -> None:
    call = {"function": {"name": "get_time"}}
    (choice,) = decode(reply({"tool_calls": [call]}, "COMPLETE")).choices
    assert choice.message.content is None
    assert choice.finish_reason == "tool_calls"
    (made,) = choice.message.tool_calls or []
    assert made.id.startswith("call_") and made.function.arguments == "{}"


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        pytest.param("COMPLETE", "stop", id="complete"),
        pytest.param("STOP_SEQUENCE", "stop", id="stop-sequence"),
        pytest.param("MAX_TOKENS", "length", id="max-tokens"),
        pytest.param("ERROR_TOXIC", "content_filter", id="toxic"),
        pytest.param("TIMEOUT", "stop", id="other"),
    ],
)
def test_finish_reasons_map_to_openai_names(reason: str, finish: str) -> None:
    assert decode(reply({"content": []}, reason)).finish_reason == finish


def test_a_reply_that_is_not_cohere_json_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        decode(b"<html>bad gateway</html>")


# -- streaming -----------------------------------------------------------------------------
def frames(*payloads: dict[str, Any]) -> list[Frame]:
    return [Frame(data=orjson.dumps(p), event=p["type"]) for p in payloads]


TEXT_STREAM = frames(*TEXT_EVENTS)


def run(frame_list: list[Frame], **body: Any) -> list[StreamEvent]:
    decoder = DIALECT.chat(chat_request(stream=True, **body), TARGET).stream_decoder()
    events = [event for frame in frame_list for event in decoder.feed(frame)]
    return events + decoder.finish()


def test_a_text_stream_starts_deltas_finishes_then_reports_usage() -> None:
    events = run(TEXT_STREAM, stream_options={"include_usage": True})
    start, *deltas, finish, report = events
    assert isinstance(start, Start)
    assert (start.id, start.model) == ("chatcmpl-m-1", MODEL)
    assert deltas == [TextDelta("Hel"), TextDelta("lo")]
    assert finish == Finish("stop")
    assert isinstance(report, UsageReport)
    assert (report.usage.prompt_tokens, report.usage.completion_tokens) == (9, 4)


def test_usage_is_reported_even_when_the_client_did_not_ask_for_it() -> None:
    reports = [e for e in run(TEXT_STREAM) if isinstance(e, UsageReport)]
    assert [(r.usage.prompt_tokens, r.usage.completion_tokens) for r in reports] == [(9, 4)]


def test_the_event_name_is_used_when_the_payload_has_no_type() -> None:
    untyped = {"index": 0, "delta": {"message": {"content": {"text": "Hi"}}}}
    events = run(
        [Frame(data=orjson.dumps(untyped), event="content-delta"), *frames(end("COMPLETE"))]
    )
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("Hi")]


def test_thinking_deltas_are_reasoning() -> None:
    block = {"type": "thinking", "thinking": "hmm"}
    thinking = {"type": "content-delta", "index": 0, "delta": {"message": {"content": block}}}
    events = run(frames(START, thinking, content("Hi"), end("COMPLETE")))
    assert [e for e in events if isinstance(e, ReasoningDelta | TextDelta)] == [
        ReasoningDelta("hmm"),
        TextDelta("Hi"),
    ]


def test_streamed_tool_calls_become_indexed_argument_deltas() -> None:
    def start(index: int, ident: str) -> dict[str, Any]:
        call = {"id": ident, "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}  # fmt: skip
        return {"type": "tool-call-start", "index": index,
                "delta": {"message": {"tool_calls": call}}}  # fmt: skip

    def args(index: int, piece: str) -> dict[str, Any]:
        delta = {"message": {"tool_calls": {"function": {"arguments": piece}}}}
        return {"type": "tool-call-delta", "index": index, "delta": delta}

    events = run(
        frames(
            START,
            {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "Checking."}}},
            start(0, "get_weather_a"),
            args(0, '{"city": '),
            args(0, '"Paris"}'),
            {"type": "tool-call-end", "index": 0},
            start(1, "get_weather_b"),
            args(1, '{"city": "Rome"}'),
            {"type": "tool-call-end", "index": 1},
            end("TOOL_CALL"),
        ),
        tools=[WEATHER],
    )
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Checking."]
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(c.index, c.id) for c in calls] == [
        (0, "get_weather_a"), (0, None), (0, None), (1, "get_weather_b"), (1, None),
    ]  # fmt: skip
    assert calls[0].name == "get_weather"
    by_index: dict[int, str] = {}
    for call in calls:
        by_index[call.index] = by_index.get(call.index, "") + call.arguments
    assert {i: orjson.loads(a) for i, a in by_index.items()} == {
        0: {"city": "Paris"},
        1: {"city": "Rome"},
    }
    assert [e for e in events if isinstance(e, Finish)] == [Finish("tool_calls")]
    builder = ReplyBuilder()
    for event in events:
        builder.add(event)
    built = builder.build()
    assert built.message.content == "Checking."
    assert [c.id for c in built.message.tool_calls or []] == ["get_weather_a", "get_weather_b"]


def test_a_message_end_with_an_error_raises_the_upstream_failure() -> None:
    decoder = DIALECT.chat(chat_request(stream=True), TARGET).stream_decoder()
    for frame in frames(START, content("Hel")):
        decoder.feed(frame)
    failed = {"type": "message-end", "delta": {"error": "generation failed"}}
    with pytest.raises(UpstreamStatusError) as caught:
        decoder.feed(Frame(data=orjson.dumps(failed), event="message-end"))
    error = caught.value
    assert (error.status, error.type, error.upstream_status) == (502, "upstream_error", 502)
    assert error.message == "upstream error (500): generation failed"


def test_a_stream_cut_before_message_end_is_an_error() -> None:
    with pytest.raises(UpstreamUnreachable):
        run(frames(START, content("Hel")))


def test_frames_after_message_end_or_empty_are_ignored() -> None:
    events = run([Frame(data=b""), *TEXT_STREAM, *frames(content("late")), Frame(data=b"[DONE]")])
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo"]


def test_a_frame_that_is_not_cohere_json_is_an_upstream_error() -> None:
    decoder = DIALECT.chat(chat_request(stream=True), TARGET).stream_decoder()
    with pytest.raises(UpstreamError):
        decoder.feed(Frame(data=b"{not json", event="content-delta"))


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "fault_status", "answer_status", "type_"),
    [
        pytest.param(400, 400, None, "invalid_request_error", id="400"),
        pytest.param(401, 401, None, "authentication_error", id="401"),
        pytest.param(498, 498, 401, "authentication_error", id="498-invalid-token"),
        pytest.param(499, 502, None, None, id="499-cancelled"),
        pytest.param(403, 403, None, "permission_error", id="403"),
        pytest.param(404, 404, None, "not_found_error", id="404"),
        pytest.param(409, 409, None, "invalid_request_error", id="409-other"),
        pytest.param(422, 422, None, "invalid_request_error", id="422"),
        pytest.param(429, 429, None, "rate_limit_error", id="429"),
        pytest.param(500, 500, None, None, id="500"),
        pytest.param(503, 503, None, None, id="503"),
    ],
)
def test_errors_become_faults_with_cohere_message_and_the_contract_type(
    status: int, fault_status: int, answer_status: int | None, type_: str | None
) -> None:
    fault = DIALECT.fault(status, orjson.dumps({"id": "e1", "message": "something about it"}))
    assert (fault.status, fault.answer_status, fault.type) == (fault_status, answer_status, type_)
    assert fault.message == "something about it"
    assert (fault.code, fault.param) == (None, None)


def test_an_error_body_without_a_message_is_relayed_as_text() -> None:
    assert DIALECT.fault(502, b"<html>bad gateway</html>").message == "<html>bad gateway</html>"
    assert DIALECT.fault(502, b"x" * 600).message == "x" * 500
    assert DIALECT.fault(503, b"").message == "the upstream returned HTTP 503"


# -- embeddings ----------------------------------------------------------------------------
def test_embeddings_use_v2_embed_with_billed_usage() -> None:
    request = EmbeddingRequest(model="cohere/embed-v4.0", input="a")
    exchange = DIALECT.embeddings(request, Target(model="embed-v4.0"))
    assert orjson.loads(exchange.body) == {
        "model": "embed-v4.0",
        "texts": ["a"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    payload = {
        "id": "e",
        "embeddings": {"float": [[0.1, 0.2]]},
        "texts": ["a"],
        "meta": {"billed_units": {"input_tokens": 3}},
    }
    result = exchange.decode_reply(orjson.dumps(payload))
    assert result.model == "embed-v4.0"
    assert [(e.index, e.embedding) for e in result.data] == [(0, [0.1, 0.2])]
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (3, 3)


def test_embeddings_without_billed_units_report_no_usage() -> None:
    exchange = DIALECT.embeddings(
        EmbeddingRequest(model="m", input=["a", "b"]), Target(model="embed-v4.0")
    )
    result = exchange.decode_reply(orjson.dumps({"embeddings": [[1.0], [2.0]]}))
    assert [(e.index, e.embedding) for e in result.data] == [(0, [1.0]), (1, [2.0])]
    assert result.usage is None


def test_embedding_inputs_must_be_text() -> None:
    with pytest.raises(InvalidRequest) as caught:
        DIALECT.embeddings(EmbeddingRequest(model="m", input=[[1, 2, 3]]), TARGET)
    assert caught.value.param == "input"
    assert caught.value.message == "cohere/ embeddings take text inputs"

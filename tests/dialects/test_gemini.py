"""``gemini/`` requests: ``ChatRequest`` → Gemini ``generateContent`` body, and the schema.

Fixtures follow the Gemini API reference (GenerateContentRequest, Schema). Replies, streams,
errors and embeddings are in ``test_gemini_reply.py``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from proxy.dialects.base import EmbeddingOutbound, Outbound, Target
from proxy.dialects.gemini import DIALECT, SIGNATURE_MARK, gemini_schema, model_path
from proxy.errors import InvalidRequest
from proxy.model import ChatRequest

PNG = "data:image/png;base64,iVBORw0KGgo="
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TARGET = Target(model="gemini-2.5-flash", provider="gemini")


def chat(**body: Any) -> ChatRequest:
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return msgspec.convert({"model": "gemini-2.5-flash", **body}, ChatRequest)


def sent_body(**body: Any) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(DIALECT.chat(chat(**body), TARGET).body)
    return payload


def test_the_dialect_is_an_outbound_with_embeddings() -> None:
    outbound: Outbound = DIALECT
    embeddings: EmbeddingOutbound = DIALECT
    assert outbound.name == "gemini"
    assert embeddings is DIALECT


@pytest.mark.parametrize(
    ("model", "path"),
    [
        pytest.param("gemini-2.5-flash", "models/gemini-2.5-flash", id="bare"),
        pytest.param("models/gemini-2.5-flash", "models/gemini-2.5-flash", id="models"),
        pytest.param("tunedModels/mine-1", "tunedModels/mine-1", id="tuned"),
    ],
)
def test_model_path_prefixes_models_unless_already_a_resource(model: str, path: str) -> None:
    assert model_path(model) == path


def test_system_and_turns_map_to_system_instruction_and_alternating_contents() -> None:
    body = sent_body(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "and kind"}]},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "first"},
            {"role": "user", "content": "second"},
        ]
    )
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}, {"text": "and kind"}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "hello"}]},
        {"role": "user", "parts": [{"text": "first"}, {"text": "second"}]},
    ]


def test_a_plain_request_has_only_contents() -> None:
    assert sent_body() == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_images_become_inline_data_or_file_data() -> None:
    body = sent_body(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": PNG}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/cat.webp?s=1"}},
                ],
            }
        ]
    )
    assert body["contents"][0]["parts"] == [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://x.test/cat.webp?s=1"}},
    ]


def test_audio_and_files_become_inline_data_or_file_data() -> None:
    body = sent_body(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "mp3"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
                    {"type": "file", "file": {"file_id": "https://x.test/doc"}},
                    {"type": "file", "file": {"file_id": "gs://bucket/clip.mp4"}},
                ],
            }
        ]
    )
    assert body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/mp3", "data": "UklG"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "https://x.test/doc"}},
        {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://bucket/clip.mp4"}},
    ]


def test_tool_calls_and_parallel_results_round_trip() -> None:
    calls = [
        {"id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function",
         "function": {"name": "get_time", "arguments": ""}},
    ]  # fmt: skip
    body = sent_body(
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "weather and time in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "call_a", "content": '{"sky": "sunny"}'},
            {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
        ],
    )
    assert body["contents"][1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {}}},
        ],
    }
    # Both results in one user turn, each named after the call it answers.
    assert body["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}},
            {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
        ],
    }


def test_invalid_tool_arguments_in_history_are_a_400() -> None:
    bad = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    with pytest.raises(InvalidRequest) as caught:
        sent_body(
            messages=[{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [bad]}]
        )
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


def test_an_unknown_role_is_a_400_naming_it() -> None:
    with pytest.raises(InvalidRequest) as caught:
        sent_body(messages=[{"role": "narrator", "content": "x"}])
    assert caught.value.param == "messages[0].role"


def test_thought_signature_returns_with_its_call() -> None:
    call_id = "call_x" + SIGNATURE_MARK + "c2lnbmF0dXJl"
    call = {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = sent_body(
        messages=[
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": "done"},
        ]
    )
    assert body["contents"][1]["parts"] == [
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2lnbmF0dXJl"}
    ]
    assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "f"


def test_tools_are_declared_with_a_gemini_schema() -> None:
    body = sent_body(tools=[WEATHER])
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city": {"type": "STRING"}},
                        "required": ["city"],
                    },
                }
            ]
        }
    ]


def test_a_function_without_properties_is_declared_without_parameters() -> None:
    body = sent_body(functions=[{"name": "now", "parameters": {"type": "object"}}])
    assert body["tools"] == [{"functionDeclarations": [{"name": "now"}]}]


def test_schema_inlines_refs_and_turns_null_unions_into_nullable() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "when": {"type": ["string", "null"], "format": "date-time"},
            "unit": {"$ref": "#/$defs/Unit"},
            "tags": {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
            "email": {"type": "string", "format": "email"},
        },
        "$defs": {"Unit": {"enum": ["c", "f"], "title": "Unit"}},
    }
    assert gemini_schema(schema) == {
        "type": "OBJECT",
        "properties": {
            "when": {"type": "STRING", "nullable": True, "format": "date-time"},
            "unit": {"enum": ["c", "f"], "title": "Unit", "type": "STRING"},
            "tags": {"type": "ARRAY", "items": {"nullable": True, "type": "INTEGER"}},
            "email": {"type": "STRING"},
        },
    }


def test_schema_refusing_an_undefined_or_endless_ref() -> None:
    with pytest.raises(InvalidRequest):
        gemini_schema({"$ref": "#/$defs/Missing"})
    with pytest.raises(InvalidRequest):
        gemini_schema({"$ref": "#/$defs/Loop", "$defs": {"Loop": {"$ref": "#/$defs/Loop"}}})


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        pytest.param("auto", {"mode": "AUTO"}, id="auto"),
        pytest.param("none", {"mode": "NONE"}, id="none"),
        pytest.param("required", {"mode": "ANY"}, id="required"),
        pytest.param(
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
            id="named",
        ),
    ],
)
def test_tool_choice_maps_to_function_calling_config(choice: Any, config: dict[str, Any]) -> None:
    body = sent_body(tools=[WEATHER], tool_choice=choice)
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_sampling_limits_and_json_mode_map_to_generation_config() -> None:
    body = sent_body(
        temperature=0.2,
        top_p=0.9,
        max_completion_tokens=77,
        stop="END",
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.3,
        response_format={"type": "json_object"},
        user="user-42",
    )
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "maxOutputTokens": 77,
        "seed": 7,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.3,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
    }
    assert "user-42" not in orjson.dumps(body).decode()


def test_json_schema_response_format_sends_a_response_schema() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    body = sent_body(
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    )
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {"type": "OBJECT", "properties": {"ok": {"type": "BOOLEAN"}}}


def test_more_than_one_choice_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        sent_body(n=2)
    assert caught.value.param == "n"
    assert sent_body(n=1)["contents"]

"""The parse stage: typed validation with the bad field named, and byte-faithful forwarding."""

from __future__ import annotations

import orjson
import pytest

from proxy.dialects.openai import forward_body, parse
from proxy.errors import InvalidRequest
from proxy.request import ChatBody, CompletionBody, EmbeddingBody, Kind

NESTED = (
    b'{"model": "gpt-test", "messages": [{"role": "user", "content": "caf\\u00e9 \xe2\x9c\x93 '
    b'\\"q\\""}], "temperature": 0.250, "tools": [{"type": "function", "function": '
    b'{"name": "f", "parameters": {"type": "object", "x": 1e3}}}], "x_vendor": {"a": [1, 2.50]}}'
)


def test_parse_reads_what_later_stages_need() -> None:
    body = orjson.dumps(
        {
            "model": "gpt-test",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    request = parse(Kind.CHAT, body)
    assert request.kind is Kind.CHAT
    assert request.model == "gpt-test"
    assert request.stream is True
    assert request.wants_usage_chunk is True
    assert request.max_tokens == 5
    assert request.prompt_bytes == len(body)
    assert request.body is body
    assert isinstance(request.typed, ChatBody)


def test_max_completion_tokens_takes_precedence_over_max_tokens() -> None:
    body = orjson.dumps(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 50,
            "max_completion_tokens": 7,
        }
    )
    assert parse(Kind.CHAT, body).max_tokens == 7


def test_forward_body_rewrites_model_and_keeps_nested_bytes_exactly() -> None:
    request = parse(Kind.CHAT, NESTED)
    out = forward_body(request, "fake-ok")
    assert orjson.loads(out)["model"] == "fake-ok"
    for piece in (
        b'[{"role": "user", "content": "caf\\u00e9 \xe2\x9c\x93 \\"q\\""}]',
        b'[{"type": "function", "function": {"name": "f", "parameters": '
        b'{"type": "object", "x": 1e3}}}]',
        b'{"a": [1, 2.50]}',
        b"0.250",
    ):
        assert piece in out, piece
    assert b"gpt-test" not in out


def test_forward_body_returns_the_identical_object_when_nothing_changes() -> None:
    request = parse(Kind.CHAT, NESTED)
    assert forward_body(request, "gpt-test") is NESTED


def test_forward_body_leaves_a_stream_that_already_asks_for_usage_untouched() -> None:
    body = (
        b'{"model":"m", "messages":[{"role":"user","content":"x"}], "stream":true, '
        b'"stream_options":{"include_usage":true}}'
    )
    assert forward_body(parse(Kind.CHAT, body), "m") is body


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param({}, {"include_usage": True}, id="no-options"),
        pytest.param({"stream_options": None}, {"include_usage": True}, id="null-options"),
        pytest.param(
            {"stream_options": {"include_usage": False}},
            {"include_usage": True},
            id="usage-false",
        ),
        pytest.param(
            {"stream_options": {"continuous_usage_stats": True, "x": [1, 2]}},
            {"continuous_usage_stats": True, "x": [1, 2], "include_usage": True},
            id="merges-other-fields",
        ),
    ],
)
def test_forward_body_asks_for_usage_on_streams(
    extra: dict[str, object], expected: dict[str, object]
) -> None:
    body = orjson.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True, **extra}
    )
    request = parse(Kind.CHAT, body)
    assert request.wants_usage_chunk is False
    sent = orjson.loads(forward_body(request, "m"))
    assert sent["stream_options"] == expected
    assert sent["model"] == "m"
    assert sent["stream"] is True


def test_forward_body_does_not_add_stream_options_to_non_streams() -> None:
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    sent = orjson.loads(forward_body(parse(Kind.CHAT, body), "upstream-m"))
    assert "stream_options" not in sent
    assert sent["model"] == "upstream-m"


def test_forward_body_for_completions_stream() -> None:
    body = b'{"model": "legacy", "prompt": "Once upon", "stream": true, "max_tokens": 3}'
    request = parse(Kind.COMPLETION, body)
    assert isinstance(request.typed, CompletionBody)
    assert request.stream is True
    assert request.max_tokens == 3
    sent = orjson.loads(forward_body(request, "davinci"))
    assert sent == {
        "model": "davinci",
        "prompt": "Once upon",
        "stream": True,
        "max_tokens": 3,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"model": "e", "input": "hello"}', id="string"),
        pytest.param(b'{"model": "e", "input": ["a", "b"], "encoding_format": "float"}', id="list"),
        pytest.param(b'{"model": "e", "input": [[1, 2, 3]]}', id="tokens"),
    ],
)
def test_embeddings_are_never_streams(body: bytes) -> None:
    request = parse(Kind.EMBEDDING, body)
    assert isinstance(request.typed, EmbeddingBody)
    assert request.stream is False
    assert request.max_tokens is None
    assert forward_body(request, "e") is body
    assert orjson.loads(forward_body(request, "text-embedding-3-small"))["model"] == (
        "text-embedding-3-small"
    )


@pytest.mark.parametrize(
    ("kind", "body", "param"),
    [
        pytest.param(Kind.CHAT, b'{"model": 7, "messages": []}', "model", id="model-int"),
        pytest.param(Kind.CHAT, b'{"model": "m", "messages": "hi"}', "messages", id="messages-str"),
        pytest.param(
            Kind.CHAT,
            b'{"model": "m", "messages": [{"role": 1}]}',
            "messages[0].role",
            id="role-int",
        ),
        pytest.param(
            Kind.CHAT,
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}',
            "max_tokens",
            id="max-tokens-str",
        ),
        pytest.param(
            Kind.CHAT,
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            "stream",
            id="stream-str",
        ),
        pytest.param(
            Kind.CHAT,
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], '
            b'"stream_options": {"include_usage": "please"}}',
            "stream_options.include_usage",
            id="include-usage-str",
        ),
        pytest.param(Kind.CHAT, b'{"model": "m", "messages": []}', "messages", id="no-messages"),
        pytest.param(
            Kind.CHAT, b'{"model": "", "messages": [{"role": "user"}]}', "model", id="model-empty"
        ),
        pytest.param(Kind.COMPLETION, b'{"model": "m", "prompt": 5}', "prompt", id="prompt-int"),
        pytest.param(
            Kind.EMBEDDING, b'{"model": "m", "input": {"a": 1}}', "input", id="input-object"
        ),
    ],
)
def test_wrong_field_types_are_invalid_requests_naming_the_param(
    kind: Kind, body: bytes, param: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(kind, body)
    assert info.value.status == 400
    assert info.value.type == "invalid_request_error"
    assert info.value.param == param


def test_model_name_longer_than_256_characters_is_rejected() -> None:
    body = orjson.dumps({"model": "m" * 257, "messages": [{"role": "user", "content": "x"}]})
    with pytest.raises(InvalidRequest) as info:
        parse(Kind.CHAT, body)
    assert info.value.param == "model"


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        pytest.param(Kind.CHAT, b"", id="empty"),
        pytest.param(Kind.CHAT, b"{not json", id="broken"),
        pytest.param(Kind.CHAT, b'{"model": "m"', id="truncated"),
        pytest.param(Kind.CHAT, b"[1, 2]", id="array"),
        pytest.param(Kind.EMBEDDING, b"null", id="null"),
    ],
)
def test_bodies_that_are_not_json_objects_are_invalid_requests(kind: Kind, body: bytes) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(kind, body)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("kind", "extra", "param"),
    [
        pytest.param(Kind.CHAT, {"max_tokens": 0}, "max_tokens", id="chat-max-tokens-0"),
        pytest.param(Kind.CHAT, {"max_tokens": -5}, "max_tokens", id="chat-max-tokens-neg"),
        pytest.param(Kind.CHAT, {"n": 0}, "n", id="chat-n-0"),
        pytest.param(Kind.COMPLETION, {"max_tokens": 0}, "max_tokens", id="completion-0"),
    ],
)
def test_counts_below_one_are_rejected(kind: Kind, extra: dict[str, int], param: str) -> None:
    base: dict[str, object] = {"model": "m"}
    if kind is Kind.CHAT:
        base["messages"] = [{"role": "user", "content": "x"}]
    else:
        base["prompt"] = "x"
    with pytest.raises(InvalidRequest) as info:
        parse(kind, orjson.dumps({**base, **extra}))
    assert info.value.param == param


def test_max_tokens_of_one_is_accepted() -> None:
    body = orjson.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
    )
    assert parse(Kind.CHAT, body).max_tokens == 1


def test_multimodal_content_parts_are_accepted() -> None:
    body = orjson.dumps(
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    ],
                }
            ],
        }
    )
    request = parse(Kind.CHAT, body)
    assert forward_body(request, "m") is body

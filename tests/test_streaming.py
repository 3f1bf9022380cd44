"""The SSE relay: bytes pass through untouched whatever the chunking; usage is sniffed."""

from __future__ import annotations

import random
from collections.abc import Callable

import orjson
import pytest

from proxy.upstream.sse import SSERelay, event_data, sse_event

USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 4,
    "total_tokens": 15,
    "prompt_tokens_details": {"cached_tokens": 3},
    "completion_tokens_details": {"reasoning_tokens": 1},
}


def chunk_event(piece: str, *, usage_null: bool = True, sep: bytes = b"\n\n") -> bytes:
    chunk: dict[str, object] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
    }
    if usage_null:
        chunk["usage"] = None
    return b"data: " + orjson.dumps(chunk) + sep


def usage_event(sep: bytes = b"\n\n") -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [],
        "usage": USAGE,
    }
    return b"data: " + orjson.dumps(chunk) + sep


def openai_stream(sep: bytes = b"\n\n") -> tuple[bytes, bytes]:
    """A stream as OpenAI sends it with include_usage, and the usage event in it."""
    words = ["The", " quick", " caf\u00e9", " \u2713"]
    body = b"".join(chunk_event(w, sep=sep) for w in words)
    usage = usage_event(sep)
    return body + usage + b"data: [DONE]" + sep, usage


def feed_all(relay_state: SSERelay, pieces: list[bytes]) -> bytes:
    out = b"".join(relay_state.feed(p) for p in pieces)
    return out + relay_state.finish()


def random_split(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces, i = [], 0
    while i < len(data):
        step = rng.randint(1, 40)
        pieces.append(data[i : i + step])
        i += step
    return pieces


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@pytest.mark.parametrize(
    "split",
    [
        pytest.param(lambda d: [d], id="whole"),
        pytest.param(bytewise, id="byte-by-byte"),
        *(pytest.param(lambda d, s=s: random_split(d, s), id=f"random-{s}") for s in range(8)),
    ],
)
@pytest.mark.parametrize(
    "sep", [pytest.param(b"\n\n", id="lf"), pytest.param(b"\r\n\r\n", id="crlf")]
)
def test_output_is_input_minus_the_usage_chunk_for_any_chunking(
    split: Callable[[bytes], list[bytes]], sep: bytes
) -> None:
    stream, usage = openai_stream(sep)
    state = SSERelay(strip_usage_chunk=True)
    out = feed_all(state, split(stream))
    assert out == stream.replace(usage, b"")
    assert state.usage is not None
    assert state.usage.prompt_tokens == 11
    assert state.usage.completion_tokens == 4
    assert state.usage.cached_tokens == 3
    assert state.usage.reasoning_tokens == 1
    assert state.done


@pytest.mark.parametrize("seed", range(4))
def test_usage_chunk_is_kept_when_the_client_asked_for_it(seed: int) -> None:
    stream, _ = openai_stream()
    state = SSERelay(strip_usage_chunk=False)
    out = feed_all(state, random_split(stream, seed))
    assert out == stream
    assert state.usage is not None
    assert state.usage.total_tokens == 15


def test_relay_emits_every_complete_event_at_once_and_holds_back_a_partial_one() -> None:
    state = SSERelay(strip_usage_chunk=True)
    first = chunk_event("a")
    second = chunk_event("b")
    assert state.feed(first + second[:10]) == first
    assert state.feed(second[10:]) == second


def test_null_usage_is_not_mistaken_for_usage() -> None:
    stream = chunk_event("a") + chunk_event("b") + b"data: [DONE]\n\n"
    state = SSERelay(strip_usage_chunk=True)
    assert feed_all(state, bytewise(stream)) == stream
    assert state.usage is None


def test_null_usage_with_empty_choices_is_not_stripped() -> None:
    event = b'data: {"id":"x","choices":[],"usage":null}\n\n'
    state = SSERelay(strip_usage_chunk=True)
    assert state.feed(event) == event
    assert state.usage is None


def test_usage_on_a_chunk_with_choices_is_captured_and_never_stripped() -> None:
    chunk = {"id": "x", "choices": [{"index": 0, "delta": {"content": "!"}}], "usage": USAGE}
    event = sse_event(orjson.dumps(chunk))
    state = SSERelay(strip_usage_chunk=True)
    assert state.feed(event) == event
    assert state.usage is not None
    assert state.usage.prompt_tokens == 11


def test_usage_from_the_final_chunk_wins() -> None:
    early = {"id": "x", "choices": [{"index": 0, "delta": {}}], "usage": {"prompt_tokens": 1}}
    stream = sse_event(orjson.dumps(early)) + usage_event()
    state = SSERelay(strip_usage_chunk=False)
    state.feed(stream)
    assert state.usage is not None
    assert state.usage.prompt_tokens == 11


def test_finish_returns_a_trailing_event_without_its_blank_line() -> None:
    state = SSERelay(strip_usage_chunk=True)
    event = chunk_event("a")
    assert state.feed(event + b"data: [DONE]") == event
    assert not state.done
    assert state.finish() == b"data: [DONE]"
    assert state.done
    assert state.finish() == b""


def test_finish_drops_a_trailing_usage_only_chunk_it_was_told_to_strip() -> None:
    state = SSERelay(strip_usage_chunk=True)
    usage = usage_event().rstrip(b"\n")
    assert state.feed(usage) == b""
    assert state.finish() == b""
    assert state.usage is not None


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(b'data: {"usage": {"prompt_tokens": 3,\n\n', id="truncated-json"),
        pytest.param(b'data: {"usage": "lots", "choices": []}\n\n', id="usage-wrong-type"),
        pytest.param(b'data: not json but mentions "usage"\n\n', id="not-json"),
        pytest.param(b': comment about "usage"\n\n', id="comment-line"),
    ],
)
def test_malformed_usage_payload_is_passed_through_not_raised(event: bytes) -> None:
    state = SSERelay(strip_usage_chunk=True)
    assert state.feed(event) == event
    assert state.usage is None


def test_usage_in_a_multi_line_event_with_an_event_field_is_read() -> None:
    payload = orjson.dumps({"choices": [], "usage": USAGE})
    event = b"event: chunk\r\nid: 7\r\ndata:" + payload + b"\r\n\r\n"
    state = SSERelay(strip_usage_chunk=False)
    assert state.feed(event) == event
    assert state.usage is not None
    assert state.usage.completion_tokens == 4


@pytest.mark.parametrize(
    ("event", "data"),
    [
        pytest.param(b"data: {}", b"{}", id="single"),
        pytest.param(b"data:{}", b"{}", id="no-space"),
        pytest.param(b"data:  x", b" x", id="one-space-removed"),
        pytest.param(b"event: e\ndata: a\ndata: b", b"a\nb", id="multi-line"),
        pytest.param(b": keep-alive", None, id="comment"),
    ],
)
def test_event_data_joins_data_lines(event: bytes, data: bytes | None) -> None:
    assert event_data(event) == data


def test_the_relay_passes_chunks_through_and_flushes_the_tail() -> None:
    stream, usage = openai_stream()
    stream = stream.removesuffix(b"\n\n")
    state = SSERelay(strip_usage_chunk=True)
    out = [state.feed(piece) for piece in random_split(stream, 99)]
    out.append(state.finish())
    out = [piece for piece in out if piece]  # what the stream owner sends
    assert b"".join(out) == stream.replace(usage, b"")
    assert state.usage is not None
    assert state.done

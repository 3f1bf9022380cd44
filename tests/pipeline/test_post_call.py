"""The post-call seam: a stage sees the whole reply, or every stream event, before the client.

The stages here are the smallest that prove the seam: one changes text, one holds every
text delta back and releases it at the end, one ends a stream in band. Guardrails build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec
import orjson

from proxy.errors import GuardrailBlocked
from proxy.model import ChatReply, StreamEvent, TextDelta
from proxy.pipeline.call import Call
from proxy.upstream.stream import StreamStage
from tests.inprocess import InProcessGateway, bearer
from tests.pipeline.test_inprocess import COMPLETION, CONFIG, STREAM, chat
from tests.providers.scripted import Canned, ScriptedTransport


class Shout:
    """Upper-cases the reply's text; on streams, every text delta as it passes."""

    async def reply(self, call: Call, reply: ChatReply) -> ChatReply:
        choice = reply.choices[0]
        message = msgspec.structs.replace(choice.message, content=choice.message.text().upper())
        return msgspec.structs.replace(
            reply, choices=[msgspec.structs.replace(choice, message=message)]
        )

    def stream_stage(self, call: Call) -> StreamStage | None:
        return _ShoutStream()


class _ShoutStream:
    async def on_event(self, event: StreamEvent) -> Sequence[StreamEvent]:
        if isinstance(event, TextDelta):
            return [TextDelta(event.text.upper())]
        return [event]

    async def on_end(self) -> Sequence[StreamEvent]:
        return []


class HoldText:
    """Holds every text delta back and releases them as one when the stream ends."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def reply(self, call: Call, reply: ChatReply) -> ChatReply:
        return reply

    def stream_stage(self, call: Call) -> StreamStage | None:
        return _Hold(self.seen)


class _Hold:
    def __init__(self, seen: list[str]) -> None:
        self.held: list[str] = []
        self.seen = seen

    async def on_event(self, event: StreamEvent) -> Sequence[StreamEvent]:
        if isinstance(event, TextDelta):
            self.held.append(event.text)
            self.seen.append(event.text)
            return []
        return [event]

    async def on_end(self) -> Sequence[StreamEvent]:
        return [TextDelta("".join(self.held))]


class Block:
    """Refuses a reply, and ends a stream at its first text delta."""

    async def reply(self, call: Call, reply: ChatReply) -> ChatReply:
        raise GuardrailBlocked("blocked by policy")

    def stream_stage(self, call: Call) -> StreamStage | None:
        return _BlockStream()


class _BlockStream:
    async def on_event(self, event: StreamEvent) -> Sequence[StreamEvent]:
        if isinstance(event, TextDelta):
            raise GuardrailBlocked("blocked by policy")
        return [event]

    async def on_end(self) -> Sequence[StreamEvent]:
        return []


async def test_a_post_call_stage_changes_a_pass_through_reply(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(
        tmp_path, CONFIG, transport=upstream, post_call=[Shout()]
    )
    async with gateway.running() as client:
        response = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "HI THERE"
    assert response.json()["usage"]["prompt_tokens"] == 10


async def test_a_stream_stage_sees_every_event_before_the_client(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.stream(STREAM, piece=4))
    gateway = await InProcessGateway.build(
        tmp_path, CONFIG, transport=upstream, post_call=[Shout()]
    )
    async with gateway.running() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat(stream=True), headers=bearer()
        )
    texts = [
        choice["delta"].get("content")
        for line in response.text.splitlines()
        if line.startswith("data: {")
        for choice in orjson.loads(line[6:])["choices"]
    ]
    assert "".join(t for t in texts if t) == "HELLO"
    assert response.text.rstrip().endswith("data: [DONE]")


async def test_a_stage_holds_text_back_and_releases_it_at_the_end(tmp_path: Path) -> None:
    holder = HoldText()
    upstream = ScriptedTransport(Canned.stream(STREAM, piece=4))
    gateway = await InProcessGateway.build(tmp_path, CONFIG, transport=upstream, post_call=[holder])
    async with gateway.running() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat(stream=True), headers=bearer()
        )
    contents = [
        choice["delta"]["content"]
        for line in response.text.splitlines()
        if line.startswith("data: {")
        for choice in orjson.loads(line[6:])["choices"]
        if choice["delta"].get("content")
    ]
    assert holder.seen == ["Hel", "lo"]
    assert contents == ["Hello"]


async def test_a_stage_ends_a_stream_in_band_and_no_reservation_leaks(
    tmp_path: Path,
) -> None:
    upstream = ScriptedTransport(Canned.stream(STREAM, piece=4))
    gateway = await InProcessGateway.build(
        tmp_path, CONFIG, transport=upstream, post_call=[Block()]
    )
    async with gateway.running() as client:
        response = await client.post(
            "/v1/chat/completions", json=chat(stream=True), headers=bearer()
        )
        assert gateway.state.ledger.outstanding() == (0, 0)
    assert response.status_code == 200
    last = orjson.loads(response.text.strip().splitlines()[-1][6:])
    assert last["error"]["type"] == "guardrail_error"
    assert '"content":"Hel"' not in response.text
    assert "[DONE]" not in response.text


async def test_a_stage_refuses_a_whole_reply_with_the_contract_error(tmp_path: Path) -> None:
    upstream = ScriptedTransport(Canned.json(COMPLETION))
    gateway = await InProcessGateway.build(
        tmp_path, CONFIG, transport=upstream, post_call=[Block()]
    )
    async with gateway.running() as client:
        response = await client.post("/v1/chat/completions", json=chat(), headers=bearer())
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "guardrail_error"

"""A ``ChatReply`` as a Responses ``response`` object."""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import TollwayError
from ...model import ChatReply, ChatRequest, ToolCall
from .shell import (
    INCOMPLETE,
    Echo,
    ResponseShell,
    call_item,
    item_id,
    message_item,
    output_text,
    shell_for,
)


def encode_reply_for(request: ChatRequest, reply: ChatReply) -> bytes:
    """The ``response`` object answering ``request`` (the one ``decode_request`` returned):
    it echoes the request's instructions, tools, text format, metadata …"""
    return render_reply(shell_for(request), reply)


def encode_reply(reply: ChatReply) -> bytes:
    """A ``response`` object without the request at hand: the echoed fields take their
    defaults and ``model`` is the reply's."""
    return render_reply(ResponseShell(Echo(model=reply.model)), reply)


def render_reply(shell: ResponseShell, reply: ChatReply) -> bytes:
    try:
        choice = reply.choices[0]
    except IndexError as exc:
        raise TollwayError("the upstream's chat completion could not be read") from exc
    message = choice.message
    output: list[dict[str, Any]] = []
    text = message.text()
    if text:
        output.append(message_item(item_id("msg"), "completed", [output_text(text)]))
    for call in message.tool_calls or ():
        item = call_item(item_id("fc"), call.id, call.function.name)
        item["arguments"] = _arguments(call)
        item["status"] = "completed"
        output.append(item)
    incomplete = INCOMPLETE.get(str(choice.finish_reason))
    status = "incomplete" if incomplete else "completed"
    return orjson.dumps(shell.render(status, output, reply.usage, incomplete=incomplete))


def _arguments(call: ToolCall) -> str:
    # Relayed as the upstream sent them; a call without arguments has "" (not "{}").
    arguments = call.function.arguments
    if not arguments:
        return ""
    return call.arguments_text()

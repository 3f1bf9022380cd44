"""``POST /v1/responses``: OpenAI Responses requests served through chat completions.

The route is the chat pipeline of ``hotpath`` with two ends swapped: the Responses body is
rewritten into an OpenAI chat body (then parsed, routed, admitted and sent like any chat
call, to any provider), and the chat reply is rewritten into a ``response`` object — or,
streaming, into the Responses SSE events (``response.created`` …
``response.output_text.delta`` … ``response.completed``).

Mapping: ``instructions`` → a system message; ``input`` (a string, or message /
``function_call`` / ``function_call_output`` items with ``input_text`` / ``input_image``
parts) → messages; function ``tools`` and ``tool_choice`` → chat's; ``max_output_tokens`` →
``max_completion_tokens``; ``text.format`` json_object / json_schema → ``response_format``;
``reasoning.effort`` → ``reasoning_effort``. The gateway keeps no state, so
``previous_response_id``, ``conversation`` and ``background`` are refused (send the whole
conversation as ``input``), as are hosted tools (web search, file search, ...).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from ..errors import InvalidRequest, TollwayError
from ..hotpath import Call, InferenceRoute
from ..parse import Kind, parse
from ..providers.base import EVENT_STREAM, JSON, Reply
from ..usage import Usage
from .translate import SSEParser, text_of

if TYPE_CHECKING:
    from ..app import GatewayState
    from ..auth import Principal


class TextFormat(msgspec.Struct, kw_only=True):
    type: str = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextConfig(msgspec.Struct, kw_only=True):
    format: TextFormat | None = None


class ReasoningConfig(msgspec.Struct, kw_only=True):
    effort: str | None = None


class ResponsesRequest(msgspec.Struct, kw_only=True):
    model: str
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    previous_response_id: str | None = None
    conversation: Any = None
    background: bool | None = None


_decoder = msgspec.json.Decoder(ResponsesRequest)


def decode_request(body: bytes) -> ResponsesRequest:
    if not body:
        raise InvalidRequest("the request body is empty; expected a JSON object")
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request body: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc


class ResponsesRoute(InferenceRoute):
    """``POST /v1/responses`` (the ``hotpath`` pipeline, with Responses at both ends)."""

    def __init__(self, state: GatewayState) -> None:
        super().__init__(state, Kind.CHAT)

    async def exchange(self, call: Call, principal: Principal, body: bytes) -> Reply:
        responses_request = decode_request(body)
        call.request = request = parse(Kind.CHAT, to_chat(responses_request))
        self.state.accounting.check_models(principal, request.model)
        reply = await self.state.dispatch(call, principal, request)
        shell = ResponseShell(responses_request)
        if reply.chunks is not None:
            events = ResponseEvents(shell)
            return Reply(
                content_type=EVENT_STREAM,
                chunks=events.translate(reply.chunks),
                usage_of_stream=reply.final_usage,
                close=reply.close,
            )
        return Reply(
            status=reply.status,
            content_type=JSON,
            body=to_response(shell, reply.body or b"", reply.usage),
            usage=reply.usage,
        )

    def stream_error(self, exc: TollwayError) -> bytes:
        # ``ResponseEvents.translate`` already sent ``error`` and ``response.failed``.
        return b""


# -- request ---------------------------------------------------------------------------------
def to_chat(request: ResponsesRequest) -> bytes:
    """The OpenAI chat-completions body for a Responses request."""
    if request.previous_response_id or request.conversation is not None:
        raise InvalidRequest(
            "the gateway stores no responses: send the whole conversation in `input` "
            "instead of `previous_response_id` / `conversation`",
            param="previous_response_id" if request.previous_response_id else "conversation",
        )
    if request.background:
        raise InvalidRequest("background responses are not supported", param="background")
    if request.input is None:
        raise InvalidRequest("`input` is required", param="input")
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    if isinstance(request.input, str):
        messages.append({"role": "user", "content": request.input})
    else:
        for i, item in enumerate(request.input):
            _add_item(messages, item, f"input[{i}]")
    if not messages:
        raise InvalidRequest("`input` holds no message", param="input")
    chat: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.tools:
        chat["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(request.tools)]
        if request.parallel_tool_calls is not None:
            chat["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None:
        chat["tool_choice"] = _tool_choice(request.tool_choice)
    if request.max_output_tokens is not None:
        chat["max_completion_tokens"] = request.max_output_tokens
    if request.temperature is not None:
        chat["temperature"] = request.temperature
    if request.top_p is not None:
        chat["top_p"] = request.top_p
    if request.user is not None:
        chat["user"] = request.user
    if request.reasoning is not None and request.reasoning.effort:
        chat["reasoning_effort"] = request.reasoning.effort
    text_format = request.text.format if request.text is not None else None
    if text_format is not None and text_format.type == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif text_format is not None and text_format.type == "json_schema":
        schema: dict[str, Any] = {
            "name": text_format.name or "response",
            "schema": text_format.schema or {"type": "object"},
        }
        if text_format.description:
            schema["description"] = text_format.description
        if text_format.strict is not None:
            schema["strict"] = text_format.strict
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    if request.stream:
        # Usage is always asked for: response.completed carries it.
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return orjson.dumps(chat)


def _add_item(messages: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    kind = item.get("type") or ("message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        content = item.get("content")
        if role == "assistant":
            text = content if isinstance(content, str) else _assistant_text(content, where)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" not in last:
                last["content"] = (last["content"] or "") + text
            else:
                messages.append({"role": "assistant", "content": text})
        elif role in ("user", "system", "developer"):
            messages.append({"role": role, "content": _user_content(content, where)})
        else:
            raise InvalidRequest(f"{where}.role {role!r} is not supported", param=f"{where}.role")
    elif kind == "function_call":
        call = {
            "id": str(item.get("call_id") or ""),
            "type": "function",
            "function": {
                "name": str(item.get("name") or ""),
                "arguments": str(item.get("arguments") or "{}"),
            },
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        text = output if isinstance(output, str) else text_of(_user_content(output, where))
        messages.append(
            {"role": "tool", "tool_call_id": str(item.get("call_id") or ""), "content": text}
        )
    elif kind == "reasoning":
        return  # a previous turn's reasoning: chat completions has no place for it
    else:
        raise InvalidRequest(
            f"{where}: input items of type {kind!r} are not supported", param=f"{where}.type"
        )


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list", param=where)
    parts: list[dict[str, Any]] = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "input_image":
            url = part.get("image_url")
            if not url:
                raise InvalidRequest(
                    f"{where}.content[{k}]: images are taken by `image_url` (a URL or a data "
                    "URL); file ids are not supported",
                    param=f"{where}.content",
                )
            image: dict[str, Any] = {"url": url}
            if part.get("detail"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file" and part.get("file_data"):
            file: dict[str, Any] = {"file_data": part["file_data"]}
            if part.get("filename"):
                file["filename"] = part["filename"]
            parts.append({"type": "file", "file": file})
        else:
            raise InvalidRequest(
                f"{where}.content[{k}]: content of type {kind!r} is not supported",
                param=f"{where}.content",
            )
    return parts


def _assistant_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list", param=where)
    texts = []
    for part in content:
        if isinstance(part, dict):
            texts.append(str(part.get("text") or part.get("refusal") or ""))
    return "".join(texts)


def _tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise InvalidRequest(
            f"{where}: tools of type {tool.get('type')!r} are not supported (function tools only)",
            param=f"{where}.type",
        )
    function = {"name": tool.get("name")}
    for field in ("description", "parameters", "strict"):
        if tool.get(field) is not None:
            function[field] = tool[field]
    return {"type": "function", "function": function}


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(
        f"tool_choice of type {choice.get('type')!r} is not supported", param="tool_choice"
    )


# -- response --------------------------------------------------------------------------------
class ResponseShell:
    """The fields every ``response`` object of one request repeats."""

    __slots__ = ("created_at", "id", "model", "request")

    def __init__(self, request: ResponsesRequest) -> None:
        self.request = request
        self.id = "resp_" + uuid.uuid4().hex
        self.created_at = int(time.time())
        # The name the client asked for, the same in every event of the response.
        self.model = request.model

    def render(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: Usage | None,
        *,
        incomplete: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        request = self.request
        text_format: dict[str, Any] = {"type": "text"}
        if request.text is not None and request.text.format is not None:
            text_format = msgspec.to_builtins(request.text.format)
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "metadata": request.metadata or {},
            "model": self.model,
            "output": output,
            "parallel_tool_calls": request.parallel_tool_calls is not False,
            "previous_response_id": None,
            "reasoning": {
                "effort": request.reasoning.effort if request.reasoning else None,
                "summary": None,
            },
            "store": False,
            "temperature": request.temperature,
            "text": {"format": text_format},
            "tool_choice": request.tool_choice if request.tool_choice is not None else "auto",
            "tools": request.tools or [],
            "top_p": request.top_p,
            "truncation": "disabled",
            "usage": usage_json(usage),
            "user": request.user,
        }


def usage_json(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def to_response(shell: ResponseShell, body: bytes, usage: Usage | None) -> bytes:
    """A ``response`` object from a ``chat.completion`` body."""
    try:
        completion = orjson.loads(body)
        choice = completion["choices"][0]
        message = choice.get("message") or {}
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise TollwayError("the upstream's chat completion could not be read") from exc
    output: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append(_output_text(str(message["content"])))
    if message.get("refusal"):
        content.append({"type": "refusal", "refusal": str(message["refusal"])})
    if content:
        output.append(_message_item(_item_id("msg"), "completed", content))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        item = _call_item(_item_id("fc"), str(call.get("id", "")), str(function.get("name", "")))
        item["arguments"] = str(function.get("arguments") or "")
        item["status"] = "completed"
        output.append(item)
    incomplete = _INCOMPLETE.get(str(choice.get("finish_reason")))
    status = "incomplete" if incomplete else "completed"
    return orjson.dumps(shell.render(status, output, usage, incomplete=incomplete))


def _item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(ident: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _call_item(ident: str, call_id: str, name: str) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "function_call",
        "status": "in_progress",
        "call_id": call_id,
        "name": name,
        "arguments": "",
    }


# -- stream ----------------------------------------------------------------------------------
class _OpenCall:
    __slots__ = ("arguments", "item", "output_index")

    def __init__(self, item: dict[str, Any], output_index: int) -> None:
        self.item = item
        self.output_index = output_index
        self.arguments: list[str] = []


class ResponseEvents:
    """``chat.completion.chunk`` SSE in, Responses SSE events out, for one response."""

    def __init__(self, shell: ResponseShell) -> None:
        self.shell = shell
        self.sequence = 0
        self.output: list[dict[str, Any] | None] = []
        self.usage: Usage | None = None
        self.finish: str | None = None
        self._message: dict[str, Any] | None = None
        self._message_index = 0
        self._text: list[str] = []
        self._calls: dict[int, _OpenCall] = {}

    def event(self, kind: str, fields: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    async def translate(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        parser = SSEParser()
        yield self.start()
        try:
            async for data in chunks:
                out = []
                for sse in parser.feed(data):
                    if sse.data == b"[DONE]" or not sse.data:
                        continue
                    try:
                        chunk = orjson.loads(sse.data)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
                        error = chunk["error"]
                        out.append(self.failed(str(error.get("message", "")), error.get("code")))
                        yield b"".join(out)
                        return
                    if isinstance(chunk, dict):
                        out.append(self.chunk(chunk))
                if out:
                    yield b"".join(out)
        except TollwayError as exc:
            yield self.failed(exc.message, exc.code or str(exc.status))
            raise
        yield self.complete()

    def start(self) -> bytes:
        response = self.shell.render("in_progress", [], None)
        return self.event("response.created", {"response": response}) + self.event(
            "response.in_progress", {"response": response}
        )

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            try:
                self.usage = msgspec.convert(usage, Usage)
            except msgspec.ValidationError:
                self.usage = None
        out = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal")
            if text:
                out.append(self._text_delta(str(text)))
            for call in delta.get("tool_calls") or ():
                out.append(self._call_delta(call))
            if choice.get("finish_reason"):
                self.finish = str(choice["finish_reason"])
        return b"".join(out)

    def _text_delta(self, text: str) -> bytes:
        out = b""
        if self._message is None:
            self._message = _message_item(_item_id("msg"), "in_progress", [])
            self._message_index = len(self.output)
            self._text = []
            self.output.append(None)
            out += self.event(
                "response.output_item.added",
                {"output_index": self._message_index, "item": self._message},
            )
            out += self.event(
                "response.content_part.added",
                {
                    "item_id": self._message["id"],
                    "output_index": self._message_index,
                    "content_index": 0,
                    "part": _output_text(""),
                },
            )
        self._text.append(text)
        return out + self.event(
            "response.output_text.delta",
            {
                "item_id": self._message["id"],
                "output_index": self._message_index,
                "content_index": 0,
                "delta": text,
                "logprobs": [],
            },
        )

    def _close_message(self) -> bytes:
        message = self._message
        if message is None:
            return b""
        self._message = None
        text = "".join(self._text)
        where = {"item_id": message["id"], "output_index": self._message_index, "content_index": 0}
        part = _output_text(text)
        done = _message_item(message["id"], "completed", [part])
        self.output[self._message_index] = done
        return (
            self.event("response.output_text.done", {**where, "text": text, "logprobs": []})
            + self.event("response.content_part.done", {**where, "part": part})
            + self.event(
                "response.output_item.done", {"output_index": self._message_index, "item": done}
            )
        )

    def _call_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        position = int(call.get("index", 0))
        function = call.get("function") or {}
        open_call = self._calls.get(position)
        if open_call is None:
            out += self._close_message()
            item = _call_item(
                _item_id("fc"), str(call.get("id") or ""), str(function.get("name") or "")
            )
            open_call = self._calls[position] = _OpenCall(item, len(self.output))
            self.output.append(None)
            out += self.event(
                "response.output_item.added",
                {"output_index": open_call.output_index, "item": item},
            )
        piece = function.get("arguments")
        if piece:
            open_call.arguments.append(str(piece))
            out += self.event(
                "response.function_call_arguments.delta",
                {
                    "item_id": open_call.item["id"],
                    "output_index": open_call.output_index,
                    "delta": str(piece),
                },
            )
        return out

    def _close_calls(self) -> bytes:
        out = b""
        for open_call in self._calls.values():
            arguments = "".join(open_call.arguments)
            item = {**open_call.item, "arguments": arguments, "status": "completed"}
            self.output[open_call.output_index] = item
            out += self.event(
                "response.function_call_arguments.done",
                {
                    "item_id": item["id"],
                    "output_index": open_call.output_index,
                    "name": item["name"],
                    "arguments": arguments,
                },
            )
            out += self.event(
                "response.output_item.done", {"output_index": open_call.output_index, "item": item}
            )
        self._calls.clear()
        return out

    def complete(self) -> bytes:
        out = self._close_message() + self._close_calls()
        output = [item for item in self.output if item is not None]
        incomplete = _INCOMPLETE.get(self.finish or "")
        if incomplete:
            response = self.shell.render("incomplete", output, self.usage, incomplete=incomplete)
            return out + self.event("response.incomplete", {"response": response})
        response = self.shell.render("completed", output, self.usage)
        return out + self.event("response.completed", {"response": response})

    def failed(self, message: str, code: Any) -> bytes:
        code_text = str(code) if code is not None else None
        output = [item for item in self.output if item is not None]
        error = {"code": code_text or "server_error", "message": message}
        response = self.shell.render("failed", output, self.usage, error=error)
        return self.event(
            "error", {"code": code_text, "message": message, "param": None}
        ) + self.event("response.failed", {"response": response})

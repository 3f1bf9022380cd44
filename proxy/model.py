"""The typed common model every stage and dialect speaks: a request, a reply, a stream event.

A leaf: it imports nothing from the rest of the package. Its shape follows OpenAI's chat
format (the lingua franca of LLM clients), so the OpenAI dialect decodes a body straight into
it with one msgspec call; every other dialect maps its wire format onto these structs and
back. Vocabulary is OpenAI's too: roles ``system | developer | user | assistant | tool``,
finish reasons ``stop | length | tool_calls | content_filter``, and usage in OpenAI's meaning
(``prompt_tokens`` includes cached tokens, ``completion_tokens`` includes reasoning tokens).

    ChatRequest ── messages: Message ── content: str | [TextPart | ImagePart | AudioPart | FilePart]
                │                   └─ tool_calls: ToolCall ── function: FunctionCall
                ├─ tools: Tool ── function: FunctionSpec
                └─ response_format, stream_options, sampling, metadata, user …
    ChatReply ── choices: Choice ── message: Message;  usage: Usage
    StreamEvent = Start | TextDelta | ReasoningDelta | ToolCallDelta | Finish | UsageReport
    EmbeddingRequest / EmbeddingReply
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec

FinishReason = str  # "stop" | "length" | "tool_calls" | "content_filter"


# -- usage ---------------------------------------------------------------------------------
class PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None


class CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptDetails | None = None
    completion_tokens_details: CompletionDetails | None = None

    @property
    def cached_tokens(self) -> int:
        details = self.prompt_tokens_details
        return (details.cached_tokens or 0) if details is not None else 0

    @property
    def reasoning_tokens(self) -> int:
        details = self.completion_tokens_details
        return (details.reasoning_tokens or 0) if details is not None else 0


def usage(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0) -> Usage:
    """OpenAI-meaning usage: ``prompt`` includes ``cached``; ``completion`` ``reasoning``."""
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptDetails(cached_tokens=cached),
        completion_tokens_details=CompletionDetails(reasoning_tokens=reasoning),
    )


# -- request -------------------------------------------------------------------------------
class ImageURL(msgspec.Struct, omit_defaults=True):
    url: str  # http(s) URL or a data: URL
    detail: str | None = None


class InputAudio(msgspec.Struct, omit_defaults=True):
    data: str  # base64
    format: str = "wav"


class FileRef(msgspec.Struct, omit_defaults=True):
    file_id: str | None = None
    file_data: str | None = None  # a data: URL or base64
    filename: str | None = None
    format: str | None = None  # MIME type, when known


class TextPart(msgspec.Struct, tag="text", tag_field="type", omit_defaults=True):
    text: str
    cache_control: dict[str, Any] | None = None


class ImagePart(msgspec.Struct, tag="image_url", tag_field="type", omit_defaults=True):
    image_url: ImageURL
    cache_control: dict[str, Any] | None = None


class AudioPart(msgspec.Struct, tag="input_audio", tag_field="type", omit_defaults=True):
    input_audio: InputAudio


class FilePart(msgspec.Struct, tag="file", tag_field="type", omit_defaults=True):
    file: FileRef
    cache_control: dict[str, Any] | None = None


Part = TextPart | ImagePart | AudioPart | FilePart


class FunctionCall(msgspec.Struct, omit_defaults=True):
    name: str = ""
    # JSON text in OpenAI's format; some clients send the object itself.
    arguments: str | dict[str, Any] | None = None


class ToolCall(msgspec.Struct, omit_defaults=True):
    id: str = ""
    type: str = "function"
    function: FunctionCall = msgspec.field(default_factory=FunctionCall)

    def arguments_text(self) -> str:
        arguments = self.function.arguments
        if arguments is None:
            return "{}"
        if isinstance(arguments, dict):
            return msgspec.json.encode(arguments).decode()
        return arguments or "{}"


class Message(msgspec.Struct, omit_defaults=True):
    role: str
    content: str | list[Part] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    # The model's visible reasoning (``reasoning_content`` on the wire of most providers).
    reasoning_content: str | None = None

    def text(self) -> str:
        """The message's text: the string, or its text parts joined."""
        content = self.content
        if content is None:
            return ""
        if isinstance(content, str):
            return content
        return "".join(part.text for part in content if isinstance(part, TextPart))

    def parts(self) -> list[Part]:
        content = self.content
        if content is None:
            return []
        if isinstance(content, str):
            return [TextPart(text=content)]
        return content


class FunctionSpec(msgspec.Struct, omit_defaults=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(msgspec.Struct, omit_defaults=True):
    function: FunctionSpec
    type: str = "function"
    cache_control: dict[str, Any] | None = None


class ResponseFormat(msgspec.Struct, omit_defaults=True):
    type: str = "text"  # "text" | "json_object" | "json_schema"
    json_schema: dict[str, Any] | None = None  # {"name", "schema", "strict"}


class StreamOptions(msgspec.Struct, omit_defaults=True):
    include_usage: bool | None = None


class ChatRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    model: str
    messages: list[Message]
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    # The deprecated spelling of tools, still sent by older clients.
    functions: list[FunctionSpec] | None = None
    function_call: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    response_format: ResponseFormat | None = None
    n: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    reasoning_effort: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None

    def tool_list(self) -> list[Tool]:
        if self.tools:
            return self.tools
        return [Tool(function=f) for f in self.functions or ()]

    def choice(self) -> str | dict[str, Any] | None:
        """``tool_choice``, with the deprecated ``function_call`` spelt as a tool choice."""
        if self.tool_choice is not None:
            return self.tool_choice
        call = self.function_call
        if isinstance(call, dict) and "name" in call:
            return {"type": "function", "function": {"name": call["name"]}}
        return call

    def forced_tool(self) -> str | None:
        """The function name when ``tool_choice`` names one."""
        choice = self.choice()
        if isinstance(choice, dict):
            function = choice.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                return str(function["name"])
        return None

    def output_limit(self) -> int | None:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.max_tokens

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def wants_usage(self) -> bool:
        options = self.stream_options
        return bool(options is not None and options.include_usage)


class EmbeddingRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    model: str
    input: str | list[Any]
    dimensions: int | None = None
    encoding_format: str | None = None
    user: str | None = None

    def texts(self) -> list[Any]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


# -- reply ---------------------------------------------------------------------------------
class Choice(msgspec.Struct, omit_defaults=True):
    message: Message
    finish_reason: FinishReason | None = "stop"
    index: int = 0


class ChatReply(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    model: str
    choices: list[Choice]
    created: int = msgspec.field(default_factory=lambda: int(time.time()))
    usage: Usage | None = None

    @property
    def message(self) -> Message:
        return self.choices[0].message

    @property
    def finish_reason(self) -> FinishReason | None:
        return self.choices[0].finish_reason


class Embedding(msgspec.Struct):
    embedding: list[float] | str
    index: int = 0


class EmbeddingReply(msgspec.Struct, kw_only=True):
    model: str
    data: list[Embedding]
    usage: Usage | None = None


# -- stream events -------------------------------------------------------------------------
class Start(msgspec.Struct, tag="start", kw_only=True):
    """First event of a stream: the reply's id and model."""

    id: str
    model: str
    created: int = msgspec.field(default_factory=lambda: int(time.time()))


class TextDelta(msgspec.Struct, tag="text"):
    text: str
    choice: int = 0


class ReasoningDelta(msgspec.Struct, tag="reasoning"):
    text: str
    choice: int = 0


class ToolCallDelta(msgspec.Struct, tag="tool_call", kw_only=True):
    """A piece of tool call ``index``: ``id`` and ``name`` come on its first delta."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None
    choice: int = 0


class Finish(msgspec.Struct, tag="finish"):
    reason: FinishReason
    choice: int = 0


class UsageReport(msgspec.Struct, tag="usage"):
    usage: Usage


StreamEvent = Start | TextDelta | ReasoningDelta | ToolCallDelta | Finish | UsageReport


def new_id(prefix: str = "chatcmpl-") -> str:
    return prefix + uuid.uuid4().hex


def tool_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]

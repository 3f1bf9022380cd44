"""Custom providers: a Python class serves a ``provider/`` prefix, as LiteLLM's
``custom_provider_map`` does.

```yaml
litellm_settings:
  custom_provider_map:
    - {provider: my-llm, custom_handler: my_module.MyLLM}  # next to the config or on PYTHONPATH
model_list:
  - model_name: mine
    litellm_params: {model: my-llm/some-model}
```

The interface (instantiated once, with no arguments, at start-up)::

    class MyLLM:
        async def chat(self, request: proxy.model.ChatRequest) -> proxy.model.ChatReply: ...
        # or, to stream: an async generator of proxy.model.StreamEvent
        async def chat(self, request): yield Start(...); yield TextDelta("hi"); ...

``request.model`` is the model after the prefix, ``request.stream`` says whether the client
streams. Either kind of answer serves either kind of client: a reply is streamed as events, a
stream is collected into a reply. Report usage (``ChatReply.usage`` / a ``UsageReport`` event)
so the call is billed. An exception becomes a 502 naming the provider (its text is not sent:
it may hold a secret); a ``proxy.errors.TollwayError`` is answered as it is.

Underneath, the handler sits behind the ``Transport`` seam: the engine sends it the OpenAI
body it would send any OpenAI-compatible server and reads back OpenAI JSON or SSE, so
admission, billing, retries, fallbacks and guardrails treat it like any other upstream.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Mapping
from pathlib import Path
from typing import Any

import msgspec

from ..config import Config, ConfigError, line_of
from ..dialects import openai
from ..dialects.openai.reply import encode_reply
from ..dialects.openai.request import decode_chat
from ..dialects.openai.stream import ChunkEncoder
from ..errors import TollwayError, UpstreamStatusError, UpstreamTimeout
from ..model import (
    ChatReply,
    Choice,
    Finish,
    FinishReason,
    Message,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
    new_id,
)
from .deployment import Deployment
from .providers import OpenAICompatible
from .spec import Operation
from .transport import Deadlines

log = logging.getLogger("tollway.custom")

CUSTOM_BASE = "custom://"


class CustomResponse:
    """An ``UpstreamResponse`` over a handler's answer: one JSON body or an SSE stream."""

    __slots__ = ("_body", "_events", "_headers", "status")

    def __init__(
        self,
        status: int,
        content_type: str,
        body: bytes = b"",
        events: AsyncIterator[StreamEvent] | None = None,
    ) -> None:
        self.status = status
        self._headers = {"content-type": content_type}
        self._body = body
        self._events = events

    def header(self, name: str) -> str | None:
        return self._headers.get(name.lower())

    async def read(self) -> bytes:
        return self._body

    async def iter_chunks(self) -> AsyncGenerator[bytes, None]:
        events = self._events
        if events is None:
            yield self._body
            return
        encoder = ChunkEncoder(include_usage=True)
        try:
            async for event in events:
                chunk = encoder.encode(event)
                if chunk:
                    yield chunk
        except TollwayError:
            raise
        except Exception as exc:
            log.warning("custom provider stream failed: %s", type(exc).__name__)
            raise UpstreamStatusError(502, "the custom provider's stream failed") from None
        yield encoder.finish()

    def close(self) -> None:
        events, self._events = self._events, None
        closer = getattr(events, "aclose", None)
        if closer is not None:
            # The handler's generator: closed on the loop, its finally blocks run.
            asyncio.get_running_loop().create_task(closer())


class CustomTransport:
    """The ``Transport`` of one custom provider: calls its handler in-process."""

    def __init__(self, name: str, handler: Any) -> None:
        self.name = name
        self.handler = handler

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadlines: Deadlines
    ) -> CustomResponse:
        request = decode_chat(body)
        try:
            async with asyncio.timeout(deadlines.read):
                answer = self.handler.chat(request)
                if inspect.isawaitable(answer):
                    answer = await answer
        except TimeoutError:
            raise UpstreamTimeout(f"custom provider {self.name} did not answer in time") from None
        except TollwayError:
            raise
        except Exception as exc:
            log.warning("custom provider %s failed: %s", self.name, type(exc).__name__)
            raise UpstreamStatusError(502, f"custom provider {self.name} failed") from None
        if isinstance(answer, ChatReply):
            if request.stream:
                return _stream(_events_of(answer))
            return CustomResponse(200, "application/json", encode_reply(answer))
        if not hasattr(answer, "__aiter__"):
            raise UpstreamStatusError(
                502, f"custom provider {self.name} answered neither a ChatReply nor events"
            )
        if request.stream:
            return _stream(answer)
        reply = await _collect(answer, request.model)
        return CustomResponse(200, "application/json", encode_reply(reply))

    async def close(self) -> None:
        closer = getattr(self.handler, "aclose", None)
        if closer is not None:
            await closer()


class CustomProvider(OpenAICompatible):
    """A registry entry whose requests go to ``CustomTransport``, never the network."""

    operations = frozenset({Operation.CHAT})

    def __init__(self, name: str, handler: Any) -> None:
        super().__init__(name, openai.DIALECT, f"{CUSTOM_BASE}{name}")
        self.responses = None
        self.transport = CustomTransport(name, handler)

    def url(self, deployment: Deployment, model: str, operation: Operation, stream: bool) -> str:
        return f"{CUSTOM_BASE}{self.name}/{operation.value}"


def _stream(events: AsyncIterator[StreamEvent]) -> CustomResponse:
    return CustomResponse(200, "text/event-stream", events=events)


async def _events_of(reply: ChatReply) -> AsyncIterator[StreamEvent]:
    yield Start(id=reply.id, model=reply.model, created=reply.created)
    for choice in reply.choices:
        content = choice.message.content
        if isinstance(content, str) and content:
            yield TextDelta(content, choice.index)
        for index, call in enumerate(choice.message.tool_calls or ()):
            arguments = call.function.arguments
            text = arguments if isinstance(arguments, str) else msgspec.json.encode(arguments)
            yield ToolCallDelta(
                index=index,
                id=call.id,
                name=call.function.name,
                arguments=text if isinstance(text, str) else text.decode(),
                choice=choice.index,
            )
        yield Finish(choice.finish_reason or "stop", choice.index)
    if reply.usage is not None:
        yield UsageReport(reply.usage)


async def _collect(events: AsyncIterator[StreamEvent], model: str) -> ChatReply:
    reply_id, texts, reasoning = new_id(), [], []
    finish: FinishReason = "stop"
    usage: Usage | None = None
    async for event in events:
        if isinstance(event, Start):
            reply_id, model = event.id, event.model or model
        elif isinstance(event, TextDelta):
            texts.append(event.text)
        elif isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, Finish):
            finish = event.reason
        elif isinstance(event, UsageReport):
            usage = event.usage
    message = Message(
        role="assistant", content="".join(texts), reasoning_content="".join(reasoning) or None
    )
    return ChatReply(id=reply_id, model=model, choices=[Choice(message, finish)], usage=usage)


def load_custom_providers(config: Config, config_dir: Path) -> dict[str, CustomProvider]:
    """Import and instantiate every ``custom_provider_map`` handler; a ``ConfigError`` naming
    the entry when one does not import or does not implement ``chat``."""
    providers: dict[str, CustomProvider] = {}
    for index, entry in enumerate(config.litellm_settings.custom_provider_map):
        where = f"litellm_settings.custom_provider_map[{index}]"
        cls = _import(entry.custom_handler, config_dir, f"{where}.custom_handler")
        if not callable(getattr(cls, "chat", None)):
            raise ConfigError(
                f"{where}.custom_handler: {entry.custom_handler} has no `chat` method "
                "(see proxy/upstream/custom.py for the interface)"
            )
        try:
            handler = cls()
        except Exception as exc:
            raise ConfigError(
                f"{where}.custom_handler: {entry.custom_handler}() failed: {type(exc).__name__}"
            ) from None
        providers[entry.provider] = CustomProvider(entry.provider, handler)
    return providers


def check_custom_providers(
    config: Config, config_dir: Path, source: str, config_path: str | None
) -> Collection[str]:
    """The custom provider names, after loading each once (start-up checks, before bind)."""
    try:
        return tuple(load_custom_providers(config, config_dir))
    except ConfigError as exc:
        field, _, problem = str(exc).partition(": ")
        raise ConfigError(
            f"{source}: invalid {field}{line_of(config_path, '$.' + field)}: {problem}"
        ) from None


def _import(path: str, config_dir: Path, field: str) -> Any:
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise ConfigError(f"{field}: {path!r} is not module.Class")
    folder = str(config_dir)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"{field}: cannot import {module_name!r} (from {folder} or PYTHONPATH): "
            f"{type(exc).__name__}"
        ) from None
    finally:
        if added:
            sys.path.remove(folder)
    cls = getattr(module, class_name, None)
    if not inspect.isclass(cls):
        raise ConfigError(f"{field}: {module_name!r} has no class {class_name!r}")
    return cls

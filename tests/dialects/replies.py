"""Folding a decoded stream back into one reply, to compare a stream with its whole-body twin."""

from __future__ import annotations

from proxy.model import (
    ChatReply,
    Choice,
    Finish,
    FinishReason,
    FunctionCall,
    Message,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
    new_id,
)


class ReplyBuilder:
    """Folds stream events into a ``ChatReply``."""

    __slots__ = ("_calls", "_finish", "_id", "_model", "_reasoning", "_text", "usage")

    def __init__(self, model: str = "") -> None:
        self._id = new_id()
        self._model = model
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, ToolCall] = {}
        self._finish: FinishReason | None = None
        self.usage: Usage | None = None

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            self._reasoning.append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = self._calls.get(event.index)
            if call is None:
                call = self._calls[event.index] = ToolCall(
                    id=event.id or "", function=FunctionCall(name=event.name or "", arguments="")
                )
            elif event.id:
                call.id = event.id
            if event.name and not call.function.name:
                call.function.name = event.name
            call.function.arguments = str(call.function.arguments or "") + event.arguments
        elif isinstance(event, Finish):
            self._finish = event.reason
        elif isinstance(event, UsageReport):
            self.usage = event.usage
        elif isinstance(event, Start):
            self._id, self._model = event.id, event.model

    def build(self) -> ChatReply:
        calls = [self._calls[i] for i in sorted(self._calls)] or None
        message = Message(
            role="assistant",
            content="".join(self._text) if self._text or not calls else None,
            tool_calls=calls,
            reasoning_content="".join(self._reasoning) or None,
        )
        return ChatReply(
            id=self._id,
            model=self._model,
            choices=[Choice(message=message, finish_reason=self._finish or "stop")],
            usage=self.usage,
        )

"""Batch completions, as LiteLLM's proxy has them: a chat request whose ``model`` is a
comma-separated list (``"gpt-4o,claude-3"``) is sent to each model, and the answer is a JSON
list of the replies in the order the models were named.

Each model's call is a call of its own: authorized, admitted, billed and logged as if it had
been sent alone, with its own call id; a model that fails holds its error object
(``{"error": {...}}``) in its place. When every model fails, the first failure is the answer.
Only non-streamed chat is batched. The hot path pays one substring test on the model name;
everything here runs only when that finds a comma.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson

from ..errors import InvalidRequest
from ..request import ParsedRequest

MAX_BATCH_MODELS = 16


def batch_models(request: ParsedRequest) -> list[str]:
    """The models a comma-separated ``model`` names (400 when it cannot be batched)."""
    if request.stream:
        raise InvalidRequest(
            "a comma-separated model list (batch completions) cannot be streamed",
            param="model",
        )
    models = [name.strip() for name in request.model.split(",")]
    if any(not name for name in models):
        raise InvalidRequest("the comma-separated model list names an empty model", param="model")
    if len(models) > MAX_BATCH_MODELS:
        raise InvalidRequest(
            f"a batch completion may name at most {MAX_BATCH_MODELS} models", param="model"
        )
    return models


def with_model(body: bytes, model: str) -> bytes:
    """The request body (already parsed once, so valid JSON) naming one model."""
    data = orjson.loads(body)
    data["model"] = model
    return orjson.dumps(data)


class Captured:
    """An ASGI ``send`` that keeps one call's answer instead of writing it to the client."""

    __slots__ = ("body", "headers", "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


_COST_HEADERS = (b"x-tollway-response-cost", b"x-litellm-response-cost")


def combined(answers: list[Captured]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) of the batch: the list of answers, or, when none succeeded,
    the first failure as it was."""
    if not any(answer.ok for answer in answers):
        first = answers[0]
        return first.status, first.headers, first.body
    body = b"[" + b",".join(answer.body for answer in answers) + b"]"
    call_ids = b",".join(answer.header(b"x-tollway-call-id") or b"" for answer in answers)
    total = 0.0
    for answer in answers:
        cost = answer.header(b"x-tollway-response-cost")
        if cost is not None:
            total += float(cost)
    money = f"{total:.10f}".rstrip("0").rstrip(".").encode() if total else b"0"
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-tollway-call-id", call_ids),
        *(
            (name, money)
            for name in _COST_HEADERS
            if any(answer.header(name) is not None for answer in answers)
        ),
    ]
    return 200, headers, body

"""Cache keys: SHA-256 over a canonical encoding of everything that changes the output.

The key covers the model group and every output-affecting parameter (messages, tools,
sampling, response format, n, seed, …) in the common model, so the same request in any
inbound format shares an entry; it never covers ``metadata``, ``user``, the stream flags or
the gateway's own controls, so a streamed and a non-streamed request share an entry too. The
scope (team, key or global) and the namespace prefix every key.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import orjson

from ..model import ChatRequest
from ..request import Kind, ParsedRequest

_IGNORED = frozenset(
    {"model", "metadata", "user", "stream", "stream_options", "guardrails", "cache", "use-cache"}
)
_SORTED = orjson.OPT_SORT_KEYS


def request_payload(request: ParsedRequest) -> dict[str, Any]:
    """The request's output-affecting content, as plain data."""
    if request.kind is Kind.CHAT:
        data: dict[str, Any] = msgspec.to_builtins(request.chat())
    else:
        loaded = orjson.loads(request.body)
        data = loaded if isinstance(loaded, dict) else {}
        if request.rewritten and request.typed is not None:
            # A guardrail masked the input: the masked text is what is asked.
            data.update(msgspec.to_builtins(request.typed))
    return {k: v for k, v in data.items() if k not in _IGNORED}


def cache_key(request: ParsedRequest, prefix: str) -> str:
    payload = request_payload(request)
    canonical = orjson.dumps(
        {"k": request.kind.value, "m": request.model, "p": payload}, option=_SORTED
    )
    return prefix + hashlib.sha256(canonical).hexdigest()


def last_user_turn(chat: ChatRequest) -> tuple[str, str]:
    """(the last user message's text, a hash of everything else: earlier turns, system
    prompt, tools and parameters) — what selects semantic-cache candidates."""
    data: dict[str, Any] = msgspec.to_builtins(chat)
    messages = data.get("messages") or []
    index = max((i for i, m in enumerate(chat.messages) if m.role == "user"), default=-1)
    text = chat.messages[index].text() if index >= 0 else ""
    rest = {k: v for k, v in data.items() if k not in _IGNORED and k != "messages"}
    rest["messages"] = [m for i, m in enumerate(messages) if i != index]
    rest["model"] = chat.model
    return text, hashlib.sha256(orjson.dumps(rest, option=_SORTED)).hexdigest()

"""A fake upstream on 127.0.0.1, port 0, for the endpoints beyond chat, each in its
provider's documented wire format:

- OpenAI (under ``/v1``): ``images/generations``, ``audio/transcriptions|translations``
  (multipart), ``audio/speech`` (binary audio in ``SPEECH_CHUNKS`` chunks; after the
  first it waits for ``speech_gate``), ``moderations``, ``rerank`` (vLLM's / Jina's),
  ``files`` and ``batches`` (a batch is ``completed`` once read, its output a JSONL file
  with usage on every line), and
  ``chat/completions`` (for the pass-through routes);
- Cohere: ``/v2/rerank``; Anthropic: ``/v1/messages/count_tokens`` and ``/v1/messages``;
  Gemini: ``/v1beta/models/{model}:countTokens``.

Every request is recorded (path, headers, body) and checked for the gateway's credential.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import itertools
import threading
import time
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.threaded import ThreadedApp

SPEECH_CHUNKS = 5
SPEECH_CHUNK = b"\xff\xfb\x90\x00" * 256
AUDIO_SECONDS = 12.5
BATCH_LINES = 3
BATCH_USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


def _form(request: web.Request, raw: bytes) -> dict[str, Any]:
    """A multipart/form-data body (already read): name → text, or (filename, bytes)."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        filename = part.get_filename()
        fields[str(name)] = (filename, payload) if filename else payload.decode()
    return fields


GEMINI_USAGE = {"promptTokenCount": 400, "candidatesTokenCount": 100, "totalTokenCount": 500}


def _gemini_reply(model: str, text: str) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": dict(GEMINI_USAGE),
        "modelVersion": model,
    }


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _openai_error(status: int, message: str) -> web.Response:
    return _json(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
        status,
    )


class FakeSideUpstream(ThreadedApp):
    thread_name = "fake-side"

    def __init__(self, *, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        # After its first chunk, speech waits for this (set by a test that has seen the
        # first chunk arrive through the gateway: proof that nothing buffered it).
        self.speech_gate = threading.Event()
        self.speech_gate.set()
        self.gate_timed_out = False
        # Set when the gateway closed the connection before the audio was all written.
        self.speech_aborted = False

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.start_thread()

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._record])
        r = app.router
        r.add_post("/v1/images/generations", self._images)
        r.add_post("/v1/audio/transcriptions", self._transcription)
        r.add_post("/v1/audio/translations", self._transcription)
        r.add_post("/v1/audio/speech", self._speech)
        r.add_post("/v1/moderations", self._moderations)
        r.add_post("/v1/rerank", self._vllm_rerank)
        r.add_post("/v2/rerank", self._cohere_rerank)
        r.add_post("/v1/files", self._create_file)
        r.add_get("/v1/files", self._list_files)
        r.add_get("/v1/files/{id}", self._file)
        r.add_delete("/v1/files/{id}", self._delete_file)
        r.add_get("/v1/files/{id}/content", self._content)
        r.add_post("/v1/batches", self._create_batch)
        r.add_get("/v1/batches", self._list_batches)
        r.add_get("/v1/batches/{id}", self._batch)
        r.add_post("/v1/batches/{id}/cancel", self._cancel)
        r.add_post("/v1/chat/completions", self._chat)
        r.add_post("/v1/messages/count_tokens", self._count_tokens)
        r.add_post("/v1/messages", self._messages)
        r.add_post("/v1beta/models/{model}:countTokens", self._gemini_count)
        r.add_post("/v1beta/models/{model}:generateContent", self._gemini_generate)
        r.add_post("/v1beta/models/{model}:streamGenerateContent", self._gemini_stream)
        # Hugging Face text-embeddings-inference's rerank, under /tei.
        r.add_post("/tei/rerank", self._tei_rerank)
        # A deployment whose every call fails (for retries and fallbacks), under /broken.
        r.add_post("/broken/v1/{tail:.*}", self._broken)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "raw": raw,
            }
        )
        key = (
            request.headers.get("x-api-key")
            or request.headers.get("x-goog-api-key")
            or request.headers.get("authorization", "")
        )
        if key not in (self.api_key, f"Bearer {self.api_key}"):
            return _openai_error(401, "Incorrect API key provided.")
        response: web.StreamResponse = await handler(request)
        return response

    async def _images(self, request: web.Request) -> web.Response:
        body = await request.json()
        n = body.get("n") or 1
        return _json(
            {
                "created": int(time.time()),
                "data": [{"url": f"https://img/{i}.png"} for i in range(n)],
            }
        )

    async def _transcription(self, request: web.Request) -> web.Response:
        form = _form(request, await request.read())
        audio = form.get("file")
        if not isinstance(audio, tuple):
            return _openai_error(400, "file is required")
        if form.get("response_format") == "text":
            return web.Response(text="hello world", content_type="text/plain")
        return _json(
            {
                "text": "hello world",
                "model_seen": form.get("model"),
                "usage": {"type": "duration", "seconds": AUDIO_SECONDS},
            }
        )

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        await request.json()
        resp = web.StreamResponse(headers={"content-type": "audio/mpeg"})
        await resp.prepare(request)
        try:
            for i in range(SPEECH_CHUNKS):
                await resp.write(SPEECH_CHUNK)
                if i == 0:
                    opened = await asyncio.to_thread(self.speech_gate.wait, 10)
                    self.gate_timed_out = self.gate_timed_out or not opened
                # Paced, as a synthesizer sends: a client gone meanwhile is noticed.
                await asyncio.sleep(0.05)
            await resp.write_eof()
        except ConnectionError:
            self.speech_aborted = True
        except asyncio.CancelledError:  # aiohttp cancels a handler whose client left
            self.speech_aborted = True
            raise
        return resp

    async def _moderations(self, request: web.Request) -> web.Response:
        body = await request.json()
        return _json(
            {
                "id": "modr-1",
                "model": body["model"],
                "results": [{"flagged": False, "categories": {}, "category_scores": {}}],
            }
        )

    async def _vllm_rerank(self, request: web.Request) -> web.Response:
        body = await request.json()
        docs = body["documents"]
        results = [
            {
                "index": i,
                "document": {"text": d if isinstance(d, str) else d.get("text")},
                "relevance_score": 1.0 / (i + 1),
            }
            for i, d in enumerate(docs)
        ][: body.get("top_n") or len(docs)]
        return _json(
            {
                "id": "rerank-vllm",
                "model": body["model"],
                "usage": {"total_tokens": 42},
                "results": results,
            }
        )

    async def _tei_rerank(self, request: web.Request) -> web.Response:
        body = await request.json()
        texts: list[str] = body["texts"]
        assert isinstance(body["query"], str) and all(isinstance(t, str) for t in texts)
        # TEI answers every text, best first: here the longer text ranks higher.
        ranked = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        return _json([{"index": i, "score": round(len(texts[i]) / 100, 4)} for i in ranked])

    async def _broken(self, request: web.Request) -> web.Response:
        return _openai_error(500, "the upstream is down")

    async def _cohere_rerank(self, request: web.Request) -> web.Response:
        body = await request.json()
        docs = body["documents"]
        return _json(
            {
                "id": "rerank-cohere",
                "results": [
                    {"index": i, "relevance_score": 0.9 - i * 0.1} for i in range(len(docs))
                ][: body.get("top_n") or len(docs)],
                "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
            }
        )

    def _file_object(self, file_id: str, filename: str, purpose: str, size: int) -> dict[str, Any]:
        return {
            "id": file_id,
            "object": "file",
            "bytes": size,
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }

    async def _create_file(self, request: web.Request) -> web.Response:
        form = _form(request, await request.read())
        filename, data = form["file"]
        file_id = f"file-{next(self._ids)}"
        obj = self._file_object(file_id, filename, str(form["purpose"]), len(data))
        self.files[file_id] = {"object": obj, "content": data}
        return _json(obj)

    async def _list_files(self, request: web.Request) -> web.Response:
        return _json({"object": "list", "data": [f["object"] for f in self.files.values()]})

    async def _file(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["id"])
        return _json(found["object"]) if found else _openai_error(404, "No such File object")

    async def _delete_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["id"]
        self.files.pop(file_id, None)
        return _json({"id": file_id, "object": "file", "deleted": True})

    async def _content(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["id"])
        if found is None:
            return _openai_error(404, "No such File object")
        return web.Response(body=found["content"], content_type="application/octet-stream")

    def _batch_object(self, batch_id: str, status: str, input_file_id: str) -> dict[str, Any]:
        return {
            "id": batch_id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()),
            "request_counts": {"total": BATCH_LINES, "completed": 0, "failed": 0},
        }

    async def _create_batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        batch_id = f"batch_{next(self._ids)}"
        obj = self._batch_object(batch_id, "validating", body["input_file_id"])
        self.batches[batch_id] = obj
        return _json(obj)

    async def _list_batches(self, request: web.Request) -> web.Response:
        return _json({"object": "list", "data": list(self.batches.values()), "has_more": False})

    async def _batch(self, request: web.Request) -> web.Response:
        obj = self.batches.get(request.match_info["id"])
        if obj is None:
            return _openai_error(404, "No such batch")
        if obj["output_file_id"] is None:
            out_id = f"file-out-{next(self._ids)}"
            lines = [
                orjson.dumps(
                    {
                        "id": f"batch_req_{i}",
                        "custom_id": f"r{i}",
                        "response": {
                            "status_code": 200,
                            "body": {"model": "gpt-4o-mini", "usage": BATCH_USAGE, "choices": []},
                        },
                    }
                )
                for i in range(BATCH_LINES)
            ]
            content = b"\n".join(lines) + b"\n"
            self.files[out_id] = {
                "object": self._file_object(out_id, "out.jsonl", "batch_output", len(content)),
                "content": content,
            }
            obj.update(status="completed", output_file_id=out_id)
        return _json(obj)

    async def _cancel(self, request: web.Request) -> web.Response:
        obj = self.batches[request.match_info["id"]]
        obj["status"] = "cancelling"
        return _json(obj)

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        return _json(
            {
                "id": "chatcmpl-pass",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
            }
        )

    async def _gemini_count(self, request: web.Request) -> web.Response:
        return _json({"totalTokens": 5, "model": request.match_info["model"]})

    async def _gemini_generate(self, request: web.Request) -> web.Response:
        return _json(_gemini_reply(request.match_info["model"], "hello"))

    async def _gemini_stream(self, request: web.Request) -> web.StreamResponse:
        # Google's ``alt=sse`` framing: the usage comes with the last event.
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        first = _gemini_reply(request.match_info["model"], "hel")
        del first["usageMetadata"]
        for event in (first, _gemini_reply(request.match_info["model"], "lo")):
            await resp.write(b"data: " + orjson.dumps(event) + b"\r\n\r\n")
        await resp.write_eof()
        return resp

    async def _count_tokens(self, request: web.Request) -> web.Response:
        body = await request.json()
        return _json({"input_tokens": 7 if body.get("model") == "claude-upstream" else 0})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("stream"):
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            events = [
                (
                    "message_start",
                    {
                        "type": "message_start",
                        "message": {
                            "id": "msg_1",
                            "type": "message",
                            "role": "assistant",
                            "model": body["model"],
                            "content": [],
                            "usage": {"input_tokens": 200, "output_tokens": 1},
                        },
                    },
                ),
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": "hi"},
                    },
                ),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn"},
                        "usage": {"output_tokens": 30},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            ]
            for name, data in events:
                await resp.write(
                    b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
                )
            await resp.write_eof()
            return resp
        return _json(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": "hi"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 200, "output_tokens": 30},
            }
        )

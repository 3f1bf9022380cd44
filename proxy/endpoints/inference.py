"""OpenAI's non-chat inference endpoints and Cohere's rerank, each billed in its unit:

- ``/v1/images/generations``: per image, by size and quality (the images the reply holds);
- ``/v1/audio/transcriptions`` and ``/translations``: a bounded multipart upload, per second
  of audio (the reply's ``usage.seconds`` or ``duration``; reserved from the file's size);
- ``/v1/audio/speech``: per character of input; the audio is relayed as it arrives;
- ``/v1/moderations``: per input token at the model's token price (OpenAI's are free);
- ``/v1/rerank``, ``/v2/rerank``: Cohere's format, per query (Cohere's search units), to
  Cohere, to an OpenAI-compatible rerank server (vLLM, Jina: ``{api_base}/rerank``), or to
  Hugging Face text-embeddings-inference (``huggingface/`` deployments, as LiteLLM names
  them: ``{api_base}/rerank`` with ``{"query", "texts"}``, answering ``[{"index", "score"}]``);
  every reply comes back in the Cohere version's shape the route names.

Each sends its body as a ``BodyFor`` (built per attempt), so a retry in the group and the
router's fallbacks work for every one of them, the multipart uploads included.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec
import orjson
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import InvalidRequest, UpstreamError
from ..upstream.deployment import Deployment
from ..upstream.native import with_model
from ..usage import estimate_tokens
from .client import UpstreamReply
from .meter import Meter, Side, json_response
from .prices import UnitPrice

if TYPE_CHECKING:
    import aiohttp

# OpenAI's own upload limit for audio, and a little room for the multipart envelope.
AUDIO_MAX_BYTES = 25 * 1024 * 1024 + 64 * 1024
# The reservation of a transcription assumes the lowest common bitrate (8 kbit/s): no file
# holds more seconds than this says. When the reply reports no duration, 128 kbit/s is billed.
RESERVE_BYTES_PER_SECOND = 1_000
BILL_BYTES_PER_SECOND = 16_000
# Cohere bills one search unit per query over at most 100 documents.
DOCUMENTS_PER_SEARCH_UNIT = 100


class ImageBody(msgspec.Struct):
    model: str
    prompt: str
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    user: str | None = None


class SpeechBody(msgspec.Struct):
    model: str
    input: str
    voice: Any = None
    user: str | None = None


class ModerationBody(msgspec.Struct):
    input: Any
    model: str = "omni-moderation-latest"
    user: str | None = None


class RerankBody(msgspec.Struct):
    model: str
    query: str
    documents: list[Any]
    top_n: int | None = None
    return_documents: bool | None = None
    user: str | None = None


class _ImagesOut(msgspec.Struct):
    data: list[msgspec.Raw] = []


class _Duration(msgspec.Struct):
    seconds: float | None = None


class _TranscriptionOut(msgspec.Struct):
    duration: float | None = None
    usage: _Duration | None = None


class _BilledUnits(msgspec.Struct):
    search_units: float | None = None


class _Meta(msgspec.Struct):
    billed_units: _BilledUnits | None = None


class _TeiRank(msgspec.Struct):
    index: int
    score: float


class _RerankOut(msgspec.Struct):
    results: list[dict[str, Any]] = []
    id: str | None = None
    meta: _Meta | None = None


def decode(body: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request body: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc


def decode_reply(raw: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise UpstreamError("the upstream's reply is not in the expected format") from None


class Upload(NamedTuple):
    """One file of a multipart body, read whole (its size is bounded by the body's)."""

    field: str
    filename: str
    content_type: str
    data: bytes


async def read_form(side: Side, limit: int) -> tuple[dict[str, str], list[Upload]]:
    """A bounded multipart body, parsed (python-multipart through Starlette)."""
    body = await side.read(limit)
    request = side.request
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    fields: dict[str, str] = {}
    files: list[Upload] = []
    try:
        async with Request(request.scope, replay).form(max_files=4, max_fields=64) as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files.append(
                        Upload(
                            name,
                            value.filename or "upload",
                            value.content_type or "application/octet-stream",
                            await value.read(),
                        )
                    )
                else:
                    fields[name] = value
    except HTTPException as exc:  # python-multipart's parse errors, as Starlette raises them
        raise InvalidRequest(f"the multipart body cannot be read: {exc.detail}") from None
    return fields, files


def form_data(fields: dict[str, str], files: list[Upload]) -> aiohttp.FormData:
    import aiohttp  # on first use: a gateway that uploads nothing never loads it

    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value)
    for upload in files:
        data.add_field(
            upload.field, upload.data, filename=upload.filename, content_type=upload.content_type
        )
    return data


class InferenceEndpoints:
    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def routes(self) -> list[BaseRoute]:
        out: list[BaseRoute] = []
        for path, handler in (
            ("/images/generations", self.images),
            ("/audio/transcriptions", self.transcriptions),
            ("/audio/translations", self.translations),
            ("/audio/speech", self.speech),
            ("/moderations", self.moderations),
            ("/rerank", self.rerank),
        ):
            out.append(Route("/v1" + path, handler, methods=["POST"]))
            out.append(Route(path, handler, methods=["POST"]))
        out.append(Route("/v2/rerank", self.rerank, methods=["POST"]))
        return out

    async def images(self, request: Request) -> Response:
        async def work(side: Side) -> Response:
            body = await side.read()
            spec: ImageBody = decode(body, ImageBody)
            side.end_user(spec.user)
            side.route(spec.model)
            n = spec.n or 1
            if n < 1:
                raise InvalidRequest("`n` must be at least 1", param="n")

            def unit(deployment: Deployment, model: str) -> UnitPrice:
                return self.meter.prices.per_image(deployment, model, spec.size, spec.quality)

            worst = side.dearest(unit)
            await side.reserve(n * worst.value, priced=worst.priced)
            reply = await side.send("POST", "images/generations", _renamed(body))
            raw = await _read(side, reply)
            images = len(decode_reply(raw, _ImagesOut).data)
            side.bill(images, side.served(unit))
            return side.answer(raw)

        return await self.meter.serve(request, "images/generations", work)

    async def transcriptions(self, request: Request) -> Response:
        return await self._audio(request, "audio/transcriptions")

    async def translations(self, request: Request) -> Response:
        return await self._audio(request, "audio/translations")

    async def _audio(self, request: Request, path: str) -> Response:
        async def work(side: Side) -> Response:
            # Read whole and bounded: the parts stay in memory so a retry can resend them.
            fields, files = await read_form(side, AUDIO_MAX_BYTES)
            audio = next((upload for upload in files if upload.field == "file"), None)
            if audio is None:
                raise InvalidRequest("`file` (the audio) is required", param="file")
            side.end_user(fields.get("user"))
            side.route(fields.get("model", ""))
            unit = self.meter.prices.per_second
            worst = side.dearest(unit)
            size = len(audio.data)
            await side.reserve(
                math.ceil(size / RESERVE_BYTES_PER_SECOND) * worst.value, priced=worst.priced
            )

            def form(deployment: Deployment, model: str) -> aiohttp.FormData:
                return form_data({**fields, "model": model}, files)

            reply = await side.send("POST", path, form, content_type=None)
            raw = await _read(side, reply)
            seconds = _seconds(raw)
            if seconds is None:
                seconds = size / BILL_BYTES_PER_SECOND
            side.bill(seconds, side.served(unit))
            content_type = reply.headers.get("content-type", "application/json")
            return side.answer(raw, content_type=content_type)

        return await self.meter.serve(request, path, work)

    async def speech(self, request: Request) -> Response:
        async def work(side: Side) -> Response:
            body = await side.read()
            spec: SpeechBody = decode(body, SpeechBody)
            side.end_user(spec.user)
            side.route(spec.model)
            unit = self.meter.prices.per_character
            worst = side.dearest(unit)
            characters = len(spec.input)
            await side.reserve(characters * worst.value, priced=worst.priced)
            reply = await side.send("POST", "audio/speech", _renamed(body))
            # The input is what is billed, and it is known: billed before the first byte.
            side.bill(characters, side.served(unit))
            content_type = reply.headers.get("content-type", "audio/mpeg")
            return side.stream(reply, content_type)

        return await self.meter.serve(request, "audio/speech", work)

    async def moderations(self, request: Request) -> Response:
        async def work(side: Side) -> Response:
            body = await side.read()
            spec: ModerationBody = decode(body, ModerationBody)
            side.end_user(spec.user)
            side.route(spec.model)
            unit = self.meter.prices.per_token
            worst = side.dearest(unit)
            tokens = estimate_tokens(len(orjson.dumps(spec.input)))
            await side.reserve(tokens * worst.value, tokens, priced=worst.priced)
            forwarded = orjson.loads(body)

            def renamed(deployment: Deployment, model: str) -> bytes:
                forwarded["model"] = model
                return orjson.dumps(forwarded)

            reply = await side.send("POST", "moderations", renamed)
            raw = await _read(side, reply)
            side.bill(tokens, side.served(unit))
            return side.answer(raw)

        return await self.meter.serve(request, "moderations", work)

    async def rerank(self, request: Request) -> Response:
        version = "2" if request.url.path.startswith("/v2/") else "1"

        async def work(side: Side) -> Response:
            body = await side.read()
            spec: RerankBody = decode(body, RerankBody)
            side.end_user(spec.user)
            side.route(spec.model)
            unit = self.meter.prices.per_query
            worst = side.dearest(unit)
            units = max(1, math.ceil(len(spec.documents) / DOCUMENTS_PER_SEARCH_UNIT))
            await side.reserve(units * worst.value, priced=worst.priced)

            def payload(deployment: Deployment, model: str) -> bytes:
                if deployment.provider == "huggingface":
                    return orjson.dumps({"query": spec.query, "texts": _texts(spec.documents)})
                return with_model(body, model)

            reply = await side.send("POST", "rerank", payload)
            raw = await _read(side, reply)
            assert side.deployment is not None
            if side.deployment.provider == "huggingface":
                out = _RerankOut(results=_tei_results(raw, spec))
            else:
                out = decode_reply(raw, _RerankOut)
            billed = out.meta.billed_units if out.meta is not None else None
            if billed is not None and billed.search_units is not None:
                units = math.ceil(billed.search_units)
            side.bill(units, side.served(unit))
            if side.deployment.provider == "cohere":
                return side.answer(raw)
            # An OpenAI-compatible rerank server (vLLM, Jina) or TEI: in Cohere's shape.
            reshaped = {
                "id": out.id or side.call.call_id,
                "results": out.results,
                "meta": {
                    "api_version": {"version": version},
                    "billed_units": {"search_units": units},
                },
            }
            return side.answer(orjson.dumps(reshaped))

        return await self.meter.serve(request, "rerank", work)


def _renamed(body: bytes) -> Callable[[Deployment, str], bytes]:
    """The JSON body with each attempt's model name in it."""

    def build(deployment: Deployment, model: str) -> bytes:
        return with_model(body, model)

    return build


async def _read(side: Side, reply: UpstreamReply) -> bytes:
    assert side.deployment is not None
    return await reply.read(side.deployment.deadlines.total)


def _texts(documents: list[Any]) -> list[str]:
    """Cohere's documents (strings, or objects with a ``text``) as TEI's ``texts``."""
    out = []
    for document in documents:
        if isinstance(document, str):
            out.append(document)
        elif isinstance(document, dict) and isinstance(document.get("text"), str):
            out.append(document["text"])
        else:
            out.append(orjson.dumps(document).decode())
    return out


def _tei_results(raw: bytes, spec: RerankBody) -> list[dict[str, Any]]:
    """TEI's ``[{"index", "score"}]`` as Cohere's results: best first, ``top_n`` of them,
    each document echoed when ``return_documents`` asks for it."""
    ranks: list[_TeiRank] = decode_reply(raw, list[_TeiRank])
    ranks.sort(key=lambda rank: rank.score, reverse=True)
    if spec.top_n is not None:
        ranks = ranks[: max(0, spec.top_n)]
    results: list[dict[str, Any]] = []
    for rank in ranks:
        if not 0 <= rank.index < len(spec.documents):
            raise UpstreamError("the upstream's rerank reply names a document that was not sent")
        result: dict[str, Any] = {"index": rank.index, "relevance_score": rank.score}
        if spec.return_documents:
            document = spec.documents[rank.index]
            result["document"] = document if isinstance(document, dict) else {"text": document}
        results.append(result)
    return results


def _seconds(raw: bytes) -> float | None:
    """Seconds of audio a transcription reply reports (``usage.seconds``, ``duration``)."""
    try:
        out = msgspec.json.decode(raw, type=_TranscriptionOut)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None  # text, srt or vtt: no duration in the reply
    if out.usage is not None and out.usage.seconds is not None:
        return out.usage.seconds
    return out.duration


__all__ = ["InferenceEndpoints", "json_response"]

"""The files under ``proxy/ui/static`` (shipped in the wheel), read once off the event loop,
and the security headers every UI and docs response carries."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from ..errors import NotFound

# No inline script or style, nothing from another origin; images may be data: URIs (the
# docs viewer's icons). frame-ancestors + X-Frame-Options: never inside a frame.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def secured(response: Response, *, cache: bool = False) -> Response:
    response.headers.update(SECURITY_HEADERS)
    response.headers["cache-control"] = "public, max-age=300" if cache else "no-store"
    return response


def _walk(folder: Path, prefix: str, found: dict[str, bytes]) -> None:
    for entry in folder.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            _walk(entry, name + "/", found)
        elif any(name.endswith(suffix) for suffix in _TYPES):
            found[name] = entry.read_bytes()


def _load() -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    _walk(Path(__file__).resolve().parent / "static", "", found)
    return found


class Assets:
    """The static files by relative path, loaded on first use in a worker thread."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] | None = None
        self._lock = asyncio.Lock()

    async def get(self, name: str) -> bytes:
        if self._files is None:
            async with self._lock:
                if self._files is None:
                    self._files = await asyncio.to_thread(_load)
        body = self._files.get(name)
        if body is None:
            raise NotFound(f"no file {name!r}", code="not_found")
        return body

    async def response(self, name: str) -> Response:
        body = await self.get(name)
        kind = _TYPES["." + name.rsplit(".", 1)[-1]]
        return secured(Response(body, media_type=kind), cache=not name.endswith(".html"))

    async def static(self, request: Request) -> Response:
        return await self.response(request.path_params["path"])

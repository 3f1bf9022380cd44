"""What the HTTP/1.1 server refuses before a request reaches the app, and how it says so.

RFC 9112 leaves a server a choice in a few places; these are Tollway's, kept in one place
so any server it runs on (today uvicorn's httptools protocol, ``uvicorn_protocol.py``)
answers the same way:

- a request line's target longer than ``MAX_TARGET_BYTES`` → 414 (§3: MUST);
- header fields over ``MAX_HEADER_BYTES`` in total or more than ``MAX_HEADER_FIELDS`` → 431
  (RFC 6585 §5);
- an HTTP/1.1 request without exactly one ``Host`` → 400 (§3.2: MUST);
- an HTTP/1.0 request with ``Transfer-Encoding`` → 400: its framing is faulty (§6.1: MUST
  treat as faulty and close);
- a major version other than 1 → 505;
- any parse error (both ``Content-Length`` and ``Transfer-Encoding``, two lengths, obs-fold,
  bare CR or LF, a bad chunk size, ...) → 400.

Every refusal carries the error contract's JSON body and ``connection: close``, and the
connection is closed after it: nothing that follows on the connection is read as a request,
which is what makes smuggling through a disagreement about framing impossible.
"""

from __future__ import annotations

from http import HTTPStatus

from ..errors import TollwayError

MAX_TARGET_BYTES = 8 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 256


class Refused(Exception):
    """Raised inside a parser callback: the request is answered ``status`` and the
    connection closed."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def refusal(status: int, message: str, code: str) -> bytes:
    """A whole HTTP/1.1 response (status line to body) that ends the connection."""
    error = TollwayError(message, code=code)
    error.status = status
    error.type = "invalid_request_error"
    body = error.body()
    reason = HTTPStatus(status).phrase.encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%s" % (status, reason, len(body), body)
    )


BAD_REQUEST = refusal(400, "malformed HTTP request", "bad_request")
HEADER_TIMEOUT = refusal(408, "the request headers did not arrive in time", "header_timeout")

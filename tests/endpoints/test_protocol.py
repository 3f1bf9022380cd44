"""HTTP/1.x details against the real server (``tollway`` in a subprocess, under each server
it runs on: uvicorn with the gateway's protocol, and granian), spoken over raw sockets:
``Expect: 100-continue`` is refused from the headers (401, 403, 413) before any
``100 Continue``, and answered with ``100 Continue`` only after authentication; a streamed
reply to an HTTP/1.0 request is close-delimited; binary speech audio is relayed as it
arrives."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, start_gateway
from tests.endpoints.conftest import model_entry, side_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.side_upstream import SPEECH_CHUNK, SPEECH_CHUNKS, FakeSideUpstream

HI = [{"role": "user", "content": "hi"}]
CHAT = orjson.dumps({"model": "gpt-test", "messages": HI})
STREAM = orjson.dumps({"model": "streamer", "stream": True, "messages": HI})
SPEECH = {"model": "tts", "voice": "alloy", "input": "hello"}


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def gateway(
    request: pytest.FixtureRequest,
    side: FakeSideUpstream,
    fake_openai: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    config = side_config(side, model_entry("streamer", "openai/fake-ok", fake_openai.base_url))
    server: str = request.param
    proc = start_gateway(
        tmp_path_factory.mktemp(f"protocol-{server}"), config, {"TOLLWAY_SERVER": server}
    )
    yield proc
    proc.stop()


def connect(gateway: GatewayProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
    return sock


def read_until_close(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def head(path: str, key: str, length: int, *, version: str = "1.1", expect: bool = True) -> bytes:
    lines = [
        f"POST {path} HTTP/{version}",
        "Host: tollway.test",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    if expect:
        lines.append("Expect: 100-continue")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post_http_10(gateway: GatewayProcess, path: str, body: bytes) -> tuple[bytes, bytes]:
    """POST ``body`` as HTTP/1.0 (no ``Expect``), read until the server closes: (head, body)."""
    with connect(gateway) as sock:
        sock.sendall(head(path, MASTER_KEY, len(body), version="1.0", expect=False))
        sock.sendall(body)
        raw = read_until_close(sock)
    headers, _, payload = raw.partition(b"\r\n\r\n")
    return headers, payload


@pytest.mark.parametrize(
    ("path", "key", "length", "status"),
    [
        pytest.param("/v1/chat/completions", "sk-wrong", len(CHAT), 401, id="bad-key"),
        pytest.param("/chat/completions", "", len(CHAT), 401, id="no-key"),
        pytest.param("/v1/chat/completions", MASTER_KEY, 64 * 1024 * 1024, 413, id="too-large"),
        pytest.param("/v1/images/generations", "sk-wrong", 40, 401, id="side-endpoint"),
    ],
)
def test_expect_100_continue_is_refused_before_any_continue(
    gateway: GatewayProcess, path: str, key: str, length: int, status: int
) -> None:
    with connect(gateway) as sock:
        sock.sendall(head(path, key, length))
        first = sock.recv(65536)
    # The refusal is the first thing the client reads: no 100 Continue came before it.
    assert first.startswith(f"HTTP/1.1 {status} ".encode()), first[:200]
    assert b"100 Continue" not in first


def test_expect_100_continue_is_answered_after_authentication(gateway: GatewayProcess) -> None:
    with connect(gateway) as sock:
        sock.sendall(head("/v1/chat/completions", MASTER_KEY, len(CHAT)))
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(CHAT)
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]


def test_a_stream_to_an_http_10_client_is_close_delimited(gateway: GatewayProcess) -> None:
    headers, payload = post_http_10(gateway, "/v1/chat/completions", STREAM)
    lowered = headers.lower()
    # uvicorn answers as HTTP/1.1 and says it closes; granian answers as HTTP/1.0, whose
    # replies close unless they say keep-alive (RFC 9112 §9.3). Either way the close ends
    # the body (``read_until_close`` returned), and no framing is added to it.
    assert headers.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 "))
    assert b"transfer-encoding" not in lowered
    assert b"content-length" not in lowered
    if headers.startswith(b"HTTP/1.1"):
        assert b"connection: close" in lowered
    else:
        assert b"keep-alive" not in lowered
    # The events themselves, not chunk-size lines, and the stream ran to its end.
    assert payload.startswith(b"data: {")
    assert payload.rstrip().endswith(b"data: [DONE]")


def test_binary_speech_to_an_http_10_client_is_close_delimited(gateway: GatewayProcess) -> None:
    headers, audio = post_http_10(gateway, "/v1/audio/speech", orjson.dumps(SPEECH))
    assert b"transfer-encoding" not in headers.lower()
    assert audio == SPEECH_CHUNK * SPEECH_CHUNKS


def test_http_11_streams_stay_chunked(gateway: GatewayProcess) -> None:
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        content=STREAM,
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
    ) as resp:
        assert resp.headers["transfer-encoding"] == "chunked"
        assert b"[DONE]" in resp.read()


def test_speech_audio_is_relayed_as_it_arrives(
    gateway: GatewayProcess, side: FakeSideUpstream
) -> None:
    # The upstream holds back everything after its first chunk until the test has seen that
    # chunk come through the gateway: a gateway that buffered would never deliver it.
    side.speech_gate.clear()
    side.gate_timed_out = False
    try:
        with httpx.stream(
            "POST",
            f"{gateway.url}/v1/audio/speech",
            json=SPEECH,
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            timeout=15,
        ) as resp:
            assert resp.status_code == 200
            chunks = resp.iter_raw()
            first = next(chunks)
            assert first and SPEECH_CHUNK.startswith(first[:16])
            side.speech_gate.set()
            rest = b"".join(chunks)
    finally:
        side.speech_gate.set()
    assert first + rest == SPEECH_CHUNK * SPEECH_CHUNKS
    assert not side.gate_timed_out


def test_a_client_that_leaves_mid_audio_stops_the_upstream(
    gateway: GatewayProcess, side: FakeSideUpstream
) -> None:
    side.speech_gate.clear()
    side.speech_aborted = False
    body = orjson.dumps(SPEECH)
    try:
        with connect(gateway) as sock:
            sock.sendall(head("/v1/audio/speech", MASTER_KEY, len(body), expect=False))
            sock.sendall(body)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        # The client is gone before the upstream sends the rest.
    finally:
        side.speech_gate.set()
    deadline = time.monotonic() + 5
    while not side.speech_aborted and time.monotonic() < deadline:
        time.sleep(0.02)
    assert side.speech_aborted

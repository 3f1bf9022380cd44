"""Both selectable HTTP servers serve the same gateway."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY, chat_body, free_port, gateway_config, start_gateway
from tests.fakes.openai_upstream import REPLY_TEXT, FakeOpenAI


@pytest.mark.parametrize("server", ["uvicorn", "raw", "granian"])
def test_server_choice_serves_chat_and_streams(
    server: str, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    gateway = start_gateway(
        tmp_path, gateway_config(fake_openai, free_port()), {"TOLLWAY_SERVER": server}
    )
    try:
        headers = {"authorization": f"Bearer {MASTER_KEY}"}
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            reply = client.post("/v1/chat/completions", json=chat_body(), headers=headers)
            assert reply.status_code == 200
            assert reply.json()["choices"][0]["message"]["content"] == REPLY_TEXT
            assert reply.headers["x-tollway-model"] == "openai/fake-ok"
            with client.stream(
                "POST", "/v1/chat/completions", json=chat_body(stream=True), headers=headers
            ) as stream:
                raw = b"".join(stream.iter_raw())
            assert raw.endswith(b"data: [DONE]\n\n")
    finally:
        gateway.stop()

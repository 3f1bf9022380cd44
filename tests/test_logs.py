"""Log redaction: no registered secret or key-shaped token survives into a log line."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.server.logs import JsonFormatter, RedactSecrets, configure, log_access
from tests.conftest import (
    MASTER_KEY,
    UPSTREAM_KEY,
    chat_body,
    free_port,
    gateway_config,
    start_gateway,
)
from tests.fakes.openai_upstream import FakeOpenAI

SECRET = "upstream-secret-value-42"


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, RedactSecrets]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    redactor = RedactSecrets([SECRET])
    handler.addFilter(redactor)
    logger = logging.getLogger("tollway.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, stream, redactor
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        pytest.param(f"key is {SECRET}!", SECRET, "key is [redacted]!", id="registered"),
        pytest.param(
            "bad key sk-proj-AbCdEf0123456789xyz",
            "bCdEf0123456789xyz",
            "sk-proj-A...[redacted]",
            id="sk-token",
        ),
        pytest.param(
            "Authorization: Bearer eyJhbGciOi.JIUzI1NiJ9.abc",
            "eyJhbGciOi",
            "Bearer [redacted]",
            id="bearer",
        ),
        pytest.param(
            "header='bearer tok_live_123', next",
            "tok_live_123",
            "bearer [redacted]'",
            id="bearer-lowercase-quoted",
        ),
    ],
)
def test_redact_removes_secrets_and_key_shaped_tokens(text: str, gone: str, kept: str) -> None:
    out = RedactSecrets([SECRET]).redact(text)
    assert gone not in out
    assert kept in out


def test_secrets_are_redacted_from_message_arguments(
    capture: tuple[logging.Logger, io.StringIO, RedactSecrets],
) -> None:
    logger, stream, _ = capture
    logger.warning("calling %s with %s", "https://api.example.com", SECRET)
    line = stream.getvalue()
    assert SECRET not in line
    assert "calling https://api.example.com with [redacted]" in line


def test_secrets_are_redacted_from_exception_text(
    capture: tuple[logging.Logger, io.StringIO, RedactSecrets],
) -> None:
    logger, stream, _ = capture
    try:
        raise ValueError(f"upstream said: Incorrect API key {SECRET} / sk-abcdef1234567890")
    except ValueError:
        logger.exception("call failed")
    out = stream.getvalue()
    assert "Traceback" in out
    assert "ValueError" in out
    assert SECRET not in out
    assert "1234567890" not in out


def test_secrets_added_later_are_redacted(
    capture: tuple[logging.Logger, io.StringIO, RedactSecrets],
) -> None:
    logger, stream, redactor = capture
    redactor.add("late-secret-xyz")
    logger.info("value late-secret-xyz here")
    assert "late-secret-xyz" not in stream.getvalue()
    assert "value [redacted] here" in stream.getvalue()


def test_longer_secret_is_redacted_before_its_prefix() -> None:
    redactor = RedactSecrets(["abcd", "abcdefgh"])
    assert redactor.redact("x abcdefgh y") == "x [redacted] y"


def test_secrets_shorter_than_four_characters_are_ignored() -> None:
    redactor = RedactSecrets(["ab", "", "a"])
    redactor.add("x")
    redactor.add(None)
    assert redactor.redact("a cab x") == "a cab x"


def test_configure_installs_the_redactor_on_the_root_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        configure("warning", [SECRET])
        assert root.level == logging.WARNING
        logging.getLogger("tollway.anything").warning("leaked %s", SECRET)
        logging.getLogger("tollway.anything").info("hidden below the level")
        for handler in root.handlers:
            handler.flush()
        err = capsys.readouterr().err
        assert "leaked [redacted]" in err
        assert SECRET not in err
        assert "hidden below the level" not in err
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            if handler.stream is not sys.stderr:  # type: ignore[attr-defined]
                handler.close()
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


def _json_handler(stream: io.StringIO, secrets: list[str]) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets(secrets))
    return handler


@pytest.fixture
def json_capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = _json_handler(stream, [SECRET])
    logger = logging.getLogger("tollway.test_logs.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()


def test_json_format_is_one_escaped_object_per_line_after_redaction(
    json_capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_capture
    logger.warning('quote " backslash \\ newline\nnext %s é', SECRET)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["message"] == 'quote " backslash \\ newline\nnext [redacted] é'
    assert record["level"] == "warning"
    assert record["logger"] == "tollway.test_logs.json"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    assert SECRET not in stream.getvalue()


def test_json_format_carries_a_redacted_traceback(
    json_capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_capture
    try:
        raise RuntimeError(f"upstream said {SECRET}")
    except RuntimeError:
        logger.exception("call failed")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert "RuntimeError: upstream said [redacted]" in record["exc_info"]
    assert SECRET not in line


def test_json_format_survives_undecodable_text(
    json_capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_capture
    logger.info("bytes %s", b"\xff\xfe".decode("utf-8", "surrogateescape"))
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["logger"] == "tollway.test_logs.json"


def test_access_line_has_the_call_fields_and_never_a_key(
    json_capture: tuple[logging.Logger, io.StringIO],
) -> None:
    _, stream = json_capture
    handler = _json_handler(stream, [SECRET])
    access = logging.getLogger("tollway.access")
    saved = access.level, access.propagate
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    try:
        log_access(
            call_id="call-1",
            key_alias=f"alias-with-{SECRET}",
            model="gpt-test",
            status=200,
            latency_ms=12.34567,
        )
    finally:
        access.removeHandler(handler)
        access.setLevel(saved[0])
        access.propagate = saved[1]
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert {k: record[k] for k in ("call_id", "key_alias", "model", "status", "latency_ms")} == {
        "call_id": "call-1",
        "key_alias": "alias-with-[redacted]",
        "model": "gpt-test",
        "status": 200,
        "latency_ms": 12.346,
    }
    assert record["logger"] == "tollway.access"
    assert "call-1" in record["message"]
    assert SECRET not in line


def _parsed_lines(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"stderr line is not JSON: {line!r}")
    return records


def test_gateway_with_json_log_format_writes_only_json_and_no_secret(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    config = gateway_config(fake_openai, free_port()).replace(
        "general_settings:", "general_settings:\n  not_a_setting: 1"
    )
    env = {"TOLLWAY_LOG_FORMAT": "json", "TOLLWAY_ACCESS_LOG": "1", "TOLLWAY_LOG_LEVEL": "debug"}
    gateway = start_gateway(tmp_path, config, extra_env=env)
    master = {"authorization": f"Bearer {MASTER_KEY}"}
    try:
        created = httpx.post(
            f"{gateway.url}/key/generate", json={"key_alias": "ci-alias"}, headers=master
        )
        assert created.status_code == 200, created.text
        virtual_key = created.json()["key"]
        url = f"{gateway.url}/v1/chat/completions"
        ok = httpx.post(url, json=chat_body(), headers={"authorization": f"Bearer {virtual_key}"})
        assert ok.status_code == 200
        leaky = httpx.post(url, json=chat_body("leaky-401"), headers=master)
        assert leaky.status_code >= 400
        bogus = httpx.post(
            url, json=chat_body(), headers={"authorization": "Bearer sk-bogus-0123456789abcdef"}
        )
        assert bogus.status_code == 401
    finally:
        gateway.stop()
    logs = gateway.logs()
    records = _parsed_lines(logs)
    for secret in (MASTER_KEY, UPSTREAM_KEY, virtual_key, "sk-bogus-0123456789abcdef"):
        assert secret not in logs
    assert any("general_settings.not_a_setting" in r["message"] for r in records)
    calls = [r for r in records if r["logger"] == "tollway.access"]
    by_alias = {r["key_alias"]: r for r in calls}
    assert by_alias["ci-alias"]["model"] == "gpt-test"
    assert by_alias["ci-alias"]["status"] == 200
    assert by_alias["ci-alias"]["latency_ms"] > 0
    assert by_alias["ci-alias"]["call_id"]
    assert any(r["status"] >= 400 and r["model"] == "leaky-401" for r in calls), calls
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def test_start_up_failure_in_json_format_is_a_json_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("router_settings:\n  num_retries: [1, 2]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    env["TOLLWAY_LOG_FORMAT"] = "json"
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    records = _parsed_lines(result.stderr)
    assert any("router_settings.num_retries" in r["message"] for r in records), records

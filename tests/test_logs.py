"""Log redaction: no registered secret or key-shaped token survives into a log line."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from proxy.server.logs import RedactSecrets, configure

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

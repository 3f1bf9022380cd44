"""The content filter: prebuilt patterns, custom regexes, keywords, masking and streams."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from proxy.guardrails.base import CheckContext
from proxy.guardrails.builtin import BUILTINS
from proxy.guardrails.builtin.content_filter import ContentFilter
from proxy.guardrails.builtin.patterns import PREBUILTS, iban_valid, luhn
from proxy.guardrails.errors import GuardrailConfigError

CTX = CheckContext(call_id="t")


def build(params: dict[str, Any], config_dir: Path = Path(".")) -> ContentFilter:
    return ContentFilter.from_params("cf", params, config_dir)


def prebuilt(name: str, action: str = "MASK") -> dict[str, str]:
    return {"pattern_type": "prebuilt", "pattern_name": name, "action": action}


def all_prebuilts(action: str = "MASK") -> ContentFilter:
    return build({"patterns": [prebuilt(name, action) for name in PREBUILTS]})


PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    "aFDrBz9vFqU4yb4Ez0CbZ2dNc1uq1T1p2cFyKQIDAQABAoIBAQC0sb8bLZ7gOIUZ\n"
    "-----END RSA PRIVATE KEY-----"
)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        pytest.param("email", "john.smith+tag@mail.example.co.uk", id="email"),
        pytest.param("phone", "+44 20 7946 0958", id="phone-uk-intl"),
        pytest.param("phone", "+14155552671", id="phone-e164"),
        pytest.param("phone", "(555) 123-4567", id="phone-us-parens"),
        pytest.param("phone", "555-123-4567", id="phone-us-dashes"),
        pytest.param("phone", "+33 1 23 45 67 89", id="phone-fr-intl"),
        pytest.param("phone", "030 12345678", id="phone-de-national"),
        pytest.param("us_ssn", "123-45-6789", id="ssn"),
        pytest.param("credit_card", "4111 1111 1111 1111", id="card-visa-spaces"),
        pytest.param("credit_card", "5500-0000-0000-0004", id="card-mc-dashes"),
        pytest.param("credit_card", "378282246310005", id="card-amex-plain"),
        pytest.param("credit_card", "6011111111111117", id="card-discover"),
        pytest.param("visa", "4111111111111111", id="visa"),
        pytest.param("mastercard", "5555 5555 5555 4444", id="mastercard"),
        pytest.param("amex", "3782 822463 10005", id="amex"),
        pytest.param("iban", "DE89 3704 0044 0532 0130 00", id="iban-spaced"),
        pytest.param("iban", "GB82WEST12345698765432", id="iban-compact"),
        pytest.param("ipv4", "192.168.10.254", id="ipv4"),
        pytest.param("ipv6", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", id="ipv6-full"),
        pytest.param("ipv6", "fe80::1ff:fe23:4567:890a", id="ipv6-compressed"),
        pytest.param("aws_access_key", "AKIAIOSFODNN7EXAMPLE", id="aws-access-key"),
        pytest.param("openai_api_key", "sk-proj-" + "Ab3_-x" * 10, id="openai-project-key"),
        pytest.param("openai_api_key", "sk-" + "a1B2" * 12, id="openai-legacy-key"),
        pytest.param("anthropic_api_key", "sk-ant-api03-" + "Zz9_" * 23, id="anthropic-key"),
        pytest.param("github_token", "ghp_" + "a1B2c3" * 6, id="github-classic"),
        pytest.param("github_token", "github_pat_" + "A1b2_" * 12, id="github-fine-grained"),
        pytest.param("slack_token", "xoxb-123456789012-abcdefABCDEF", id="slack-bot"),
        pytest.param("jwt", JWT, id="jwt"),
        pytest.param("private_key", PEM, id="private-key"),
    ],
)
def test_prebuilt_masks_its_secret_and_nothing_around_it(name: str, secret: str) -> None:
    text = f"before {secret} after."
    verdict = build({"patterns": [prebuilt(name)]}).check([text])
    assert verdict.action == "modify"
    assert verdict.texts == (f"before [{name.upper()}_REDACTED] after.",)


def test_aws_secret_key_masks_only_the_value_after_its_label() -> None:
    text = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nnext"
    verdict = build({"patterns": [prebuilt("aws_secret_key")]}).check([text])
    assert verdict.texts == ("aws_secret_access_key = [AWS_SECRET_KEY_REDACTED]\nnext",)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("credit_card", "order 4111 1111 1111 1112 shipped", id="card-fails-luhn"),
        pytest.param("credit_card", "id 1234567890123452", id="card-unknown-brand"),
        pytest.param("visa", "5555555555554444", id="visa-rejects-mastercard"),
        pytest.param("iban", "DE89 3704 0044 0532 0130 01", id="iban-bad-checksum"),
        pytest.param("us_ssn", "000-12-3456 and 666-12-3456", id="ssn-invalid-area"),
        pytest.param("phone", "on 01.02.2024 at 12:30", id="phone-not-a-date"),
        pytest.param("phone", "version 2024-01-15", id="phone-not-an-iso-date"),
        pytest.param("ipv4", "999.1.1.1", id="ipv4-octet-out-of-range"),
        pytest.param("ipv6", "std::vector and 12:30:45", id="ipv6-not-code-or-time"),
        pytest.param("email", "user@localhost and @handle", id="email-needs-a-tld"),
        pytest.param("aws_access_key", "AKIA1234", id="aws-key-too-short"),
        pytest.param("anthropic_api_key", "sk-ant-short", id="anthropic-too-short"),
        pytest.param("openai_api_key", "ask-proj-not-a-key sk-1234", id="openai-too-short"),
        pytest.param("jwt", "eyJhbGciOiJIUzI1NiJ9 alone", id="jwt-needs-a-payload"),
        pytest.param("private_key", "-----BEGIN PUBLIC KEY-----", id="public-key"),
    ],
)
def test_prebuilt_ignores_look_alikes(name: str, text: str) -> None:
    assert build({"patterns": [prebuilt(name)]}).check([text]).action == "allow"


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        pytest.param(b"4111111111111111", True, id="visa-test-number"),
        pytest.param(b"79927398713", True, id="luhn-textbook"),
        pytest.param(b"79927398710", False, id="luhn-textbook-wrong"),
    ],
)
def test_luhn(digits: bytes, valid: bool) -> None:
    assert luhn(digits) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        pytest.param(b"GB82 WEST 1234 5698 7654 32", True, id="gb"),
        pytest.param(b"FR1420041010050500013M02606", True, id="fr-with-letter"),
        pytest.param(b"GB82 WEST 1234 5698 7654 33", False, id="gb-wrong"),
    ],
)
def test_iban_mod97(iban: bytes, valid: bool) -> None:
    assert iban_valid(iban) is valid


def test_block_reason_names_the_rule_never_the_match() -> None:
    verdict = build({"patterns": [prebuilt("us_ssn", "BLOCK")]}).check(["SSN 123-45-6789"])
    assert verdict.blocked
    assert verdict.reason == "content filter: pattern 'us_ssn' matched"
    assert "6789" not in (verdict.reason or "")


def test_block_anywhere_wins_over_masks_elsewhere() -> None:
    guard = build(
        {"patterns": [prebuilt("email"), prebuilt("us_ssn", "BLOCK")]},
    )
    verdict = guard.check(["mail a@example.com", "fine", "ssn 123-45-6789"])
    assert verdict.reason == "content filter: pattern 'us_ssn' matched"


def test_mask_returns_every_text_in_order() -> None:
    verdict = build({"patterns": [prebuilt("email")]}).check(["hi", "me: a@example.com", "bye"])
    assert verdict.texts == ("hi", "me: [EMAIL_REDACTED]", "bye")
    assert verdict.reason == "content filter: masked 'email'"


def test_custom_regex_masks_with_its_upper_cased_name() -> None:
    guard = build(
        {
            "patterns": [
                {
                    "pattern_type": "regex",
                    "pattern": r"\bEMP-\d{4}\b",
                    "name": "employee_id",
                    "action": "MASK",
                }
            ]
        }
    )
    assert guard.check(["ask EMP-1234 now"]).texts == ("ask [EMPLOYEE_ID_REDACTED] now",)


def test_custom_redaction_formats() -> None:
    guard = build(
        {
            "patterns": [prebuilt("email")],
            "blocked_words": [{"keyword": "secret", "action": "MASK"}],
            "pattern_redaction_format": "<{pattern_name}>",
            "keyword_redaction_tag": "***",
        }
    )
    assert guard.check(["a@example.com is secret"]).texts == ("<EMAIL> is ***",)


@pytest.mark.parametrize(
    ("text", "blocked"),
    [
        pytest.param("This is CONFIDENTIAL.", True, id="upper-case"),
        pytest.param("confidential", True, id="whole-text"),
        pytest.param("(Confidential)", True, id="punctuation-around"),
        pytest.param("confidentiality agreement", False, id="longer-word"),
        pytest.param("nonconfidential", False, id="inside-word"),
        pytest.param("confidential_notes", False, id="underscore-is-a-word-char"),
    ],
)
def test_keyword_is_case_insensitive_on_word_boundaries(text: str, blocked: bool) -> None:
    guard = build({"blocked_words": [{"keyword": "confidential", "action": "BLOCK"}]})
    assert guard.check([text]).blocked is blocked


def test_keyword_boundaries_are_unicode_aware() -> None:
    guard = build({"blocked_words": [{"keyword": "café", "action": "MASK"}]})
    assert guard.check(["un CAFÉ noir"]).texts == ("un [KEYWORD_REDACTED] noir",)
    assert guard.check(["cafés"]).action == "allow"
    assert guard.check(["écafé"]).action == "allow"


def test_keyword_block_reason_has_description() -> None:
    guard = build(
        {
            "blocked_words": [
                {"keyword": "confidential", "action": "BLOCK", "description": "internal only"}
            ]
        }
    )
    verdict = guard.check(["Confidential memo"])
    assert verdict.reason == "content filter: blocked word 'confidential' (internal only)"


def test_blocked_words_file_yaml_and_plain_text(tmp_path: Path) -> None:
    (tmp_path / "words.yaml").write_text(
        "blocked_words:\n"
        "  - keyword: apollo\n    action: MASK\n"
        "  - keyword: zeus\n    action: BLOCK\n"
    )
    (tmp_path / "words.txt").write_text("# comment\nhermes\n\n  athena  \n")
    yaml_guard = build({"blocked_words_file": "words.yaml"}, tmp_path)
    assert yaml_guard.check(["project Apollo"]).texts == ("project [KEYWORD_REDACTED]",)
    assert yaml_guard.check(["zeus"]).blocked
    text_guard = build({"blocked_words_file": "words.txt"}, tmp_path)
    assert text_guard.check(["ask Athena"]).blocked
    assert text_guard.check(["# comment"]).action == "allow"


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        pytest.param(
            {"patterns": [prebuilt("email"), prebuilt("ssn")]},
            "patterns[1].pattern_name",
            "valid: email, phone, us_ssn",
            id="unknown-prebuilt-lists-valid-names",
        ),
        pytest.param(
            {
                "patterns": [
                    {"pattern_type": "regex", "pattern": "(?=x)y", "name": "n", "action": "MASK"}
                ]
            },
            "patterns[0].pattern",
            "RE2",
            id="lookahead-unsupported",
        ),
        pytest.param(
            {
                "patterns": [
                    {"pattern_type": "regex", "pattern": "a(b", "name": "n", "action": "MASK"}
                ]
            },
            "patterns[0].pattern",
            "missing )",
            id="invalid-regex",
        ),
        pytest.param(
            {
                "patterns": [
                    {"pattern_type": "regex", "pattern": "a*", "name": "n", "action": "MASK"}
                ]
            },
            "patterns[0].pattern",
            "empty string",
            id="matches-empty",
        ),
        pytest.param(
            {"patterns": [prebuilt("email", "REDACT")]},
            "patterns[0].action",
            "BLOCK or MASK",
            id="bad-action",
        ),
        pytest.param(
            {"blocked_words": [{"keyword": "", "action": "BLOCK"}]},
            "blocked_words[0].keyword",
            "non-empty",
            id="empty-keyword",
        ),
        pytest.param({}, "patterns", "no patterns", id="nothing-configured"),
        pytest.param(
            {"patterns": [prebuilt("email")], "stream_window": 0},
            "stream_window",
            "positive",
            id="bad-stream-window",
        ),
        pytest.param(
            {"blocked_words_file": "missing.yaml"},
            "blocked_words_file",
            "cannot read",
            id="missing-file",
        ),
        pytest.param(
            {"categories": [{"category": "harmful_violence"}]},
            "categories",
            "not supported",
            id="categories-unsupported",
        ),
    ],
)
def test_config_errors_name_the_field(params: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(GuardrailConfigError) as info:
        build(params)
    assert info.value.field == field
    assert fragment in info.value.message


def test_registered_under_litellm_name() -> None:
    guard = BUILTINS["litellm_content_filter"]("cf", {"patterns": [prebuilt("email")]}, Path("."))
    assert guard.name == "cf"


async def test_input_and_output_both_checked() -> None:
    guard = build({"patterns": [prebuilt("email")]})
    assert (await guard.check_input(["a@example.com"], CTX)).action == "modify"
    assert (await guard.check_output(["a@example.com"], CTX)).action == "modify"


# --- streams ---------------------------------------------------------------------------


def run_stream(guard: ContentFilter, chunks: list[str]) -> tuple[str, list[str], str | None]:
    """(all released text, released per feed, block reason)."""
    checker = guard.stream_checker(CTX)
    released: list[str] = []
    for chunk in chunks:
        out, verdict = checker.feed(chunk)
        released.append(out)
        if verdict.blocked:
            return "".join(released), released, verdict.reason
    out, verdict = checker.finish()
    released.append(out)
    return "".join(released), released, verdict.reason if verdict.blocked else None


def test_stream_catches_an_email_split_across_three_chunks() -> None:
    guard = build({"patterns": [prebuilt("email")]})
    text, _, _ = run_stream(guard, ["write to john.sm", "ith@exam", "ple.com today"])
    assert text == "write to [EMAIL_REDACTED] today"


def test_stream_blocks_a_split_match_without_releasing_it() -> None:
    guard = build({"patterns": [prebuilt("us_ssn", "BLOCK")]})
    text, _, reason = run_stream(guard, ["my number is 123-", "45-", "6789 ok"])
    assert reason == "content filter: pattern 'us_ssn' matched"
    assert "123" not in text


def test_stream_releases_plain_prose_minus_the_hold_window() -> None:
    guard = all_prebuilts()
    prose = "The parcel was marked delivered but nobody at the address received it. " * 20
    checker = guard.stream_checker(CTX)
    out, verdict = checker.feed(prose)
    assert verdict.action == "allow"
    assert prose.startswith(out)
    assert len(prose) - len(out) <= guard.hold
    rest, _ = checker.finish()
    assert out + rest == prose


def test_stream_releases_small_chunks_as_soon_as_they_leave_the_window() -> None:
    guard = build({"blocked_words": [{"keyword": "secret", "action": "BLOCK"}]})
    chunk = "lorem ipsum dolor sit amet "
    checker = guard.stream_checker(CTX)
    released = ""
    for i in range(10):
        out, _ = checker.feed(chunk)
        released += out
        assert len(chunk) * (i + 1) - len(released) <= guard.hold


def test_stream_keyword_waits_for_its_right_boundary() -> None:
    guard = build({"blocked_words": [{"keyword": "confidential", "action": "BLOCK"}]})
    text, _, reason = run_stream(guard, ["the confidential", "ity clause"])
    assert reason is None
    assert text == "the confidentiality clause"


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed-{s}") for s in range(5)])
def test_stream_output_equals_whole_text_masking_for_any_chunking(seed: int) -> None:
    guard = all_prebuilts()
    text = (
        "Hi, reach me at jane.doe@example.org or +44 20 7946 0958. Card 4111 1111 1111 1111, "
        "IBAN DE89 3704 0044 0532 0130 00, server 10.0.0.12, token ghp_"
        + "a1B2c3" * 6
        + " and "
        + JWT
        + ".\n"
        + PEM
        + "\nThanks! "
        + "More ordinary words follow here. " * 15
    )
    expected = guard.check([text]).texts
    rng = random.Random(seed)
    chunks, i = [], 0
    while i < len(text):
        step = rng.randint(1, 25)
        chunks.append(text[i : i + step])
        i += step
    streamed, _, reason = run_stream(guard, chunks)
    assert reason is None
    assert expected == (streamed,)


def test_stream_handles_multibyte_text_split_anywhere() -> None:
    guard = build({"blocked_words": [{"keyword": "café", "action": "MASK"}]})
    text = "ünïcödé ✓ " * 40 + "un café " + "日本語のテキスト " * 40
    chunks = [text[i : i + 3] for i in range(0, len(text), 3)]
    streamed, _, _ = run_stream(guard, chunks)
    assert streamed == text.replace("café", "[KEYWORD_REDACTED]")


def test_stream_after_block_releases_nothing_more() -> None:
    guard = build({"blocked_words": [{"keyword": "zeus", "action": "BLOCK"}]})
    checker = guard.stream_checker(CTX)
    checker.feed("zeus ")
    _, verdict = checker.finish()
    assert verdict.blocked
    out, verdict = checker.feed("more text")
    assert (out, verdict.blocked) == ("", True)

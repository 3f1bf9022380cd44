"""The content filter's prebuilt patterns: one table, RE2 syntax, matched on UTF-8 bytes.

Every pattern is bounded or stops at the first character outside its alphabet, so a search
never scans far past where a match ends (RE2 finds each match in linear time, and a bounded
pattern keeps ``finditer`` linear over the whole text as well). ``hold`` is how many bytes a
stream must hold back to see a match whole: the longest match for bounded patterns, and for
the two open-ended ones (``jwt``, ``private_key``) the longest prefix before the text is a
match at all — from then on the stream holds the growing match itself.

A ``check`` runs on each candidate the regex found (a checksum, a digit count), so the regex
can stay simple and fast and the checksum rejects look-alikes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Prebuilt:
    name: str
    description: str
    regex: bytes
    hold: int
    check: Callable[[bytes], bool] | None = None
    # Mask only the last ``value_suffix`` bytes (the secret after its label), 0 = all.
    value_suffix: int = 0

    @property
    def label(self) -> str:
        return self.name.upper()


_NOT_DIGITS = bytes(c for c in range(256) if not 48 <= c <= 57)


def _digits(text: bytes) -> bytes:
    return text.translate(None, _NOT_DIGITS)


def luhn(digits: bytes) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = c - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_brand_ok(d: bytes) -> bool:
    n = len(d)
    if not 13 <= n <= 19:
        return False
    two, four = int(d[:2]), int(d[:4])
    return (
        d[:1] == b"4"  # Visa
        or 51 <= two <= 55
        or 2221 <= four <= 2720  # Mastercard
        or two in (34, 37)  # Amex
        or d[:4] == b"6011"
        or two == 65
        or 644 <= int(d[:3]) <= 649  # Discover
        or two in (36, 38, 39)
        or 300 <= int(d[:3]) <= 305  # Diners
        or two == 35  # JCB
        or two == 62  # UnionPay
    )


def _credit_card(text: bytes) -> bool:
    d = _digits(text)
    return _card_brand_ok(d) and luhn(d)


def _visa(text: bytes) -> bool:
    d = _digits(text)
    return d[:1] == b"4" and len(d) in (13, 16, 19) and luhn(d)


def _mastercard(text: bytes) -> bool:
    d = _digits(text)
    return len(d) == 16 and (51 <= int(d[:2]) <= 55 or 2221 <= int(d[:4]) <= 2720) and luhn(d)


def _amex(text: bytes) -> bool:
    d = _digits(text)
    return len(d) == 15 and d[:2] in (b"34", b"37") and luhn(d)


def iban_valid(text: bytes) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35, mod 97 = 1."""
    compact = text.replace(b" ", b"")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(c - 55) if c >= 65 else chr(c) for c in rearranged)
    return int(number) % 97 == 1


def _us_ssn(text: bytes) -> bool:
    d = _digits(text)
    area, group, serial = d[:3], d[3:5], d[5:]
    return (
        area not in (b"000", b"666") and area[:1] != b"9" and group != b"00" and serial != b"0000"
    )


def _phone(text: bytes) -> bool:
    count = len(_digits(text))
    # An international number carries its country code: E.164 allows 7..15 digits. Without
    # a "+", fewer than 9 digits is more often a date or an amount than a phone number.
    return 7 <= count <= 15 if text[:1] == b"+" else 9 <= count <= 15


def _ipv6(text: bytes) -> bool:
    try:
        ipaddress.IPv6Address(text.decode("ascii"))
    except ValueError:
        return False
    return True


_H = rb"[0-9A-Fa-f]{1,4}"
_CARD = rb"\b\d(?:[ \-]?\d){12,18}\b"
_PHONE_INTL = rb"\+[1-9]\d{0,2}[ .\-]?(?:\(0\)[ .\-]?)?\(?\d{1,4}\)?(?:[ .\-]?\d{2,8}){1,4}\b"
_PHONE_US = rb"(?:\b1[ .\-]?)?(?:\([2-9]\d{2}\)[ .\-]?|\b[2-9]\d{2}[ .\-])\d{3}[ .\-]\d{4}\b"
_PHONE_EU = rb"\b0\d{1,4}[ .\-/]\d{2,8}(?:[ .\-]\d{2,8}){0,3}\b"
_H6 = rb"(?::" + _H + rb")"
_IPV6_FULL = rb"\b" + _H + _H6 + rb"{7}\b"
_IPV6_COMPRESSED = rb"\b" + _H + _H6 + rb"{0,6}::" + _H + _H6 + rb"{0,6}\b"
_OCTET = rb"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_PEM_LABEL = rb"(?:[A-Z0-9]+ ){0,3}PRIVATE KEY-----"
# Base64 lines, and RFC 1421 headers of legacy encrypted keys ("Proc-Type: 4,ENCRYPTED").
_PEM_BODY = rb"(?:[A-Za-z0-9+/=\s]|[A-Za-z\-]{1,32}: [^\r\n]{0,200}\r?\n)*"

_TABLE = (
    Prebuilt(
        "email",
        "Email addresses (local@domain.tld)",
        rb"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,126}[A-Za-z0-9])?"
        rb"\.[A-Za-z]{2,24}",
        220,
    ),
    Prebuilt(
        "phone",
        "Phone numbers: E.164 / international (+44 20 7946 0958), US ((555) 123-4567), "
        "European national (030 1234567)",
        rb"(?:" + _PHONE_INTL + rb")|(?:" + _PHONE_US + rb")|(?:" + _PHONE_EU + rb")",
        64,
        _phone,
    ),
    Prebuilt(
        "us_ssn",
        "US Social Security numbers (123-45-6789), invalid areas/groups excluded",
        rb"\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b",
        12,
        _us_ssn,
    ),
    Prebuilt(
        "credit_card",
        "Payment card numbers (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay), "
        "13-19 digits with optional spaces/dashes, Luhn-checked",
        _CARD,
        40,
        _credit_card,
    ),
    Prebuilt("visa", "Visa card numbers, Luhn-checked", _CARD, 40, _visa),
    Prebuilt("mastercard", "Mastercard card numbers, Luhn-checked", _CARD, 40, _mastercard),
    Prebuilt("amex", "American Express card numbers, Luhn-checked", _CARD, 40, _amex),
    Prebuilt(
        "iban",
        "International bank account numbers, ISO 13616 mod-97 checked",
        rb"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
        44,
        iban_valid,
    ),
    Prebuilt(
        "ipv4",
        "IPv4 addresses (dotted quad, octets 0-255)",
        rb"\b(?:" + _OCTET + rb"\.){3}" + _OCTET + rb"\b",
        16,
    ),
    Prebuilt(
        "ipv6",
        "IPv6 addresses, full or '::'-compressed (not the '::'-leading forms)",
        _IPV6_FULL + rb"|" + _IPV6_COMPRESSED,
        40,
        _ipv6,
    ),
    Prebuilt(
        "aws_access_key",
        "AWS access key ids (AKIA..., ASIA..., 20 characters)",
        rb"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b",
        20,
    ),
    Prebuilt(
        "aws_secret_key",
        "AWS secret access keys: the 40-character value after an aws_secret_access_key "
        "label (only the value is masked)",
        rb"(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key)[\"']?\s{0,4}[:=]\s{0,4}"
        rb"[\"']?[A-Za-z0-9/+]{40}",
        80,
        value_suffix=40,
    ),
    Prebuilt(
        "openai_api_key",
        "OpenAI API keys (sk-proj-..., sk-svcacct-..., legacy sk-...)",
        rb"\bsk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,250}|[A-Za-z0-9]{48}\b)",
        262,
    ),
    Prebuilt(
        "anthropic_api_key",
        "Anthropic API keys (sk-ant-api03-...)",
        rb"\bsk-ant-[a-z]{3,10}\d{2}-[A-Za-z0-9_\-]{20,250}",
        280,
    ),
    Prebuilt(
        "github_token",
        "GitHub tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_)",
        rb"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})\b",
        256,
    ),
    Prebuilt(
        "slack_token",
        "Slack tokens (xoxb-, xoxp-, xoxa-, xoxo-, xoxs-, xoxr-, xapp-)",
        rb"\bxox[abposr]-[A-Za-z0-9\-]{10,250}|\bxapp-\d-[A-Za-z0-9\-]{10,250}",
        258,
    ),
    Prebuilt(
        "jwt",
        "JSON Web Tokens (eyJ<header>.eyJ<payload>.<signature>)",
        rb"\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}(?:\.[A-Za-z0-9_\-]*)?",
        300,
    ),
    Prebuilt(
        "private_key",
        "PEM private key blocks (-----BEGIN ... PRIVATE KEY----- to -----END ...-----)",
        rb"-----BEGIN " + _PEM_LABEL + _PEM_BODY + rb"(?:-----END " + _PEM_LABEL + rb")?",
        80,
    ),
)

PREBUILTS: Mapping[str, Prebuilt] = MappingProxyType({p.name: p for p in _TABLE})

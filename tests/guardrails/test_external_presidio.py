"""Presidio over its REST API: masking, blocking, thresholds and numbered-token round trips."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from proxy.guardrails.base import ALLOW, CheckContext
from proxy.guardrails.errors import GuardrailConfigError
from proxy.guardrails.external import EXTERNAL
from proxy.guardrails.external.presidio import PresidioGuardrail, TokenRestorer, TokenVault
from proxy.upstream.transport import Transport
from tests.guardrails.external_fakes import FakePresidio, transport_fixture  # noqa: F401

CALL = CheckContext(call_id="call-1", model="gpt-test")


@pytest.fixture
async def presidio() -> AsyncIterator[FakePresidio]:
    async with FakePresidio() as fake:
        yield fake


def make(fake: FakePresidio, transport: Transport, **params: Any) -> PresidioGuardrail:
    base = {"presidio_analyzer_api_base": fake.url, "presidio_anonymizer_api_base": fake.url}
    guardrail = EXTERNAL["presidio"]("pii", {**base, **params}, transport, {})
    assert isinstance(guardrail, PresidioGuardrail)
    return guardrail


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


async def test_every_entity_found_is_masked_through_the_anonymizer(
    presidio: FakePresidio, transport: Transport
) -> None:
    guardrail = make(presidio, transport)
    texts = ["I am John Smith, write to john@example.com", "nothing personal here"]

    verdict = await guardrail.check_input(texts, CALL)

    assert verdict.action == "modify"
    assert verdict.texts == ("I am <PERSON>, write to <EMAIL_ADDRESS>", "nothing personal here")
    assert verdict.reason == "presidio: masked EMAIL_ADDRESS, PERSON"
    analyze = [r for r in presidio.requests if r.path == "/analyze"]
    # The texts are analysed concurrently: they may arrive in either order.
    assert sorted((r.json for r in analyze), key=lambda j: j["text"]) == [
        {"text": texts[0], "language": "en"},
        {"text": texts[1], "language": "en"},
    ]
    assert analyze[0].headers["content-type"] == "application/json"
    (anonymize,) = [r for r in presidio.requests if r.path == "/anonymize"]
    assert anonymize.json["text"] == texts[0]
    assert anonymize.json["anonymizers"] == {
        "EMAIL_ADDRESS": {"type": "replace", "new_value": "<EMAIL_ADDRESS>"},
        "PERSON": {"type": "replace", "new_value": "<PERSON>"},
    }
    assert sorted(
        (r["entity_type"], r["start"], r["end"]) for r in anonymize.json["analyzer_results"]
    ) == [("EMAIL_ADDRESS", 26, 42), ("PERSON", 5, 15)]


async def test_a_text_without_pii_is_allowed_and_blank_texts_are_not_sent(
    presidio: FakePresidio, transport: Transport
) -> None:
    guardrail = make(presidio, transport, presidio_language="de")

    assert await guardrail.check_input(["Guten Tag", "  ", ""], CALL) == ALLOW

    assert [(r.path, r.json) for r in presidio.requests] == [
        ("/analyze", {"text": "Guten Tag", "language": "de"})
    ]


async def test_entities_config_limits_the_search_and_block_entities_block(
    presidio: FakePresidio, transport: Transport
) -> None:
    guardrail = make(
        presidio, transport, pii_entities_config={"EMAIL_ADDRESS": "MASK", "US_SSN": "BLOCK"}
    )

    blocked = await guardrail.check_input(["John Smith, SSN 123-45-6789, a@b.io"], CALL)
    assert blocked.blocked
    assert blocked.reason == "presidio: US_SSN not allowed"
    assert presidio.requests[0].json["entities"] == ["EMAIL_ADDRESS", "US_SSN"]
    assert all(r.path == "/analyze" for r in presidio.requests)

    masked = await guardrail.check_input(["John Smith at a@b.io"], CALL)
    # PERSON is not configured: it stays.
    assert masked.texts == ("John Smith at <EMAIL_ADDRESS>",)


async def test_score_thresholds_per_entity_and_for_all(
    presidio: FakePresidio, transport: Transport
) -> None:
    per_entity = make(
        presidio,
        transport,
        pii_entities_config={"US_SSN": "BLOCK"},
        presidio_score_thresholds={"US_SSN": 0.6},
    )
    # The fake scores an SSN 0.5: under this guardrail's threshold.
    assert await per_entity.check_input(["SSN 123-45-6789"], CALL) == ALLOW

    overall = make(presidio, transport, presidio_score_thresholds={"ALL": 0.9})
    verdict = await overall.check_input(["John Smith at a@b.io"], CALL)
    assert verdict.texts == ("John Smith at <EMAIL_ADDRESS>",)
    assert presidio.requests[-2].json["score_threshold"] == 0.9


async def test_output_is_analyzed_and_masked_without_output_parse_pii(
    presidio: FakePresidio, transport: Transport
) -> None:
    guardrail = make(presidio, transport)

    verdict = await guardrail.check_output(["Contact jane@corp.example"], CALL)

    assert verdict.texts == ("Contact <EMAIL_ADDRESS>",)
    assert guardrail.stream_checker(CALL) is None


async def test_output_parse_pii_round_trip_restores_numbered_tokens(
    presidio: FakePresidio, transport: Transport
) -> None:
    guardrail = make(presidio, transport, output_parse_pii=True)
    texts = ["I am John Smith", "Mail John Smith at js@example.com, cc Jane Doe"]

    masked = await guardrail.check_input(texts, CALL)

    assert masked.texts == (
        "I am <PERSON_1>",
        "Mail <PERSON_1> at <EMAIL_ADDRESS_1>, cc <PERSON_2>",
    )
    # Numbered tokens are placed from the analyzer's spans: the anonymizer is not called.
    assert {r.path for r in presidio.requests} == {"/analyze"}

    other_call = CheckContext(call_id="call-2")
    reply = ["Dear <PERSON_1>, I wrote to <EMAIL_ADDRESS_1> and <PERSON_2>."]
    assert await guardrail.check_output(reply, other_call) == ALLOW

    restored = await guardrail.check_output(reply, CALL)
    assert restored.texts == ("Dear John Smith, I wrote to js@example.com and Jane Doe.",)
    # The call's tokens were dropped once its output was checked.
    assert await guardrail.check_output(reply, CALL) == ALLOW


async def test_output_parse_pii_numbering_continues_within_a_call(
    presidio: FakePresidio, transport: Transport
) -> None:
    guardrail = make(presidio, transport, output_parse_pii=True)

    first = await guardrail.check_input(["John Smith"], CALL)
    second = await guardrail.check_input(["Jane Doe and John Smith"], CALL)
    fresh = await guardrail.check_input(["Jane Doe"], CheckContext(call_id="call-2"))

    assert first.texts == ("<PERSON_1>",)
    assert second.texts == ("<PERSON_2> and <PERSON_1>",)
    assert fresh.texts == ("<PERSON_1>",)


async def test_stream_restores_tokens_split_across_chunks(
    presidio: FakePresidio, transport: Transport
) -> None:
    guardrail = make(presidio, transport, output_parse_pii=True)
    await guardrail.check_input(["I am John Smith, js@example.com"], CALL)
    checker = guardrail.stream_checker(CALL)
    assert checker is not None

    chunks = ["Dear <PER", "SON_1>, 2 < 3 and <", "EMAIL_ADDRESS_1", "> ok <b>", " <PERSON_"]
    released = []
    for chunk in chunks:
        text, verdict = checker.feed(chunk)
        assert verdict == ALLOW
        released.append(text)
    tail, verdict = checker.finish()
    released.append(tail)

    assert released == [
        "Dear ",
        "John Smith, 2 < 3 and ",
        "",
        "js@example.com ok <b>",
        " ",
        "<PERSON_",
    ]


def test_a_stream_without_tokens_passes_through() -> None:
    checker = TokenRestorer({})

    assert checker.feed("a <PERSON_1> b <") == ("a <PERSON_1> b <", ALLOW)
    assert checker.finish() == ("", ALLOW)


async def test_stream_checker_takes_the_calls_tokens(
    presidio: FakePresidio, transport: Transport
) -> None:
    guardrail = make(presidio, transport, output_parse_pii=True)
    await guardrail.check_input(["John Smith"], CALL)

    first = guardrail.stream_checker(CALL)
    again = guardrail.stream_checker(CALL)

    assert first is not None and again is not None
    assert first.feed("<PERSON_1>")[0] == "John Smith"
    assert again.feed("<PERSON_1>")[0] == "<PERSON_1>"


def test_token_vault_drops_calls_after_the_ttl_and_beyond_its_size() -> None:
    clock = FakeClock()
    vault = TokenVault(clock, ttl=60, max_calls=2)
    vault.open("a").token_for("PERSON", "Ann")
    clock.now += 30
    vault.open("b").token_for("PERSON", "Bob")
    clock.now += 31  # "a" is now 61 s old

    taken = vault.take("b")
    assert vault.take("a") is None
    assert taken is not None and taken.originals == {"<PERSON_1>": "Bob"}

    for call in ("c", "d", "e"):
        vault.open(call)
    assert len(vault) == 2
    assert vault.take("c") is None

    # A call without an id keeps nothing: it could never be told apart from another.
    vault.open("").token_for("PERSON", "Eve")
    assert vault.take("") is None


@pytest.mark.parametrize(
    ("params", "environ", "field"),
    [
        pytest.param({}, {}, "presidio_analyzer_api_base", id="no-analyzer"),
        pytest.param(
            {"presidio_analyzer_api_base": "http://a"},
            {},
            "presidio_anonymizer_api_base",
            id="masking-needs-the-anonymizer",
        ),
        pytest.param(
            {"presidio_analyzer_api_base": "http://a", "pii_entities_config": {"X": "HIDE"}},
            {"PRESIDIO_ANONYMIZER_API_BASE": "http://b"},
            "pii_entities_config",
            id="bad-action",
        ),
        pytest.param(
            {"presidio_score_thresholds": {"ALL": 2}},
            {"PRESIDIO_ANALYZER_API_BASE": "a:1", "PRESIDIO_ANONYMIZER_API_BASE": "b:2"},
            "presidio_score_thresholds",
            id="bad-threshold",
        ),
        pytest.param(
            {"timeout": 0},
            {"PRESIDIO_ANALYZER_API_BASE": "a:1", "PRESIDIO_ANONYMIZER_API_BASE": "b:2"},
            "timeout",
            id="bad-timeout",
        ),
        pytest.param(
            {"output_parse_pii": "yes"},
            {"PRESIDIO_ANALYZER_API_BASE": "a:1", "PRESIDIO_ANONYMIZER_API_BASE": "b:2"},
            "output_parse_pii",
            id="bad-flag",
        ),
    ],
)
def test_invalid_params_name_the_field(
    params: dict[str, Any], environ: dict[str, str], field: str
) -> None:
    with pytest.raises(GuardrailConfigError) as raised:
        PresidioGuardrail.from_params("pii", params, _NoTransport(), environ)
    assert raised.value.field == field


def test_bases_come_from_the_environment_and_blocking_alone_needs_no_anonymizer() -> None:
    environ = {"PRESIDIO_ANALYZER_API_BASE": "presidio-analyzer:3000/"}
    guardrail = PresidioGuardrail.from_params(
        "pii", {"pii_entities_config": {"US_SSN": "block"}}, _NoTransport(), environ
    )
    assert guardrail.name == "pii"
    assert guardrail._analyze_url == "http://presidio-analyzer:3000/analyze"


class _NoTransport:
    async def post(self, *args: Any) -> Any:
        raise AssertionError("not called")

    async def close(self) -> None:
        pass

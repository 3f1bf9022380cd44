"""``max_input_tokens`` and ``json_output``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.guardrails.base import CheckContext
from proxy.guardrails.builtin import BUILTINS
from proxy.guardrails.builtin.json_output import JsonOutput, unfence
from proxy.guardrails.builtin.limits import MaxInputTokens, estimate_text_tokens
from proxy.guardrails.errors import GuardrailConfigError

CTX = CheckContext(call_id="t")


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        pytest.param("", 0, id="empty"),
        pytest.param("abcd", 1, id="four-bytes"),
        pytest.param("abcde", 2, id="rounds-up"),
        pytest.param("日本語のテキスト", 8, id="cjk-one-per-character"),
        pytest.param("ab😀😀", 3, id="emoji"),
    ],
)
def test_token_estimate(text: str, tokens: int) -> None:
    assert estimate_text_tokens(text) == tokens


@pytest.mark.parametrize("key", ["max_tokens", "max_input_tokens"])
async def test_blocks_over_the_limit_and_names_both_numbers(key: str) -> None:
    guard = BUILTINS["max_input_tokens"]("lim", {key: 10}, Path("."))
    assert (await guard.check_input(["a" * 40], CTX)).action == "allow"
    verdict = await guard.check_input(["a" * 40, "b"], CTX)
    assert verdict.reason == "input is ~11 tokens; the limit is 10"
    assert (await guard.check_output(["a" * 400], CTX)).action == "allow"
    assert guard.stream_checker(CTX) is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({}, "max_tokens", id="missing"),
        pytest.param({"max_tokens": 0}, "max_tokens", id="zero"),
        pytest.param({"max_tokens": "10"}, "max_tokens", id="string"),
        pytest.param({"max_tokens": 5, "max_input_tokens": 5}, "max_input_tokens", id="both"),
    ],
)
def test_limit_config_errors(params: dict[str, Any], field: str) -> None:
    with pytest.raises(GuardrailConfigError) as info:
        MaxInputTokens.from_params("lim", params, Path("."))
    assert info.value.field == field


SCHEMA = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"price": {"type": "number"}}},
        }
    },
}


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        pytest.param('{"items": [{"price": 1.5}]}', None, id="valid"),
        pytest.param('```json\n{"items": []}\n```', None, id="fenced"),
        pytest.param('  ```\n{"items": []}\n```  ', None, id="fenced-no-language"),
        pytest.param("Sure! here it is", "reply is not valid JSON", id="prose"),
        pytest.param('{"items": [', "reply is not valid JSON", id="truncated"),
        pytest.param(
            '{"items": [{"price": "x"}]}',
            "reply does not match the schema at $.items[0].price: 'x' is not of type 'number'",
            id="wrong-type",
        ),
        pytest.param(
            "{}",
            "reply does not match the schema at $: 'items' is a required property",
            id="missing-property",
        ),
    ],
)
async def test_json_output_with_schema(reply: str, reason: str | None) -> None:
    guard = JsonOutput.from_params("js", {"json_schema": SCHEMA}, Path("."))
    verdict = await guard.check_output([reply], CTX)
    assert verdict.reason == reason
    assert verdict.blocked is (reason is not None)


async def test_json_output_without_schema_only_parses() -> None:
    guard = JsonOutput.from_params("js", {}, Path("."))
    assert (await guard.check_output(['[1, "two"]'], CTX)).action == "allow"
    assert (await guard.check_output(["nope"], CTX)).blocked
    assert (await guard.check_input(["nope"], CTX)).action == "allow"
    assert guard.stream_checker(CTX) is None


def test_json_schema_file(tmp_path: Path) -> None:
    (tmp_path / "schema.yaml").write_text("type: object\nrequired: [answer]\n")
    guard = JsonOutput.from_params("js", {"json_schema_file": "schema.yaml"}, tmp_path)
    assert guard.check('{"answer": 42}').action == "allow"
    assert guard.check("{}").blocked


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        pytest.param(
            {"json_schema": {"type": "nope"}},
            "json_schema",
            "not a valid JSON Schema",
            id="bad-type",
        ),
        pytest.param({"json_schema": ["not", "a", "mapping"]}, "json_schema", "mapping", id="list"),
        pytest.param(
            {"json_schema_file": "missing.json"}, "json_schema_file", "cannot read", id="missing"
        ),
        pytest.param(
            {"json_schema": {}, "json_schema_file": "x.json"}, "json_schema_file", "give", id="both"
        ),
    ],
)
def test_json_config_errors(params: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(GuardrailConfigError) as info:
        JsonOutput.from_params("js", params, Path("."))
    assert info.value.field == field
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("text", "body"),
    [
        pytest.param("```json\n{}\n```", "{}\n", id="fence"),
        pytest.param("{}", "{}", id="no-fence"),
        pytest.param("``````", "``````", id="empty-fence-untouched"),
    ],
)
def test_unfence(text: str, body: str) -> None:
    assert unfence(text) == body

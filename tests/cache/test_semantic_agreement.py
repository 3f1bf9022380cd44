"""agree(): the specifics two prompts must share before a semantic hit is allowed."""

from __future__ import annotations

import pytest

from proxy.cache.semantic import agree


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("in 3 bullet points", "in three bullet points", id="digit-vs-word"),
        pytest.param("the 3rd item", "the third item", id="ordinal"),
        pytest.param("the Q3 report", "the third quarter report", id="quarter"),
        pytest.param("sum 1,234 apples", "sum 1234 apples", id="thousands-comma"),
        pytest.param("add twenty-one and one hundred and five", "add 21 and 105", id="compound"),
        pytest.param("grow 5%", "grow 5 percent", id="percent"),
        pytest.param("on March 5, 2024", "on 2024-03-05", id="date-formats"),
        pytest.param("on the 5th of March 2024", "on March 5 2024", id="day-of-month"),
        pytest.param("deploy v1.2", "deploy version 1.2", id="version"),
        pytest.param("refund order 1234", "refund order #1234", id="hash-id"),
        pytest.param("it does not work", "it doesn't work", id="negation-forms"),
        pytest.param("Which one is faster?", "Which is faster?", id="one-as-pronoun"),
        pytest.param("reverse a list in Python", "reverse a python list", id="language-case"),
        pytest.param("Email alice@example.com", "email ALICE@example.com", id="email-case"),
        pytest.param("Summarize the report", "Give me a summary of the report", id="openers"),
    ],
)
def test_agrees(a: str, b: str) -> None:
    assert agree(a, b)
    assert agree(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("the Q3 report", "the Q4 report", id="quarter"),
        pytest.param("Q3 report in 4 points", "Q4 report in 3 points", id="swapped-numbers"),
        pytest.param("refund order 1234", "refund order 1243", id="order-id"),
        pytest.param("convert 5 km to miles", "convert 50 km to miles", id="number"),
        pytest.param("convert 5 km to miles", "convert 5 miles to km", id="unit-order"),
        pytest.param("a string to an int", "an int to a string", id="direction"),
        pytest.param("English to French", "French to English", id="language-order"),
        pytest.param("is X safe", "is X not safe", id="not"),
        pytest.param("it works", "it never works", id="never"),
        pytest.param("why does it work", "why doesn't it work", id="n't"),
        pytest.param("a cake with eggs", "a cake without eggs", id="without"),
        pytest.param("sort a list in Python", "sort a list in Rust", id="language"),
        pytest.param("port it to C++", "port it to C#", id="symbol-language"),
        pytest.param("on 2024-03-05", "on 2024-03-06", id="date"),
        pytest.param("in March", "in April", id="month"),
        pytest.param("the weather today", "the weather tomorrow", id="relative-day"),
        pytest.param("write to Alice", "write to Bob", id="name"),
        pytest.param("Alice wants tea", "Bob wants tea", id="sentence-initial-name"),
        pytest.param("deploy v1.2", "deploy v1.3", id="version"),
        pytest.param("open config.yaml", "open config.json", id="file-name"),
        pytest.param("mail bob@example.com", "mail bob@example.org", id="email"),
        pytest.param("fetch https://a.example/x", "fetch https://a.example/y", id="url"),
        pytest.param("commit 3fa9c21b", "commit 3fa9c21c", id="hex-id"),
        pytest.param("SKU-4471-AB", "SKU-4471-AC", id="sku"),
        pytest.param("translate 'hello'", "translate 'goodbye'", id="quote"),
        pytest.param("fix `x = a`", "fix `x = b`", id="inline-code"),
        pytest.param("sort ascending", "sort descending", id="polar"),
        pytest.param("the largest value", "the smallest value", id="polar-synonyms"),
    ],
)
def test_disagrees(a: str, b: str) -> None:
    assert not agree(a, b)
    assert not agree(b, a)


def test_identical_prompts_agree() -> None:
    text = "Refund order A-1234 placed on 2024-03-05 by bob@example.com, not the 2nd one."
    assert agree(text, text)

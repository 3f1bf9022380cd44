"""W3C ``tracestate`` as a span records it (the OpenTelemetry API's ``from_header`` rules)."""

from __future__ import annotations

import pytest

from proxy.observe.trace import normalize_tracestate


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(None, "", id="absent"),
        pytest.param("", "", id="empty"),
        pytest.param("vendor=abc", "vendor=abc", id="one"),
        pytest.param(" a=1 ,\tb@c=x y ,,", "a=1,b@c=x y", id="blanks-and-empty-members"),
        pytest.param("a=1,bad", "", id="malformed-member"),
        pytest.param("Upper=1", "", id="uppercase-key"),
        pytest.param("a=1,a=2", "", id="repeated-key"),
        pytest.param(",".join(f"k{i}=v" for i in range(32)), None, id="32-members"),
        pytest.param(",".join(f"k{i}=v" for i in range(33)), "", id="33-members"),
    ],
)
def test_tracestate_is_kept_only_when_valid(header: str | None, expected: str | None) -> None:
    assert normalize_tracestate(header) == (header if expected is None else expected)

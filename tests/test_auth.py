"""The authenticate stage: the master key by hash, malformed headers refused, open mode."""

from __future__ import annotations

import pytest

from proxy.auth import ANONYMOUS, Authenticator, Role, hash_key, presented_key
from proxy.errors import AuthenticationFailed

MASTER = "sk-master-0123456789"


@pytest.fixture
def authenticator() -> Authenticator:
    return Authenticator(MASTER)


@pytest.mark.parametrize(
    ("authorization", "api_key"),
    [
        pytest.param(f"Bearer {MASTER}".encode(), None, id="bearer"),
        pytest.param(f"bearer {MASTER}".encode(), None, id="bearer-lowercase"),
        pytest.param(f"Bearer  {MASTER} ".encode(), None, id="bearer-extra-spaces"),
        pytest.param(None, MASTER.encode(), id="x-api-key"),
    ],
)
def test_master_key_is_accepted(
    authenticator: Authenticator, authorization: bytes | None, api_key: bytes | None
) -> None:
    principal = authenticator.authenticate(authorization, api_key)
    assert principal.role is Role.MASTER
    assert principal.key_hash == hash_key(MASTER)


@pytest.mark.parametrize(
    ("authorization", "api_key"),
    [
        pytest.param(b"Bearer sk-master-0123456788", None, id="wrong-bearer"),
        pytest.param(None, b"sk-wrong", id="wrong-x-api-key"),
        pytest.param(f"Basic {MASTER}".encode(), None, id="other-scheme"),
        pytest.param(f"Bearer {MASTER}x".encode(), None, id="suffix"),
        pytest.param(f"Bearer {MASTER[:-1]}".encode(), None, id="prefix"),
    ],
)
def test_wrong_key_is_refused_with_401(
    authenticator: Authenticator, authorization: bytes | None, api_key: bytes | None
) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        authenticator.authenticate(authorization, api_key)
    assert info.value.status == 401
    assert info.value.type == "authentication_error"
    assert MASTER not in info.value.message


def test_missing_key_is_refused_with_a_hint(authenticator: Authenticator) -> None:
    with pytest.raises(AuthenticationFailed, match="Authorization: Bearer"):
        authenticator.authenticate(None, None)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"Bearer " + b"a" * 10_000, id="10kb"),
        pytest.param(b"Bearer sk-\x00master", id="nul"),
        pytest.param(b"Bearer sk-\x7fmaster", id="del"),
        pytest.param(b"Bearer sk-ma ster", id="inner-space"),
        pytest.param(b"Bearer sk-ma\tster", id="tab"),
        pytest.param("Bearer sk-m\u00e4ster".encode(), id="non-ascii-utf8"),
        pytest.param("Bearer sk-m\u00e4ster".encode("latin-1"), id="non-ascii-latin1"),
        pytest.param(b"Bearer ", id="empty-token"),
        pytest.param(b"   ", id="blank"),
    ],
)
def test_malformed_authorization_header_is_an_authentication_failure(
    authenticator: Authenticator, header: bytes
) -> None:
    with pytest.raises(AuthenticationFailed):
        authenticator.authenticate(header, None)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(b"a" * 10_000, id="10kb"),
        pytest.param(b"sk-\x00", id="nul"),
        pytest.param(b'"sk-master-0123456789"', id="double-quotes"),
        pytest.param(b"' OR 1=1 --", id="sql"),
        pytest.param("\u00e9\u00e9".encode(), id="non-ascii"),
    ],
)
def test_malformed_or_quoted_x_api_key_is_refused(authenticator: Authenticator, key: bytes) -> None:
    with pytest.raises(AuthenticationFailed):
        authenticator.authenticate(None, key)


def test_longest_allowed_key_is_accepted() -> None:
    long_key = "k" * 512
    principal = Authenticator(long_key).authenticate(f"Bearer {long_key}".encode(), None)
    assert principal.role is Role.MASTER


def test_presented_key_strips_the_bearer_scheme() -> None:
    assert presented_key(b"Bearer sk-abc", None) == "sk-abc"
    assert presented_key(None, b" sk-abc ") == "sk-abc"
    assert presented_key(None, None) is None


def test_master_key_is_not_kept_in_the_clear() -> None:
    authenticator = Authenticator(MASTER)
    assert not authenticator.open
    assert all(MASTER not in repr(value) for value in vars(authenticator).values())


@pytest.mark.parametrize(
    ("authorization", "api_key"),
    [
        pytest.param(None, None, id="no-key"),
        pytest.param(b"Bearer sk-anything", None, id="some-bearer"),
        pytest.param(None, b"whatever", id="some-x-api-key"),
    ],
)
def test_open_mode_without_master_key_returns_anonymous(
    authorization: bytes | None, api_key: bytes | None
) -> None:
    authenticator = Authenticator(None)
    assert authenticator.open
    assert authenticator.authenticate(authorization, api_key) == ANONYMOUS


def test_empty_master_key_means_open_mode() -> None:
    assert Authenticator("").open

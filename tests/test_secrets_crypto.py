"""Secrets at rest: sealed with AES-GCM under an HKDF-derived key, bound to their field."""

from __future__ import annotations

import pytest

from proxy.secrets_crypto import SecretBox, SecretError, is_secret_field, salt_key


def test_a_sealed_value_opens_only_under_its_key_and_in_its_field() -> None:
    box = SecretBox("salt-one")
    sealed = box.seal("sk-live-123", "api_key")
    assert "sk-live-123" not in sealed
    assert box.open(sealed, "api_key") == "sk-live-123"
    with pytest.raises(SecretError) as other:
        SecretBox("salt-two").open(sealed, "api_key")
    assert other.value.other_key
    with pytest.raises(SecretError) as moved:
        box.open(sealed, "aws_secret_access_key")
    assert not moved.value.other_key


def test_a_tampered_value_is_refused() -> None:
    box = SecretBox("salt-one")
    sealed = box.seal("sk-live-123", "api_key")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretError, match="altered"):
        box.open(flipped, "api_key")


def test_params_keep_plain_fields_and_seal_secret_ones() -> None:
    box = SecretBox("k")
    params = {
        "model": "openai/x",
        "api_base": "http://h/v1",
        "api_key": "sk-1",
        "extra_headers": {"x-api-key": "sk-2"},
        "litellm_credential_name": "c",
    }
    sealed = box.seal_params(params)
    assert sealed["model"] == "openai/x" and sealed["api_base"] == "http://h/v1"
    assert sealed["litellm_credential_name"] == "c"
    assert "sk-1" not in str(sealed) and "sk-2" not in str(sealed)
    assert box.open_params(sealed) == params


def test_the_salt_key_falls_back_to_the_master_key_only_when_unset() -> None:
    assert salt_key({"LITELLM_SALT_KEY": "s"}, "master") == "s"
    assert salt_key({"TOLLWAY_SALT_KEY": "t", "LITELLM_SALT_KEY": "s"}, "master") == "t"
    assert salt_key({}, "master") == "master"
    assert salt_key({}, None) is None
    assert is_secret_field("aws_session_token") and not is_secret_field("api_base")

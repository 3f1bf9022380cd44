"""Secrets at rest: AES-256-GCM under a key derived (HKDF-SHA256) from the salt key.

The salt key is ``TOLLWAY_SALT_KEY`` (or LiteLLM's ``LITELLM_SALT_KEY``), else the master
key (with a warning: rotating the master key would then make every stored secret unreadable).
A sealed value is ``tollway:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>``; the key id
(the first 8 bytes of a hash of the derived key, not a secret) tells "sealed under another
key" apart from "tampered with". The field name is the associated data, so a sealed
``api_key`` cannot be moved into another field.

Which fields are secret: ``api_key``, the AWS keys, ``extra_headers`` (they may carry a
key), and any field whose name says key, secret, token, password or credential.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger("tollway.secrets")

SALT_KEY_ENVS = ("TOLLWAY_SALT_KEY", "LITELLM_SALT_KEY")
NEW_SALT_KEY_ENV = "TOLLWAY_NEW_SALT_KEY"
PREFIX = "tollway:v1:"
_HKDF_SALT = b"tollway secrets at rest v1"
_HKDF_INFO = b"aes-256-gcm"

SECRET_FIELDS = frozenset(
    {"api_key", "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "extra_headers"}
)
_SECRET_WORDS = ("key", "secret", "token", "password", "credential")
# Named like a secret but not one.
_NOT_SECRET = frozenset({"litellm_credential_name", "max_tokens", "custom_tokenizer"})


class SecretError(Exception):
    """A sealed value that cannot be opened: another key sealed it, or it was altered."""

    def __init__(self, message: str, *, other_key: bool) -> None:
        super().__init__(message)
        self.other_key = other_key


def is_secret_field(name: str) -> bool:
    if name in _NOT_SECRET:
        return False
    return name in SECRET_FIELDS or any(word in name for word in _SECRET_WORDS)


def salt_key(environ: Mapping[str, str], master_key: str | None) -> str | None:
    """The key material secrets are sealed under; None when there is none at all."""
    for name in SALT_KEY_ENVS:
        value = environ.get(name)
        if value:
            return value
    if master_key:
        log.warning(
            "no TOLLWAY_SALT_KEY (or LITELLM_SALT_KEY) is set: stored secrets are encrypted "
            "under a key derived from the master key, so changing the master key makes them "
            "unreadable; set TOLLWAY_SALT_KEY"
        )
        return master_key
    return None


class SecretBox:
    """Seals and opens strings with one derived key.

    The key is derived on first use: ``cryptography`` is imported then, not at start-up (it
    adds ~7 MB of resident memory to a gateway that never stores a secret).
    """

    def __init__(self, material: str) -> None:
        self._material = material

    @functools.cached_property
    def _key(self) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO)
        return hkdf.derive(self._material.encode())

    @functools.cached_property
    def _aead(self) -> AESGCM:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(self._key)

    @functools.cached_property
    def key_id(self) -> str:
        return hashlib.sha256(b"key id" + self._key).hexdigest()[:16]

    def seal(self, value: str, field: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, value.encode(), field.encode())
        token = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{PREFIX}{self.key_id}:{token}"

    def open(self, sealed: str, field: str) -> str:
        if not sealed.startswith(PREFIX):
            raise SecretError(f"{field} is not a sealed value", other_key=False)
        key_id, _, token = sealed[len(PREFIX) :].partition(":")
        if key_id != self.key_id:
            raise SecretError(f"{field} was sealed under another salt key", other_key=True)
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            return self._aead.decrypt(raw[:12], raw[12:], field.encode()).decode()
        except (ValueError, InvalidTag):
            raise SecretError(f"{field} was altered", other_key=False) from None

    def seal_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with every secret field sealed (a dict value is sealed as JSON)."""
        out: dict[str, Any] = {}
        for name, value in params.items():
            if value is not None and is_secret_field(name):
                text = value if isinstance(value, str) else orjson.dumps(value).decode()
                out[name] = {"sealed": self.seal(text, name), "json": not isinstance(value, str)}
            else:
                out[name] = value
        return out

    def open_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The inverse of ``seal_params``; raises ``SecretError``."""
        out: dict[str, Any] = {}
        for name, value in params.items():
            if isinstance(value, dict) and set(value) == {"sealed", "json"}:
                text = self.open(str(value["sealed"]), name)
                out[name] = orjson.loads(text) if value["json"] else text
            else:
                out[name] = value
        return out

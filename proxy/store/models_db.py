"""Rows of models added at run time (``/model/new``) and of credentials (``/credentials``).

Secrets arrive here already sealed (``proxy.secrets_crypto``); this module only stores JSON.
The SQL is portable (``?`` placeholders, ``ON CONFLICT``), so the same code runs on the
SQLite store and on the PostgreSQL one (which rewrites placeholders). It also holds
``tollway rotate-salt-key``: every sealed value re-sealed under a new key in one transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import orjson

from ..secrets_crypto import NEW_SALT_KEY_ENV, SALT_KEY_ENVS, SecretBox, SecretError
from .sqlite import Store


class ModelRow(msgspec.Struct, kw_only=True):
    model_id: str
    model_name: str
    litellm_params: dict[str, Any]
    model_info: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: float | None = None
    updated_at: float | None = None
    created_by: str | None = None


class CredentialRow(msgspec.Struct, kw_only=True):
    credential_name: str
    credential_values: dict[str, Any]
    credential_info: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: float | None = None
    updated_at: float | None = None
    created_by: str | None = None


_MODEL_COLUMNS = ModelRow.__struct_fields__
_CREDENTIAL_COLUMNS = CredentialRow.__struct_fields__
_JSON = frozenset({"litellm_params", "model_info", "credential_values", "credential_info"})


def _upsert(table: str, columns: Sequence[str], pk: str) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in (pk, "created_at"))
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT({pk}) DO UPDATE SET {updates}"
    )


_UPSERT_MODEL = _upsert("proxy_models", _MODEL_COLUMNS, "model_id")
_UPSERT_CREDENTIAL = _upsert("credentials", _CREDENTIAL_COLUMNS, "credential_name")


def _params(row: msgspec.Struct) -> list[Any]:
    return [
        orjson.dumps(getattr(row, c)).decode() if c in _JSON else getattr(row, c)
        for c in row.__struct_fields__
    ]


def _row(kind: type[Any], columns: Sequence[str], record: Sequence[Any]) -> Any:
    data = dict(zip(columns, record, strict=True))
    for column in _JSON.intersection(data):
        data[column] = orjson.loads(data[column] or "{}")
    return msgspec.convert(data, kind, strict=False)


class ModelsDB:
    """The two tables, through the store's own primitives (its write lock and retries)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def models(self) -> list[ModelRow]:
        rows = await self._store._fetchall(
            f"SELECT {', '.join(_MODEL_COLUMNS)} FROM proxy_models ORDER BY created_at, model_id"
        )
        return [_row(ModelRow, _MODEL_COLUMNS, r) for r in rows]

    async def put_model(self, row: ModelRow) -> None:
        await self._store._admin_write(_UPSERT_MODEL, _params(row))

    async def delete_model(self, model_id: str) -> bool:
        sql = "DELETE FROM proxy_models WHERE model_id = ?"
        return await self._store._admin_write(sql, (model_id,)) > 0

    async def credentials(self) -> list[CredentialRow]:
        rows = await self._store._fetchall(
            f"SELECT {', '.join(_CREDENTIAL_COLUMNS)} FROM credentials ORDER BY credential_name"
        )
        return [_row(CredentialRow, _CREDENTIAL_COLUMNS, r) for r in rows]

    async def put_credential(self, row: CredentialRow) -> None:
        await self._store._admin_write(_UPSERT_CREDENTIAL, _params(row))

    async def delete_credential(self, name: str) -> bool:
        sql = "DELETE FROM credentials WHERE credential_name = ?"
        return await self._store._admin_write(sql, (name,)) > 0


async def rotate(store: Store, old: SecretBox, new: SecretBox) -> tuple[int, int, list[str]]:
    """Re-seal every stored secret under ``new``: returns (models, credentials re-sealed, ids
    that open under neither key). Nothing is written when any row opens under neither; a row
    that already opens under ``new`` (an interrupted earlier run) is left as it is."""
    db = ModelsDB(store)
    now = time.time()
    failed: list[str] = []
    models: list[ModelRow] = []
    for model in await db.models():
        params = _reseal(model.litellm_params, old, new)
        if params is None:
            failed.append(model.model_id)
        elif params is not model.litellm_params:
            models.append(msgspec.structs.replace(model, litellm_params=params, updated_at=now))
    credentials: list[CredentialRow] = []
    for credential in await db.credentials():
        values = _reseal(credential.credential_values, old, new)
        if values is None:
            failed.append(f"credential:{credential.credential_name}")
        elif values is not credential.credential_values:
            credentials.append(
                msgspec.structs.replace(credential, credential_values=values, updated_at=now)
            )
    if failed:
        return 0, 0, failed
    for row in models:
        await db.put_model(row)
    for cred in credentials:
        await db.put_credential(cred)
    return len(models), len(credentials), []


def _reseal(params: dict[str, Any], old: SecretBox, new: SecretBox) -> dict[str, Any] | None:
    """``params`` re-sealed under ``new``; ``params`` itself when already under ``new``;
    None when it opens under neither key."""
    try:
        return new.seal_params(old.open_params(params))
    except SecretError:
        pass
    try:
        new.open_params(params)
    except SecretError:
        return None
    return params


def rotate_salt_key_command(argv: Sequence[str]) -> int:
    """``tollway rotate-salt-key [--db PATH]``: the current key from TOLLWAY_SALT_KEY (or
    LITELLM_SALT_KEY; the master key if secrets were sealed under it), the new one from
    TOLLWAY_NEW_SALT_KEY (environment only: never on a command line, where ``ps`` shows it)."""
    parser = argparse.ArgumentParser(
        prog="tollway rotate-salt-key",
        description=f"Re-encrypt stored model and credential secrets under {NEW_SALT_KEY_ENV}.",
    )
    parser.add_argument("--db", default=os.environ.get("TOLLWAY_DB") or "tollway.db")
    args = parser.parse_args(list(argv))
    old_key = next((os.environ[n] for n in SALT_KEY_ENVS if os.environ.get(n)), None)
    new_key = os.environ.get(NEW_SALT_KEY_ENV)
    if not old_key or not new_key:
        print(
            f"tollway: set TOLLWAY_SALT_KEY to the current salt key (the master key if none was "
            f"set) and {NEW_SALT_KEY_ENV} to the new one",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_rotate_file(args.db, SecretBox(old_key), SecretBox(new_key)))


async def _rotate_file(path: str, old: SecretBox, new: SecretBox) -> int:
    store = await Store.open(path)
    try:
        models, credentials, failed = await rotate(store, old, new)
    finally:
        await store.close()
    if failed:
        print(
            "tollway: not rotated: these do not open under the current salt key: "
            + ", ".join(failed),
            file=sys.stderr,
        )
        return 2
    print(
        f"re-encrypted {models} models and {credentials} credentials; now start the gateway "
        "with TOLLWAY_SALT_KEY set to the new key"
    )
    return 0

"""Rows of the files and batches created through the gateway (``/v1/files``,
``/v1/batches``): the key that owns each, the deployment it lives on, and whether a batch's
output was billed. Portable SQL (``?`` placeholders, ``ON CONFLICT``): the same code runs on
the SQLite store and the PostgreSQL one. ``claim_billing`` is one conditional UPDATE, so a
batch's output is billed once however many workers or restarts read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from .sqlite import Store


class OwnedRow(msgspec.Struct, kw_only=True):
    object_id: str
    kind: str
    owner: str
    deployment_id: str
    billed: bool = False
    created_at: float = 0.0


_COLUMNS = OwnedRow.__struct_fields__
_INSERT = (
    f"INSERT INTO owned_objects ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT(object_id) DO NOTHING"
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM owned_objects"


def _row(record: Sequence[Any]) -> OwnedRow:
    data = dict(zip(_COLUMNS, record, strict=True))
    data["billed"] = bool(data["billed"])
    return msgspec.convert(data, OwnedRow, strict=False)


class OwnedObjects:
    """The table, through the store's own primitives (its write lock and retries)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, row: OwnedRow) -> None:
        params = [int(row.billed) if c == "billed" else getattr(row, c) for c in _COLUMNS]
        await self._store._admin_write(_INSERT, params)

    async def find(self, object_id: str) -> OwnedRow | None:
        record = await self._store._fetchone(f"{_SELECT} WHERE object_id = ?", (object_id,))
        return None if record is None else _row(record)

    async def find_many(self, object_ids: Sequence[str]) -> list[OwnedRow]:
        found: list[OwnedRow] = []
        for start in range(0, len(object_ids), 500):
            part = object_ids[start : start + 500]
            sql = f"{_SELECT} WHERE object_id IN ({', '.join('?' * len(part))})"
            found.extend(_row(r) for r in await self._store._fetchall(sql, part))
        return found

    async def recent(self, limit: int) -> list[OwnedRow]:
        rows = await self._store._fetchall(f"{_SELECT} ORDER BY created_at DESC LIMIT ?", (limit,))
        return [_row(r) for r in rows]

    async def claim_billing(self, object_id: str) -> bool:
        """True for exactly one caller: the one that marks the object billed."""
        changed = await self._store._admin_write(
            "UPDATE owned_objects SET billed = 1 WHERE object_id = ? AND billed = 0", (object_id,)
        )
        return changed > 0

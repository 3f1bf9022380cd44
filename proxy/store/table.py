"""A record type's table: its column names, the SQL built from them once, and the row codecs
(SQLite's, which PostgreSQL's store shares for its column order and JSON columns)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Final, Generic, TypeVar

import msgspec

RowT = TypeVar("RowT", bound=msgspec.Struct)  # a row type: KeyRow, TeamRow, ..., KeyBudgetSpendRow

_LEDGER_COLUMNS: Final = frozenset({"spend", "budget_reset_at"})
_KEEP_ON_UPDATE: Final = _LEDGER_COLUMNS | {"created_at"}
_JSON_COLUMNS: Final = frozenset({"models", "metadata", "tags", "members", "guardrails"})


# Spend-log rows are written with multi-row INSERTs: executemany steps the statement once
# per row and releases and retakes the GIL around each step, which makes a row ~45% dearer
# (`make bench-micro`, the store rows: 29 against 20 µs per row with every index), on the
# CPU the event loop shares. A chunk binds at most the library's variable limit (999
# before SQLite 3.32, 32766 since).
_MAX_VARIABLES: Final = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


class Table(Generic[RowT]):
    """Column names, SQL and row codecs for one record type (built once at import)."""

    def __init__(
        self, name: str, row_type: type[RowT], pk: str, *, spend_row: bool = False
    ) -> None:
        self.name = name
        self.row_type: type[RowT] = row_type
        self.pk = pk
        self.columns: tuple[str, ...] = row_type.__struct_fields__
        self.json_idx = tuple(i for i, c in enumerate(self.columns) if c in _JSON_COLUMNS)
        cols = ", ".join(self.columns)
        marks = ", ".join("?" * len(self.columns))
        updates = ", ".join(
            f"{c} = excluded.{c}" for c in self.columns if c != pk and c not in _KEEP_ON_UPDATE
        )
        self.select = f"SELECT {cols} FROM {name}"
        self.upsert = (
            f"INSERT INTO {name} ({cols}) VALUES ({marks}) "
            f"ON CONFLICT({pk}) DO UPDATE SET {updates}"
        )
        self.delete = f"DELETE FROM {name} WHERE {pk} = ?"
        self.set_spend = (  # spend_row: a flushed account without a row gets one
            f"INSERT INTO {name} (spend, budget_reset_at, {pk}) VALUES (?, ?, ?) "
            f"ON CONFLICT({pk}) DO UPDATE SET spend = excluded.spend, "
            "budget_reset_at = excluded.budget_reset_at"
            if spend_row
            else f"UPDATE {name} SET spend = ?, budget_reset_at = ? WHERE {pk} = ?"
        )
        self._inserts: dict[int, str] = {}
        # Rows per multi-row INSERT: a power of two within the variable limit, at most 16.
        # Binding a statement's values holds the GIL (only sqlite3_step releases it): 128
        # rows of spend logs held it ~1.2 ms and stalled the event loop that long; 16 rows
        # ~0.3 ms, at the same cost per row (python -m bench.flush_stall).
        fit = min(16, _MAX_VARIABLES // len(self.columns))
        self.rows_per_insert = 1 << (fit.bit_length() - 1)

    def to_params(self, row: RowT) -> list[Any]:
        values = list(msgspec.structs.astuple(row))
        for i in self.json_idx:
            values[i] = _json_encode(values[i]).decode()
        return values

    def batch_inserts(self, rows: Sequence[RowT]) -> list[tuple[str, list[Any]]]:
        """``rows`` as multi-row ``INSERT ... ON CONFLICT DO NOTHING`` statements with their
        parameters: chunks of ``rows_per_insert``, then the rest in powers of two, so a
        handful of statement texts serve every batch size (the connection caches them)."""
        width = len(self.columns)
        flat: list[Any] = []
        for row in rows:
            flat.extend(self.to_params(row))
        statements = []
        start, left, size = 0, len(rows), self.rows_per_insert
        while left:
            while size > left:
                size //= 2
            statements.append(
                (self._insert_rows(size), flat[start * width : (start + size) * width])
            )
            start += size
            left -= size
        return statements

    def _insert_rows(self, count: int) -> str:
        sql = self._inserts.get(count)
        if sql is None:
            row = f"({', '.join('?' * len(self.columns))})"
            sql = (
                f"INSERT INTO {self.name} ({', '.join(self.columns)}) "
                f"VALUES {', '.join([row] * count)} ON CONFLICT({self.pk}) DO NOTHING"
            )
            self._inserts[count] = sql
        return sql

    def from_db(self, record: Iterable[Any]) -> RowT:
        data = dict(zip(self.columns, record, strict=True))
        for col in _JSON_COLUMNS.intersection(data):
            raw = data[col]
            if raw is None:
                del data[col]  # fall back to the struct's empty default
            else:
                data[col] = _json_decode(raw)
        # strict=False: SQLite hands back 0/1 for bool columns.
        return msgspec.convert(data, self.row_type, strict=False)


_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode

"""Persistence: SQLite store for keys, teams, users and spend logs."""

from proxy.store.sqlite import (
    GroupBy,
    KeyRow,
    Records,
    SpendLogRow,
    SpendUpdate,
    Store,
    TeamRow,
    UserRow,
    is_busy_error,
)

__all__ = [
    "GroupBy",
    "KeyRow",
    "Records",
    "SpendLogRow",
    "SpendUpdate",
    "Store",
    "TeamRow",
    "UserRow",
    "is_busy_error",
]

"""Virtual keys, teams and users, held in memory and written through to SQLite.

The request path only ever reads these dicts (no database call); admin writes go to the
store first and then replace the in-memory record, so a crash never leaves memory ahead of
disk. Spend lives in the ledger: ``Directory`` registers each record's limits there and
``spend_of`` reads the live figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from msgspec import Struct
from msgspec.structs import asdict

from .ledger import Ledger, Limits
from .store import KeyRow, Records, Store, TeamRow, UserRow

Record = KeyRow | TeamRow | UserRow
R = TypeVar("R", KeyRow, TeamRow, UserRow)


def key_account(token_hash: str) -> str:
    return "key:" + token_hash


def team_account(team_id: str) -> str:
    return "team:" + team_id


def user_account(user_id: str) -> str:
    return "user:" + user_id


def account_of(row: Record) -> str:
    """The ledger account that holds a record's spend and limits."""
    if isinstance(row, KeyRow):
        return key_account(row.token_hash)
    if isinstance(row, TeamRow):
        return team_account(row.team_id)
    return user_account(row.user_id)


def _limits(row: Record) -> Limits:
    return Limits(
        max_budget=row.max_budget,
        rpm_limit=row.rpm_limit,
        tpm_limit=row.tpm_limit,
        max_parallel_requests=row.max_parallel_requests,
        budget_duration=row.budget_duration,
    )


def with_live_spend(ledger: Ledger, row: Struct, account: str) -> dict[str, Any]:
    """A record (a msgspec struct) as admin responses show it: spend and reset time from its
    ledger ``account`` when the ledger has it yet."""
    data = asdict(row)
    if ledger.has_account(account):
        state = ledger.account(account)
        data["spend"] = state.spend
        data["budget_reset_at"] = state.budget_reset_at
    return data


class Directory:
    def __init__(self, ledger: Ledger, store: Store | None = None) -> None:
        self.ledger = ledger
        self._store = store
        self.keys: dict[str, KeyRow] = {}
        self.teams: dict[str, TeamRow] = {}
        self.users: dict[str, UserRow] = {}
        # Told of each admin write ("keys"/"teams"/"users", record id) so that other workers
        # re-read the record (``proxy.propagation``); None when nothing needs telling.
        self.announce: Callable[[str, str], None] | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the directory has no store yet (the gateway is starting)")
        return self._store

    def attach(self, store: Store) -> None:
        self._store = store

    async def load(self) -> None:
        """Restore every record, with its persisted spend, into memory and the ledger."""
        keys, teams, users = await self.store.load_all()
        for key in keys:
            self._hold(self.keys, key.token_hash, key, restore=True)
        for team in teams:
            self._hold(self.teams, team.team_id, team, restore=True)
        for user in users:
            self._hold(self.users, user.user_id, user, restore=True)

    def _hold(self, held: dict[str, R], record_id: str, row: R, *, restore: bool) -> None:
        held[record_id] = row
        self._register(account_of(row), row, restore=restore)

    def _register(self, account: str, row: Record, *, restore: bool) -> None:
        if restore:
            self.ledger.set_account(
                account, _limits(row), spend=row.spend, budget_reset_at=row.budget_reset_at
            )
        else:
            self.ledger.set_account(account, _limits(row))

    def spend_of(self, account: str) -> float:
        if not self.ledger.has_account(account):
            return 0.0
        return self.ledger.account(account).spend

    def with_live_spend(self, row: Record) -> dict[str, object]:
        """The record as admin responses show it: spend and reset time from the ledger."""
        return with_live_spend(self.ledger, row, account_of(row))

    # Writes: the store first, then memory and the ledger.

    async def put_key(self, row: KeyRow) -> None:
        await self._put(self.store.keys, self.keys, row.token_hash, row)

    async def remove_key(self, token_hash: str) -> bool:
        return await self._remove(self.store.keys, self.keys, key_account(token_hash), token_hash)

    async def put_team(self, row: TeamRow) -> None:
        await self._put(self.store.teams, self.teams, row.team_id, row)

    async def remove_team(self, team_id: str) -> bool:
        return await self._remove(self.store.teams, self.teams, team_account(team_id), team_id)

    async def put_user(self, row: UserRow) -> None:
        await self._put(self.store.users, self.users, row.user_id, row)

    async def remove_user(self, user_id: str) -> bool:
        return await self._remove(self.store.users, self.users, user_account(user_id), user_id)

    async def _put(self, table: Records[R], held: dict[str, R], record_id: str, row: R) -> None:
        row.updated_at = time.time()
        await table.upsert(row)
        self._hold(held, record_id, row, restore=False)
        self._announce(held, record_id)

    async def _remove(
        self, table: Records[R], held: dict[str, R], account: str, record_id: str
    ) -> bool:
        removed = await table.delete(record_id)
        held.pop(record_id, None)
        self.ledger.drop_account(account)
        self._announce(held, record_id)
        return removed

    def _announce(self, held: dict[str, R], record_id: str) -> None:
        if self.announce is not None:
            name = "keys" if held is self.keys else "teams" if held is self.teams else "users"
            self.announce(name, record_id)

    def apply_change(self, held: dict[str, R], record_id: str, row: R | None) -> None:
        """A change another replica made (``proxy.propagation``): hold the record as stored
        in ``held`` (``keys``, ``teams`` or ``users``), or forget it when ``row`` is None.
        Live spend stays this replica's own."""
        if row is None:
            gone = held.pop(record_id, None)
            if gone is not None:
                self.ledger.drop_account(account_of(gone))
            return
        # A record new to this replica starts from its stored spend.
        self._hold(held, record_id, row, restore=not self.ledger.has_account(account_of(row)))

    async def rekey(self, old_hash: str, row: KeyRow) -> None:
        """Move a key record to a new secret (``/key/regenerate``), keeping its spend."""
        old_account = key_account(old_hash)
        if self.ledger.has_account(old_account):
            state = self.ledger.account(old_account)
            row.spend, row.budget_reset_at = state.spend, state.budget_reset_at
        row.updated_at = time.time()
        await self.store.keys.upsert(row)
        await self.store.keys.delete(old_hash)
        self.keys.pop(old_hash, None)
        self._hold(self.keys, row.token_hash, row, restore=True)
        self.ledger.drop_account(old_account)
        self._announce(self.keys, old_hash)
        self._announce(self.keys, row.token_hash)

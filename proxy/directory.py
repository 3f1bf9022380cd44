"""Virtual keys, teams and users, held in memory and written through to SQLite.

The request path only ever reads these dicts (no database call); admin writes go to the
store first and then replace the in-memory record, so a crash never leaves memory ahead of
disk. Spend lives in the ledger: ``Directory`` registers each record's limits there and
``spend_of`` reads the live figure.
"""

from __future__ import annotations

import time

from msgspec.structs import asdict

from .ledger import Ledger, Limits
from .store import KeyRow, Store, TeamRow, UserRow


def key_account(token_hash: str) -> str:
    return "key:" + token_hash


def team_account(team_id: str) -> str:
    return "team:" + team_id


def user_account(user_id: str) -> str:
    return "user:" + user_id


def _limits(row: KeyRow | TeamRow | UserRow) -> Limits:
    return Limits(
        max_budget=row.max_budget,
        rpm_limit=row.rpm_limit,
        tpm_limit=row.tpm_limit,
        max_parallel_requests=row.max_parallel_requests,
        budget_duration=row.budget_duration,
    )


class Directory:
    def __init__(self, ledger: Ledger, store: Store | None = None) -> None:
        self.ledger = ledger
        self._store = store
        self.keys: dict[str, KeyRow] = {}
        self.teams: dict[str, TeamRow] = {}
        self.users: dict[str, UserRow] = {}

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
            self.keys[key.token_hash] = key
            self._register(key_account(key.token_hash), key, restore=True)
        for team in teams:
            self.teams[team.team_id] = team
            self._register(team_account(team.team_id), team, restore=True)
        for user in users:
            self.users[user.user_id] = user
            self._register(user_account(user.user_id), user, restore=True)

    def _register(self, account: str, row: KeyRow | TeamRow | UserRow, *, restore: bool) -> None:
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

    def with_live_spend(self, row: KeyRow | TeamRow | UserRow) -> dict[str, object]:
        """The record as admin responses show it: spend and reset time from the ledger."""
        data = asdict(row)
        if isinstance(row, KeyRow):
            account = key_account(row.token_hash)
        elif isinstance(row, TeamRow):
            account = team_account(row.team_id)
        else:
            account = user_account(row.user_id)
        if self.ledger.has_account(account):
            state = self.ledger.account(account)
            data["spend"] = state.spend
            data["budget_reset_at"] = state.budget_reset_at
        return data

    # Writes: the store first, then memory and the ledger.

    async def put_key(self, row: KeyRow) -> None:
        row.updated_at = time.time()
        await self.store.upsert_key(row)
        self.keys[row.token_hash] = row
        self._register(key_account(row.token_hash), row, restore=False)

    async def remove_key(self, token_hash: str) -> bool:
        removed = await self.store.delete_key(token_hash)
        self.keys.pop(token_hash, None)
        self.ledger.drop_account(key_account(token_hash))
        return removed

    async def put_team(self, row: TeamRow) -> None:
        row.updated_at = time.time()
        await self.store.upsert_team(row)
        self.teams[row.team_id] = row
        self._register(team_account(row.team_id), row, restore=False)

    async def remove_team(self, team_id: str) -> bool:
        removed = await self.store.delete_team(team_id)
        self.teams.pop(team_id, None)
        self.ledger.drop_account(team_account(team_id))
        return removed

    async def put_user(self, row: UserRow) -> None:
        row.updated_at = time.time()
        await self.store.upsert_user(row)
        self.users[row.user_id] = row
        self._register(user_account(row.user_id), row, restore=False)

    async def remove_user(self, user_id: str) -> bool:
        removed = await self.store.delete_user(user_id)
        self.users.pop(user_id, None)
        self.ledger.drop_account(user_account(user_id))
        return removed

    async def rekey(self, old_hash: str, row: KeyRow) -> None:
        """Move a key record to a new secret (``/key/regenerate``), keeping its spend."""
        old_account = key_account(old_hash)
        if self.ledger.has_account(old_account):
            state = self.ledger.account(old_account)
            row.spend, row.budget_reset_at = state.spend, state.budget_reset_at
        row.updated_at = time.time()
        await self.store.upsert_key(row)
        await self.store.delete_key(old_hash)
        self.keys[row.token_hash] = row
        self.keys.pop(old_hash, None)
        self._register(key_account(row.token_hash), row, restore=True)
        self.ledger.drop_account(old_account)

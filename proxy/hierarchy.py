"""Organizations, end users (customers) and reusable budgets, in memory and in the store.

The levels around keys, teams and users (``Directory``): an **organization** caps the teams
that name it (``team.metadata.organization_id``) with its budget, limits and model list; an
**end user** is whoever a request names in its ``user`` field or an ``x-litellm-end-user-id``
/ ``x-litellm-customer-id`` header, with a budget, limits, ``blocked`` and
``allowed_model_region`` of its own (a record made by ``/customer/new``), or
``litellm_settings.max_end_user_budget`` when it has none; a **reusable budget**
(``/budget/new``) lends its limits to every organization, end user or key that names it by
``budget_id`` and sets no budget of its own.

Each organization and end user is a ledger account (``organization:<id>``,
``customer:<id>``); a key with a ``budget_id`` reserves on ``key_budget:<hash>:<budget_id>`` as
well: its stored spend on that budget (``key_budget_spend``, flushed like every account), or,
the first time the key uses that budget, the key's spend so far. The request path only reads
the dicts here (no database call); admin writes go to the store first, as ``Directory`` does.
``generation`` changes on every write, so callers can cache what they derive from these
records.
"""

from __future__ import annotations

import time
from typing import Protocol, TypeVar

from .errors import PermissionDenied
from .ledger import Ledger, Limits
from .store import Records
from .store.hierarchy_rows import BudgetRow, CustomerRow, KeyBudgetSpendRow, OrganizationRow

CUSTOMER = "customer:"
ORGANIZATION = "organization:"
KEY_BUDGET = "key_budget:"
# End users without a record are held in the ledger up to this many (each a few hundred
# bytes); beyond it the oldest unnamed ones are forgotten, never a named one.
MAX_UNNAMED_END_USERS = 100_000

Row = TypeVar("Row", CustomerRow, OrganizationRow)


class HierarchyStore(Protocol):
    @property
    def budgets(self) -> Records[BudgetRow]: ...

    @property
    def customers(self) -> Records[CustomerRow]: ...

    @property
    def organizations(self) -> Records[OrganizationRow]: ...

    @property
    def key_budget_spend(self) -> Records[KeyBudgetSpendRow]: ...


def customer_account(user_id: str) -> str:
    return CUSTOMER + user_id


def organization_account(organization_id: str) -> str:
    return ORGANIZATION + organization_id


def key_budget_account(token_hash: str, budget_id: str) -> str:
    return f"{KEY_BUDGET}{token_hash}:{budget_id}"


class Hierarchy:
    def __init__(self, ledger: Ledger, max_end_user_budget: float | None = None) -> None:
        self.ledger = ledger
        self.max_end_user_budget = max_end_user_budget
        self._store: HierarchyStore | None = None
        self.budgets: dict[str, BudgetRow] = {}
        self.customers: dict[str, CustomerRow] = {}
        self.organizations: dict[str, OrganizationRow] = {}
        self._unnamed: dict[str, None] = {}  # insertion-ordered set of unnamed end users
        self._key_budgets: dict[str, str] = {}  # key budget account -> budget_id
        # Stored key budget spend not yet in the ledger (taken on the key's first call).
        self._stored_key_budgets: dict[str, KeyBudgetSpendRow] = {}
        # End users with an ``allowed_model_region`` -> that region ("eu" / "us"): routing
        # reads it on every call, and an empty dict costs one truth test.
        self.regions: dict[str, str] = {}
        self.generation = 0
        # Whether any request can have an end-user level at all (read on every call).
        self.active = max_end_user_budget is not None

    @property
    def store(self) -> HierarchyStore:
        if self._store is None:
            raise RuntimeError("the hierarchy has no store yet (the gateway is starting)")
        return self._store

    def attach(self, store: HierarchyStore) -> None:
        self._store = store

    async def load(self) -> None:
        """Every record, with its persisted spend, into memory and the ledger."""
        store = self.store
        for budget in await store.budgets.all():
            self.budgets[budget.budget_id] = budget
        for customer in await store.customers.all():
            self._hold_customer(customer, restore=True)
        for organization in await store.organizations.all():
            self._hold_organization(organization, restore=True)
        for row in await store.key_budget_spend.all():
            self._stored_key_budgets[KEY_BUDGET + row.account] = row
        self._changed()

    def _changed(self) -> None:
        self.generation += 1
        self.active = bool(self.customers) or self.max_end_user_budget is not None

    # -- limits ---------------------------------------------------------------------------

    def limits_of(self, row: CustomerRow | OrganizationRow) -> Limits:
        """The record's own limits; with no budget of its own, its ``budget_id``'s, and for
        an end user with neither, ``max_end_user_budget``."""
        budget = self.budgets.get(row.budget_id) if row.budget_id else None
        if budget is not None and row.max_budget is None:
            return budget_limits(budget, row.rpm_limit, row.tpm_limit, row.max_parallel_requests)
        max_budget = row.max_budget
        if max_budget is None and isinstance(row, CustomerRow):
            max_budget = self.max_end_user_budget
        return Limits(
            max_budget=max_budget,
            rpm_limit=row.rpm_limit,
            tpm_limit=row.tpm_limit,
            max_parallel_requests=row.max_parallel_requests,
            budget_duration=row.budget_duration,
        )

    def _hold_customer(self, row: CustomerRow, *, restore: bool) -> None:
        self.customers[row.user_id] = row
        self._unnamed.pop(row.user_id, None)
        if row.allowed_model_region:
            self.regions[row.user_id] = row.allowed_model_region
        else:
            self.regions.pop(row.user_id, None)
        self._register(customer_account(row.user_id), row, restore=restore)

    def _hold_organization(self, row: OrganizationRow, *, restore: bool) -> None:
        self.organizations[row.organization_id] = row
        self._register(organization_account(row.organization_id), row, restore=restore)

    def _register(self, account: str, row: CustomerRow | OrganizationRow, *, restore: bool) -> None:
        limits = self.limits_of(row)
        if restore:
            self.ledger.set_account(
                account, limits, spend=row.spend, budget_reset_at=row.budget_reset_at
            )
        else:
            self.ledger.set_account(account, limits)

    # -- the request path (reads only) ----------------------------------------------------

    def end_user_account(self, end_user: str, model: str | None = None) -> str | None:
        """The ledger account a request naming ``end_user`` reserves on (None: no level).

        A blocked end user is refused (403), as LiteLLM does."""
        customer = self.customers.get(end_user)
        if customer is not None:
            if customer.blocked:
                raise PermissionDenied(
                    "this end user is blocked; unblock it with /customer/unblock",
                    code="end_user_blocked",
                )
            return customer_account(end_user)
        budget = self.max_end_user_budget
        if budget is None:
            return None
        account = customer_account(end_user)
        if end_user not in self._unnamed:
            if len(self._unnamed) >= MAX_UNNAMED_END_USERS:
                oldest = next(iter(self._unnamed))
                del self._unnamed[oldest]
                self.ledger.drop_account(customer_account(oldest))
            self._unnamed[end_user] = None
            self.ledger.set_account(account, Limits(max_budget=budget))
        return account

    def customer(self, user_id: str) -> CustomerRow | None:
        """An end user's record, or one standing for an end user known only by its spend
        under ``max_end_user_budget`` (not stored until its spend is flushed)."""
        row = self.customers.get(user_id)
        if row is None and user_id in self._unnamed:
            row = CustomerRow(user_id=user_id)
        return row

    def unnamed(self) -> list[str]:
        """End users held to ``max_end_user_budget`` that have no record in memory."""
        return list(self._unnamed)

    def organization_of(self, organization_id: str | None) -> OrganizationRow | None:
        return self.organizations.get(organization_id) if organization_id else None

    def key_budget(self, token_hash: str, budget_id: str, key_spend: float) -> str | None:
        """The account of a key's reusable budget, or None when no such budget exists.

        Registered on first use with its stored spend and reset time, or, when the key never
        spent on this budget before, seeded with the key's spend so far (LiteLLM holds a key
        with a ``budget_id`` to the budget's limits against the key's spend)."""
        budget = self.budgets.get(budget_id)
        if budget is None:
            return None
        account = key_budget_account(token_hash, budget_id)
        if account not in self._key_budgets:
            self._key_budgets[account] = budget_id
            stored = self._stored_key_budgets.pop(account, None)
            if stored is None:
                self.ledger.set_account(account, budget_limits(budget), spend=key_spend)
            else:
                self.ledger.set_account(
                    account,
                    budget_limits(budget),
                    spend=stored.spend,
                    budget_reset_at=stored.budget_reset_at,
                )
        return account

    # -- admin writes: the store first, then memory and the ledger --------------------------

    async def put_budget(self, row: BudgetRow) -> None:
        row.updated_at = time.time()
        await self.store.budgets.upsert(row)
        self.budgets[row.budget_id] = row
        self._relimit(row.budget_id)

    async def remove_budget(self, budget_id: str) -> bool:
        removed = await self.store.budgets.delete(budget_id)
        self.budgets.pop(budget_id, None)
        self._relimit(budget_id)
        return removed

    async def put_customer(self, row: CustomerRow) -> None:
        row.updated_at = time.time()
        await self.store.customers.upsert(row)
        self._hold_customer(row, restore=False)
        self._changed()

    async def remove_customer(self, user_id: str) -> bool:
        removed = await self.store.customers.delete(user_id)
        self.customers.pop(user_id, None)
        self.regions.pop(user_id, None)
        self._unnamed.pop(user_id, None)
        self.ledger.drop_account(customer_account(user_id))
        self._changed()
        return removed

    async def put_organization(self, row: OrganizationRow) -> None:
        row.updated_at = time.time()
        await self.store.organizations.upsert(row)
        self._hold_organization(row, restore=False)
        self._changed()

    async def remove_organization(self, organization_id: str) -> bool:
        removed = await self.store.organizations.delete(organization_id)
        self.organizations.pop(organization_id, None)
        self.ledger.drop_account(organization_account(organization_id))
        self._changed()
        return removed

    def _relimit(self, budget_id: str) -> None:
        """A reusable budget changed: every record that borrows it gets its new limits."""
        for customer in self.customers.values():
            if customer.budget_id == budget_id:
                self._register(customer_account(customer.user_id), customer, restore=False)
        for organization in self.organizations.values():
            if organization.budget_id == budget_id:
                account = organization_account(organization.organization_id)
                self._register(account, organization, restore=False)
        budget = self.budgets.get(budget_id)
        for account, used in list(self._key_budgets.items()):
            if used != budget_id:
                continue
            if budget is None:
                del self._key_budgets[account]
                self.ledger.drop_account(account)
            else:
                self.ledger.set_account(account, budget_limits(budget))
        self._changed()


def budget_limits(
    budget: BudgetRow,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    max_parallel_requests: int | None = None,
) -> Limits:
    """A reusable budget's limits; a record's own rate limits win over the budget's."""
    return Limits(
        max_budget=budget.max_budget,
        rpm_limit=rpm_limit if rpm_limit is not None else budget.rpm_limit,
        tpm_limit=tpm_limit if tpm_limit is not None else budget.tpm_limit,
        max_parallel_requests=(
            max_parallel_requests
            if max_parallel_requests is not None
            else budget.max_parallel_requests
        ),
        budget_duration=budget.budget_duration,
    )

"""What the routes over the hierarchy's records (``/budget/*``, ``/customer/*``,
``/organization/*``) share: the lookup, the id of a new record, the checks on the limits a
request sets, a record built from a create request, and the one ``/update``.

Each kind names the word its messages use (``what``), its id field (``id_field``, also the
parameter errors name) and the LiteLLM fields it accepts and stores nowhere (``ignored``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ..directory import with_live_spend
from ..errors import InvalidRequest
from ..hierarchy import Hierarchy
from ..store.hierarchy_rows import BudgetRow, CustomerRow, OrganizationRow
from .common import (
    Action,
    AdminRoutes,
    authorize,
    check_duration,
    check_query,
    decode_body,
    find_record,
    json_response,
    new_record_id,
    query_str,
    set_fields,
    with_iso_times,
)

Row = TypeVar("Row", BudgetRow, CustomerRow, OrganizationRow)


def check_budget_id(hierarchy: Hierarchy, budget_id: str | None) -> None:
    """A ``budget_id`` given on an end user or organization names a budget that exists (a
    key's is not checked: ``/key/*`` stores it as given)."""
    if budget_id is not None and budget_id not in hierarchy.budgets:
        raise InvalidRequest(f"budget {budget_id!r} does not exist", param="budget_id")


class HierarchyRoutes(AdminRoutes, ABC, Generic[Row]):
    what: ClassVar[str]
    """The record's name in messages: ``budget``, ``end user``, ``organization``."""
    id_field: ClassVar[str]
    update_type: ClassVar[type[msgspec.Struct]]
    ignored: ClassVar[tuple[str, ...]]
    borrows: ClassVar[bool] = True
    """Whether the record may name a reusable budget by ``budget_id``."""
    row_type: type[Row]

    @property
    @abstractmethod
    def records(self) -> Mapping[str, Row]:
        """The hierarchy's records of this kind, by id."""

    @abstractmethod
    async def put(self, row: Row) -> None:
        """Write ``row`` (the store, then memory and the ledger)."""

    @abstractmethod
    def show(self, row: Row) -> Any:
        """The record as an ``/update`` answers with it."""

    def find(self, record_id: str) -> Row:
        return find_record(self.records, record_id, self.what, self.id_field)

    def new_id(self, requested: str | None) -> str:
        return new_record_id(self.records, requested, self.what, self.id_field)

    def check(self, body: Any) -> None:
        """The limits a create or update request sets (unset and null ones pass): a valid
        ``budget_duration`` and, on a record that borrows, a ``budget_id`` that exists."""
        if isinstance(body.budget_duration, str):
            check_duration(body.budget_duration, "budget_duration")
        if self.borrows and isinstance(body.budget_id, str):
            check_budget_id(self.state.hierarchy, body.budget_id)

    def new_row(self, body: msgspec.Struct, record_id: str, **fields: Any) -> Row:
        """The record a create request makes: every field it gives, stored as an update
        stores it, then ``fields`` (what the route sets itself)."""
        given = set_fields(body, (self.id_field, *self.ignored, *fields))
        given[self.id_field] = record_id
        return self.row_type(**given, **fields)

    def query_id(self, request: Request, name: str) -> str:
        """The record a GET names as ``?<name>=`` (the only query parameter it takes)."""
        check_query(request, (name,))
        record_id = query_str(request, name)
        if record_id is None:
            raise InvalidRequest(f"give the {self.what} as ?{name}=", param=name)
        return record_id

    def in_order(self) -> list[Row]:
        """Every record, oldest first, then by id."""
        return sorted(
            self.records.values(), key=lambda r: (r.created_at or 0.0, getattr(r, self.id_field))
        )

    def with_live_spend(self, row: CustomerRow | OrganizationRow, account: str) -> dict[str, Any]:
        """The record as responses show it: spend and reset time from its ledger account
        (when it has one yet), times in ISO 8601."""
        return with_iso_times(with_live_spend(self.state.hierarchy.ledger, row, account))

    async def update(self, request: Request) -> Response:
        authorize(self.state, request, Action.USER_WRITE)
        body = await decode_body(request, self.update_type)
        self.check(body)
        row = self.find(getattr(body, self.id_field))
        updated = msgspec.structs.replace(row, **set_fields(body, (self.id_field, *self.ignored)))
        await self.put(updated)
        return json_response(self.show(updated))

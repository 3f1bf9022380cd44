"""What the routes over stored records (``/key/*``, ``/team/*``, ``/user/*``) share.

Each kind has ``/<kind>/new`` (keys: ``/key/generate``), ``/update`` and ``/delete`` (POST)
and ``/info`` and ``/list`` (GET). An update goes through ``save``: the kind's ``validate``,
then ``put``. A delete looks every id up with ``existing`` before it removes any.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar, Generic, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidRequest
from ..store import KeyRow, TeamRow, UserRow
from .common import AdminRoutes, Caller, check_duration, find_record, new_record_id

Row = TypeVar("Row", KeyRow, TeamRow, UserRow)


class RecordRoutes(AdminRoutes, ABC, Generic[Row]):
    kind: ClassVar[str]
    """The record's name: the path prefix (``/team/...``) and the word in messages."""
    create_path: ClassVar[str] = "new"

    def routes(self) -> list[Route]:
        prefix = f"/{self.kind}"
        return [
            Route(f"{prefix}/{self.create_path}", self.create, methods=["POST"]),
            Route(f"{prefix}/update", self.update, methods=["POST"]),
            Route(f"{prefix}/delete", self.delete, methods=["POST"]),
            Route(f"{prefix}/info", self.info, methods=["GET"]),
            Route(f"{prefix}/list", self.list, methods=["GET"]),
        ]

    @abstractmethod
    async def create(self, request: Request) -> Response: ...

    @abstractmethod
    async def update(self, request: Request) -> Response: ...

    @abstractmethod
    async def delete(self, request: Request) -> Response: ...

    @abstractmethod
    async def info(self, request: Request) -> Response: ...

    @property
    @abstractmethod
    def records(self) -> Mapping[str, Row]:
        """The directory's records of this kind, by id."""

    def find(self, record_id: str, param: str | None = None) -> Row:
        """The record ``record_id`` names; NotFound (naming ``param``) when there is none."""
        return find_record(self.records, record_id, self.kind, param or f"{self.kind}_id")

    def new_id(self, requested: str | None) -> str:
        """The id of a record being created: the one asked for, if free, else a new UUID."""
        return new_record_id(self.records, requested, self.kind, f"{self.kind}_id")

    @abstractmethod
    async def put(self, row: Row) -> None:
        """Write ``row`` to the directory (the store, then memory)."""

    def validate(self, caller: Caller, row: Row) -> None:
        """Checks on a record about to be written."""
        check_duration(row.budget_duration, "budget_duration")

    async def save(self, caller: Caller, row: Row) -> Row:
        self.validate(caller, row)
        await self.put(row)
        return row

    def existing(self, record_ids: list[str], param: str) -> list[Row]:
        """The records a delete names: at least one, and every one must exist, so that
        nothing is deleted unless everything can be."""
        if not record_ids:
            raise InvalidRequest(f"give the {self.kind}s to delete in `{param}`", param=param)
        return [self.find(record_id, param) for record_id in record_ids]

    # Last: a method named ``list`` hides the builtin from the annotations after it.
    @abstractmethod
    async def list(self, request: Request) -> Response: ...

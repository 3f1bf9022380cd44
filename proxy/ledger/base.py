"""What the pipeline needs of a shared ledger (``redis.RedisLedger``), without importing it.

The in-memory ``Ledger`` admits synchronously; a shared one needs one awaited round trip, so
admission is split: ``pending`` (no I/O, inside the synchronous admit stage) and
``admit_remote`` (awaited right after it). Settles stay synchronous: the shared ledger queues
them. Nothing of this runs, or is imported, unless a shared ledger is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from proxy.ledger.memory import Reservation

LOCAL_TAG = "tollway:ledger-local"
"""Tag on the spend-log row of a call admitted by the local ledger while Redis was away."""


class SharedLedger(Protocol):
    def pending(
        self,
        request_id: str,
        account_ids: Sequence[str],
        *,
        tokens: int,
        cost: float,
        output_price: float = 0.0,
        max_output_tokens: int = 0,
        min_output_tokens: int = 1,
    ) -> Reservation: ...

    async def admit_remote(self, reservation: Reservation) -> Reservation: ...

    def charge(
        self, reservation: Reservation, request_id: str, *, cost: float, tokens: int
    ) -> None: ...

    def admitted_locally(self, reservation: Reservation) -> bool: ...

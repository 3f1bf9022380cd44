"""Queries written once for SQLite run unchanged on PostgreSQL: the hierarchy's records and
spend, the spend reports, and the models/credentials tables."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from proxy.store import SpendLogRow, TeamRow
from proxy.store.hierarchy_rows import BudgetRow, CustomerRow, OrganizationRow
from proxy.store.models_db import ModelRow, ModelsDB
from proxy.store.owned import OwnedObjects, OwnedRow
from proxy.store.postgres import PostgresStore
from proxy.store.reports import daily_report, teams_report, total_spend

DAY = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    store = await PostgresStore.connect(pg_url, pool_size=2)
    try:
        yield store
    finally:
        await store.close()


def log(request_id: str, cost: float, **over: object) -> SpendLogRow:
    fields: dict[str, object] = dict(
        request_id=request_id, key_hash="h1", team_id="t1", model="m", cost=cost, start_time=DAY
    )
    fields.update(over)
    return SpendLogRow(**fields)  # type: ignore[arg-type]


async def test_end_users_and_organizations_get_their_spend_as_increments(
    store: PostgresStore,
) -> None:
    await store.organizations.upsert(OrganizationRow(organization_id="o1", blocked=True))
    await store.teams.upsert(TeamRow(team_id="t1", metadata={"organization_id": "o1"}))
    await store.budgets.upsert(BudgetRow(budget_id="b1", max_budget=5.0))
    batch = [
        log("r1", 1.5, end_user="alice", organization_id="o1"),
        log("r2", 0.5, end_user="alice", organization_id="o1"),
    ]
    # "customer:alice" is tracked by the ledger but has no record yet: it gets one.
    await store.apply_flush([("customer:alice", 2.0, None)], batch)
    await store.apply_flush([("customer:alice", 2.0, None)], batch)
    alice = await store.customers.get("alice")
    org = await store.organizations.get("o1")
    assert alice is not None and alice.spend == 2.0
    assert org is not None and org.spend == 2.0 and org.blocked is True
    assert await store.budgets.get("b1") == BudgetRow(budget_id="b1", max_budget=5.0)
    await store.customers.upsert(CustomerRow(user_id="alice", alias="A"))
    alice = await store.customers.get("alice")
    assert alice is not None and alice.alias == "A" and alice.spend == 2.0


async def test_the_spend_reports_group_by_utc_day(store: PostgresStore) -> None:
    await store.apply_flush(
        [],
        [
            log("r1", 1.0),
            log("r2", 2.0, team_id="t2"),
            log("r3", 4.0, start_time=DAY + 86_400),
        ],
    )
    assert await total_spend(store) == 7.0
    days = await daily_report(store, "team")
    assert [d["group_by_day"] for d in days] == ["2023-11-14", "2023-11-15"]
    assert [g["group"] for g in days[0]["groups"]] == ["t2", "t1"]
    teams = await teams_report(store)
    assert teams["teams"] == ["t1", "t2"]


async def test_models_and_credentials_tables_work_through_the_shared_sql(
    store: PostgresStore,
) -> None:
    db = ModelsDB(store)
    await db.put_model(ModelRow(model_id="x", model_name="gpt", litellm_params={"model": "a/b"}))
    await db.put_model(ModelRow(model_id="x", model_name="gpt2", litellm_params={"model": "c"}))
    (row,) = await db.models()
    assert (row.model_name, row.litellm_params) == ("gpt2", {"model": "c"})
    assert await db.delete_model("x") is True and await db.models() == []


async def test_owned_files_and_batches_are_billed_once_through_the_shared_sql(
    store: PostgresStore,
) -> None:
    owned = OwnedObjects(store)
    row = OwnedRow(
        object_id="batch_1", kind="batch", owner="h1", deployment_id="d1", created_at=DAY
    )
    await owned.add(row)
    assert await owned.find("batch_1") == row
    assert [await owned.claim_billing("batch_1") for _ in range(3)] == [True, False, False]
    assert [r.object_id for r in await owned.recent(5)] == ["batch_1"]

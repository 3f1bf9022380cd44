"""``/v1/files`` and ``/v1/batches`` with the OpenAI SDK: passed through to the upstream,
each object owned by the key that created it (another key gets 404 and never sees it in a
listing), and a batch billed when its output is read — once."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from proxy.endpoints.files import BATCH_PRICE_FACTOR
from tests.conftest import UPSTREAM_KEY
from tests.endpoints.conftest import new_key, sdk, side_config, spend
from tests.fakes.side_upstream import BATCH_LINES, BATCH_USAGE, FakeSideUpstream
from tests.inprocess import InProcessGateway

JSONL = b'{"custom_id": "r0", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'


async def test_a_file_belongs_to_the_key_that_uploaded_it(
    gateway: tuple[InProcessGateway, httpx.AsyncClient], side: FakeSideUpstream
) -> None:
    _gw, client = gateway
    owner = sdk(client, await new_key(client))
    other = sdk(client, await new_key(client))
    created = await owner.files.create(file=("in.jsonl", JSONL), purpose="batch")
    assert created.filename == "in.jsonl"
    sent = side.requests[-1]
    assert sent["path"] == "/v1/files"
    assert sent["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert (await owner.files.retrieve(created.id)).id == created.id
    assert await (await owner.files.content(created.id)).aread() == JSONL
    assert [f.id for f in (await owner.files.list()).data] == [created.id]

    with pytest.raises(openai.NotFoundError):
        await other.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        await other.files.content(created.id)
    with pytest.raises(openai.NotFoundError):
        await other.files.delete(created.id)
    assert (await other.files.list()).data == []

    deleted = await owner.files.delete(created.id)
    assert deleted.deleted is True


async def test_a_batch_is_owned_and_billed_when_its_output_is_read(
    gateway: tuple[InProcessGateway, httpx.AsyncClient],
) -> None:
    gw, client = gateway
    key = await new_key(client)
    owner = sdk(client, key)
    other = sdk(client, await new_key(client))
    uploaded = await owner.files.create(file=("in.jsonl", JSONL), purpose="batch")
    with pytest.raises(openai.NotFoundError):
        await other.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    batch = await owner.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "validating"
    with pytest.raises(openai.NotFoundError):
        await other.batches.retrieve(batch.id)
    assert (await other.batches.list()).data == []
    assert [b.id for b in (await owner.batches.list()).data] == [batch.id]
    assert spend(gw, key) == 0.0

    done = await owner.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id
    with pytest.raises(openai.NotFoundError):
        await other.files.content(done.output_file_id)
    output = await (await owner.files.content(done.output_file_id)).aread()
    assert output.count(b"\n") == BATCH_LINES
    # gpt-4o-mini's token prices, halved as the Batch API is.
    prompt = BATCH_LINES * BATCH_USAGE["prompt_tokens"]
    completion = BATCH_LINES * BATCH_USAGE["completion_tokens"]
    expected = (prompt * 1.5e-7 + completion * 6e-7) * BATCH_PRICE_FACTOR
    assert spend(gw, key) == pytest.approx(expected)
    # Read again: billed once.
    await (await owner.files.content(done.output_file_id)).aread()
    assert spend(gw, key) == pytest.approx(expected)

    cancelled = await owner.batches.cancel(batch.id)
    assert cancelled.status == "cancelling"


async def test_ownership_and_batch_billing_survive_a_restart(
    tmp_path: Path, side: FakeSideUpstream
) -> None:
    first = await InProcessGateway.build(tmp_path, side_config(side))
    async with first.running() as client:
        key = await new_key(client)
        other = await new_key(client)
        owner = sdk(client, key)
        uploaded = await owner.files.create(file=("in.jsonl", JSONL), purpose="batch")
        batch = await owner.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = await owner.batches.retrieve(batch.id)
        assert done.output_file_id
        await (await owner.files.content(done.output_file_id)).aread()
        billed = spend(first, key)
        assert billed > 0

    again = await InProcessGateway.build(tmp_path, side_config(side))
    async with again.running() as client:
        owner = sdk(client, key)
        assert (await owner.files.retrieve(uploaded.id)).id == uploaded.id
        assert (await owner.batches.retrieve(batch.id)).id == batch.id
        with pytest.raises(openai.NotFoundError):
            await sdk(client, other).files.retrieve(uploaded.id)
        # Read again after the restart: the output was billed once, before it.
        await (await owner.files.content(done.output_file_id)).aread()
        assert spend(again, key) == pytest.approx(billed)

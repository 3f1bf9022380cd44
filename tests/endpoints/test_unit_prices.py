"""The side endpoints' unit prices come from the price table (each entry with its source and
date), a user's LiteLLM price file can set them, and a deployment's model_info wins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.config import RouterSettings, parse_config
from proxy.endpoints.prices import UnitPrice, UnitPrices
from proxy.ledger.memory import Ledger
from proxy.pipeline.accounting import Accounting
from proxy.pricing import UNIT_FIELDS, PriceTable
from proxy.server.settings import Settings
from proxy.upstream.deployment import Deployment
from proxy.upstream.providers import build_deployment


def deployment(model: str, **info: Any) -> Deployment:
    extra = "".join(f"      {k}: {v}\n" for k, v in info.items())
    text = f"model_list:\n  - model_name: m\n    litellm_params:\n      model: {model}\n"
    if extra:
        text += "    model_info:\n" + extra
    config = parse_config(text, "c.yaml", {})
    return build_deployment(0, config.model_list[0], RouterSettings(), Settings())


def unit_prices(table: PriceTable) -> UnitPrices:
    accounting = Accounting(Ledger(), table, lambda row: None)
    return UnitPrices(accounting.price_of)


@pytest.mark.parametrize(
    ("model", "size", "quality", "price"),
    [
        pytest.param("dall-e-3", "1024x1792", "hd", 0.12, id="dall-e-3-hd"),
        pytest.param("dall-e-3", "1024x1024", None, 0.04, id="dall-e-3-default-standard"),
        pytest.param("dall-e-3", "999x999", "hd", 0.12, id="unknown-size-dearest"),
        pytest.param("dall-e-2", "512x512", None, 0.018, id="dall-e-2-by-size"),
        pytest.param("gpt-image-1", "1024x1536", "medium", 0.063, id="gpt-image-1"),
        pytest.param("gpt-image-1", "1024x1024", "auto", 0.25, id="auto-quality-dearest"),
    ],
)
def test_an_image_is_priced_by_the_tables_quality_and_size_entries(
    model: str, size: str, quality: str | None, price: float
) -> None:
    prices = unit_prices(PriceTable.load({}))
    found = prices.per_image(deployment(f"openai/{model}"), model, size, quality)
    assert found == UnitPrice(pytest.approx(price), True)  # type: ignore[arg-type]


def test_every_shipped_unit_price_names_its_source_and_date() -> None:
    table = PriceTable.load({})
    priced = [
        (name, entry)
        for name, entry in table.prices.items()
        if any(getattr(entry, field) is not None for field in UNIT_FIELDS)
    ]
    assert len(priced) >= 30
    for name, entry in priced:
        assert entry.source and entry.source.startswith("https://"), name
        assert entry.source_date, name


def test_the_other_units_come_from_the_table() -> None:
    prices = unit_prices(PriceTable.load({}))
    assert prices.per_second(deployment("openai/whisper-1"), "whisper-1").value == 0.0001
    assert prices.per_character(deployment("openai/tts-1-hd"), "tts-1-hd").value == 30e-6
    assert prices.per_query(deployment("cohere/rerank-v3.5"), "rerank-v3.5").value == 0.002
    assert prices.per_token(
        deployment("openai/omni-moderation-latest"), "omni-moderation-latest"
    ) == UnitPrice(0.0, True)


def test_model_info_wins_and_an_unknown_model_is_unpriced() -> None:
    prices = unit_prices(PriceTable.load({}))
    own = deployment("openai/dall-e-3", output_cost_per_image=0.5)
    assert prices.per_image(own, "dall-e-3", "1024x1024", "hd") == UnitPrice(0.5, True)
    unknown = deployment("openai/some-reranker")
    assert prices.per_query(unknown, "some-reranker") == UnitPrice(0.0, False)


def test_a_litellm_price_file_sets_unit_prices(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_bytes(
        orjson.dumps(
            {
                "my-whisper": {"input_cost_per_second": 0.0002, "litellm_provider": "openai"},
                "my-reranker": {"input_cost_per_query": 0.004, "mode": "rerank"},
                "no-price": {"mode": "chat"},
            }
        )
    )
    table = PriceTable.load({"TOLLWAY_PRICES_FILE": str(path)})
    assert "no-price" not in table
    prices = unit_prices(table)
    assert prices.per_second(deployment("openai/my-whisper"), "my-whisper").value == 0.0002
    reranker = prices.per_query(deployment("openai/my-reranker"), "my-reranker")
    assert reranker == UnitPrice(0.004, True)

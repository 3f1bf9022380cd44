import logging
import re
from pathlib import Path
from typing import Any

import httpx
import msgspec
import orjson
import pytest

from proxy.pricing import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    ModelPrice,
    PriceFileError,
    PriceOverrides,
    PriceTable,
    cost,
    worst_case_cost,
)
from tests.inprocess import InProcessGateway, bearer
from tests.providers.scripted import Canned, ScriptedTransport

LOGGER = "tollway.pricing"


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelname == "WARNING"]


def test_packaged_table_covers_the_common_providers(table: PriceTable) -> None:
    providers = {price.provider for price in table.prices.values()}

    assert len(table) >= 60
    assert {
        "openai",
        "anthropic",
        "gemini",
        "mistral",
        "deepseek",
        "xai",
        "groq",
        "together_ai",
        "fireworks_ai",
        "cohere",
    } <= providers


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "o3",
        "o3-mini",
        "o4-mini",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "claude-opus-4-1",
        "claude-sonnet-4-5",
        "claude-3-5-haiku-latest",
        "claude-haiku-4-5",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.0-flash",
        "mistral-large-latest",
        "mistral-small-latest",
        "codestral-latest",
        "deepseek-chat",
        "deepseek-reasoner",
    ],
)
def test_current_models_are_priced(table: PriceTable, model: str) -> None:
    price = table.lookup(model)
    assert price.priced, model

    assert price.input_cost_per_token > 0
    assert price.max_input_tokens is not None
    assert price.max_input_tokens > 0
    if price.mode == "embedding":
        assert price.output_cost_per_token == 0
    else:
        assert price.output_cost_per_token > 0
        assert price.max_output_tokens is not None
        assert price.max_output_tokens > 0


def test_every_entry_is_consistent(table: PriceTable) -> None:
    for name, price in table.prices.items():
        assert price.provider, name
        # LiteLLM's modes: the side endpoints' models are priced per unit (UNIT_FIELDS).
        assert price.mode in {
            "chat",
            "embedding",
            "completion",
            "image_generation",
            "audio_transcription",
            "audio_speech",
            "moderation",
            "rerank",
        }, name
        # A price above $1 per token is a units mistake (per-million pasted as per-token).
        assert price.input_cost_per_token < 1e-3, name
        assert price.output_cost_per_token < 1e-3, name
        if price.cache_read_input_token_cost is not None:
            assert price.cache_read_input_token_cost < price.input_cost_per_token, name


def test_gpt_4o_has_its_list_price(table: PriceTable) -> None:
    assert table.lookup("gpt-4o") == ModelPrice(
        input_cost_per_token=2.5e-06,
        output_cost_per_token=1e-05,
        cache_read_input_token_cost=1.25e-06,
        max_input_tokens=128000,
        max_output_tokens=16384,
        provider="openai",
        mode="chat",
        source="https://openai.com/api/pricing",
        source_date="2025-11-13",
    )


@pytest.mark.parametrize(
    ("model", "entry"),
    [
        pytest.param("openai/gpt-4o", "gpt-4o", id="provider-prefix"),
        pytest.param("azure/gpt-4.1-mini", "gpt-4.1-mini", id="other-provider-prefix"),
        pytest.param("gpt-4o-2024-08-06", "gpt-4o", id="iso-date-suffix"),
        pytest.param("openai/gpt-4o-mini-2024-07-18", "gpt-4o-mini", id="prefix-and-date"),
        pytest.param("gpt-4o-2024-05-13", "gpt-4o-2024-05-13", id="dated-entry-beats-stripping"),
        pytest.param(
            "anthropic/claude-sonnet-4-5-20250929", "claude-sonnet-4-5", id="compact-date-suffix"
        ),
        pytest.param("claude-3-5-haiku-20241022", "claude-3-5-haiku", id="snapshot-to-base"),
        pytest.param("claude-3-5-haiku-latest", "claude-3-5-haiku", id="latest-alias-to-base"),
        pytest.param("mistral/mistral-medium-2505", "mistral-medium-latest", id="yymm-suffix"),
        pytest.param("gemini/gemini-2.0-flash-001", "gemini-2.0-flash", id="gemini-version"),
        pytest.param(
            "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
            "meta-llama/Llama-3.3-70B-Instruct-Turbo",
            id="name-containing-slash",
        ),
        pytest.param(
            "groq/llama-3.3-70b-versatile", "llama-3.3-70b-versatile", id="hosted-open-model"
        ),
    ],
)
def test_lookup_resolves_provider_prefix_and_snapshot_suffix(
    table: PriceTable, model: str, entry: str
) -> None:
    assert table.lookup(model) == table.prices[entry]


def test_dated_entry_keeps_its_own_price(table: PriceTable) -> None:
    assert table.lookup("gpt-4o-2024-05-13").input_cost_per_token == pytest.approx(5e-06)
    assert table.lookup("gpt-4o-2024-08-06").input_cost_per_token == pytest.approx(2.5e-06)


def test_override_with_costs_only_keeps_table_limits(table: PriceTable) -> None:
    overrides = ModelPrice(input_cost_per_token=1e-06, output_cost_per_token=2e-06)

    price = table.lookup("openai/gpt-4o", overrides=overrides)

    assert price.input_cost_per_token == 1e-06
    assert price.output_cost_per_token == 2e-06
    assert price.cache_read_input_token_cost == 1.25e-06
    assert price.max_input_tokens == 128000
    assert price.max_output_tokens == 16384
    assert price.provider == "openai"


def test_override_with_limits_only_keeps_table_costs(table: PriceTable) -> None:
    price = table.lookup("gpt-4o", overrides=ModelPrice(max_output_tokens=1000))

    assert price.max_output_tokens == 1000
    assert price.input_cost_per_token == 2.5e-06
    assert price.output_cost_per_token == 1e-05


def test_price_overrides_honour_an_explicit_zero(table: PriceTable) -> None:
    price = table.lookup("openai/gpt-4o", overrides=PriceOverrides(output_cost_per_token=0.0))

    assert price.output_cost_per_token == 0.0
    assert price.input_cost_per_token == 2.5e-06
    assert price.max_output_tokens == 16384


def test_price_overrides_convert_from_model_info_fields(table: PriceTable) -> None:
    model_info = {"id": "dep-1", "input_cost_per_token": 0.0, "max_output_tokens": 512}

    overrides = msgspec.convert(model_info, PriceOverrides)
    price = table.lookup("gpt-4o-mini", overrides=overrides)

    assert (price.input_cost_per_token, price.max_output_tokens) == (0.0, 512)
    assert price.output_cost_per_token == 6e-07


def test_model_price_override_cannot_express_zero(table: PriceTable) -> None:
    # With a ModelPrice, 0.0 is indistinguishable from "not given": use PriceOverrides for that.
    price = table.lookup("gpt-4o", overrides=ModelPrice(output_cost_per_token=0.0))

    assert price.output_cost_per_token == 1e-05


def test_override_prices_a_model_missing_from_the_table(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable({})
    overrides = ModelPrice(input_cost_per_token=1e-06, output_cost_per_token=3e-06)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        price = table.lookup("mock/mock-gpt", overrides=overrides)

    assert price == msgspec.structs.replace(overrides, source="model_info")
    assert price.priced
    assert _warnings(caplog) == []


def test_different_overrides_for_one_model_are_resolved_separately(table: PriceTable) -> None:
    cheap = table.lookup("gpt-4o", overrides=ModelPrice(input_cost_per_token=1e-07))
    dear = table.lookup("gpt-4o", overrides=ModelPrice(input_cost_per_token=1e-05))
    plain = table.lookup("gpt-4o")

    assert (cheap.input_cost_per_token, dear.input_cost_per_token) == (1e-07, 1e-05)
    assert plain.input_cost_per_token == 2.5e-06


def test_repeated_lookup_is_served_from_cache(table: PriceTable) -> None:
    overrides = ModelPrice(output_cost_per_token=4e-06)

    first = table.lookup("openai/gpt-4.1-2025-04-14", overrides=overrides)

    assert table.lookup("openai/gpt-4.1-2025-04-14", overrides=overrides) is first


def test_unknown_model_costs_zero_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable({"gpt-4o": ModelPrice(input_cost_per_token=2.5e-06)})

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        prices = [table.lookup("acme/frontier-9") for _ in range(3)]
        prices.append(table.lookup("acme/frontier-9", overrides=ModelPrice()))

    assert all(price == ModelPrice() for price in prices)
    assert cost(prices[0], prompt_tokens=1000, completion_tokens=1000) == 0.0
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert "acme/frontier-9" in warnings[0]


def test_override_without_costs_still_warns_for_unknown_model(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = PriceTable({})

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        price = table.lookup("local/embedder", overrides=PriceOverrides(mode="embedding"))

    assert price == ModelPrice(mode="embedding")
    assert len(_warnings(caplog)) == 1


def test_each_unknown_model_gets_its_own_warning(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable({})

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for model in ("a/one", "a/two", "a/one", "a/two"):
            table.lookup(model)

    assert len(_warnings(caplog)) == 2


def test_negative_price_is_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match="input_cost_per_token"):
        msgspec.convert({"input_cost_per_token": -1e-06}, ModelPrice)


PRICE = ModelPrice(
    input_cost_per_token=2e-06,
    output_cost_per_token=8e-06,
    cache_read_input_token_cost=5e-07,
    max_output_tokens=1000,
)


@pytest.mark.parametrize(
    ("price", "prompt", "completion", "cached", "expected"),
    [
        pytest.param(PRICE, 1000, 500, 0, 1000 * 2e-06 + 500 * 8e-06, id="no-cache"),
        pytest.param(
            PRICE, 1000, 500, 600, 400 * 2e-06 + 600 * 5e-07 + 500 * 8e-06, id="cached-part"
        ),
        pytest.param(
            ModelPrice(input_cost_per_token=2e-06, output_cost_per_token=8e-06),
            1000,
            500,
            600,
            1000 * 2e-06 + 500 * 8e-06,
            id="no-cache-rate-uses-input-price",
        ),
        pytest.param(PRICE, 100, 0, 500, 100 * 5e-07, id="cached-capped-at-prompt"),
        pytest.param(PRICE, 0, 0, 0, 0.0, id="empty"),
    ],
)
def test_cost(
    price: ModelPrice, prompt: int, completion: int, cached: int, expected: float
) -> None:
    assert cost(
        price, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached
    ) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("price", "max_tokens", "expected"),
    [
        pytest.param(PRICE, 200, 100 * 2e-06 + 200 * 8e-06, id="request-max-tokens"),
        pytest.param(PRICE, None, 100 * 2e-06 + 1000 * 8e-06, id="model-max-output-tokens"),
        pytest.param(
            ModelPrice(input_cost_per_token=2e-06, output_cost_per_token=8e-06),
            None,
            100 * 2e-06 + DEFAULT_MAX_OUTPUT_TOKENS * 8e-06,
            id="default-max-output-tokens",
        ),
    ],
)
def test_worst_case_cost(price: ModelPrice, max_tokens: int | None, expected: float) -> None:
    assert worst_case_cost(price, prompt_tokens=100, max_tokens=max_tokens) == pytest.approx(
        expected
    )


def test_default_max_output_tokens_is_4096() -> None:
    assert DEFAULT_MAX_OUTPUT_TOKENS == 4096


def test_worst_case_is_never_below_actual_cost(table: PriceTable) -> None:
    price = table.lookup("anthropic/claude-sonnet-4-5")
    assert price.max_output_tokens is not None

    reserved = worst_case_cost(price, prompt_tokens=5000, max_tokens=None)
    actual = cost(
        price,
        prompt_tokens=5000,
        completion_tokens=price.max_output_tokens,
        cached_tokens=4000,
    )

    assert reserved >= actual


# -- sources, the user's price file, Azure / Bedrock names -----------------------------------


def test_every_shipped_entry_names_a_dated_source(table: PriceTable) -> None:
    for name, price in table.prices.items():
        assert price.source is not None
        assert price.source.startswith("https://"), name
        assert price.source_date is not None
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", price.source_date), name


def test_shipped_table_covers_every_provider_tollway_routes_to(table: PriceTable) -> None:
    providers = {price.provider for price in table.prices.values()}
    routed = {"openai", "anthropic", "gemini", "mistral", "deepseek", "xai", "groq"}
    routed |= {"together_ai", "fireworks_ai", "cohere", "perplexity", "bedrock"}
    assert routed <= providers
    modes = {(p.provider, p.mode) for p in table.prices.values()}
    for provider in ("openai", "gemini", "mistral", "cohere", "bedrock", "together_ai"):
        assert (provider, "embedding") in modes, provider


@pytest.mark.parametrize(
    ("model", "entry"),
    [
        pytest.param("bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        pytest.param("bedrock/us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        pytest.param("bedrock/us.amazon.nova-pro-v1:0", "amazon.nova-pro"),
        pytest.param("bedrock/amazon.titan-embed-text-v2:0", "amazon.titan-embed-text-v2"),
        pytest.param("bedrock/meta.llama3-3-70b-instruct-v1:0", "meta.llama3-3-70b-instruct"),
        # Cohere on Bedrock has Bedrock's price, not Cohere's own.
        pytest.param("bedrock/cohere.command-r-plus-v1:0", "cohere.command-r-plus"),
        pytest.param("openrouter/anthropic/claude-sonnet-4.5", "claude-sonnet-4.5"),
        pytest.param("azure/gpt-35-turbo", "gpt-35-turbo"),
    ],
)
def test_bedrock_ids_and_hosted_names_resolve_to_their_entry(
    table: PriceTable, model: str, entry: str
) -> None:
    price = table.lookup(model)
    assert price.priced
    assert price == table.prices[entry]


LITELLM_MAP = {
    "sample_spec": {"max_tokens": "set to max_output_tokens if provider specifies it"},
    "azure/my-gpt4o-deployment": {
        "litellm_provider": "azure",
        "mode": "chat",
        "input_cost_per_token": 2.75e-06,
        "output_cost_per_token": 1.1e-05,
        "max_input_tokens": 128000,
        "max_tokens": 16384,
        "supports_vision": True,
    },
    "gpt-4o": {
        "litellm_provider": "openai",
        "input_cost_per_token": 2e-06,
        "output_cost_per_token": 9e-06,
    },
    "dall-e-3": {
        "litellm_provider": "openai",
        "mode": "image_generation",
        "output_cost_per_image": 0.04,
    },
}


def test_a_litellm_price_file_is_laid_over_the_shipped_table(tmp_path: Path) -> None:
    path = tmp_path / "model_prices_and_context_window.json"
    path.write_bytes(orjson.dumps(LITELLM_MAP))
    table = PriceTable.load({"TOLLWAY_PRICES_FILE": str(path)})
    mine = table.lookup("azure/my-gpt4o-deployment")
    assert (mine.input_cost_per_token, mine.output_cost_per_token) == (2.75e-06, 1.1e-05)
    assert mine.max_output_tokens == 16384
    assert mine.source == f"file {path}"
    # The user's entry wins over the shipped one; an entry with a unit price (per image) is
    # read too, and entries with no price at all are skipped.
    assert table.lookup("gpt-4o").input_cost_per_token == 2e-06
    assert table.lookup("dall-e-3").output_cost_per_image == 0.04
    assert table.lookup("dall-e-3").source == f"file {path}"
    assert "sample_spec" not in table


def test_litellms_local_cost_map_url_is_read_when_it_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    path.write_bytes(orjson.dumps(LITELLM_MAP))
    env = {"LITELLM_MODEL_COST_MAP_URL": f"file://{path}", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    assert PriceTable.load(env).lookup("azure/my-gpt4o-deployment").priced


def test_an_unreadable_price_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match=r"absent\.json"):
        PriceTable.load({"TOLLWAY_PRICES_FILE": str(tmp_path / "absent.json")})


# -- admission: an unpriced model is refused to anyone with a budget --------------------------

ADMISSION_CONFIG = """\
model_list:
  - model_name: unpriced
    litellm_params:
      model: openai/in-house-model
      api_base: http://upstream.test/v1
      api_key: os.environ/TEST_UPSTREAM_KEY
  - model_name: azure-4o
    litellm_params:
      model: azure/prod-4o-deployment
      api_base: http://upstream.test
      api_key: os.environ/TEST_UPSTREAM_KEY
    model_info:
      base_model: gpt-4o
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
"""

COMPLETION = {
    "id": "c",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
}


def _chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}


async def _key(client: httpx.AsyncClient, **fields: Any) -> str:
    response = await client.post("/key/generate", json=fields, headers=bearer())
    assert response.status_code == 200, response.text
    return str(response.json()["key"])


async def test_a_budgeted_key_is_refused_an_unpriced_model_with_how_to_price_it(
    tmp_path: Path,
) -> None:
    upstream = ScriptedTransport(*[Canned.json(COMPLETION)] * 3)
    gateway = await InProcessGateway.build(tmp_path, ADMISSION_CONFIG, transport=upstream)
    async with gateway.running() as client:
        budgeted = await _key(client, max_budget=5.0)
        unlimited = await _key(client)
        refused = await client.post(
            "/v1/chat/completions", json=_chat("unpriced"), headers=bearer(budgeted)
        )
        served = await client.post(
            "/v1/chat/completions", json=_chat("unpriced"), headers=bearer(unlimited)
        )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "model_unpriced"
    assert "openai/in-house-model" in error["message"]
    assert "input_cost_per_token" in error["message"]
    assert "TOLLWAY_ALLOW_UNPRICED" in error["message"]
    assert served.status_code == 200
    assert len(upstream.sent) == 1


async def test_allow_unpriced_serves_it_as_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_ALLOW_UNPRICED", "1")
    upstream = ScriptedTransport(*[Canned.json(COMPLETION)] * 3)
    gateway = await InProcessGateway.build(tmp_path, ADMISSION_CONFIG, transport=upstream)
    async with gateway.running() as client:
        key = await _key(client, max_budget=5.0)
        response = await client.post(
            "/v1/chat/completions", json=_chat("unpriced"), headers=bearer(key)
        )
    assert response.status_code == 200
    assert float(response.headers["x-tollway-response-cost"]) == 0


async def test_an_azure_deployment_is_billed_at_its_base_models_price_shown_in_model_info(
    tmp_path: Path,
) -> None:
    upstream = ScriptedTransport(*[Canned.json(COMPLETION)] * 3)
    gateway = await InProcessGateway.build(tmp_path, ADMISSION_CONFIG, transport=upstream)
    async with gateway.running() as client:
        key = await _key(client, max_budget=5.0)
        response = await client.post(
            "/v1/chat/completions", json=_chat("azure-4o"), headers=bearer(key)
        )
        info = await client.get("/model/info", headers=bearer())
    assert response.status_code == 200, response.text
    assert float(response.headers["x-tollway-response-cost"]) == pytest.approx(
        1000 * 2.5e-06 + 100 * 1e-05
    )
    by_name = {m["model_name"]: m["model_info"] for m in info.json()["data"]}
    azure = by_name["azure-4o"]
    assert azure["input_cost_per_token"] == 2.5e-06
    assert azure["price_source"] == "https://openai.com/api/pricing"
    assert azure["price_source_date"] == "2025-11-13"
    unpriced = by_name["unpriced"]
    assert unpriced["input_cost_per_token"] is None
    assert unpriced["price_source"] is None

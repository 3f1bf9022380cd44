import logging

import msgspec
import pytest

from proxy.pricing import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    ModelPrice,
    PriceOverrides,
    PriceTable,
    cost,
    worst_case_cost,
)

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
    price = table.prices[model]

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
        assert price.mode in {"chat", "embedding", "completion"}, name
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
        pytest.param(
            "claude-3-5-haiku-20241022", "claude-3-5-haiku-latest", id="snapshot-to-latest-alias"
        ),
        pytest.param("mistral/mistral-large-2411", "mistral-large-latest", id="yymm-suffix"),
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

    assert price == overrides
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

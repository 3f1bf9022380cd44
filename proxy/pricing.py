"""Model prices: the table shipped in ``prices.json``, per-deployment overrides, and cost maths.

Prices are list prices in USD per token. A model with no price counts as free (cost 0) and is
reported once with a warning: pricing never fails a request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from importlib import resources
from typing import Annotated

import msgspec

logger = logging.getLogger("tollway.pricing")

# Reserved as output when neither the request's max_tokens nor the model's max_output_tokens
# is known.
DEFAULT_MAX_OUTPUT_TOKENS = 4096

# Both caches are bounded so that a stream of distinct model names cannot grow memory.
_MAX_CACHED = 4096

# Snapshot suffixes providers append to a model name: -2024-08-06, -20250514, -0709 (grok),
# -2411 (mistral), -001 (gemini), -08-2024 (cohere).
_SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d{3}|\d{2}-\d{4})$")

NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]


class ModelPrice(msgspec.Struct, frozen=True):
    """The price and token limits of one model (USD per token)."""

    input_cost_per_token: NonNegativeFloat = 0.0
    output_cost_per_token: NonNegativeFloat = 0.0
    cache_read_input_token_cost: NonNegativeFloat | None = None
    max_input_tokens: NonNegativeInt | None = None
    max_output_tokens: NonNegativeInt | None = None
    provider: str | None = None
    mode: str = "chat"


class PriceOverrides(msgspec.Struct, frozen=True):
    """Per-deployment price fields (from model_info); ``None`` means "keep the table's value".

    Unlike ``ModelPrice``, an explicit 0 here is honoured, so a deployment can make a priced
    model free. ``msgspec.convert(msgspec.structs.asdict(model_info), PriceOverrides)`` builds
    one from a config struct with the same field names.
    """

    input_cost_per_token: NonNegativeFloat | None = None
    output_cost_per_token: NonNegativeFloat | None = None
    cache_read_input_token_cost: NonNegativeFloat | None = None
    max_input_tokens: NonNegativeInt | None = None
    max_output_tokens: NonNegativeInt | None = None
    provider: str | None = None
    mode: str | None = None


_FREE = ModelPrice()
_NO_OVERRIDES = PriceOverrides()
_FIELDS = ModelPrice.__struct_fields__
_COST_FIELDS = frozenset(
    ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost")
)
_prices_decoder = msgspec.json.Decoder(dict[str, ModelPrice])


def cost(
    price: ModelPrice, *, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> float:
    """Cost in USD of one call.

    ``cached_tokens`` is the part of ``prompt_tokens`` read from the provider's prompt cache; it
    is priced at ``cache_read_input_token_cost`` when the model has one, else at the input price.
    """
    cached = min(max(cached_tokens, 0), prompt_tokens)
    cache_rate = price.cache_read_input_token_cost
    if cache_rate is None:
        cache_rate = price.input_cost_per_token
    return (
        (prompt_tokens - cached) * price.input_cost_per_token
        + cached * cache_rate
        + completion_tokens * price.output_cost_per_token
    )


def worst_case_cost(price: ModelPrice, *, prompt_tokens: int, max_tokens: int | None) -> float:
    """The most a call can cost: what the ledger reserves before calling upstream.

    The output is bounded by the request's ``max_tokens``, else by the model's
    ``max_output_tokens``, else by ``DEFAULT_MAX_OUTPUT_TOKENS``. No prompt token is assumed
    to be cached.
    """
    if max_tokens is not None:
        output_tokens = max_tokens
    elif price.max_output_tokens is not None:
        output_tokens = price.max_output_tokens
    else:
        output_tokens = DEFAULT_MAX_OUTPUT_TOKENS
    return cost(price, prompt_tokens=prompt_tokens, completion_tokens=output_tokens)


def _changes(overrides: ModelPrice | PriceOverrides) -> dict[str, object]:
    # In a PriceOverrides a field is set when it is not None; in a ModelPrice, when it differs
    # from the struct default (so there an explicit 0 cannot be told from "not given").
    unset: ModelPrice | PriceOverrides = (
        _FREE if isinstance(overrides, ModelPrice) else _NO_OVERRIDES
    )
    return {
        name: value
        for name in _FIELDS
        if (value := getattr(overrides, name)) != getattr(unset, name)
    }


def _candidates(model: str) -> list[str]:
    # Exact names first (with and without each provider prefix), then the same names without a
    # snapshot suffix, then that base as a "-latest" alias.
    names = [model]
    rest = model
    while "/" in rest:
        rest = rest.split("/", 1)[1]
        names.append(rest)
    normalized: list[str] = []
    for name in names:
        base = _SNAPSHOT_SUFFIX.sub("", name)
        if base != name:
            normalized.append(base)
        if not base.endswith("-latest"):
            normalized.append(base + "-latest")
    return names + normalized


class PriceTable:
    """Prices by model name, resolved once per (model, overrides) and then served from a dict."""

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self._prices = dict(prices)
        self._resolved: dict[tuple[str, ModelPrice | PriceOverrides | None], ModelPrice] = {}
        self._warned: set[str] = set()

    @classmethod
    def load(cls) -> PriceTable:
        """Build the table from the ``prices.json`` shipped in the package."""
        data = resources.files("proxy").joinpath("prices.json").read_bytes()
        return cls(_prices_decoder.decode(data))

    @property
    def prices(self) -> Mapping[str, ModelPrice]:
        """The table's entries, keyed by model name as the provider spells it."""
        return self._prices

    def __len__(self) -> int:
        return len(self._prices)

    def __contains__(self, model: object) -> bool:
        return model in self._prices

    def lookup(
        self, model: str, *, overrides: ModelPrice | PriceOverrides | None = None
    ) -> ModelPrice:
        """The price of ``model`` ("provider/name" or "name"), never raising.

        Resolution tries the full name, then the name without its provider prefix, then without a
        snapshot date suffix (``-2024-08-06``, ``-20250514``, ...). Every field set in
        ``overrides`` (a deployment's model_info) wins over the table entry, so an override
        naming only costs keeps the table's token limits. A model priced by neither the table nor
        the overrides costs 0 and is logged once per model name as a warning.
        """
        # Keyed by the override's value, not its id(): after a config reload a new override
        # object may reuse a freed object's id.
        key = (model, overrides)
        price = self._resolved.get(key)
        if price is None:
            price = self._resolve(model, overrides)
            if len(self._resolved) >= _MAX_CACHED:
                self._resolved.clear()
            self._resolved[key] = price
        return price

    def _resolve(self, model: str, overrides: ModelPrice | PriceOverrides | None) -> ModelPrice:
        changes = {} if overrides is None else _changes(overrides)
        base = next(
            (self._prices[name] for name in _candidates(model) if name in self._prices), None
        )
        if base is None and not changes.keys() & _COST_FIELDS:
            self._warn_unpriced(model)
        if not changes:
            return _FREE if base is None else base
        return msgspec.structs.replace(_FREE if base is None else base, **changes)

    def _warn_unpriced(self, model: str) -> None:
        if model in self._warned:
            return
        if len(self._warned) >= _MAX_CACHED:
            self._warned.clear()
        self._warned.add(model)
        logger.warning(
            "no price known for model %r: its cost counts as 0; set input_cost_per_token "
            "and output_cost_per_token in the deployment's model_info",
            model,
        )

"""Model prices: the table shipped in ``prices.json``, a user's price file, per-deployment
overrides, and cost maths.

Prices are list prices in USD per token (and, for the endpoints not billed per token, per
image, second of audio, character of speech or rerank query: ``UNIT_FIELDS``; an image's
price by quality and size is the entry ``<quality>/<size>/<model>``, then ``<size>/<model>``,
then the model's own, the dearest); every shipped entry names its ``source`` (the
provider's pricing page) and the date it was read (``source_date``). A user's file in LiteLLM's
``model_prices_and_context_window.json`` format (``TOLLWAY_PRICES_FILE``) is laid over the
shipped table. A model priced by none of these is *unpriced*: ``ModelPrice.priced`` is False,
its cost counts as 0, and admission refuses it to anyone with a budget (unless
``TOLLWAY_ALLOW_UNPRICED=1``), so a budget is never spent on a price nobody knows.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

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

# Bedrock model ids: a cross-region prefix (``us.``), a vendor (``anthropic.``) and a version
# (``-v1:0``) around the model's own name.
_BEDROCK_REGION = re.compile(r"^(?:us|eu|apac|global|us-gov|jp|au|ca)\.")
_BEDROCK_VERSION = re.compile(r"(?:-v\d+)?(?::\d+)?$")
_BEDROCK_VENDOR = re.compile(
    r"^(?:anthropic|meta|mistral|cohere|amazon|ai21|deepseek|openai|qwen)\."
)

PRICES_FILE_ENV = "TOLLWAY_PRICES_FILE"
ALLOW_UNPRICED_ENV = "TOLLWAY_ALLOW_UNPRICED"
# LiteLLM's variables: the map's address (a local file is read like TOLLWAY_PRICES_FILE) and
# "use the local copy" (Tollway never fetches prices, so it always does).
LITELLM_MAP_URL_ENV = "LITELLM_MODEL_COST_MAP_URL"
LITELLM_LOCAL_MAP_ENV = "LITELLM_LOCAL_MODEL_COST_MAP"

# Bare model names whose provider the table does not know, by name pattern (as LiteLLM
# infers them); the table's ``provider`` field is asked first.
_PROVIDER_PATTERNS: tuple[tuple[str, str], ...] = (
    ("claude-*", "anthropic"),
    ("command*", "cohere"),
    ("embed-*", "cohere"),
    ("rerank-*", "cohere"),
    ("gemini-*", "gemini"),
    ("gemma-*", "gemini"),
    ("text-embedding-00*", "gemini"),
    ("mistral-*", "mistral"),
    ("open-mistral-*", "mistral"),
    ("open-mixtral-*", "mistral"),
    ("codestral*", "mistral"),
    ("devstral*", "mistral"),
    ("ministral*", "mistral"),
    ("pixtral*", "mistral"),
    ("magistral*", "mistral"),
    ("grok-*", "xai"),
    ("deepseek-*", "deepseek"),
    ("sonar*", "perplexity"),
    ("gpt-*", "openai"),
    ("chatgpt-*", "openai"),
    ("o[0-9]*", "openai"),
    ("ft:*", "openai"),
    ("text-embedding-*", "openai"),
    ("text-moderation-*", "openai"),
    ("omni-moderation-*", "openai"),
    ("dall-e-*", "openai"),
    ("whisper-*", "openai"),
    ("tts-*", "openai"),
    ("davinci-*", "openai"),
    ("babbage-*", "openai"),
)

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
    # Unit prices of the endpoints not billed per token (LiteLLM's names): per image made,
    # per second of audio in, per character of speech out, per rerank query (search unit).
    output_cost_per_image: NonNegativeFloat | None = None
    input_cost_per_second: NonNegativeFloat | None = None
    input_cost_per_character: NonNegativeFloat | None = None
    input_cost_per_query: NonNegativeFloat | None = None
    # Where the price came from (a pricing page, a file, "model_info") and when it was read;
    # ``None`` when nothing priced the model.
    source: str | None = None
    source_date: str | None = None

    @property
    def priced(self) -> bool:
        return self.source is not None


class PriceFileError(ValueError):
    """A price file that cannot be read; the message names the file and the entry."""


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
    output_cost_per_image: NonNegativeFloat | None = None
    input_cost_per_second: NonNegativeFloat | None = None
    input_cost_per_character: NonNegativeFloat | None = None
    input_cost_per_query: NonNegativeFloat | None = None


_FREE = ModelPrice()
_NO_OVERRIDES = PriceOverrides()
_OVERRIDE_FIELDS = PriceOverrides.__struct_fields__
UNIT_FIELDS = (
    "output_cost_per_image",
    "input_cost_per_second",
    "input_cost_per_character",
    "input_cost_per_query",
)
_COST_FIELDS = frozenset(
    ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost", *UNIT_FIELDS)
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
        for name in _OVERRIDE_FIELDS
        if (value := getattr(overrides, name)) != getattr(unset, name)
    }


def _candidates(model: str) -> list[str]:
    # Exact names first (with and without each provider prefix), then Bedrock ids without
    # their region, version and vendor, then the same names without a snapshot suffix, then
    # that base as a "-latest" alias.
    names = [model]
    rest = model
    while "/" in rest:
        rest = rest.split("/", 1)[1]
        names.append(rest)
    if model.startswith("bedrock/") or _BEDROCK_VENDOR.match(_BEDROCK_REGION.sub("", rest)):
        # Bedrock's own price (``cohere.command-r-plus``) before the vendor's (``command-r-plus``).
        bare = _BEDROCK_REGION.sub("", rest)
        forms = (bare, bare.rsplit(":", 1)[0], _BEDROCK_VERSION.sub("", bare))
        names.extend(forms)
        names.extend(_BEDROCK_VENDOR.sub("", name) for name in forms)
    normalized: list[str] = []
    for name in names:
        base = _SNAPSHOT_SUFFIX.sub("", name)
        if base != name:
            normalized.append(base)
        if base.endswith("-latest"):
            normalized.append(base.removesuffix("-latest"))
        else:
            normalized.append(base + "-latest")
    return list(dict.fromkeys(names + normalized))


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _number(entry: Mapping[str, Any], name: str) -> float | None:
    value = entry.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def _litellm_entry(entry: Mapping[str, Any], source: str) -> ModelPrice | None:
    """One entry of LiteLLM's price map; None for an entry with neither token nor unit
    prices."""
    input_cost = _number(entry, "input_cost_per_token")
    output_cost = _number(entry, "output_cost_per_token")
    units = {name: _number(entry, name) for name in UNIT_FIELDS}
    if input_cost is None and output_cost is None and all(v is None for v in units.values()):
        return None
    cache_read = _number(entry, "cache_read_input_token_cost")
    max_input = _number(entry, "max_input_tokens")
    max_output = _number(entry, "max_output_tokens") or _number(entry, "max_tokens")
    provider = entry.get("litellm_provider")
    mode = entry.get("mode")
    return ModelPrice(
        input_cost_per_token=input_cost or 0.0,
        output_cost_per_token=output_cost or 0.0,
        cache_read_input_token_cost=cache_read,
        max_input_tokens=int(max_input) if max_input is not None else None,
        max_output_tokens=int(max_output) if max_output is not None else None,
        provider=provider if isinstance(provider, str) else None,
        mode=mode if isinstance(mode, str) else "chat",
        source=source,
        output_cost_per_image=units["output_cost_per_image"],
        input_cost_per_second=units["input_cost_per_second"],
        input_cost_per_character=units["input_cost_per_character"],
        input_cost_per_query=units["input_cost_per_query"],
    )


def read_price_file(path: str) -> dict[str, ModelPrice]:
    """A price file in LiteLLM's ``model_prices_and_context_window.json`` format (extra
    fields ignored, entries with neither token nor unit prices skipped)."""
    try:
        raw = msgspec.json.decode(Path(path).read_bytes())
    except OSError as exc:
        raise PriceFileError(f"cannot read price file {path}: {exc.strerror}") from None
    except msgspec.DecodeError as exc:
        raise PriceFileError(f"price file {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise PriceFileError(f"price file {path}: the top level must be an object")
    source = f"file {path}"
    out: dict[str, ModelPrice] = {}
    for name, entry in raw.items():
        if name == "sample_spec" or not isinstance(entry, dict):
            continue
        price = _litellm_entry(entry, source)
        if price is not None:
            out[str(name)] = price
    return out


def price_file_path(environ: Mapping[str, str]) -> str | None:
    """The user's price file: ``TOLLWAY_PRICES_FILE``, else LiteLLM's map address when it is
    a local file (``file://`` or a path); None when neither is set."""
    path = environ.get(PRICES_FILE_ENV) or None
    if path is None:
        url = environ.get(LITELLM_MAP_URL_ENV) or ""
        if url.startswith("file://"):
            path = url.removeprefix("file://")
        elif url and "://" not in url:
            path = url
        elif url:
            logger.warning(
                "%s=%s is not fetched (Tollway never downloads prices); save the file and set "
                "%s to its path",
                LITELLM_MAP_URL_ENV,
                url,
                PRICES_FILE_ENV,
            )
    return path


@functools.cache
def _shipped() -> dict[str, ModelPrice]:
    # Read once per process; the entries are frozen.
    data = (Path(__file__).resolve().parent / "prices.json").read_bytes()
    return _prices_decoder.decode(data)


def infer_provider(name: str) -> str | None:
    """The provider of a bare model name (``claude-3-opus-20240229`` → ``anthropic``): the
    shipped table's entry first, then LiteLLM's name patterns; None when unknown."""
    table = _shipped()
    for candidate in _candidates(name):
        price = table.get(candidate)
        if price is not None and price.provider:
            return price.provider
    lowered = name.lower()
    for pattern, provider in _PROVIDER_PATTERNS:
        if fnmatch.fnmatchcase(lowered, pattern):
            return provider
    return None


class PriceTable:
    """Prices by model name, resolved once per (model, overrides) and then served from a dict."""

    def __init__(self, prices: Mapping[str, ModelPrice], *, allow_unpriced: bool = False) -> None:
        self._prices = dict(prices)
        self._resolved: dict[tuple[str, ModelPrice | PriceOverrides | None], ModelPrice] = {}
        self._warned: set[str] = set()
        # TOLLWAY_ALLOW_UNPRICED=1: an unpriced model is served (as free) to budgeted callers.
        self.allow_unpriced = allow_unpriced

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> PriceTable:
        """The shipped ``prices.json``, with the user's price file (``TOLLWAY_PRICES_FILE``)
        laid over it; raises ``PriceFileError`` for a file that cannot be read."""
        env: Mapping[str, str] = {} if environ is None else environ
        prices = dict(_shipped())
        path = price_file_path(env)
        if path is not None:
            prices.update(read_price_file(path))
        return cls(prices, allow_unpriced=_truthy(env.get(ALLOW_UNPRICED_ENV)))

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
        if changes.keys() & _COST_FIELDS:
            changes["source"] = "model_info"
            changes["source_date"] = None
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
            "no price known for model %r: calls from callers with a budget are refused "
            "(TOLLWAY_ALLOW_UNPRICED=1 serves it as free); set input_cost_per_token and "
            "output_cost_per_token in the deployment's model_info, model_info.base_model, "
            "or an entry in TOLLWAY_PRICES_FILE",
            model,
        )


def unpriced_message(model: str) -> str:
    """The 400 a budgeted caller gets for a model nobody priced."""
    return (
        f"model {model!r} has no known price and this call is under a budget: price it with "
        "input_cost_per_token and output_cost_per_token in the deployment's model_info (or "
        "model_info.base_model naming a priced model, or an entry in TOLLWAY_PRICES_FILE); "
        "TOLLWAY_ALLOW_UNPRICED=1 serves unpriced models as free"
    )

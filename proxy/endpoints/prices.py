"""Unit prices of the endpoints not billed per token, in the units their providers bill:
per image (by size and quality), per second of audio in, per character of speech out, per
rerank query (Cohere's search unit: one query over at most 100 documents).

The prices live in the price table (``prices.json``, each entry with its ``source`` and
``source_date``; a user's ``TOLLWAY_PRICES_FILE`` laid over it) under LiteLLM's field names
(``output_cost_per_image``, ``input_cost_per_second``, ``input_cost_per_character``,
``input_cost_per_query``); a deployment's ``model_info`` with the same names wins. An image's
price is the table's ``<quality>/<size>/<model>`` entry, else ``<size>/<model>``, else the
model's own (its dearest image). A model priced by neither costs 0 and is *unpriced*: a caller
with a budget is refused it, as on chat (unless ``TOLLWAY_ALLOW_UNPRICED=1``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

from ..pricing import ModelPrice
from ..upstream.deployment import Deployment

log = logging.getLogger("tollway.pricing")

PriceOf = Callable[[Deployment, str], ModelPrice]


class UnitPrice(NamedTuple):
    """The price of one unit, and whether anything priced it (False: it counts as 0)."""

    value: float
    priced: bool


class UnitPrices:
    """Unit prices by deployment and model, read through the gateway's price lookup (the
    table with the deployment's model_info laid over it); warns once per unpriced model."""

    def __init__(self, price_of: PriceOf) -> None:
        self._price_of = price_of
        self._warned: set[str] = set()

    def _unit(
        self, deployment: Deployment, model: str, value: float | None, unit: str
    ) -> UnitPrice:
        if value is not None:
            return UnitPrice(value, True)
        name = f"{deployment.provider}/{model}"
        if name not in self._warned and len(self._warned) < 4096:
            self._warned.add(name)
            log.warning(
                "no price per %s known for model %r: its cost counts as 0 and callers with a "
                "budget are refused it; set it in the deployment's model_info",
                unit,
                name,
            )
        return UnitPrice(0.0, False)

    def per_image(
        self, deployment: Deployment, model: str, size: str | None, quality: str | None
    ) -> UnitPrice:
        """The price of one image of ``size`` and ``quality`` (the dearest when unknown)."""
        if quality in (None, "auto") and model.rpartition("/")[2].startswith("dall-e-3"):
            quality = "standard"  # DALL-E 3's default
        variant = "/".join(part for part in (quality, size) if part and part != "auto")
        name = f"{variant}/{model}" if variant else model
        price = self._price_of(deployment, name)
        return self._unit(deployment, model, price.output_cost_per_image, "image")

    def per_second(self, deployment: Deployment, model: str) -> UnitPrice:
        price = self._price_of(deployment, model)
        return self._unit(deployment, model, price.input_cost_per_second, "second")

    def per_character(self, deployment: Deployment, model: str) -> UnitPrice:
        price = self._price_of(deployment, model)
        return self._unit(deployment, model, price.input_cost_per_character, "character")

    def per_query(self, deployment: Deployment, model: str) -> UnitPrice:
        price = self._price_of(deployment, model)
        return self._unit(deployment, model, price.input_cost_per_query, "query")

    def per_token(self, deployment: Deployment, model: str) -> UnitPrice:
        """The input token price (moderations)."""
        price = self._price_of(deployment, model)
        return UnitPrice(price.input_cost_per_token, price.priced)

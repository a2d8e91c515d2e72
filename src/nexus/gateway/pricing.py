"""Token usage and its cost: exact money from a pricing table shipped as data.

Money is :class:`~decimal.Decimal`, computed in a context that *traps* inexact
results, so a cost is either exact or an error, never a silently rounded
float. Prices are per million tokens and live in ``pricing.json`` next to this
module; a deployment passes its own :class:`PricingTable` (or merges one over
the default) when its contract prices differ.

A call's cost is::

    (prompt - cached - cache_write) * input
    + cached * cached_input
    + cache_write * cache_write_price   (the input price when the table has none)
    + completion * output                all over 1,000,000

Reasoning tokens are part of ``completion_tokens`` and are billed as output.

Example:
    >>> from nexus.gateway.base import Usage
    >>> cost_of(Usage(prompt_tokens=1000, completion_tokens=100), "openai:gpt-4.1-mini")
    Decimal('0.00056000')
"""

from __future__ import annotations

import decimal
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from nexus.domain.budget import exact_context
from nexus.domain.errors import NotFoundError, UserError
from nexus.gateway.base import ModelRequest, ToolCall, Usage

__all__ = [
    "ModelPrice",
    "PricingTable",
    "cost_of",
    "default_pricing",
    "estimate_tokens",
    "estimate_usage",
    "lookup_model",
]

T = TypeVar("T")

_MILLION_EXP = -6
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


#: The context of :func:`cost_of`'s arithmetic, shared (its methods take it explicitly).
_MONEY = exact_context()


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Prices per million tokens."""

    input: Decimal
    cached_input: Decimal
    output: Decimal
    cache_write: Decimal | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ModelPrice:
        """From ``{"input": "0.40", "cached_input": "0.10", "output": "1.60"}``.

        Prices are read from strings (or ints) so no binary float enters the table.

        Raises:
            UserError: a price is missing, negative, or a float.
        """

        def price(name: str, required: bool = True) -> Decimal | None:
            value = data.get(name)
            if value is None:
                if required:
                    raise UserError(f"price '{name}' is missing")
                return None
            if isinstance(value, float):
                raise UserError(f"price '{name}' must be a string or integer, not a float")
            try:
                amount = Decimal(str(value))
            except decimal.InvalidOperation:
                raise UserError(f"price '{name}' is not a number: {value!r}") from None
            if amount < 0 or not amount.is_finite():
                raise UserError(f"price '{name}' must be a non-negative number")
            return amount

        cached = price("cached_input", required=False)
        base = price("input")
        assert base is not None
        output = price("output")
        assert output is not None
        return cls(
            input=base,
            cached_input=base if cached is None else cached,
            output=output,
            cache_write=price("cache_write", required=False),
        )


@dataclass(frozen=True, slots=True)
class PricingTable:
    """Prices by ``provider:model``; ``provider:*`` prices a whole provider.

    Lookups try the exact name, then the name without a date or ``-latest``
    suffix (``claude-sonnet-4-5-20250929`` -> ``claude-sonnet-4-5``), then an
    endpoint wildcard (``openai_compatible:lab/*``), then the provider's
    wildcard (``ollama:*``).
    """

    prices: Mapping[str, ModelPrice]
    currency: str = "USD"
    as_of: str = ""
    #: what :meth:`price_for` found per model name (a table never changes)
    _found: dict[str, ModelPrice | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PricingTable:
        """From the ``pricing.json`` shape: ``{"currency", "as_of", "models": {name: prices}}``.

        Raises:
            UserError: the table is malformed (the message names the model).
        """
        models = data.get("models")
        if not isinstance(models, Mapping):
            raise UserError("a pricing table needs a 'models' mapping")
        prices: dict[str, ModelPrice] = {}
        for name, entry in models.items():
            if ":" not in name:
                raise UserError(f"pricing: model '{name}' must be written provider:model")
            if not isinstance(entry, Mapping):
                raise UserError(f"pricing: '{name}' must map price names to amounts")
            try:
                prices[name] = ModelPrice.from_mapping(entry)
            except UserError as exc:
                raise UserError(f"pricing: '{name}': {exc.message}") from None
        return cls(
            prices=prices,
            currency=str(data.get("currency", "USD")),
            as_of=str(data.get("as_of", "")),
        )

    @classmethod
    def load(cls, path: Path) -> PricingTable:
        """Read a table from a JSON file."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read pricing table {path}: {exc}") from None
        return cls.from_mapping(data)

    def merged(self, overrides: PricingTable) -> PricingTable:
        """This table with ``overrides``' entries replacing or adding to it."""
        return PricingTable(
            prices={**self.prices, **overrides.prices},
            currency=overrides.currency,
            as_of=overrides.as_of or self.as_of,
        )

    def price_for(self, model: str) -> ModelPrice | None:
        """The price of ``model`` (``provider:model``), or None when the table has none."""
        try:
            return self._found[model]
        except KeyError:
            found = self._found[model] = lookup_model(self.prices, model)
            return found


def lookup_model(entries: Mapping[str, T], model: str) -> T | None:
    """The entry for ``model`` in a table keyed by ``provider:model`` patterns.

    Tried in order: the exact name; the name without a date suffix
    (``-2025-04-14``, ``-latest``); ``<endpoint>/*`` for
    ``openai_compatible:<endpoint>/<model>``; ``provider:*``.
    """
    found = entries.get(model)
    if found is not None:
        return found
    provider, _, name = model.partition(":")
    bare = _DATE_SUFFIX.sub("", name)
    if bare != name:
        found = entries.get(f"{provider}:{bare}")
        if found is not None:
            return found
    if "/" in name:
        found = entries.get(f"{provider}:{name.partition('/')[0]}/*")
        if found is not None:
            return found
    return entries.get(f"{provider}:*")


@cache
def default_pricing() -> PricingTable:
    """The table shipped with Nexus (``nexus/gateway/pricing.json``)."""
    text = resources.files("nexus.gateway").joinpath("pricing.json").read_text(encoding="utf-8")
    return PricingTable.from_mapping(json.loads(text))


def cost_of(usage: Usage, model: str, table: PricingTable | None = None) -> Decimal:
    """The exact cost of ``usage`` on ``model``, in the table's currency.

    Args:
        usage: the tokens of one call (or a sum of calls on one model).
        model: ``provider:model``.
        table: prices to use (default: :func:`default_pricing`).

    Raises:
        NotFoundError: the table has no price for ``model``.
    """
    price = (table or default_pricing()).price_for(model)
    if price is None:
        raise NotFoundError(f"no price for model '{model}' in the pricing table")
    cached = usage.cached_tokens
    written = usage.cache_write_tokens
    uncached = max(0, usage.prompt_tokens - cached - written)
    write_price = price.input if price.cache_write is None else price.cache_write
    # the shared exact context's methods: no context is built per call (the hot path)
    mul, add = _MONEY.multiply, _MONEY.add
    total = add(
        add(mul(uncached, price.input), mul(cached, price.cached_input)),
        add(mul(written, write_price), mul(usage.completion_tokens, price.output)),
    )
    return _MONEY.scaleb(total, _MILLION_EXP)


# -- estimates ----------------------------------------------------------------------------

_CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """A rough token count: one token per four characters, rounded up."""
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def estimate_usage(request: ModelRequest, text: str, tool_calls: Iterable[ToolCall] = ()) -> Usage:
    """Usage guessed from the characters sent and received, marked ``estimated``.

    Used only when a provider reports no usage at all (an OpenAI-compatible
    server that ignores ``stream_options``); the guess errs on the high side
    for English text and code.
    """
    prompt = sum(estimate_tokens(m.content) + 4 for m in request.messages)
    prompt += sum(estimate_tokens(json.dumps(t.to_dict())) for t in request.tools)
    completion = estimate_tokens(text) + sum(
        estimate_tokens(c.name) + estimate_tokens(c.arguments) for c in tool_calls
    )
    return Usage(prompt_tokens=prompt, completion_tokens=completion, estimated=True)

"""Model routing per task, and residency: which models may answer a call, in which order.

An agent declares its model, its fallbacks and optionally a tier map
(``{small: m, medium: m, large: m}``). A task may ask for a
:class:`RoutePolicy` -- a complexity tier, a cost ceiling per call, a latency
limit -- and a deployment may impose a :class:`Residency`. :func:`choose_models`
turns all of it into a :class:`ModelChoice`: the fallback chain to try, one
readable sentence saying why (shown in the ``attempt.started`` event), and
every candidate's verdict. It is pure and deterministic, so replay re-derives
the same choice and audit can explain it.

Facts about models (tier, typical latency, context window) live in
``models.json`` next to ``pricing.json`` and are read into a
:class:`ModelCatalog`; a deployment may merge its own over them.

Prices come from the shipped table unless a deployment overrides them: the
engine records :func:`price_overrides` in ``run.started`` and the decider
rebuilds the table with :func:`pricing_with`, so a replay estimates with the
prices the run had.

Residency is checked three times: :func:`choose_models` drops models whose
provider is not allowed; :class:`~nexus.gateway.sdk.SDKProviders` checks
the provider *and the endpoint's host* with :meth:`Residency.check_endpoint`
before it builds a client, so a denied call fails with ``policy_denied`` before
a byte leaves the machine (in a fallback chain, whose routes are built when
first reached, that route is skipped and recorded, and the next one tried:
see :class:`~nexus.gateway.resilience.FallbackProvider`); and the SDK clients
it builds check the host of every request they send
(:mod:`nexus.gateway.egress`) and follow no redirect, so an allowed endpoint
cannot send the request on to an unlisted host.

Example:
    >>> choice = choose_models(
    ...     ("openai:gpt-4.1", "openai:gpt-4.1-mini", "openai:gpt-4.1-nano"),
    ...     RoutePolicy(tier="medium"),
    ...     prompt_tokens=1000,
    ...     completion_tokens=100,
    ... )
    >>> choice.chain
    ('openai:gpt-4.1-mini', 'openai:gpt-4.1')
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from nexus.domain.errors import PolicyDenied, UserError
from nexus.gateway.base import Usage, split_model
from nexus.gateway.pricing import ModelPrice, PricingTable, cost_of, default_pricing, lookup_model

__all__ = [
    "LOCAL_PREFIXES",
    "OFFLINE_PREFIXES",
    "TIERS",
    "Considered",
    "ModelCatalog",
    "ModelChoice",
    "ModelInfo",
    "Residency",
    "RoutePolicy",
    "Tier",
    "choose_models",
    "default_catalog",
    "price_overrides",
    "pricing_with",
]

Tier = Literal["small", "medium", "large"]
#: Tiers from least to most capable.
TIERS: tuple[Tier, ...] = ("small", "medium", "large")
_RANK = {tier: rank for rank, tier in enumerate(TIERS)}
#: Providers that send nothing anywhere: always allowed, whatever the residency.
OFFLINE_PREFIXES = ("scripted", "cassette", "replay")
#: Providers that run on hardware the deployment controls: unpriced means free.
LOCAL_PREFIXES = ("ollama", "vllm", "openai_compatible", "scripted", "cassette", "replay")
_NO_TIERS: Mapping[str, str] = MappingProxyType({})


def _tier(value: object, where: str) -> Tier:
    if value not in _RANK:
        raise UserError(f"{where}: 'tier' must be one of {', '.join(TIERS)}, not {value!r}")
    return value


def _count(value: object, where: str, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{where}: '{field}' must be an integer >= {minimum}, not {value!r}")
    return value


def _money_text(amount: Decimal) -> str:
    """``0.00056000`` -> ``0.00056``; never scientific notation."""
    text = format(amount.normalize(), "f")
    return "0" if text in ("-0", "0") else text


# -- the catalog ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What routing knows of a model: its tier, typical latency and context window."""

    tier: Tier
    latency_ms: int
    context: int

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> ModelInfo:
        """From ``{"tier": "medium", "latency_ms": 5000, "context": 128000}``.

        Raises:
            UserError: a field is missing or wrong (the message names the model and field).
        """
        where = f"model catalog: '{name}'"
        unknown = sorted(set(data) - {"tier", "latency_ms", "context"})
        if unknown:
            raise UserError(f"{where}: unknown field(s) {', '.join(unknown)}")
        return cls(
            tier=_tier(data.get("tier"), where),
            latency_ms=_count(data.get("latency_ms"), where, "latency_ms", 0),
            context=_count(data.get("context"), where, "context", 1),
        )


@dataclass(frozen=True, slots=True)
class ModelCatalog:
    """Model facts by ``provider:model``; ``provider:*`` covers a whole provider.

    Lookups follow :meth:`~nexus.gateway.pricing.PricingTable.price_for`: the
    exact name, the name without a date or ``-latest`` suffix, an endpoint
    wildcard (``openai_compatible:lab/*``), then the provider's wildcard.
    """

    models: Mapping[str, ModelInfo]
    as_of: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ModelCatalog:
        """From the ``models.json`` shape: ``{"as_of", "models": {name: facts}}``.

        Raises:
            UserError: the catalog is malformed (the message names the model and field).
        """
        models = data.get("models")
        if not isinstance(models, Mapping):
            raise UserError("a model catalog needs a 'models' mapping")
        infos: dict[str, ModelInfo] = {}
        for name, entry in models.items():
            if ":" not in name:
                raise UserError(f"model catalog: model '{name}' must be written provider:model")
            if not isinstance(entry, Mapping):
                raise UserError(f"model catalog: '{name}' must map tier, latency_ms and context")
            infos[name] = ModelInfo.from_mapping(name, entry)
        return cls(models=infos, as_of=str(data.get("as_of", "")))

    @classmethod
    def load(cls, path: Path) -> ModelCatalog:
        """Read a catalog from a JSON file."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read model catalog {path}: {exc}") from None
        if not isinstance(data, Mapping):
            raise UserError(f"model catalog {path} must hold a JSON object")
        return cls.from_mapping(data)

    def merged(self, overrides: ModelCatalog) -> ModelCatalog:
        """This catalog with ``overrides``' entries replacing or adding to it."""
        return ModelCatalog({**self.models, **overrides.models}, overrides.as_of or self.as_of)

    def info_for(self, model: str) -> ModelInfo | None:
        """The facts about ``model`` (``provider:model``), or None when the catalog has none."""
        return lookup_model(self.models, model)


@cache
def default_catalog() -> ModelCatalog:
    """The catalog shipped with Nexus (``nexus/gateway/models.json``)."""
    text = resources.files("nexus.gateway").joinpath("models.json").read_text(encoding="utf-8")
    return ModelCatalog.from_mapping(json.loads(text))


# -- prices a run routes with ----------------------------------------------------------------


def _price_json(price: ModelPrice) -> dict[str, str]:
    data = {
        "input": _money_text(price.input),
        "cached_input": _money_text(price.cached_input),
        "output": _money_text(price.output),
    }
    if price.cache_write is not None:
        data["cache_write"] = _money_text(price.cache_write)
    return data


def price_overrides(table: PricingTable | None) -> dict[str, Any] | None:
    """How ``table`` differs from the shipped prices, as plain JSON; None when it does not.

    ``{"models": {name: prices}}`` holds the entries ``table`` changes or adds
    (in the ``pricing.json`` shape), ``"removed"`` the shipped entries it lacks.
    Keys are sorted, so equal tables give equal JSON. Currency and date are left
    out: routing compares amounts only.

    Example:
        >>> cheap = ModelPrice(input=Decimal("0.5"), cached_input=Decimal("0.5"), output=Decimal(2))
        >>> price_overrides(default_pricing().merged(PricingTable({"openai:gpt-4.1": cheap})))
        {'models': {'openai:gpt-4.1': {'input': '0.5', 'cached_input': '0.5', 'output': '2'}}}
    """
    shipped = default_pricing()
    if table is None or table is shipped:
        return None
    changed = {
        name: _price_json(price)
        for name, price in sorted(table.prices.items())
        if shipped.prices.get(name) != price
    }
    removed = sorted(shipped.prices.keys() - table.prices.keys())
    if not changed and not removed:
        return None
    data: dict[str, Any] = {"models": changed}
    if removed:
        data["removed"] = removed
    return data


def pricing_with(overrides: Mapping[str, Any]) -> PricingTable:
    """The shipped prices with ``overrides`` (from :func:`price_overrides`) applied.

    Raises:
        UserError: ``overrides`` is malformed (the message names the model).
    """
    shipped = default_pricing()
    removed = overrides.get("removed", ())
    if isinstance(removed, str) or not isinstance(removed, Sequence):
        raise UserError("pricing overrides: 'removed' must be a list of model names")
    changed = PricingTable.from_mapping({"models": overrides.get("models", {})})
    gone = set(removed)
    kept = {name: price for name, price in shipped.prices.items() if name not in gone}
    return PricingTable(
        prices={**kept, **changed.prices}, currency=shipped.currency, as_of=shipped.as_of
    )


# -- policies -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """What a task asks of its model: a tier, a cost ceiling, a latency limit (all optional).

    Attributes:
        tier: the least capable tier that will do; routing then prefers the
            cheapest model of that tier or above.
        max_cost: the estimated cost of one call may not exceed this (USD).
        max_latency_ms: the catalog's typical latency may not exceed this.
    """

    tier: Tier | None = None
    max_cost: Decimal | None = None
    max_latency_ms: int | None = None

    def __post_init__(self) -> None:
        if self.tier is not None:
            _tier(self.tier, "route policy")
        if self.max_cost is not None and (
            not isinstance(self.max_cost, Decimal)
            or not self.max_cost.is_finite()
            or self.max_cost < 0
        ):
            raise UserError(
                f"route policy: 'max_cost' must be a non-negative amount, not {self.max_cost!r}"
            )
        if self.max_latency_ms is not None:
            _count(self.max_latency_ms, "route policy", "max_latency_ms", 1)

    @property
    def constrained(self) -> bool:
        """True when any of tier, cost ceiling or latency limit is set."""
        return not (self.tier is None and self.max_cost is None and self.max_latency_ms is None)

    def to_dict(self) -> dict[str, Any]:
        """JSON with only the fields set; money as a normalised string (no floats)."""
        data: dict[str, Any] = {}
        if self.tier is not None:
            data["tier"] = self.tier
        if self.max_cost is not None:
            data["max_cost"] = _money_text(self.max_cost)
        if self.max_latency_ms is not None:
            data["max_latency_ms"] = self.max_latency_ms
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoutePolicy:
        """The inverse of :meth:`to_dict`; ``max_cost`` is read from a string or an integer.

        Raises:
            UserError: an unknown field, a float or non-number cost, a bad tier or limit.
        """
        unknown = sorted(set(data) - {"tier", "max_cost", "max_latency_ms"})
        if unknown:
            raise UserError(f"route policy: unknown field(s) {', '.join(unknown)}")
        raw = data.get("max_cost")
        cost: Decimal | None = None
        if raw is not None:
            if isinstance(raw, bool | float) or not isinstance(raw, str | int):
                raise UserError(
                    f"route policy: 'max_cost' must be a string or integer, not {raw!r}"
                )
            try:
                cost = Decimal(str(raw).strip())
            except decimal.InvalidOperation:
                raise UserError(f"route policy: 'max_cost' is not a number: {raw!r}") from None
        return cls(tier=data.get("tier"), max_cost=cost, max_latency_ms=data.get("max_latency_ms"))


@dataclass(frozen=True, slots=True)
class Residency:
    """Where model calls may go. Non-strict (the default) allows everything.

    In strict mode a call is allowed only when its provider is listed in
    ``providers`` *and* the endpoint's host is listed in ``hosts`` (deny by
    default: an empty list allows nothing). ``scripted:`` and ``cassette:``
    (``replay:``) models are always allowed: they answer offline and send nothing.

    Attributes:
        strict: enforce the lists.
        providers: provider prefixes (``ollama``) or ``provider:model`` globs
            (``openai_compatible:local/*``, ``openai:gpt-4.1*``). An
            ``openai_compatible:<name>`` entry covers every model of that endpoint.
        hosts: hostnames with an optional ``:port``, globs allowed
            (``*.internal.example``, ``127.0.0.1:11434``, ``[::1]``). Without a
            port any port matches.
    """

    strict: bool = False
    providers: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in ("providers", "hosts"):
            entries = getattr(self, field)
            if isinstance(entries, str) or not all(isinstance(e, str) and e for e in entries):
                raise UserError(f"residency: '{field}' must be a list of non-empty strings")
        # canonical: equal policies serialise equally (the plan stores them)
        object.__setattr__(self, "providers", tuple(sorted(set(self.providers))))
        object.__setattr__(self, "hosts", tuple(sorted({h.lower() for h in self.hosts})))

    def denies(self, model: str) -> str | None:
        """Why ``model``'s provider may not be used, or None when it may.

        This checks the provider only; :meth:`check_endpoint` adds the host.

        Raises:
            UserError: ``model`` is not written ``provider:model`` (strict mode).
        """
        if not self.strict:
            return None
        provider, name = split_model(model)
        if provider in OFFLINE_PREFIXES:
            return None
        endpoint = f"{provider}:{name.partition('/')[0]}"
        for entry in self.providers:
            if ":" not in entry:
                if entry == provider:
                    return None
            elif fnmatchcase(model, entry) or (
                provider == "openai_compatible" and entry == endpoint
            ):
                return None
        return f"provider not allowed; allowed: {_listing(self.providers)}"

    def check_model(self, model: str) -> None:
        """Raise unless ``model``'s provider is allowed.

        Raises:
            PolicyDenied: the provider is not in the allow-list.
        """
        reason = self.denies(model)
        if reason is not None:
            raise PolicyDenied(f"residency: model '{model}' is denied: {reason}")

    def check_endpoint(self, model: str, base_url: str) -> None:
        """Raise unless ``model`` may be sent to ``base_url``; call before connecting.

        Raises:
            PolicyDenied: the provider or the host is not allowed (the message
                names the model, the host and the allow-list).
        """
        if not self.strict or split_model(model)[0] in OFFLINE_PREFIXES:
            return
        self.check_model(model)
        denial = self.host_denial(base_url)
        if denial is not None:
            raise PolicyDenied(f"residency: model '{model}' is denied: {denial}")

    def host_denial(self, url: str) -> str | None:
        """Why a request to ``url`` may not leave the machine, or None when it may.

        This checks the host only (and allows everything when not strict); the
        SDK clients call it for every request they send, redirects included.

        Example:
            >>> Residency(strict=True, hosts=("gpu.lab",)).host_denial("http://evil.example/v1")
            'host evil.example:80 is not allowed (allowed hosts: gpu.lab)'
        """
        if not self.strict:
            return None
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError:
            host, port = None, None
        if not host:
            return f"endpoint '{url}' has no valid host (allowed hosts: {_listing(self.hosts)})"
        port = port or {"https": 443, "http": 80}.get(parts.scheme.lower())
        if any(_host_matches(entry, host, port) for entry in self.hosts):
            return None
        shown = f"[{host}]" if ":" in host else host
        shown = f"{shown}:{port}" if port else shown
        return f"host {shown} is not allowed (allowed hosts: {_listing(self.hosts)})"

    def to_dict(self) -> dict[str, Any]:
        return {"strict": self.strict, "providers": list(self.providers), "hosts": list(self.hosts)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Residency:
        """The inverse of :meth:`to_dict` (missing fields take their defaults).

        Raises:
            UserError: an unknown field or a value of the wrong type.
        """
        unknown = sorted(set(data) - {"strict", "providers", "hosts"})
        if unknown:
            raise UserError(f"residency: unknown field(s) {', '.join(unknown)}")
        strict = data.get("strict", False)
        if not isinstance(strict, bool):
            raise UserError(f"residency: 'strict' must be true or false, not {strict!r}")
        lists: dict[str, tuple[str, ...]] = {}
        for field in ("providers", "hosts"):
            value = data.get(field, ())
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise UserError(f"residency: '{field}' must be a list of non-empty strings")
            lists[field] = tuple(value)
        return cls(strict=strict, providers=lists["providers"], hosts=lists["hosts"])


def _listing(entries: Iterable[str]) -> str:
    return ", ".join(entries) or "none"


def _host_matches(entry: str, host: str, port: int | None) -> bool:
    """``entry`` is ``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address."""
    want_port: str | None = None
    if entry.startswith("["):
        pattern, _, rest = entry[1:].partition("]")
        if rest.startswith(":"):
            want_port = rest[1:]
    elif entry.count(":") == 1:
        pattern, _, want_port = entry.partition(":")
    else:
        pattern = entry
    if want_port is not None and not fnmatchcase(str(port), want_port):
        return False
    return fnmatchcase(host.lower(), pattern)


# -- choosing -------------------------------------------------------------------------------

Verdict = Literal["chosen", "fallback", "excluded"]


@dataclass(frozen=True, slots=True)
class Considered:
    """One candidate model and what routing made of it."""

    model: str
    verdict: Verdict
    reason: str
    est_cost: Decimal | None
    latency_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "verdict": self.verdict,
            "reason": self.reason,
            "est_cost": None if self.est_cost is None else _money_text(self.est_cost),
            "latency_ms": self.latency_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Considered:
        verdict = data["verdict"]
        if verdict not in ("chosen", "fallback", "excluded"):
            raise UserError(f"unknown routing verdict {verdict!r}")
        cost, latency = data.get("est_cost"), data.get("latency_ms")
        return cls(
            model=str(data["model"]),
            verdict=verdict,
            reason=str(data["reason"]),
            est_cost=None if cost is None else Decimal(str(cost)),
            latency_ms=None if latency is None else int(latency),
        )


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The chain to try (first = chosen), why, and every candidate's verdict."""

    chain: tuple[str, ...]
    why: str
    considered: tuple[Considered, ...]

    @property
    def model(self) -> str:
        """The chosen model (the head of the chain)."""
        return self.chain[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain": list(self.chain),
            "why": self.why,
            "considered": [c.to_dict() for c in self.considered],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelChoice:
        return cls(
            chain=tuple(str(m) for m in data["chain"]),
            why=str(data["why"]),
            considered=tuple(Considered.from_dict(c) for c in data["considered"]),
        )


@dataclass(frozen=True, slots=True)
class _Facts:
    cost: Decimal | None
    info: ModelInfo | None

    @property
    def latency_ms(self) -> int | None:
        return None if self.info is None else self.info.latency_ms

    def text(self) -> str:
        cost = "no price" if self.cost is None else f"est ${_money_text(self.cost)}/call"
        latency = "latency unknown" if self.info is None else _latency(self.info.latency_ms)
        return f"{cost}, {latency}"


def _latency(ms: int) -> str:
    return f"~{ms} ms" if ms < 1000 else f"~{ms / 1000:g} s"


def _facts(model: str, usage: Usage, pricing: PricingTable, catalog: ModelCatalog) -> _Facts:
    cost: Decimal | None = None
    if pricing.price_for(model) is not None:
        cost = cost_of(usage, model, pricing)
    elif split_model(model)[0] in LOCAL_PREFIXES:
        cost = Decimal(0)
    return _Facts(cost, catalog.info_for(model))


def choose_models(
    candidates: Sequence[str],
    policy: RoutePolicy,
    *,
    tiers: Mapping[str, str] = _NO_TIERS,
    pricing: PricingTable | None = None,
    catalog: ModelCatalog | None = None,
    residency: Residency | None = None,
    prompt_tokens: int,
    completion_tokens: int,
) -> ModelChoice:
    """Choose the models to try for one call, in order, and say why.

    Args:
        candidates: the agent's model, then its declared fallbacks, in order.
        policy: what the task asks for.
        tiers: the agent's tier map (``{"small": m, ...}``); its models join the
            candidates (in tier order), and ``tiers[policy.tier]`` leads when set.
        pricing: prices for cost estimates (default: :func:`default_pricing`).
        catalog: tiers and latencies (default: :func:`default_catalog`).
        residency: where calls may go (default: anywhere).
        prompt_tokens: the estimated input tokens of the call.
        completion_tokens: the estimated output tokens of the call.

    Without tier, cost or latency constraints the chain is the candidates in
    declared order. With a tier ``T`` the chain is ``tiers[T]`` (if any), then
    every model whose catalog tier is ``T`` or above, cheapest first (unpriced
    local models cost 0; other unpriced models go last), ties in declared
    order. Cost ceiling, latency limit and residency then filter the chain.

    Raises:
        PolicyDenied: no model is left and residency excluded at least one.
        UserError: no model is left otherwise, no candidates, a malformed model
            name, an unknown tier key or negative token counts.
    """
    pricing = pricing or default_pricing()
    catalog = catalog or default_catalog()
    residency = residency or Residency()
    for key in tiers:
        if key not in _RANK:
            raise UserError(f"tier map: unknown tier '{key}' (tiers: {', '.join(TIERS)})")
    if prompt_tokens < 0 or completion_tokens < 0:
        raise UserError("routing: token estimates may not be negative")
    pool = tuple(dict.fromkeys([*candidates, *(tiers[t] for t in TIERS if t in tiers)]))
    if not pool:
        raise UserError("routing: no candidate models (the agent names no model)")
    usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    facts = {model: _facts(model, usage, pricing, catalog) for model in pool}
    lead = tiers.get(policy.tier) if policy.tier is not None else None

    excluded: dict[str, str] = {}
    residency_denied = False
    for model in pool:
        denial = residency.denies(model)
        reason = f"residency: {denial}" if denial else _filter(model, facts[model], policy, lead)
        if reason is not None:
            excluded[model] = reason
            residency_denied = residency_denied or denial is not None
    eligible = [m for m in pool if m not in excluded]
    if policy.tier is not None:
        order = {m: i for i, m in enumerate(pool)}

        def rank(model: str) -> tuple[int, int, Decimal, int]:
            cost = facts[model].cost
            return (model != lead, cost is None, cost or Decimal(0), order[model])

        eligible.sort(key=rank)

    if not eligible:
        wanted = _describe(policy)
        detail = "; ".join(f"{m}: {r}" for m, r in excluded.items())
        message = f"no model is left to route to{wanted}: {detail}"
        raise PolicyDenied(message) if residency_denied else UserError(message)

    head, chosen = _head(eligible[0], pool, policy, lead, facts[eligible[0]])
    rest = len(eligible) - 1
    if policy.constrained:
        tail = f"{rest} fallback{'s' if rest != 1 else ''}" if rest else "no fallback"
    else:
        tail = f"fallbacks {', '.join(eligible[1:])}" if rest else "no fallbacks"
    parts = [head, tail]
    if excluded:
        parts.append("excluded " + ", ".join(f"{m} ({r})" for m, r in excluded.items()))

    basis = "by cost" if policy.tier is not None else "declared order"
    considered = [
        Considered(
            model,
            "chosen" if index == 0 else "fallback",
            chosen if index == 0 else f"fallback {index} ({basis})",
            facts[model].cost,
            facts[model].latency_ms,
        )
        for index, model in enumerate(eligible)
    ]
    considered.extend(
        Considered(
            model,
            "excluded",
            reason,
            facts[model].cost,
            facts[model].latency_ms,
        )
        for model, reason in excluded.items()
    )
    return ModelChoice(tuple(eligible), "; ".join(parts), tuple(considered))


def _filter(model: str, facts: _Facts, policy: RoutePolicy, lead: str | None) -> str | None:
    """Why ``model`` fails the policy, or None (residency is checked by the caller)."""
    if policy.tier is not None and model != lead:
        if facts.info is None:
            return "not in the model catalog, tier unknown"
        if _RANK[facts.info.tier] < _RANK[policy.tier]:
            return f"tier {facts.info.tier} < {policy.tier}"
    if policy.max_cost is not None:
        ceiling = _money_text(policy.max_cost)
        if facts.cost is None:
            return f"no price, cannot meet the ${ceiling}/call ceiling"
        if facts.cost > policy.max_cost:
            return f"est ${_money_text(facts.cost)}/call > ceiling ${ceiling}"
    if policy.max_latency_ms is not None:
        limit = _latency(policy.max_latency_ms).lstrip("~")
        if facts.info is None:
            return f"latency unknown, limit {limit}"
        if facts.info.latency_ms > policy.max_latency_ms:
            return f"{_latency(facts.info.latency_ms)} > limit {limit}"
    return None


def _describe(policy: RoutePolicy) -> str:
    terms = []
    if policy.tier is not None:
        terms.append(f"tier {policy.tier}")
    if policy.max_cost is not None:
        terms.append(f"max ${_money_text(policy.max_cost)}/call")
    if policy.max_latency_ms is not None:
        terms.append(f"max {_latency(policy.max_latency_ms).lstrip('~')}")
    return f" ({', '.join(terms)})" if terms else ""


def _head(
    model: str, pool: tuple[str, ...], policy: RoutePolicy, lead: str | None, facts: _Facts
) -> tuple[str, str]:
    """The sentence's opening, and the chosen model's reason in ``considered``."""
    if policy.tier is not None:
        why = f"the agent's {policy.tier} model" if model == lead else "the cheapest eligible"
        return f"tier {policy.tier}: {model} is {why} ({facts.text()})", why
    if policy.constrained:
        why = "the first eligible in declared order"
        return f"{_describe(policy).strip(' ()')}: {model} is {why} ({facts.text()})", why
    if model == pool[0]:
        return f"agent's model {model}", "the agent's model"
    return f"agent's model {pool[0]} is excluded; using {model}", "the first allowed model"

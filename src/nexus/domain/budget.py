"""Budgets as values: spend, limits, the scopes they apply to, and threshold crossings.

A budget is a set of :class:`Limits` -- money (USD), tokens, tool calls and wall
time -- on a :class:`Scope`: the tenant, the run, one agent, or one task.
Scopes nest (tenant > run > agent > task); a call is charged to every scope it
belongs to and must fit in all of them.

Money is :class:`~decimal.Decimal` and every sum here runs in a context that
*traps* inexact results, like the pricing code (``nexus.gateway.pricing``), so a
budget total is exact or an error, never silently rounded. Money leaves this
module as a string (``"0.0125"``); counts stay integers.

Crossings: when spend on a scope goes from below ``t * limit`` to at or above
it, for ``t`` in 80% and 100%, a :class:`Crossing` is reported -- the 80% one
becomes a warning event, the 100% one stops the agent or run. Each threshold is
crossed once in a monotone spend sequence, because the test is
``before < t * limit <= after``.

The ledger that reserves and settles spend at run time is
:class:`nexus.budget.ledger.BudgetLedger`; this module holds no state.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from nexus.domain.durations import parse_seconds
from nexus.domain.errors import BudgetExceeded, UserError
from nexus.domain.plan import SCOPE_SEP, enclosing, num

__all__ = [
    "DIMENSIONS",
    "THRESHOLDS",
    "BudgetLimitExceeded",
    "Crossing",
    "Dimension",
    "Limits",
    "Scope",
    "ScopeKind",
    "Spend",
    "budget_exceeded_error",
    "crossings",
    "describe",
    "exact_add",
    "exact_context",
    "exact_multiply",
    "exact_subtract",
    "exactly",
    "fraction",
    "money_text",
    "run_scopes",
    "wall_exceeded_error",
]

ScopeKind = Literal["tenant", "run", "agent", "task"]
#: The dimensions a ledger reserves. Wall time is a limit too, but it is checked, not reserved.
Dimension = Literal["usd", "tokens", "tool_calls"]
DIMENSIONS: tuple[Dimension, ...] = ("usd", "tokens", "tool_calls")
#: Fractions of a limit whose crossing is reported: 80% warns, 100% stops.
THRESHOLDS: tuple[Decimal, ...] = (Decimal("0.8"), Decimal("1"))

_SCOPE_KINDS: tuple[ScopeKind, ...] = ("tenant", "run", "agent", "task")
_LIMIT_KEYS = ("usd", "tokens", "tool_calls", "wall")


def exact_context() -> decimal.Context:
    """A decimal context in which any rounding raises: money is never rounded silently."""
    context = decimal.Context(prec=60)
    context.traps[decimal.Inexact] = True
    context.traps[decimal.Rounded] = True
    return context


#: One shared exact context for the hot arithmetic (Spend + and -): its
#: methods take the context explicitly, so no per-call context is built.
_EXACT = exact_context()
#: Exact ``a + b``, ``a - b`` and ``a * b`` on Decimals (rounding raises), for hot loops.
exact_add = _EXACT.add
exact_subtract = _EXACT.subtract
exact_multiply = _EXACT.multiply


@contextmanager
def exactly() -> Iterator[None]:
    """A decimal context in which any rounding raises (``decimal.Inexact``)."""
    with decimal.localcontext(exact_context()):
        yield


def money_text(amount: Decimal) -> str:
    """``amount`` as exact positional text without trailing zeros: ``"0.00056"``, ``"5"``."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _dollars(amount: Decimal) -> str:
    """Money for messages: four decimals, more only when the amount has more."""
    text = money_text(amount)
    if len(text.partition(".")[2]) <= 4:
        return f"${amount:.4f}"
    return f"${text}"


def describe(dimension: Dimension, amount: Decimal | int) -> str:
    """An amount for messages: ``$0.0120``, ``1,200 tokens``, ``1 tool call``."""
    if dimension == "usd":
        return _dollars(Decimal(amount))
    return _plural(int(amount), "token" if dimension == "tokens" else "tool call")


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


# -- spend --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spend:
    """What was spent (or is asked for, or reserved): money, tokens and tool calls.

    ``usd`` must be a :class:`~decimal.Decimal` (an ``int`` is converted); a
    ``float`` is refused, because it would bring binary rounding into money.
    """

    usd: Decimal = Decimal(0)
    tokens: int = 0
    tool_calls: int = 0

    def __post_init__(self) -> None:
        usd: object = self.usd
        if type(usd) is Decimal:
            return  # the hot path: arithmetic results
        if isinstance(usd, bool) or not isinstance(usd, Decimal | int):
            raise TypeError(f"Spend.usd must be a Decimal, not {type(usd).__name__}")
        if isinstance(usd, int):
            object.__setattr__(self, "usd", Decimal(usd))

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            _EXACT.add(self.usd, other.usd),
            self.tokens + other.tokens,
            self.tool_calls + other.tool_calls,
        )

    def __sub__(self, other: Spend) -> Spend:
        return Spend(
            _EXACT.subtract(self.usd, other.usd),
            self.tokens - other.tokens,
            self.tool_calls - other.tool_calls,
        )

    def get(self, dimension: Dimension) -> Decimal | int:
        """The amount in one dimension."""
        value: Decimal | int = getattr(self, dimension)
        return value

    @property
    def is_negative(self) -> bool:
        """True when any dimension is below zero (never a valid amount to reserve or settle)."""
        return self.usd < 0 or self.tokens < 0 or self.tool_calls < 0

    def to_dict(self) -> dict[str, Any]:
        return {"usd": money_text(self.usd), "tokens": self.tokens, "tool_calls": self.tool_calls}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spend:
        """The inverse of :meth:`to_dict` (missing dimensions are zero)."""
        return cls(
            usd=Decimal(str(data.get("usd", "0"))),
            tokens=int(data.get("tokens", 0)),
            tool_calls=int(data.get("tool_calls", 0)),
        )


# -- limits -------------------------------------------------------------------------------


def _usd(value: object, where: str) -> Decimal:
    bad = f'{where}.usd: must be a non-negative amount such as 5 or "5.00", not {value!r}'
    if isinstance(value, bool):
        raise UserError(bad)
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float | str):
        # a float's repr is the shortest text that reads back as it: what the user wrote
        text = str(value).strip().removeprefix("$").replace("_", "")
        try:
            amount = Decimal(text)
        except decimal.InvalidOperation:
            raise UserError(bad) from None
    else:
        raise UserError(bad)
    if not amount.is_finite() or amount < 0:
        raise UserError(bad)
    return amount


def _count(value: object, where: str, name: str) -> int:
    bad = f"{where}.{name}: must be a whole number >= 0, not {value!r}"
    if isinstance(value, bool):
        raise UserError(bad)
    if isinstance(value, int):
        count = value
    elif isinstance(value, str) and value.strip().replace("_", "").isdigit():
        count = int(value.strip())
    else:
        raise UserError(bad)
    if count < 0:
        raise UserError(bad)
    return count


def _wall(value: object, where: str) -> float:
    try:
        return parse_seconds(value)
    except ValueError as error:
        raise UserError(f"{where}.wall: {error}, not {value!r}") from None


@dataclass(frozen=True, slots=True)
class Limits:
    """A budget: each dimension is a ceiling, or None for "no limit on this one"."""

    usd: Decimal | None = None
    tokens: int | None = None
    tool_calls: int | None = None
    wall_s: float | None = None

    @classmethod
    def from_dict(cls, data: object, where: str) -> Limits:
        """Read the workflow form ``{usd: "5.00", tokens: 100000, tool_calls: 200, wall: "10m"}``.

        ``usd`` is a number or a decimal string (a leading ``$`` is allowed);
        ``tokens`` and ``tool_calls`` are whole numbers; ``wall`` is seconds or a
        duration with a unit (``ms``, ``s``, ``m``, ``h``, ``d``). A key set to
        null is unset. ``None`` or an empty mapping is "no limits".

        Args:
            data: the mapping as read from the file.
            where: where it was read from, for messages (``"agents.coder.budget"``).

        Raises:
            UserError: naming ``where`` and the field, for a negative, boolean or
                non-numeric value or an unknown key.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise UserError(
                f"{where}: must be a mapping with any of {', '.join(_LIMIT_KEYS)}, "
                f"not {type(data).__name__}"
            )
        for key in data:
            if key not in _LIMIT_KEYS:
                raise UserError(f"{where}: unknown key {key!r} (allowed: {', '.join(_LIMIT_KEYS)})")
        usd, tokens, calls, wall = (data.get(key) for key in _LIMIT_KEYS)
        return cls(
            usd=None if usd is None else _usd(usd, where),
            tokens=None if tokens is None else _count(tokens, where, "tokens"),
            tool_calls=None if calls is None else _count(calls, where, "tool_calls"),
            wall_s=None if wall is None else _wall(wall, where),
        )

    def to_dict(self) -> dict[str, Any]:
        """The canonical form: money as normalised text, seconds as a number, unset omitted."""
        data: dict[str, Any] = {}
        if self.usd is not None:
            data["usd"] = money_text(self.usd)
        if self.tokens is not None:
            data["tokens"] = self.tokens
        if self.tool_calls is not None:
            data["tool_calls"] = self.tool_calls
        if self.wall_s is not None:
            data["wall"] = num(self.wall_s)
        return data

    def get(self, dimension: Dimension) -> Decimal | int | None:
        """The limit in one reserved dimension (None: unlimited)."""
        value: Decimal | int | None = getattr(self, dimension)
        return value

    def merged(self, other: Limits) -> Limits:
        """These limits with every dimension ``other`` sets replaced by ``other``'s.

        This is how a budget is raised before a resume, and how a task's
        defaults give way to its own budget.
        """
        return Limits(
            usd=self.usd if other.usd is None else other.usd,
            tokens=self.tokens if other.tokens is None else other.tokens,
            tool_calls=self.tool_calls if other.tool_calls is None else other.tool_calls,
            wall_s=self.wall_s if other.wall_s is None else other.wall_s,
        )

    @property
    def is_empty(self) -> bool:
        """True when no dimension is limited."""
        return all(value is None for value in (self.usd, self.tokens, self.tool_calls, self.wall_s))


# -- scopes and crossings -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """What a budget applies to: ``tenant``, ``run``, ``agent`` or ``task``, and which one."""

    kind: ScopeKind
    key: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _SCOPE_KINDS:
            raise ValueError(f"unknown budget scope {self.kind!r} (one of {_SCOPE_KINDS})")

    @property
    def label(self) -> str:
        """How messages name it: ``run``, ``agent coder``, ``task draft``, ``tenant acme``."""
        return "run" if self.kind == "run" or not self.key else f"{self.kind} {self.key}"

    @property
    def id(self) -> str:
        """A stable text key: ``agent:coder``."""
        return f"{self.kind}:{self.key}"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "key": self.key}


def run_scopes(task: str, agent: str | None) -> list[Scope]:
    """The run's scopes a call of ``task`` counts against: the run, the task, its agent.

    A task inside a sub-workflow (``build/compile``) counts against the task
    running the sub-workflow too (``build``: its budget is the sub-workflow's).
    """
    scopes = [Scope("run"), Scope("task", task)]
    if SCOPE_SEP in task:
        scopes += [Scope("task", outer) for outer in enclosing(task)]
    if agent is not None:
        scopes.append(Scope("agent", agent))
    return scopes


def _json_amount(value: Decimal | int) -> str | int:
    return money_text(value) if isinstance(value, Decimal) else value


@dataclass(frozen=True, slots=True)
class Crossing:
    """Spend on ``scope`` reached ``threshold`` (0.8 or 1) of its limit in one dimension."""

    scope: Scope
    dimension: Dimension
    threshold: Decimal
    spent: Decimal | int
    limit: Decimal | int

    @property
    def percent(self) -> int:
        return int(self.threshold * 100)

    @property
    def is_limit(self) -> bool:
        """True for the 100% crossing: the scope must stop."""
        return self.threshold >= 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope.kind,
            "key": self.scope.key,
            "dimension": self.dimension,
            "threshold": money_text(self.threshold),
            "percent": self.percent,
            "spent": _json_amount(self.spent),
            "limit": _json_amount(self.limit),
        }


def fraction(spent: Decimal | int, limit: Decimal | int) -> Decimal:
    """How much of ``limit`` is spent (1 = all). A zero limit is infinitely over once spent."""
    if limit == 0:
        return Decimal(0) if spent <= 0 else Decimal("Infinity")
    return Decimal(spent) / Decimal(limit)


def crossings(before: Spend, after: Spend, limits: Limits, scope: Scope) -> list[Crossing]:
    """The thresholds spend on ``scope`` crossed going from ``before`` to ``after``.

    A threshold ``t`` is crossed when ``before < t * limit <= after``; against a
    zero limit, when ``before <= 0 < after``. Comparisons are exact.
    """
    found: list[Crossing] = []
    for dimension in DIMENSIONS:
        limit = limits.get(dimension)
        if limit is None:
            continue
        old, new = before.get(dimension), after.get(dimension)
        for t in THRESHOLDS:
            mark = _EXACT.multiply(t, limit)
            crossed = old <= 0 < new if limit == 0 else old < mark <= new
            if crossed:
                found.append(Crossing(scope, dimension, t, new, limit))
    return found


# -- errors -------------------------------------------------------------------------------


class BudgetLimitExceeded(BudgetExceeded):
    """A scope's budget would be (or was) exceeded; ``to_data`` says which and by how much.

    Attributes:
        scope: the scope whose limit stops the call.
        dimension: ``usd``, ``tokens``, ``tool_calls`` or ``wall``.
        limit, spent, reserved, asked: the figures the decision was made on
            (seconds for ``wall``).
    """

    def __init__(
        self,
        message: str,
        *,
        scope: Scope,
        dimension: Dimension | Literal["wall"],
        limit: Decimal | int | float,
        spent: Decimal | int | float,
        reserved: Decimal | int | float = 0,
        asked: Decimal | int | float = 0,
    ) -> None:
        super().__init__(message, retryable=False)
        self.scope = scope
        self.dimension = dimension
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.asked = asked

    def to_data(self) -> dict[str, object]:
        data = super().to_data()

        def figure(value: Decimal | int | float) -> object:
            if self.dimension == "usd":
                return money_text(Decimal(value))
            return value if isinstance(value, int) else num(float(value))

        data["budget"] = {
            "scope": self.scope.kind,
            "key": self.scope.key,
            "dimension": self.dimension,
            "limit": figure(self.limit),
            "spent": figure(self.spent),
            "reserved": figure(self.reserved),
            "asked": figure(self.asked),
        }
        return data


_VERBS: dict[Dimension, tuple[str, str]] = {
    "usd": ("spend", "spent"),
    "tokens": ("use", "used"),
    "tool_calls": ("make", "made"),
}


def budget_exceeded_error(
    scope: Scope,
    dimension: Dimension,
    limit: Decimal | int,
    spent: Decimal | int,
    reserved: Decimal | int = 0,
    asked: Decimal | int = 0,
) -> BudgetLimitExceeded:
    """The error for a call that does not fit (or spend that went over) a scope's limit.

    Reads like ``budget exceeded: agent coder would spend $0.0120 (spent $0.0950
    + reserved $0.0000) over its limit $0.1000``. With nothing ``asked`` (spend
    already recorded went over), it says what was spent instead.
    """
    verb, past = _VERBS[dimension]

    def bare(value: Decimal | int) -> str:
        return _dollars(Decimal(value)) if dimension == "usd" else f"{int(value):,}"

    if asked:
        text = (
            f"would {verb} {describe(dimension, asked)} ({past} {bare(spent)} + reserved "
            f"{bare(reserved)}) over its limit {describe(dimension, limit)}"
        )
    else:
        text = (
            f"has {past} {describe(dimension, spent)}, over its limit {describe(dimension, limit)}"
        )
    return BudgetLimitExceeded(
        f"budget exceeded: {scope.label} {text}",
        scope=scope,
        dimension=dimension,
        limit=limit,
        spent=spent,
        reserved=reserved,
        asked=asked,
    )


def wall_exceeded_error(scope: Scope, limit_s: float, elapsed_s: float) -> BudgetLimitExceeded:
    """The error for a scope that ran past its wall-time limit."""
    return BudgetLimitExceeded(
        f"budget exceeded: {scope.label} has run {elapsed_s:.1f}s, over its wall-time limit "
        f"of {num(limit_s)}s",
        scope=scope,
        dimension="wall",
        limit=limit_s,
        spent=elapsed_s,
    )

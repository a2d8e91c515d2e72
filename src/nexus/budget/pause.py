"""Why a run paused for budget, and what raises it: the limits that ran out.

A run pauses when a budget is spent (``budget.exceeded``) and nothing else can
move. What the user must do depends on which budget: the run's tokens, an
agent's dollars, a task's tool calls, the run's wall time -- each raised with
its own ``nexus resume RUN --budget`` flag -- or the tenant's, which lives in
``nexus.toml``. :func:`spent_limits` reads them from the folded state (the
100% crossings not raised since) and :func:`pause_advice` words the advice::

    the run's tokens budget ran out (limit 30 tokens, 32 used)
    raise it and go on: nexus resume 01JD... --budget tokens=60
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from nexus.domain.budget import Scope, ScopeKind, describe, money_text
from nexus.domain.plan import num
from nexus.domain.state import RunState

__all__ = ["SpentLimit", "pause_advice", "spent_limits"]

LimitDimension = Literal["usd", "tokens", "tool_calls", "wall"]
#: the names budget events record, typed
_DIMENSIONS: dict[str, LimitDimension] = {
    "usd": "usd",
    "tokens": "tokens",
    "tool_calls": "tool_calls",
    "wall": "wall",
}
_KINDS: dict[str, ScopeKind] = {"tenant": "tenant", "run": "run", "agent": "agent", "task": "task"}


@dataclass(frozen=True, slots=True)
class SpentLimit:
    """A budget that ran out: its scope and dimension, its limit and what was spent.

    ``limit`` and ``spent`` are None where the run does not know them (a
    tenant's limit is the configuration's).
    """

    scope: Scope
    dimension: LimitDimension
    limit: Decimal | int | float | None = None
    spent: Decimal | int | float | None = None

    @property
    def flag(self) -> str | None:
        """The ``--budget`` value that doubles the limit (None: the tenant's, set in nexus.toml).

        ``tokens=60``, ``agent.coder.usd=2``, ``task.fix.tool_calls=8``, ``wall=1200``.
        """
        if self.scope.kind == "tenant":
            return None
        where = "" if self.scope.kind == "run" else f"{self.scope.kind}.{self.scope.key}."
        return f"{where}{self.dimension}={_raised(self.dimension, self.limit)}"

    def describe(self) -> str:
        """``the run's tokens budget ran out (limit 30 tokens, 32 used)``."""
        owner = "the run's" if self.scope.kind == "run" else f"{self.scope.label}'s"
        figures = []
        if self.limit is not None:
            figures.append(f"limit {_amount(self.dimension, self.limit)}")
        if self.spent is not None:
            figures.append(f"{_amount(self.dimension, self.spent)} {_verb(self.dimension)}")
        detail = f" ({', '.join(figures)})" if figures else ""
        return f"{owner} {self.dimension} budget ran out{detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope.kind,
            "key": self.scope.key,
            "dimension": self.dimension,
            "limit": _plain(self.limit),
            "spent": _plain(self.spent),
            "flag": self.flag,
        }


def spent_limits(state: RunState) -> list[SpentLimit]:
    """The budgets of ``state``'s run that reached 100% and were not raised since."""
    found: list[SpentLimit] = []
    for scope_id, name, threshold in sorted(state.reported):
        kind, _, key = scope_id.partition(":")
        if threshold != "1" or kind not in _KINDS or name not in _DIMENSIONS:
            continue
        scope, dimension = Scope(_KINDS[kind], key), _DIMENSIONS[name]
        limits = state.limits(scope)
        if scope.kind == "tenant":
            # the tenant's figures are the store's and its configuration's, not the run's
            found.append(SpentLimit(scope, dimension))
        elif dimension == "wall":
            found.append(SpentLimit(scope, dimension, limits.wall_s))
        else:
            spent = state.spend(scope).get(dimension)
            found.append(SpentLimit(scope, dimension, limits.get(dimension), spent))
    return found


def pause_advice(run_id: str, spent: Sequence[SpentLimit]) -> list[str]:
    """What ``nexus run``/``resume`` print when the run paused: what ran out, then what to do."""
    if not spent:
        return [
            f"a budget ran out; see: nexus cost {run_id}",
            f"raise it and go on: nexus resume {run_id} --budget DIMENSION=AMOUNT",
        ]
    lines = [item.describe() for item in spent]
    lines.append(f"see: nexus cost {run_id}")
    flags = [item.flag for item in spent if item.flag is not None]
    tenant = [item for item in spent if item.flag is None]
    for item in tenant:
        lines.append(
            f"raise [budgets.tenant] {item.dimension} in nexus.toml ({item.scope.label}'s "
            "budget is shared by its runs)"
        )
    command = f"nexus resume {run_id}" + "".join(f" --budget {flag}" for flag in flags)
    lines.append(f"raise it and go on: {command}" if flags else f"then go on: {command}")
    return lines


def _amount(dimension: LimitDimension, value: Decimal | int | float) -> str:
    if dimension == "wall":
        return f"{num(float(value))} s"
    if dimension == "usd":
        return describe("usd", Decimal(value))
    return describe(dimension, int(value))


def _verb(dimension: LimitDimension) -> str:
    return {"usd": "spent", "tokens": "used", "tool_calls": "made", "wall": "run"}[dimension]


def _raised(dimension: LimitDimension, limit: Decimal | int | float | None) -> str:
    """Twice ``limit`` as a ``--budget`` value (a placeholder when the limit is unknown)."""
    if limit is None:
        return "AMOUNT"
    if dimension == "usd":
        return money_text(Decimal(limit) * 2 or Decimal(1))
    if dimension == "wall":
        return str(num(float(limit) * 2 or 60.0))
    return str(int(limit) * 2 or 1)


def _plain(value: Decimal | int | float | None) -> str | int | float | None:
    return money_text(value) if isinstance(value, Decimal) else value

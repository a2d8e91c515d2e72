"""The ``[budgets]`` section of ``nexus.toml``: a tenant's limits and a run's default limits.

::

    [budgets.tenant]
    usd = 200
    [budgets.run]
    usd = "2.50"
    tool_calls = 200
    wall = "30m"

:mod:`nexus.config` composes this section into the file's model (as it does the
gateway's and the tools' sections) and keeps the limits in their plain form
(:meth:`LimitsSection.plain`: money as exact text, wall time in seconds), which
:meth:`nexus.domain.budget.Limits.from_dict` reads. Errors name the key
(``budgets.run.wall: must be a positive duration``): the config loader prefixes
what pydantic reports with the dotted path.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from nexus.domain.durations import parse_seconds

__all__ = ["BudgetsSection", "LimitsSection"]


def _usd(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise ValueError('must be an amount in USD, as a number or a string like "5.00"')
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError('must be an amount in USD, like "5.00"') from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("must be a non-negative amount in USD")
    return format(amount, "f")


_Usd = Annotated[str, BeforeValidator(_usd)]
_Count = Annotated[StrictInt, Field(ge=0)]
_Duration = Annotated[float, BeforeValidator(parse_seconds)]


class LimitsSection(BaseModel):
    """One scope's limits as the file gives them; a key left out is no limit.

    TOML floats must reach this model as :class:`~decimal.Decimal` (the loader
    parses them so), so that ``usd = 0.1`` stays exactly a tenth.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    usd: _Usd | None = None
    tokens: _Count | None = None
    tool_calls: _Count | None = None
    wall: _Duration | None = None

    def plain(self) -> dict[str, Any]:
        """The limits that are set: ``{"usd": "2.5", "tool_calls": 200, "wall": 1800.0}``."""
        return self.model_dump(exclude_none=True)


class BudgetsSection(BaseModel):
    """``[budgets]``: the tenant's limits and the default limits of a run that sets none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: LimitsSection | None = None
    run: LimitsSection | None = None

"""nexus.budget: its surface, its map in the docs, and the [budgets] section it defines."""

from __future__ import annotations

import pkgutil
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

import nexus.budget
from nexus.budget.settings import BudgetsSection, LimitsSection
from nexus.domain import budget as rules
from nexus.gateway import pricing

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(m.name for m in pkgutil.iter_modules(nexus.budget.__path__, "nexus.budget."))
#: the two modules the layers keep lower, which the package re-exports
LOWER = ("nexus.domain.budget", "nexus.gateway.pricing")


def test_every_exported_name_resolves() -> None:
    missing = [n for n in nexus.budget.__all__ if not hasattr(nexus.budget, n)]
    assert missing == []


def test_the_rules_and_the_prices_are_re_exported_not_copied() -> None:
    assert nexus.budget.Limits is rules.Limits
    assert nexus.budget.Spend is rules.Spend
    assert nexus.budget.PricingTable is pricing.PricingTable
    assert nexus.budget.cost_of is pricing.cost_of


@pytest.mark.parametrize("module", [*MODULES, *LOWER])
def test_the_docs_and_the_package_map_every_module(module: str) -> None:
    budgets_md = (REPO / "docs" / "budgets.md").read_text(encoding="utf-8")
    assert f"`{module}`" in budgets_md, f"docs/budgets.md does not map {module}"
    assert module in (nexus.budget.__doc__ or ""), f"nexus.budget's docstring misses {module}"


def test_the_package_holds_what_the_adr_lists() -> None:
    assert MODULES == [
        "nexus.budget.estimate",
        "nexus.budget.ledger",
        "nexus.budget.pause",
        "nexus.budget.report",
        "nexus.budget.settings",
        "nexus.budget.spend",
        "nexus.budget.tenant",
    ]


# -- the [budgets] section -----------------------------------------------------------------


def test_limits_section_keeps_money_exact_and_reads_durations() -> None:
    section = LimitsSection.model_validate(
        {"usd": Decimal("0.1"), "tokens": 5, "tool_calls": 0, "wall": "30m"}
    )
    assert section.plain() == {"usd": "0.1", "tokens": 5, "tool_calls": 0, "wall": 1800.0}
    assert LimitsSection().plain() == {}


def test_budgets_section_has_a_tenant_and_a_run() -> None:
    section = BudgetsSection.model_validate({"tenant": {"usd": 200}, "run": {"wall": 90}})
    assert section.tenant is not None
    assert section.run is not None
    assert (section.tenant.plain(), section.run.plain()) == ({"usd": "200"}, {"wall": 90.0})
    assert BudgetsSection().tenant is None


@pytest.mark.parametrize(
    ("data", "where", "message"),
    [
        ({"run": {"usd": "-1"}}, ("run", "usd"), "must be a non-negative amount in USD"),
        ({"run": {"usd": 1.5}}, ("run", "usd"), "as a number or a string"),
        ({"run": {"tokens": True}}, ("run", "tokens"), "valid integer"),
        ({"run": {"wall": "soon"}}, ("run", "wall"), "must be a number of seconds or a duration"),
        ({"run": {"wall": 0}}, ("run", "wall"), "must be a positive duration"),
        ({"run": {"dollars": 5}}, ("run", "dollars"), "Extra inputs are not permitted"),
        ({"team": {}}, ("team",), "Extra inputs are not permitted"),
    ],
)
def test_bad_sections_name_the_key(data: object, where: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        BudgetsSection.model_validate(data)
    (error,) = info.value.errors()
    assert tuple(error["loc"]) == where
    assert message in error["msg"]

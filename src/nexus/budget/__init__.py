"""Budgets, prices and spend: where every figure about money, tokens and tool calls lives.

A reader looking for cost starts here. The modules of this package, and the two
that the layers keep lower (docs/adr/0006-budget-package.md says why):

=================================  =======================================================
``nexus.domain.budget`` (rules)    limits, spend, scopes, threshold crossings, exact money;
                                   the domain's fold and the store's port need them
``nexus.gateway.pricing``          the price table (``pricing.json``), the cost of a
                                   call's usage, token estimates; routing and the cache
                                   price calls with it
:mod:`nexus.budget.settings`       the ``[budgets]`` section of ``nexus.toml``
:mod:`nexus.budget.spend`          what a call reserves before it runs and records after
:mod:`nexus.budget.ledger`         reserve and settle a run's own budgets, in process
:mod:`nexus.budget.tenant`         a tenant's budget, shared by every process through the store
:mod:`nexus.budget.estimate`       the preflight estimate of a plan, and its gate
:mod:`nexus.budget.report`         ``nexus cost``: a run's or a tenant's spend, from the log
:mod:`nexus.budget.pause`          which budgets a paused run ran out of, and how to raise them
=================================  =======================================================

This package sits in its own layer, above the model gateway, the tools and the
store and below agents, planning and the engine, so every one of those can use it.
The names below are its public surface; the rules and the price table are
re-exported here so that ``from nexus.budget import Limits, PricingTable`` works.
"""

from nexus.budget.estimate import Estimate, TaskEstimate, compare, estimate_plan, preflight_check
from nexus.budget.ledger import BudgetLedger, Reservation
from nexus.budget.report import cost_report, tenant_report
from nexus.budget.settings import BudgetsSection, LimitsSection
from nexus.budget.spend import RESERVED_COMPLETION, model_spend, reservation_for
from nexus.budget.tenant import TenantBudget, TenantHold
from nexus.domain.budget import BudgetLimitExceeded, Crossing, Limits, Scope, Spend
from nexus.gateway.pricing import ModelPrice, PricingTable, cost_of, default_pricing

__all__ = [
    "RESERVED_COMPLETION",
    "BudgetLedger",
    "BudgetLimitExceeded",
    "BudgetsSection",
    "Crossing",
    "Estimate",
    "Limits",
    "LimitsSection",
    "ModelPrice",
    "PricingTable",
    "Reservation",
    "Scope",
    "Spend",
    "TaskEstimate",
    "TenantBudget",
    "TenantHold",
    "compare",
    "cost_of",
    "cost_report",
    "default_pricing",
    "estimate_plan",
    "model_spend",
    "preflight_check",
    "reservation_for",
    "tenant_report",
]

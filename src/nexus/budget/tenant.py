"""The tenant's budget, shared through the store by every process that spends for it.

A run's own budgets (run, agent, task) live in its in-process
:class:`~nexus.budget.ledger.BudgetLedger`: only the one process driving the
run spends for them. A tenant's budget is different -- two ``nexus run``
processes, or two engines, may spend for one tenant at the same time -- so its
reservations go through the :class:`~nexus.store.base.Store`, where every
process sees every other's::

    hold = await tenant.reserve(amount, run_id=run_id, deadline=deadline)
    try:
        response = await provider.complete(request)
    except BaseException:
        await hold.release()                 # nothing was spent
        raise
    for crossing in await hold.settle(Spend(usd=cost, tokens=used)):
        ...                                  # 80%, 100% of the tenant's limit

The rules are the ledger's: a call is admitted only when what the tenant spent,
what every live hold keeps back and what the call asks for fit every limited
dimension; a refusal is the same :class:`~nexus.domain.budget.BudgetLimitExceeded`
(so the worker records it as a ``budget_exceeded`` effect and the task pauses);
settling records the real cost in full and reports the thresholds it crossed.
Because the store adds each settle to the tenant's spend atomically, each
threshold is crossed by exactly one settle, whichever process makes it.

Holds expire, so a process that dies mid-call blocks its tenant no longer than
the call could have run: until the attempt's deadline (plus a grace), or
:data:`HOLD_S` when it has none. A resumed run drops its old holds at once
(:meth:`TenantBudget.release_run`).

Each reservation and each settle is one short write transaction on the store's
thread (never on the event loop); runs of a tenant without a budget pay nothing.
"""

from __future__ import annotations

import asyncio
import time

from ulid import ULID

from nexus.domain.budget import (
    Crossing,
    Limits,
    Scope,
    Spend,
    budget_exceeded_error,
    crossings,
)
from nexus.domain.errors import InternalError
from nexus.store.base import Hold, Store, TenantFigures, over_limit

__all__ = ["GRACE_S", "HOLD_S", "TenantBudget", "TenantHold"]

#: How long a hold counts when its attempt has no deadline (seconds).
HOLD_S = 15 * 60.0
#: How long a hold outlives its attempt's deadline (the call is cut off there).
GRACE_S = 30.0


class TenantHold:
    """One call's hold on the tenant's budget: settle it with what the call cost, or release it."""

    __slots__ = ("_budget", "_closed", "hold")

    def __init__(self, budget: TenantBudget, hold: Hold) -> None:
        self._budget = budget
        self.hold = hold
        self._closed = False

    async def settle(self, actual: Spend) -> list[Crossing]:
        """Record ``actual`` on the tenant (in full) and drop the hold.

        Returns:
            The thresholds (80%, 100%) of the tenant's limits this spend crossed.

        Raises:
            InternalError: the hold was settled or released already, or
                ``actual`` is negative.
        """
        if actual.is_negative:
            raise InternalError(f"budget: cannot settle a negative amount {actual}")
        if self._closed:
            raise InternalError(
                f"budget: tenant hold {self.hold.id} was already settled or released"
            )
        self._closed = True
        budget = self._budget
        # shielded: money spent is recorded even when the caller is cancelled meanwhile
        after = await asyncio.shield(budget.store.tenant_settle(self.hold, actual))
        return crossings(after - actual, after, budget.limits, budget.scope)

    async def release(self) -> None:
        """Give the hold back unspent. Idempotent (safe after :meth:`settle`)."""
        if self._closed:
            return
        self._closed = True
        await asyncio.shield(self._budget.store.tenant_release(self.hold))


class TenantBudget:
    """A tenant's limits, enforced on the spend every process records for it.

    Args:
        store: where the tenant's spend and holds are shared.
        tenant: whose budget it is.
        limits: the tenant's limits (usd, tokens, tool calls; wall time is not
            reserved).
        hold_s: how long a hold counts when its attempt has no deadline.
    """

    def __init__(
        self,
        store: Store,
        tenant: str,
        limits: Limits,
        *,
        hold_s: float = HOLD_S,
    ) -> None:
        self.store = store
        self.scope = Scope("tenant", tenant)
        self.limits = limits
        self._hold_s = hold_s

    @property
    def tenant(self) -> str:
        return self.scope.key

    def _expiry(self, deadline: float | None) -> float:
        """When a hold stops counting, in seconds since the epoch (what the store compares)."""
        if deadline is None:
            return time.time() + self._hold_s
        left = deadline - asyncio.get_running_loop().time()
        return time.time() + max(left, 0.0) + GRACE_S

    async def reserve(
        self, amount: Spend, *, run_id: str, deadline: float | None = None
    ) -> TenantHold:
        """Hold ``amount`` on the tenant's budget for one call of ``run_id``.

        Args:
            amount: what the call may cost.
            run_id: the run making the call.
            deadline: the attempt's deadline on the event loop's clock, if any;
                the hold expires :data:`GRACE_S` after it (else after ``hold_s``).

        Raises:
            BudgetLimitExceeded: the call does not fit; nothing is held.
            InternalError: ``amount`` is negative.
        """
        if amount.is_negative:
            raise InternalError(f"budget: cannot reserve a negative amount {amount}")
        hold = Hold(str(ULID()), self.tenant, run_id, amount, self._expiry(deadline))
        refused = await self.store.tenant_reserve(hold, self.limits)
        if refused is None:
            return TenantHold(self, hold)
        dimension = over_limit(self.limits, refused.spent, refused.held, amount)
        limit = None if dimension is None else self.limits.get(dimension)
        if dimension is None or limit is None:
            raise InternalError(
                f"budget: the store refused {amount} on {self.scope.label} for no limit"
            )
        raise budget_exceeded_error(
            self.scope,
            dimension,
            limit,
            refused.spent.get(dimension),
            refused.held.get(dimension),
            amount.get(dimension),
        )

    async def figures(self) -> TenantFigures:
        """What the tenant spent and what live holds keep back, as of now."""
        return await self.store.tenant_figures(self.tenant)

    async def release_run(self, run_id: str) -> int:
        """Drop the holds ``run_id`` left behind (its process died); how many there were.

        Call it only while this process holds the run's lease: no other
        process may have calls of the run in flight.
        """
        return await self.store.tenant_release_run(self.tenant, run_id)

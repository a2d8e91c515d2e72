"""The budget ledger: reserve before a call, settle after it, never overspend.

Every model or tool call is charged to the scopes it belongs to -- tenant, run,
agent, task (:class:`~nexus.domain.budget.Scope`). Before the call the engine
*reserves* what the call may cost on all of them at once; the reservation is
refused, with a :class:`~nexus.domain.budget.BudgetLimitExceeded`, when any
scope would go over a limit counting what is already spent *and* what other
calls in flight have reserved. After the call it *settles*: the reservation is
released and the actual spend recorded. So parallel agents and retries cannot
overspend together -- each one's share is held while it runs::

    reservation = ledger.reserve([run, agent, task], Spend(usd=estimate, tokens=n))
    try:
        response = await provider.complete(request)
    except BaseException:
        ledger.release(reservation)          # nothing was spent
        raise
    for crossing in ledger.settle(reservation, Spend(usd=cost, tokens=used)):
        ...                                  # 80%: warn; 100%: stop the scope

Spend that exceeds its reservation is still recorded in full (money that was
spent is never dropped); the scope then sits over its limit and every later
reservation on it fails. Scopes without limits are still counted, so their
spend is known when a limit is set later (a budget raised before a resume).

**Wall time is not reserved**: it passes whether or not anything runs. The
engine checks it with :meth:`BudgetLedger.check_wall` against its own clock.

The ledger is in-process and guarded by one :class:`threading.Lock`. No method
awaits, so each call is also atomic between ``await`` points of an asyncio
event loop: worker threads and coroutines can share one ledger. The event log
stays the source of truth: on resume the engine folds the recorded spend per
scope and :meth:`BudgetLedger.seed` s the ledger with it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nexus.domain.budget import (
    DIMENSIONS,
    THRESHOLDS,
    Crossing,
    Dimension,
    Limits,
    Scope,
    Spend,
    budget_exceeded_error,
    crossings,
    exact_add,
    exact_multiply,
    exact_subtract,
    wall_exceeded_error,
)
from nexus.domain.errors import InternalError

__all__ = ["BudgetLedger", "Reservation"]


@dataclass(frozen=True, slots=True)
class Reservation:
    """Spend held on ``scopes`` for one call until it is settled or released."""

    id: int
    scopes: tuple[Scope, ...]
    amount: Spend
    _owner: object = field(default=None, repr=False, compare=False)
    _accounts: tuple[_Account, ...] = field(default=(), repr=False, compare=False)


_NONE = Spend()


class _Account:
    """One scope's limits, spend and holds, kept as plain figures (the hot path).

    ``checks`` lists the limited dimensions as ``(dimension, limit)``, so a
    reservation on a scope without limits compares nothing; ``marks`` holds
    the lowest threshold of each (80% of the limit): spend below all of them
    has crossed nothing, and settling need not look closer.
    """

    __slots__ = ("checks", "limits", "marks", "reserved", "scope", "spent")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.limits: Limits | None = None
        self.checks: tuple[tuple[Dimension, Decimal | int], ...] = ()
        self.marks: tuple[tuple[int, Decimal], ...] = ()
        # usd, tokens, tool_calls -- as Spend's fields, without building a Spend per call
        self.spent: list[Any] = [_ZERO, 0, 0]
        self.reserved: list[Any] = [_ZERO, 0, 0]

    def set_limits(self, limits: Limits | None) -> None:
        self.limits = limits
        if limits is None:
            self.checks = self.marks = ()
            return
        self.checks = tuple(
            (dimension, limit)
            for dimension in DIMENSIONS
            if (limit := limits.get(dimension)) is not None
        )
        lowest = min(THRESHOLDS)
        self.marks = tuple((_INDEX[d], exact_multiply(lowest, limit)) for d, limit in self.checks)

    def may_have_crossed(self) -> bool:
        """Whether spend reached any threshold (a zero limit: any spend at all)."""
        spent = self.spent
        return any(spent[i] >= mark if mark else spent[i] > 0 for i, mark in self.marks)

    def spent_spend(self) -> Spend:
        return _spend(self.spent)

    def reserved_spend(self) -> Spend:
        return _spend(self.reserved)


_ZERO = Decimal(0)
_INDEX = {dimension: i for i, dimension in enumerate(DIMENSIONS)}


def _spend(figures: list[Any]) -> Spend:
    return Spend(figures[0], figures[1], figures[2])


class BudgetLedger:
    """Limits, spend and reservations per scope, shared by every call of a run (or tenant).

    Args:
        limits: initial limits per scope (more can be set with :meth:`set_limits`).
    """

    def __init__(self, limits: Mapping[Scope, Limits] | None = None) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[Scope, _Account] = {}
        self._open: dict[int, Reservation] = {}
        self._issued = 0
        for scope, scope_limits in (limits or {}).items():
            self.set_limits(scope, scope_limits)

    def _account(self, scope: Scope) -> _Account:
        """``scope``'s account, opened on first use (lock held)."""
        account = self._accounts.get(scope)
        if account is None:
            account = self._accounts[scope] = _Account(scope)
        return account

    # -- limits and figures ---------------------------------------------------------------

    def set_limits(self, scope: Scope, limits: Limits) -> None:
        """Set (or replace) ``scope``'s limits; empty limits remove them.

        Raising a limit takes effect for the next reservation; lowering one
        below what is already spent makes every later reservation fail.
        """
        with self._lock:
            self._account(scope).set_limits(None if limits.is_empty else limits)

    def limits(self, scope: Scope) -> Limits:
        """``scope``'s limits (empty when it has none)."""
        with self._lock:
            account = self._accounts.get(scope)
            return Limits() if account is None or account.limits is None else account.limits

    def seed(self, scope: Scope, spent: Spend) -> None:
        """Set what ``scope`` has already spent (from the event log, on resume).

        This replaces the figure rather than adding to it, so seeding twice from
        the same log is harmless.
        """
        if spent.is_negative:
            raise InternalError(f"budget: cannot seed {scope.label} with negative spend {spent}")
        with self._lock:
            self._account(scope).spent = [spent.usd, spent.tokens, spent.tool_calls]

    def spent(self, scope: Scope) -> Spend:
        """What ``scope`` has spent (settled calls and seeds)."""
        with self._lock:
            account = self._accounts.get(scope)
            return _NONE if account is None else account.spent_spend()

    def reserved(self, scope: Scope) -> Spend:
        """What calls in flight hold on ``scope``."""
        with self._lock:
            account = self._accounts.get(scope)
            return _NONE if account is None else account.reserved_spend()

    def check_wall(self, scope: Scope, elapsed_s: float) -> None:
        """Raise when ``scope`` has a wall-time limit and ``elapsed_s`` has reached it.

        Raises:
            BudgetLimitExceeded: with ``dimension == "wall"``.
        """
        limit = self.limits(scope).wall_s
        if limit is not None and elapsed_s >= limit:
            raise wall_exceeded_error(scope, limit, elapsed_s)

    # -- reserve, settle, release ---------------------------------------------------------

    def reserve(self, scopes: Sequence[Scope], amount: Spend) -> Reservation:
        """Hold ``amount`` on every one of ``scopes``, or on none of them.

        A scope with a limit admits the reservation only when ``spent +
        reserved + amount <= limit`` in every limited dimension. Scopes are
        checked in the order given (pass the widest first, so the message names
        the budget that binds from the top), dimensions as usd, tokens, tool
        calls.

        Raises:
            BudgetLimitExceeded: for the first scope and dimension that would go
                over; nothing is reserved.
            InternalError: ``amount`` is negative.
        """
        if amount.is_negative:
            raise InternalError(f"budget: cannot reserve a negative amount {amount}")
        unique = tuple(dict.fromkeys(scopes))
        asked = (amount.usd, amount.tokens, amount.tool_calls)
        with self._lock:
            accounts = tuple(self._account(scope) for scope in unique)
            for account in accounts:
                for dimension, limit in account.checks:
                    i = _INDEX[dimension]
                    spent, held = account.spent[i], account.reserved[i]
                    total = (
                        exact_add(exact_add(spent, held), asked[0])
                        if i == 0
                        else spent + held + asked[i]
                    )
                    if total > limit:
                        raise budget_exceeded_error(
                            account.scope, dimension, limit, spent, held, asked[i]
                        )
            for account in accounts:
                held = account.reserved
                held[0] = exact_add(held[0], asked[0])
                held[1] += asked[1]
                held[2] += asked[2]
            self._issued += 1
            reservation = Reservation(self._issued, unique, amount, self, accounts)
            self._open[reservation.id] = reservation
            return reservation

    def settle(self, reservation: Reservation, actual: Spend) -> list[Crossing]:
        """Release ``reservation`` and record ``actual`` spend on its scopes.

        ``actual`` may exceed what was reserved; it is recorded in full.

        Returns:
            The thresholds (80%, 100%) this spend crossed, per scope and dimension,
            in the reservation's scope order.

        Raises:
            InternalError: the reservation was already settled or released, is
                not this ledger's, or ``actual`` is negative.
        """
        if actual.is_negative:
            raise InternalError(f"budget: cannot settle a negative amount {actual}")
        found: list[Crossing] = []
        usd, tokens, tool_calls = actual.usd, actual.tokens, actual.tool_calls
        with self._lock:
            self._close(reservation, settling=True)
            for account in reservation._accounts:
                figures = account.spent
                limits = account.limits
                before = _spend(figures) if limits is not None else _NONE
                figures[0] = exact_add(figures[0], usd)
                figures[1] += tokens
                figures[2] += tool_calls
                if limits is not None and account.may_have_crossed():
                    found.extend(crossings(before, _spend(figures), limits, account.scope))
        return found

    def release(self, reservation: Reservation) -> None:
        """Give ``reservation`` back unspent (the call failed before spending anything).

        Idempotent: releasing a reservation that is already settled or released
        does nothing, so it is safe in a ``finally`` block after :meth:`settle`.

        Raises:
            InternalError: the reservation is not this ledger's.
        """
        with self._lock:
            self._close(reservation, settling=False)

    def _close(self, reservation: Reservation, *, settling: bool) -> bool:
        """Drop an open reservation's hold; False when it was closed already (lock held)."""
        if reservation._owner is not self or reservation.id > self._issued:
            raise InternalError(f"budget: reservation {reservation.id} is not from this ledger")
        if self._open.pop(reservation.id, None) is None:
            if settling:
                raise InternalError(
                    f"budget: reservation {reservation.id} was already settled or released"
                )
            return False
        amount = reservation.amount
        for account in reservation._accounts:
            held = account.reserved
            held[0] = exact_subtract(held[0], amount.usd)
            held[1] -= amount.tokens
            held[2] -= amount.tool_calls
        return True

    # -- reporting ------------------------------------------------------------------------

    def open_reservations(self) -> int:
        """How many reservations are neither settled nor released."""
        with self._lock:
            return len(self._open)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every known scope as JSON: ``{"agent:coder": {scope, key, limits, spent, reserved}}``."""
        with self._lock:
            accounts = sorted(self._accounts.values(), key=lambda a: a.scope.id)
            return {
                account.scope.id: {
                    "scope": account.scope.kind,
                    "key": account.scope.key,
                    "limits": (account.limits or Limits()).to_dict(),
                    "spent": account.spent_spend().to_dict(),
                    "reserved": account.reserved_spend().to_dict(),
                }
                for account in accounts
            }

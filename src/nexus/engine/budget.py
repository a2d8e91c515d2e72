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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nexus.domain.budget import (
    DIMENSIONS,
    Crossing,
    Limits,
    Scope,
    Spend,
    budget_exceeded_error,
    crossings,
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


_NONE = Spend()


class BudgetLedger:
    """Limits, spend and reservations per scope, shared by every call of a run (or tenant).

    Args:
        limits: initial limits per scope (more can be set with :meth:`set_limits`).
    """

    def __init__(self, limits: Mapping[Scope, Limits] | None = None) -> None:
        self._lock = threading.Lock()
        self._limits: dict[Scope, Limits] = {}
        self._spent: dict[Scope, Spend] = {}
        self._reserved: dict[Scope, Spend] = {}
        self._open: dict[int, Reservation] = {}
        self._issued = 0
        for scope, scope_limits in (limits or {}).items():
            self.set_limits(scope, scope_limits)

    # -- limits and figures ---------------------------------------------------------------

    def set_limits(self, scope: Scope, limits: Limits) -> None:
        """Set (or replace) ``scope``'s limits; empty limits remove them.

        Raising a limit takes effect for the next reservation; lowering one
        below what is already spent makes every later reservation fail.
        """
        with self._lock:
            if limits.is_empty:
                self._limits.pop(scope, None)
            else:
                self._limits[scope] = limits

    def limits(self, scope: Scope) -> Limits:
        """``scope``'s limits (empty when it has none)."""
        with self._lock:
            return self._limits.get(scope, Limits())

    def seed(self, scope: Scope, spent: Spend) -> None:
        """Set what ``scope`` has already spent (from the event log, on resume).

        This replaces the figure rather than adding to it, so seeding twice from
        the same log is harmless.
        """
        if spent.is_negative:
            raise InternalError(f"budget: cannot seed {scope.label} with negative spend {spent}")
        with self._lock:
            self._spent[scope] = spent

    def spent(self, scope: Scope) -> Spend:
        """What ``scope`` has spent (settled calls and seeds)."""
        with self._lock:
            return self._spent.get(scope, _NONE)

    def reserved(self, scope: Scope) -> Spend:
        """What calls in flight hold on ``scope``."""
        with self._lock:
            return self._reserved.get(scope, _NONE)

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
        with self._lock:
            for scope in unique:
                limits = self._limits.get(scope)
                if limits is None:
                    continue
                spent = self._spent.get(scope, _NONE)
                held = self._reserved.get(scope, _NONE)
                total = spent + held + amount
                for dimension in DIMENSIONS:
                    limit = limits.get(dimension)
                    if limit is None:
                        continue
                    if total.get(dimension) > limit:
                        raise budget_exceeded_error(
                            scope,
                            dimension,
                            limit,
                            spent.get(dimension),
                            held.get(dimension),
                            amount.get(dimension),
                        )
            for scope in unique:
                self._reserved[scope] = self._reserved.get(scope, _NONE) + amount
                self._spent.setdefault(scope, _NONE)
            self._issued += 1
            reservation = Reservation(self._issued, unique, amount, _owner=self)
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
        with self._lock:
            self._close(reservation, settling=True)
            for scope in reservation.scopes:
                before = self._spent.get(scope, _NONE)
                after = before + actual
                self._spent[scope] = after
                limits = self._limits.get(scope)
                if limits is not None:
                    found.extend(crossings(before, after, limits, scope))
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
        for scope in reservation.scopes:
            self._reserved[scope] = self._reserved[scope] - reservation.amount
        return True

    # -- reporting ------------------------------------------------------------------------

    def open_reservations(self) -> int:
        """How many reservations are neither settled nor released."""
        with self._lock:
            return len(self._open)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every known scope as JSON: ``{"agent:coder": {scope, key, limits, spent, reserved}}``."""
        with self._lock:
            scopes: Iterable[Scope] = {*self._limits, *self._spent, *self._reserved}
            return {
                scope.id: {
                    "scope": scope.kind,
                    "key": scope.key,
                    "limits": self._limits.get(scope, Limits()).to_dict(),
                    "spent": self._spent.get(scope, _NONE).to_dict(),
                    "reserved": self._reserved.get(scope, _NONE).to_dict(),
                }
                for scope in sorted(scopes, key=lambda s: s.id)
            }

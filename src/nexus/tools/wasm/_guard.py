"""Stopping a running guest: a per-call guard that wasmtime's epoch callback consults.

While a guest runs, the runtime's ticker advances the engine's epoch every
``tick_seconds``; each store's epoch-deadline callback lets its guest go on
unless the call is past its deadline, cancelled, or over its output limit;
then the guest traps at its next loop back-edge or function entry. The callback
is per store, so stopping one guest leaves the others on the shared engine
running. wasmtime-py does not wrap that callback (50.0), so
:func:`install_epoch_guard` reaches it through ``wasmtime._ffi``; the tests pin
the behaviour.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import wasmtime
from wasmtime import _ffi as wasmtime_ffi

__all__ = ["Guard", "install_epoch_guard"]


class Guard:
    """One call's stop conditions, consulted by the epoch callback on every tick.

    ``reason`` is set once, by the first of: ``"cancelled"`` (from the event
    loop), ``"wall"`` or ``"output"`` (from the callback, in the guest's thread).
    """

    __slots__ = ("deadline", "max_output", "output_fds", "reason")

    def __init__(self, max_output: int) -> None:
        self.reason: str | None = None
        self.deadline = float("inf")
        self.max_output = max_output
        self.output_fds: tuple[int, ...] = ()

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def should_stop(self) -> bool:
        if self.reason is None:
            if time.monotonic() >= self.deadline:
                self.stop("wall")
            elif any(os.fstat(fd).st_size > self.max_output for fd in self.output_fds):
                self.stop("output")
        return self.reason is not None


# The epoch-deadline callback: C signature from wasmtime's store.h. Guards are
# found by the integer handed to wasmtime as the callback's data pointer.
_GUARDS: dict[int, Guard] = {}
_guard_ids = itertools.count(1)
_EpochCallback = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(wasmtime_ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ctypes.c_uint8),
)
_UPDATE_DEADLINE_CONTINUE = 0


def _on_epoch(_context: object, data: int | None, delta: Any, kind: Any) -> int:
    try:
        guard = _GUARDS.get(data or 0)
        if guard is None or guard.should_stop():
            error = wasmtime_ffi.wasmtime_error_new(b"nexus: guest stopped by its host")
            return ctypes.cast(error, ctypes.c_void_p).value or 0
        delta[0] = 1
        kind[0] = _UPDATE_DEADLINE_CONTINUE
        return 0
    except BaseException:  # an exception must not cross into C; stop the guest instead
        error = wasmtime_ffi.wasmtime_error_new(b"nexus: epoch callback failed")
        return ctypes.cast(error, ctypes.c_void_p).value or 0


_ON_EPOCH = _EpochCallback(_on_epoch)
# wasmtime calls this when the store is dropped; the guard is released earlier, by
# install_epoch_guard, so there is nothing left to free.
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _data: None)


@contextmanager
def install_epoch_guard(store: wasmtime.Store, guard: Guard) -> Iterator[None]:
    """Make ``store``'s guest consult ``guard`` on every epoch tick, from the next one on."""
    guard_id = next(_guard_ids)
    _GUARDS[guard_id] = guard
    try:
        wasmtime_ffi.wasmtime_store_epoch_deadline_callback(
            store.ptr(), _ON_EPOCH, guard_id, _NO_FINALIZER
        )
        store.set_epoch_deadline(1)
        yield
    finally:
        del _GUARDS[guard_id]

"""What the task serving a server and the tasks calling its tools share.

The SDK's transports and sessions own anyio task groups, which must be entered
and exited by the same task; so one task (the connection's supervisor) owns the
whole session stack, and callers only send requests on the live session, which
the SDK supports. They talk through a :class:`Link`:

* the live session, tagged with its *generation* (one per connection attempt),
  so a signal about an old session never disturbs a new one;
* signals from callers and the transport to the supervisor: ``probe`` (a call
  timed out: is the server alive?), ``broken`` (the transport failed) and
  ``relist`` (the server said its tools changed), each waking it up;
* the outcome of the latest attempt (``ready``, ``down``, ``last_error``),
  which callers wait on or report.

The JSON-RPC bookkeeping itself -- request ids, pending requests, matching
responses, notifications -- is the SDK's ``ClientSession``.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from mcp import ClientSession

__all__ = ["Link", "Signal"]

#: What a caller or the transport tells the supervisor about the live session.
Signal = Literal["probe", "broken", "relist"]


class Link:
    """The live session of one server and the signals about it."""

    def __init__(self) -> None:
        self._session: tuple[int, ClientSession] | None = None
        self._generation = 0
        self._flags: set[Signal] = set()
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        #: set whenever a connection attempt ends, whatever its outcome
        self.attempted = asyncio.Event()
        #: whether the latest connection attempt failed
        self.down = False
        #: why the server is not usable (``None`` while a session is up)
        self.last_error: str | None = None

    @property
    def session(self) -> tuple[int, ClientSession] | None:
        """The live session and its generation, if one is up."""
        return self._session

    # -- the supervisor's side -------------------------------------------------------------

    def begin(self) -> int:
        """Start a new connection attempt; its generation (signals of older ones are dropped)."""
        self._generation += 1
        self._flags.clear()
        return self._generation

    def up(self, generation: int, session: ClientSession) -> None:
        """The attempt of ``generation`` has a working session: callers may use it."""
        self._session = (generation, session)
        self.last_error = None
        self.down = False
        self._ready.set()
        self.attempted.set()

    def lost(self) -> None:
        """No session from now on: calls wait for the next one instead of using this one."""
        self._session = None
        self._ready.clear()

    def failed(self, message: str) -> None:
        """The attempt failed, for ``message``: calls fail fast until a session is up again."""
        self.last_error = message
        self.down = True
        self.attempted.set()

    async def woken(self) -> None:
        """Wait for the next signal (or :meth:`wake`)."""
        await self._wake.wait()
        self._wake.clear()

    def wake(self) -> None:
        """Wake the supervisor without a signal (it is to stop)."""
        self._wake.set()

    def has(self, flag: Signal) -> bool:
        """Whether ``flag`` was signalled (and not yet taken)."""
        return flag in self._flags

    def take(self, flag: Signal) -> bool:
        """Whether ``flag`` was signalled; it is cleared."""
        if flag in self._flags:
            self._flags.discard(flag)
            return True
        return False

    # -- the callers' side -------------------------------------------------------------------

    def signal(self, generation: int, flag: Signal) -> None:
        """Tell the supervisor ``flag`` about the session of ``generation``, if it is still the
        current attempt."""
        if generation == self._generation:
            self._flags.add(flag)
            self._wake.set()

    async def session_by(self, deadline: float) -> tuple[int, ClientSession]:
        """The live session; if a (re)connection is under way, wait for it until ``deadline``
        (event-loop time).

        Raises:
            TimeoutError: the latest attempt failed (fail now), or no session by ``deadline``.
        """
        if self._session is None and self.down:
            raise TimeoutError  # known down: fail now
        if self._session is None:  # a (re)connection is under way: wait for it
            async with asyncio.timeout_at(deadline):
                while self._session is None:
                    await self._ready.wait()
        assert self._session is not None
        return self._session

    async def ready(self) -> None:
        """Wait until a session is up."""
        await self._ready.wait()

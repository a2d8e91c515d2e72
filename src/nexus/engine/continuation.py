"""Taking up a budget-paused attempt where it stopped.

When a call is refused budget, the attempt ends (``budget_exceeded``, marked
``resumable``) and its task pauses. Starting the agent over after ``nexus
resume --budget`` would ask the model again for answers the run already paid
for and run its tools a second time. Instead the next attempt *continues* the
paused one: its ``attempt.started`` names the paused attempts
(``continues``, latest first; a task paused twice names both), and each of its
calls is answered from their record, in order, as long as

* one of them recorded that call (the latest that did is the one asked),
* the record is not the refusal itself, and
* the call asks exactly what was recorded (kind and request; a model's ``turn``,
  which counts the agent's attempts, aside).

From the first call that fails one of these the attempt is *live*: that call
and every later one run and are recorded as usual, under the new attempt's
keys -- numbered where the conversation is, so call 3 of attempt 2 follows
calls 0-2 answered from attempt 1. The first live call's record says how many
calls were answered from the record and why it was not
(``continued: {"served": 3, "why": "call 3 of attempt 1 was refused budget"}``).
Calls answered from the record are not recorded again and cost nothing: they
were recorded, and paid for, once.

A replay takes the same path: a call the attempt recorded is served as
recorded (it went live there), any other is answered from the paused attempts.
So is a resume after ``kill -9``: an attempt interrupted while it continued
another is retried continuing the same paused attempts (its own live calls are
run again, as an interrupted attempt's are).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nexus.domain.canonical import canonical_json
from nexus.domain.errors import ErrorKind
from nexus.domain.events import Event, EventType
from nexus.domain.ids import effect_key
from nexus.domain.payloads import EffectRecord
from nexus.domain.state import RunState
from nexus.engine.effects import EffectCall, Effects

__all__ = ["Continuation", "continued_records"]


def continued_records(state: RunState, events: Iterable[Event]) -> dict[str, dict[str, Any]]:
    """The effect records that the tasks of ``state`` about to continue paused attempts need.

    A live engine hands them to :class:`~nexus.engine.effects.LiveEffects` when
    it takes a run over; a replay has every record already.
    """
    wanted = {tid: set(t.continues) for tid, t in state.tasks.items() if t.continues}
    if not wanted:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.type is not EventType.EFFECT_RECORDED:
            continue
        data = event.data
        attempts = wanted.get(data["task"])
        if attempts is not None and data["attempt"] in attempts:
            found[data["key"]] = data
    return found


class Continuation:
    """Answers one attempt's calls from the paused attempts it continues, until it goes live.

    Args:
        effects: where the records are read (and requests put as recorded).
        run_id, task: the attempt's run and task.
        attempts: the paused attempts, latest first (``AttemptStarted.continues``).
    """

    def __init__(self, effects: Effects, run_id: str, task: str, attempts: Sequence[int]) -> None:
        self._effects = effects
        self._run = run_id
        self._task = task
        self._attempts = tuple(attempts)
        self.live = False
        #: calls answered from the record so far
        self.served = 0
        #: why the attempt went live, until the first live call's record says it
        self._why: str | None = None

    def candidate(self, index: int) -> tuple[int, dict[str, Any]] | None:
        """The paused attempt whose record would answer call ``index``, and that record."""
        if self.live:
            return None
        for attempt in self._attempts:
            record = self._effects.recorded(effect_key(self._run, self._task, attempt, index))
            if record is not None:
                return attempt, record
        return None

    def serve(self, call: EffectCall, index: int) -> dict[str, Any] | None:
        """The recorded effect that answers ``call`` (number ``index``), or None: run it live."""
        if self.live:
            return None
        if self._effects.recorded(call.key) is not None:
            # recorded under this attempt: it went live here (a replay), and the
            # record already says why
            self.live = True
            return None
        found = self.candidate(index)
        if found is None:
            names = ", ".join(str(a) for a in self._attempts)
            which = "attempt" if len(self._attempts) == 1 else "attempts"
            self._go_live(f"{which} {names} recorded no call {index}")
            return None
        attempt, record = found
        effect = EffectRecord.of(record)
        if effect.error is not None and effect.error.get("kind") == str(ErrorKind.BUDGET_EXCEEDED):
            self._go_live(f"call {index} of attempt {attempt} was refused budget")
            return None
        if effect.kind != call.kind or not self._same(call, effect.request):
            self._go_live(f"the request differs from call {index} of attempt {attempt}")
            return None
        self.served += 1
        return record

    def why(self) -> dict[str, Any] | None:
        """What the first live call records as ``continued`` (once; None after that)."""
        if self._why is None:
            return None
        continued = {"served": self.served, "why": self._why}
        self._why = None
        return continued

    def _go_live(self, why: str) -> None:
        self.live = True
        self._why = why

    def _same(self, call: EffectCall, recorded: Any) -> bool:
        asked = self._effects.as_recorded(call.request)
        if call.kind == "model":
            # ``turn`` counts the agent's attempts: the continuing one is a later one
            asked, recorded = _without_turn(asked), _without_turn(recorded)
        return canonical_json(asked) == canonical_json(recorded)


def _without_turn(request: Any) -> Any:
    if isinstance(request, Mapping):
        return {key: value for key, value in request.items() if key != "turn"}
    return request

"""The engine's per-task path reads payloads as stored, without payload views.

The fold, the decider, the controller and the worker read an event's data as
the dict it is, typed by its model's stored form (``nexus.domain.payload_data``);
a typed view (``Model.of(data).task``) costs an object and a Python call per
field, and on the pure path that was 2.5 % of the instructions of a task
(docs/benchmarks.md, event payload models). These tests count the view reads
the controller and the worker make, and the views the decider builds for a
task (none: a tool attempt's ``attempt.started`` and a task's ``task.succeeded``
are written as stored dicts, the same keys in the same order as the model's),
so a change that brings them back fails here rather than only in a benchmark.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from nexus.domain import payloads
from nexus.domain.events import EventType
from nexus.domain.payloads import AttemptStarted, Payload
from nexus.domain.plan import FsmPolicy, FsmState, FsmTransition, LoopPolicy, Plan, TaskSpec
from nexus.domain.state import RunState, TaskState, fsm_state_of
from nexus.engine.decider import _tool_started
from nexus.engine.facade import Engine
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import FunctionTool
from nexus.tools.builtins import builtin_tools

#: where the per-task path lives
_READERS = ("/nexus/engine/controller.py", "/nexus/engine/worker.py")


def _view_code() -> dict[Any, str]:
    """The code a view read runs: the readers from a dict (``of``, ``from_event``,
    ``RunState.payload``) and every model's field getters, by what they read."""
    code: dict[Any, str] = {
        vars(Payload)["of"].__func__.__code__: "of",
        vars(Payload)["from_event"].__func__.__code__: "from_event",
        RunState.payload.__code__: "payload",
    }
    for model in vars(payloads).values():
        if isinstance(model, type) and issubclass(model, Payload):
            for name, value in vars(model).items():
                if isinstance(value, property) and value.fget is not None:
                    code.setdefault(value.fget.__code__, f"{model.__name__}.{name}")
    return code


def _view_inits() -> dict[Any, str]:
    """The code building a view: each model's ``__init__`` (written out per model)."""
    code: dict[Any, str] = {}
    for model in vars(payloads).values():
        if isinstance(model, type) and issubclass(model, Payload) and "__init__" in vars(model):
            code[vars(model)["__init__"].__code__] = f"{model.__name__}()"
    return code


@contextmanager
def view_reads(
    reads: dict[Any, str] | None = None, readers: tuple[str, ...] = _READERS
) -> Iterator[Counter[str]]:
    """Count the calls of ``reads`` (default: the view reads) made from ``readers``
    (default: the controller and the worker), as ``caller:what``."""
    seen: Counter[str] = Counter()
    reads = _view_code() if reads is None else reads
    previous = sys.getprofile()

    def on_call(frame: FrameType, event: str, arg: object) -> None:
        if event != "call":
            return
        what = reads.get(frame.f_code)
        if what is None:
            return
        caller = frame.f_back
        if caller is not None and caller.f_code.co_filename.endswith(readers):
            seen[f"{caller.f_code.co_name}:{what}"] += 1

    sys.setprofile(on_call)
    try:
        yield seen
    finally:
        sys.setprofile(previous)


def _noop(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def _chain(ws: Path, tool: str, n: int) -> Plan:
    tasks = {
        f"t{i}": TaskSpec(
            id=f"t{i}",
            tool=tool,
            args={"i": i},
            needs=(f"t{i - 1}",) if i else (),
            timeout=30.0,
        )
        for i in range(n)
    }
    return Plan(name="chain", tasks=tasks, workspace=str(ws))


def _run(tmp_path: Path, tool: str, n: int) -> tuple[Counter[str], str, SQLiteStore]:
    registry = builtin_tools()
    registry.add(FunctionTool(name="noop_worker", fn=_noop, pure=False))
    store = SQLiteStore.open(tmp_path / "nexus.db")

    async def go() -> tuple[Counter[str], str]:
        engine = Engine(store, tools=registry)
        with view_reads() as seen:
            result = await asyncio.wait_for(engine.start(_chain(tmp_path, tool, n)), 30)
        assert result.status == "succeeded"
        report = await engine.replay(result.run_id)
        assert report.identical, report.first_divergence
        return seen, result.run_id

    seen, run_id = asyncio.run(go())
    return seen, run_id, store


@pytest.mark.parametrize("tool", ["noop", "noop_worker"], ids=["pure", "worker"])
def test_a_task_reads_its_payloads_without_views(tmp_path: Path, tool: str) -> None:
    """Neither the controller nor the worker builds or reads a view of
    ``attempt.started``, the effect record or ``attempt.finished`` for a task
    (pure: run inline; worker: dispatched after the commit)."""
    seen, run_id, store = _run(tmp_path, tool, 12)
    assert dict(seen) == {}

    async def check() -> None:
        events = await store.load(run_id)
        await store.close()
        # the run is what it always was: every task started, recorded, finished
        counts = Counter(e.type for e in events)
        assert counts[EventType.ATTEMPT_STARTED] == 12
        assert counts[EventType.EFFECT_RECORDED] == 12
        assert counts[EventType.ATTEMPT_FINISHED] == 12
        assert str(RunState.fold(events).status) == "succeeded"
        first = next(e for e in events if e.type is EventType.ATTEMPT_STARTED)
        assert first.data == {
            "task": "t0",
            "attempt": 1,
            "tool": tool,
            "args": {"i": 0},
            "timeout_ms": 30000,
        }

    asyncio.run(check())


def test_the_counter_sees_view_reads(tmp_path: Path) -> None:
    """The counter is not blind: a view read from the controller's module is counted."""
    from nexus.domain.payloads import TimerFired
    from nexus.engine import controller

    with view_reads() as seen:
        exec(
            compile("TimerFired.of({'task': 't'}).task", controller.__file__, "exec"),
            {"TimerFired": TimerFired},
        )
    assert seen == {"<module>:of": 1, "<module>:TimerFired.task": 1}


def test_a_task_builds_no_payload_view(tmp_path: Path) -> None:
    """The decider writes a tool attempt's ``attempt.started`` and a task's
    ``task.succeeded`` as stored dicts: on a pure chain the views the decider, the
    controller and the worker build (the run's ``run.succeeded``) do not grow with it."""
    engine_code = ("/nexus/engine/decider.py", *_READERS)

    def built(n: int) -> Counter[str]:
        home = tmp_path / str(n)
        home.mkdir()
        store = SQLiteStore.open(home / "nexus.db")

        async def go() -> Counter[str]:
            engine = Engine(store)
            with view_reads(_view_inits(), engine_code) as seen:
                result = await asyncio.wait_for(engine.start(_chain(home, "noop", n)), 30)
            assert result.status == "succeeded"
            await store.close()
            return seen

        return asyncio.run(go())

    few, many = built(3), built(9)
    assert few == many
    assert not any("AttemptStarted" in what or "TaskSucceeded" in what for what in many)


_FSM = FsmPolicy(
    initial="draft",
    max_steps=5,
    states={
        "draft": FsmState(tool="noop", transitions=(FsmTransition(to="done"),)),
        "done": FsmState(terminal=True),
    },
)


@pytest.mark.parametrize(
    ("spec", "timeout_ms", "node"),
    [
        (TaskSpec(id="t", tool="noop"), None, None),
        (TaskSpec(id="t", tool="noop", args={"a": [1]}, profile={"net": "none"}), 5000, None),
        (
            TaskSpec(id="t", tool="noop", loop=LoopPolicy(until="{{ true }}", max_iterations=3)),
            None,
            None,
        ),
        (TaskSpec(id="t", tool="noop"), None, "act"),
        (TaskSpec(id="t", tool="noop", fsm=_FSM), None, None),
    ],
    ids=["plain", "profile-timeout", "loop", "bt-node", "fsm"],
)
def test_a_tool_attempt_is_written_as_the_model_writes_it(
    spec: TaskSpec, timeout_ms: int | None, node: str | None
) -> None:
    """``attempt.started`` of a tool call, written as a dict, is the model's stored form
    key for key and in the same order (so the log's bytes cannot differ)."""
    task = TaskState(id="t", spec=spec, attempts=2, iteration=3)
    written = _tool_started(task, spec, {}, timeout_ms, node)
    model = AttemptStarted(
        task="t",
        attempt=3,
        tool=spec.tool,
        args=spec.args,
        profile=spec.profile,
        timeout_ms=timeout_ms,
        iteration=None if spec.loop is None else 3,
        node=node,
    )
    if spec.fsm is not None:
        model.state = fsm_state_of(task)
        model.step = 3
    assert list(written.items()) == list(model.to_data().items())
    AttemptStarted.check(dict(written))

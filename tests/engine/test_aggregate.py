"""Aggregation: a fan-out's items answer the same question and the task's output is the
answer they add up to (vote, majority, consensus, first_success), recorded with its
tallies, folded, and replayed with no tool or model call."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _runs import check_replay, crash, forge, resume, run_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.domain.canonical import canonical_json
from nexus.domain.errors import IntegrityError
from nexus.domain.events import Event, EventType
from nexus.domain.payloads import AttemptStarted, TaskFailed, TaskSucceeded
from nexus.domain.plan import AggregatePolicy, Plan, TaskSpec
from nexus.domain.state import RunState
from nexus.engine.aggregate import answer_of, decide
from nexus.engine.facade import RunResult
from nexus.gateway.base import ModelRequest
from nexus.planning.workflow import compile_workflow
from nexus.testing import TestModel
from nexus.tools.base import FunctionTool, ToolFailed, ToolRegistry
from nexus.tools.builtins import builtin_tools

FAIL = "<fail>"
HANG = "<hang>"


class Answers:
    """The ``answer`` tool: item ``n`` answers ``values[n]``; :data:`FAIL` fails it
    (not retryably), :data:`HANG` never returns (until cancelled). Every call is noted."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self.calls: list[int] = []
        self.cancelled: list[int] = []

    def tools(self) -> ToolRegistry:
        tools = builtin_tools()
        tools.add(FunctionTool("answer", self.answer))
        return tools

    async def answer(self, n: int) -> Any:
        self.calls.append(n)
        value = self.values[n]
        if value == FAIL:
            raise ToolFailed(f"item {n} has no answer")
        if value == HANG:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.cancelled.append(n)
                raise
        return value


def _plan(values: list[Any], aggregate: Any, *, fail_fast: bool = True, **extra: Any) -> Plan:
    doc = {
        "version": 1,
        "name": "aggregate",
        "fail_fast": fail_fast,
        "tasks": {
            "ask": {
                "foreach": list(range(len(values))),
                "tool": "answer",
                "with": {"n": "{{ item }}"},
                "aggregate": aggregate,
                **extra,
            },
            "after": {"tool": "noop", "needs": ["ask"], "with": {"got": "{{ tasks.ask.output }}"}},
        },
    }
    return compile_workflow(
        doc, file="aggregate.yaml", known_tools=[*builtin_tools().names(), "answer"]
    )


def _ended(events: list[Event], task: str = "ask") -> TaskSucceeded | TaskFailed:
    for event in events:
        if event.data.get("task") == task and event.type is EventType.TASK_SUCCEEDED:
            return TaskSucceeded.of(event.data)
        if event.data.get("task") == task and event.type is EventType.TASK_FAILED:
            return TaskFailed.of(event.data)
    raise AssertionError(f"{task} never ended")


def _check(
    db: Path, values: list[Any], aggregate: Any, **extra: Any
) -> tuple[RunResult, list[Event], Any]:
    """Run, check the fold is the live state and the replay is identical; the ending."""
    answers = Answers(values)
    result, events = asyncio.run(run_plan(db, _plan(values, aggregate, **extra), answers.tools()))
    assert RunResult.of(RunState.fold(events)) == result, "the fold of the log is the live state"
    idle = Answers(values)
    asyncio.run(check_replay(db, result.run_id, idle.tools()))
    assert idle.calls == [], "a replay runs no tool"
    return result, events, _ended(events)


# --------------------------------------------------------------------------- vote


def test_vote_takes_the_most_common_answer_and_records_the_tallies(tmp_path: Path) -> None:
    result, events, ended = _check(tmp_path / "n.db", ["no", "yes", "yes"], "vote")
    assert result.status == "succeeded"
    assert isinstance(ended, TaskSucceeded)
    assert ended.aggregate == {
        "method": "vote",
        "items": 3,
        "answers": 3,
        "winner": 1,
        "tallies": [
            {"answer": '"yes"', "count": 2, "items": [1, 2]},
            {"answer": '"no"', "count": 1, "items": [0]},
        ],
    }
    state = RunState.fold(events)
    assert state.tasks["ask"].output == "yes"
    assert state.tasks["after"].output == {"got": "yes"}


def test_a_tied_vote_goes_to_the_answer_given_first_in_item_order(tmp_path: Path) -> None:
    _, events, ended = _check(tmp_path / "n.db", [{"v": 2}, {"v": 1}, {"v": 1}, {"v": 2}], "vote")
    assert isinstance(ended, TaskSucceeded)
    assert ended.aggregate is not None
    assert ended.aggregate["winner"] == 0
    assert [t["count"] for t in ended.aggregate["tallies"]] == [2, 2]
    assert RunState.fold(events).tasks["ask"].output == {"v": 2}


def test_vote_counts_the_items_that_succeeded_and_the_run_succeeds(tmp_path: Path) -> None:
    """A failed item does not stop a fail-fast run: its fan-out decides without it."""
    result, events, ended = _check(tmp_path / "n.db", [FAIL, "b", "a", "b"], "vote")
    assert result.status == "succeeded"
    assert result.tasks["ask[0]"]["status"] == "failed"
    assert result.tasks["after"]["status"] == "succeeded"
    assert isinstance(ended, TaskSucceeded)
    assert ended.aggregate is not None
    assert ended.aggregate["failed"] == [0]
    assert ended.aggregate["answers"] == 3
    assert RunState.fold(events).tasks["ask"].output == "b"


def test_no_answer_at_all_fails_the_task(tmp_path: Path) -> None:
    result, _, ended = _check(tmp_path / "n.db", [FAIL, FAIL], "vote")
    assert result.status == "failed"
    assert isinstance(ended, TaskFailed)
    assert ended.error["message"] == (
        "vote: 0 of 2 items answered, none to count: 2 failed (items 0, 1)"
    )
    assert result.tasks["after"]["status"] == "skipped"


def test_fewer_answers_than_the_quorum_fail_the_task(tmp_path: Path) -> None:
    result, _, ended = _check(tmp_path / "n.db", ["a", FAIL, "a"], {"method": "vote", "quorum": 3})
    assert result.status == "failed"
    assert isinstance(ended, TaskFailed)
    assert ended.error["message"] == (
        "vote: 2 of 3 items answered, quorum is 3: 1 failed (items 1)"
    )
    assert ended.aggregate is not None
    assert "winner" not in ended.aggregate


# --------------------------------------------------------------------------- majority


def test_majority_needs_more_than_half_of_the_answers(tmp_path: Path) -> None:
    result, _, ended = _check(tmp_path / "n.db", ["a", "b", "b", "a"], "majority")
    assert result.status == "failed"
    assert isinstance(ended, TaskFailed)
    assert ended.error["kind"] == "validation"
    assert ended.error["message"] == (
        'majority: no answer has more than half of the 4 answers: "a" x2 (items 0, 3); '
        '"b" x2 (items 1, 2)'
    )
    assert ended.aggregate is not None
    assert ended.aggregate["tallies"][0] == {"answer": '"a"', "count": 2, "items": [0, 3]}


def test_a_majority_wins(tmp_path: Path) -> None:
    result, events, ended = _check(tmp_path / "n.db", ["a", "b", "b"], "majority")
    assert result.status == "succeeded"
    assert isinstance(ended, TaskSucceeded)
    assert RunState.fold(events).tasks["ask"].output == "b"


def test_key_compares_one_field_and_an_answer_without_it_is_not_counted(tmp_path: Path) -> None:
    values = [
        {"verdict": "ok", "why": "x"},
        {"verdict": "no", "why": "y"},
        {"verdict": "ok", "why": "z"},
        {"why": "forgot"},
    ]
    result, events, ended = _check(
        tmp_path / "n.db", values, {"method": "majority", "key": "verdict"}
    )
    assert result.status == "succeeded"
    assert isinstance(ended, TaskSucceeded)
    assert ended.aggregate is not None
    assert ended.aggregate["unanswered"] == [3]
    assert ended.aggregate["key"] == "verdict"
    # the output is the whole answer of the first item that gave the winning one
    assert RunState.fold(events).tasks["ask"].output == values[0]


# --------------------------------------------------------------------------- consensus


def test_consensus_takes_the_answer_every_item_gave(tmp_path: Path) -> None:
    result, _, ended = _check(tmp_path / "n.db", [[1, 2], [1, 2], FAIL], "consensus")
    assert result.status == "succeeded"
    assert isinstance(ended, TaskSucceeded)
    assert ended.aggregate is not None
    assert ended.aggregate["winner"] == 0


def test_consensus_fails_on_disagreement_listing_it(tmp_path: Path) -> None:
    result, _, ended = _check(tmp_path / "n.db", ["x", "x", "y"], "consensus")
    assert result.status == "failed"
    assert isinstance(ended, TaskFailed)
    assert ended.error["message"] == (
        'consensus: the 3 answers disagree: "x" x2 (items 0, 1); "y" x1 (items 2)'
    )


def test_a_fan_out_whose_items_the_run_stopped_is_cancelled_not_decided(tmp_path: Path) -> None:
    """Fail-fast cancels a hanging item: the answers that happened to be in decide nothing."""
    values = ["a", HANG]
    answers = Answers(values)
    doc = {
        "version": 1,
        "name": "aggregate",
        "tasks": {
            "ask": {
                "foreach": [0, 1],
                "tool": "answer",
                "with": {"n": "{{ item }}"},
                "aggregate": "vote",
            },
            "boom": {"tool": "shell", "with": {"cmd": "sleep 0.3; exit 3"}},
        },
    }
    plan = compile_workflow(doc, file="f.yaml", known_tools=[*builtin_tools().names(), "answer"])
    db = tmp_path / "n.db"
    result, events = asyncio.run(run_plan(db, plan, answers.tools()))
    assert result.status == "failed"
    assert answers.cancelled == [1]
    assert result.tasks["ask[0]"]["status"] == "succeeded"
    assert result.tasks["ask"]["status"] == "cancelled"
    (stopped,) = [
        e.data["reason"]
        for e in events
        if e.type is EventType.TASK_CANCELLED and e.data["task"] == "ask"
    ]
    assert stopped == "1 of its 2 items were stopped before they ended: ask[1]"
    assert RunResult.of(RunState.fold(events)) == result
    asyncio.run(check_replay(db, result.run_id, Answers(values).tools()))


# --------------------------------------------------------------------------- first_success


def test_first_success_takes_the_first_item_to_succeed_and_cancels_the_others(
    tmp_path: Path,
) -> None:
    values = [HANG, FAIL, "fast", HANG]
    answers = Answers(values)
    db = tmp_path / "n.db"
    started = time.monotonic()
    result, events = asyncio.run(run_plan(db, _plan(values, "first_success"), answers.tools()))
    assert time.monotonic() - started < 10, "the hanging items were stopped"
    assert result.status == "succeeded"
    assert sorted(answers.cancelled) == [0, 3]
    ended = _ended(events)
    assert isinstance(ended, TaskSucceeded)
    assert ended.aggregate == {"method": "first_success", "items": 4, "winner": 2, "failed": [1]}
    statuses = {t: result.tasks[f"ask[{t}]"]["status"] for t in range(4)}
    assert statuses == {0: "cancelled", 1: "failed", 2: "succeeded", 3: "cancelled"}
    cancelled = [e for e in events if e.type is EventType.TASK_CANCELLED]
    assert {e.data["reason"] for e in cancelled} == {
        "first_success: item 'ask[2]' of 'ask' succeeded first"
    }
    state = RunState.fold(events)
    assert RunResult.of(state) == result
    assert state.tasks["after"].output == {"got": "fast"}
    idle = Answers(values)
    asyncio.run(check_replay(db, result.run_id, idle.tools()))
    assert idle.calls == []


def test_first_success_with_no_success_fails(tmp_path: Path) -> None:
    result, _, ended = _check(tmp_path / "n.db", [FAIL, FAIL], "first_success")
    assert result.status == "failed"
    assert isinstance(ended, TaskFailed)
    assert ended.error["message"] == "first_success: none of the 2 items succeeded"


@pytest.mark.slow
def test_first_success_stops_the_processes_of_the_items_it_cancels(tmp_path: Path) -> None:
    marks = ["31.4159", "0", "31.4158"]
    doc = {
        "version": 1,
        "name": "mirrors",
        "tasks": {
            "fetch": {
                "foreach": marks,
                "tool": "shell",
                "with": {"cmd": "sleep {{ item }} && echo {{ item }}"},
                "aggregate": "first_success",
            }
        },
    }
    plan = compile_workflow(doc, file="mirrors.yaml")
    started = time.monotonic()
    result, events = asyncio.run(run_plan(tmp_path / "n.db", plan, builtin_tools()))
    assert time.monotonic() - started < 20
    assert result.status == "succeeded"
    assert RunState.fold(events).tasks["fetch"].output["stdout"].strip() == "0"
    deadline = time.monotonic() + 5
    while True:
        listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        left = [line for line in listing.splitlines() if "sleep 31.415" in line]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert left == [], "a cancelled item's process is still running"


# --------------------------------------------------------------------------- resume


def test_a_resumed_fan_out_runs_no_finished_item_again_and_tallies_once(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    answers = Answers(["a", HANG, "a"])
    plan = _plan(answers.values, "majority")

    def items_0_and_2_recorded_done(events: list[Event]) -> bool:  # item 1 hanging
        done = {e.data["task"] for e in events if e.type is EventType.TASK_SUCCEEDED}
        return len(answers.calls) >= 3 and {"ask[0]", "ask[2]"} <= done

    run_id = asyncio.run(
        crash(
            db,
            plan,
            answers.tools(),
            until=items_0_and_2_recorded_done,
            waiting="items 0 and 2 never ended",
        )
    )
    answers.values[1] = "b"

    result, events = asyncio.run(resume(db, run_id, answers.tools()))
    assert result.status == "succeeded"
    assert sorted(answers.calls) == [0, 1, 1, 2], "only the interrupted item ran again"
    ended = [e for e in events if e.type is EventType.TASK_SUCCEEDED and e.data["task"] == "ask"]
    assert len(ended) == 1
    record = TaskSucceeded.of(ended[0].data).aggregate
    assert record is not None
    assert record["tallies"] == [
        {"answer": '"a"', "count": 2, "items": [0, 2]},
        {"answer": '"b"', "count": 1, "items": [1]},
    ]
    assert RunResult.of(RunState.fold(events)) == result
    asyncio.run(check_replay(db, run_id, Answers(["a", "b", "a"]).tools()))


# --------------------------------------------------------------------------- agents


def _reviewers(verdicts: dict[str, str], method: str = "majority") -> Plan:
    doc = {
        "version": 1,
        "name": "review",
        "agents": {name: {"model": f"test:{name}"} for name in verdicts},
        "tasks": {
            "review": {
                "agents": list(verdicts),
                "prompt": "You are {{ item }}: approve or reject?",
                "output_schema": {
                    "type": "object",
                    "properties": {"verdict": {"type": "string"}, "by": {"type": "string"}},
                    "required": ["verdict", "by"],
                },
                "aggregate": {"method": method, "key": "verdict"},
            }
        },
    }
    return compile_workflow(doc, file="review.yaml")


def test_agents_fan_out_asks_each_agent_and_replays_with_no_model_call(tmp_path: Path) -> None:
    verdicts = {"alice": "approve", "bob": "reject", "carol": "approve"}

    def reply(request: ModelRequest) -> dict[str, str]:
        asked = str(request.messages[-1].content)
        name = next(n for n in verdicts if f"You are {n}:" in asked)
        return {"verdict": verdicts[name], "by": name}

    model = TestModel(reply)
    db = tmp_path / "n.db"
    result, events = asyncio.run(
        run_plan(db, _reviewers(verdicts), builtin_tools(), providers=model.registry())
    )
    assert result.status == "succeeded"
    assert len(model.requests) == 3
    started = [AttemptStarted.of(e.data) for e in events if e.type is EventType.ATTEMPT_STARTED]
    assert sorted((s.task, s.agent) for s in started) == [
        ("review[0]", "alice"),
        ("review[1]", "bob"),
        ("review[2]", "carol"),
    ]
    assert {s.route["why"].split(";")[0] for s in started if s.route} == {
        "fan-out agent 'alice'",
        "fan-out agent 'bob'",
        "fan-out agent 'carol'",
    }
    state = RunState.fold(events)
    assert state.tasks["review"].output["data"] == {"verdict": "approve", "by": "alice"}
    assert RunResult.of(state) == result
    idle = TestModel()
    asyncio.run(check_replay(db, result.run_id, builtin_tools(), providers=idle.registry()))
    assert idle.requests == [], "a replay asks no model"


def test_plain_text_answers_are_compared_without_surrounding_blanks() -> None:
    agent = {"text": " Yes\n", "model": "test:m", "usage": {}}
    assert answer_of(agent, None, agent=True) == "Yes"
    structured = {**agent, "data": {"ok": True}}
    assert answer_of(structured, None, agent=True) == {"ok": True}
    assert answer_of(structured, "ok", agent=True) is True
    # a tool's output is taken whole; a key may index a list
    assert answer_of({"text": "x", "model": "m"}, None, agent=False) == {"text": "x", "model": "m"}
    assert answer_of({"scores": [4, 5]}, "scores.1", agent=False) == 5


# --------------------------------------------------------------------------- the fold


def _fan_out_events(aggregate: AggregatePolicy | None, winner_ok: bool) -> list[Event]:
    """A forged log: item 0 of a two-item fan-out succeeds, and the parent with it."""
    plan = Plan(
        name="p",
        tasks={"ask": TaskSpec(id="ask", tool="noop", foreach=[1, 2], aggregate=aggregate)},
    )
    record = {"method": "first_success", "items": 2, "winner": 0 if winner_ok else 1}
    return forge(
        plan,
        (EventType.TASK_EXPANDED, {"task": "ask", "items": [1, 2]}),
        (EventType.ATTEMPT_STARTED, {"task": "ask[0]", "attempt": 1, "tool": "noop", "args": {}}),
        (EventType.ATTEMPT_FINISHED, {"task": "ask[0]", "attempt": 1, "output": "a"}),
        (EventType.TASK_SUCCEEDED, {"task": "ask[0]", "attempt": 1}),
        (EventType.TASK_SUCCEEDED, {"task": "ask", "aggregate": record}),
    )


def test_the_fold_takes_the_output_of_the_winning_item() -> None:
    state = RunState.fold(_fan_out_events(AggregatePolicy("first_success"), winner_ok=True))
    assert state.tasks["ask"].output == "a"
    assert state.tasks["ask"].status == "succeeded"


@pytest.mark.parametrize(
    ("aggregate", "winner_ok"),
    [(None, True), (AggregatePolicy("first_success"), False)],
    ids=["no aggregate", "a winner that did not succeed"],
)
def test_the_fold_refuses_a_forged_aggregate(
    aggregate: AggregatePolicy | None, winner_ok: bool
) -> None:
    with pytest.raises(IntegrityError, match="aggregated its items"):
        RunState.fold(_fan_out_events(aggregate, winner_ok))


# --------------------------------------------------------------------------- property


def _reference(method: str, values: list[Any], quorum: int) -> tuple[str, Any]:
    """What the task should end as: ("succeeded", output) or ("failed", None).

    Written apart from the engine: count with a Counter, break ties by the first
    item, judge the method's rule.
    """
    answered = [(i, v) for i, v in enumerate(values) if v != FAIL]
    if method == "first_success":
        return ("succeeded", answered[0][1]) if answered else ("failed", None)
    if len(answered) < max(quorum, 1):
        return "failed", None
    counts = Counter(canonical_json(v) for _, v in answered)
    first = {}
    for i, v in answered:
        first.setdefault(canonical_json(v), (i, v))
    best = max(counts.values())
    winner = min((first[k] for k, c in counts.items() if c == best), key=lambda p: p[0])
    if method == "majority" and best * 2 <= len(answered):
        return "failed", None
    if method == "consensus" and len(counts) > 1:
        return "failed", None
    return "succeeded", winner[1]


@st.composite
def fan_outs(draw: st.DrawFn) -> tuple[str, list[Any], int]:
    method = draw(st.sampled_from(["vote", "majority", "consensus", "first_success"]))
    answer = st.one_of(st.sampled_from(["a", "b", "c", FAIL]), st.integers(0, 2))
    values = draw(st.lists(answer, min_size=1, max_size=7))
    quorum = 1 if method == "first_success" else draw(st.integers(1, len(values)))
    return method, values, quorum


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=fan_outs())
def test_random_answers_add_up_as_a_reference_says(
    case: tuple[str, list[Any], int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    method, values, quorum = case
    aggregate: dict[str, Any] = {"method": method}
    if method != "first_success":
        aggregate["quorum"] = quorum
    # one at a time, so first_success's "first" is item order (the reference's)
    db = tmp_path_factory.mktemp("agg") / "n.db"
    answers = Answers(values)
    doc_plan = _plan(values, aggregate)
    plan = Plan(
        doc_plan.name, doc_plan.tasks, doc_plan.agents, fail_fast=doc_plan.fail_fast, max_parallel=1
    )
    result, events = asyncio.run(run_plan(db, plan, answers.tools()))
    status, output = _reference(method, values, quorum)
    assert result.tasks["ask"]["status"] == status
    state = RunState.fold(events)
    if status == "succeeded":
        assert state.tasks["ask"].output == output
        assert result.status == "succeeded"
    else:
        assert result.status == "failed"
    assert RunResult.of(state) == result, "the fold of the log is the live state"
    asyncio.run(check_replay(db, result.run_id, Answers(values).tools()))


def test_decide_matches_the_reference_on_a_tie_between_kinds() -> None:
    """1 and "1" are different answers (canonical JSON differs)."""
    policy = AggregatePolicy("vote")
    decision = decide(policy, [(0, 1), (1, "1"), (2, "1")], [], 3, agent=False)
    assert decision.winner == 1


def test_the_tally_shows_in_events_and_inspect(tmp_path: Path) -> None:
    from nexus.cli.inspection import view_task
    from nexus.cli.summaries import summary

    _, events, _ = _check(tmp_path / "n.db", ["no", "yes", "yes"], "majority")
    lines = [summary(e) for e in events if e.data.get("task") == "ask"]
    assert 'ask: majority: item 1 won, "yes" x2, "no" x1 (3 of 3 answered)' in lines
    doc = view_task(RunState.fold(events), events, "ask")
    assert doc["aggregate"]["winner"] == 1
    assert doc["aggregate"]["tallies"][0]["items"] == [1, 2]
    _, failed, _ = _check(tmp_path / "f.db", ["x", "y"], "consensus")
    (line,) = [summary(e) for e in failed if e.type is EventType.TASK_FAILED]
    assert (
        line
        == 'ask: validation: consensus: the 2 answers disagree: "x" x1 (items 0); "y" x1 (items 1)'
    )

"""The typed payload models read and write every recorded event unchanged; the fold reads
the stored form each model declares, and refuses a payload that does not fit it."""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus.domain import payload_data
from nexus.domain.budget import Crossing, Scope, budget_exceeded_error
from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.errors import IntegrityError
from nexus.domain.event_schema import json_schema
from nexus.domain.events import Draft, Event, EventType, seal
from nexus.domain.payloads import (
    ABSENT,
    MODELS,
    PAYLOADS,
    TASK_TYPES,
    AttemptFinished,
    AttemptStarted,
    BudgetCrossed,
    BudgetRefusal,
    EffectRecord,
    ErrorRecord,
    Payload,
    TaskSucceeded,
    TenantCrossing,
    payload_of,
    task_of,
)
from nexus.domain.plan import Plan, TaskSpec, plan_hash
from nexus.domain.state import RunState

FIXTURES = Path(__file__).parents[1] / "fixtures" / "events"
RECORDED = [
    row
    for path in sorted(FIXTURES.glob("*.json"))
    for row in json.loads(path.read_text())["events"]
]
AT = "2026-01-01T00:00:00.000000Z"


def test_every_event_type_has_exactly_one_model() -> None:
    assert set(PAYLOADS) == set(EventType)
    claimed = [t for model in MODELS for t in model.TYPES]
    assert len(claimed) == len(set(claimed)) == len(EventType)


@pytest.mark.parametrize("row", RECORDED, ids=lambda r: f"{r['type']}#{r['seq']}")
def test_recorded_payload_reads_and_writes_back_unchanged(row: dict[str, Any]) -> None:
    model = PAYLOADS[EventType(row["type"])]
    payload = model.of(row["data"])
    assert payload.to_data() == row["data"]
    assert (
        Payload.to_data(payload) == row["data"]
    )  # the generic writer agrees with the compiled one
    error = row["data"].get("error")
    if isinstance(error, dict):
        assert ErrorRecord.of(error).to_data() == error


def test_payload_of_an_event() -> None:
    event = seal("RUN", 2, Draft(EventType.TASK_SUCCEEDED, AT, {"task": "a"}), "0" * 64)
    payload = payload_of(event)
    assert isinstance(payload, TaskSucceeded)
    assert payload.task == "a"
    assert payload.attempt is None


def test_an_unknown_field_is_an_integrity_error_naming_it() -> None:
    event = seal("RUN", 7, Draft(EventType.TIMER_FIRED, AT, {"task": "a", "when": 1}), "0" * 64)
    with pytest.raises(
        IntegrityError, match=r"run RUN seq 7: timer\.fired payload: unexpected field\(s\) when"
    ):
        payload_of(event)


def test_a_missing_field_is_an_integrity_error_naming_it() -> None:
    with pytest.raises(
        IntegrityError, match=r"task\.failed payload: missing field\(s\) attempts, error"
    ):
        PAYLOADS[EventType.TASK_FAILED].of({"task": "a"})


def test_a_payload_of_the_wrong_type_is_refused() -> None:
    event = seal("RUN", 3, Draft(EventType.TIMER_FIRED, AT, {"task": "a"}), "0" * 64)
    with pytest.raises(IntegrityError, match=r"a timer\.fired event is not a TaskSucceeded"):
        TaskSucceeded.from_event(event)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(
    output=st.none() | _json,
    has_output=st.booleans(),
    error=st.none() | st.just({"kind": "x", "message": "m"}),
)
def test_attempt_finished_keeps_a_null_output_apart_from_none(
    output: Any, has_output: bool, error: dict[str, Any] | None
) -> None:
    data: dict[str, Any] = {"task": "a", "attempt": 1}
    if has_output:
        data["output"] = output
    if error is not None:
        data["error"] = error
    parsed = AttemptFinished.of(data)
    assert (parsed.output is ABSENT) is not has_output
    assert parsed.to_data() == data


@given(
    asked=st.sampled_from(["absent", None, 3, "0.5"]), reserved=st.sampled_from(["absent", None, 1])
)
def test_budget_crossed_keeps_absent_and_null_apart(asked: Any, reserved: Any) -> None:
    data: dict[str, Any] = {
        "scope": "run",
        "key": "",
        "dimension": "usd",
        "threshold": "1",
        "percent": 100,
        "spent": "1.2",
        "limit": "1",
        "task": "a",
    }
    if asked != "absent":
        data["asked"] = asked
    if reserved != "absent":
        data["reserved"] = reserved
    assert BudgetCrossed.of(data).to_data() == data


@given(
    extra=st.dictionaries(
        st.sampled_from(["provider", "status", "code", "file"]), _json, max_size=3
    )
)
def test_error_record_keeps_fields_only_some_errors_carry(extra: dict[str, Any]) -> None:
    data = {"kind": "transient", "message": "boom", "retryable": True, **extra}
    record = ErrorRecord.of(data)
    assert record.kind == "transient"
    assert record.to_data() == data


@pytest.mark.parametrize("row", RECORDED, ids=lambda r: f"{r['type']}#{r['seq']}")
def test_task_of_names_the_task_of_every_event_that_has_one(row: dict[str, Any]) -> None:
    event = seal(
        row["run_id"], row["seq"], Draft(EventType(row["type"]), row["at"], row["data"]), "0" * 64
    )
    task = row["data"].get("task")
    assert task_of(event) == (task if isinstance(task, str) else None)
    assert (event.type in TASK_TYPES) is ("task" in row["data"])


# -- the stored form the fold reads -------------------------------------------------


def _options(hint: Any) -> set[Any]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return set(typing.get_args(hint))
    return {hint}


def test_every_model_has_a_stored_form_and_every_stored_form_a_model() -> None:
    assert set(payload_data.__all__) == {f"{model.__name__}Data" for model in MODELS}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_the_stored_form_declares_the_model_key_for_key_and_type_for_type(
    model: type[Payload],
) -> None:
    stored = getattr(payload_data, f"{model.__name__}Data")
    assert stored.__required_keys__ == model.REQUIRED
    assert stored.__optional_keys__ == model.KEYS - model.REQUIRED
    declared = typing.get_type_hints(model)
    typed = typing.get_type_hints(stored)
    for f in fields(model):  # type: ignore[arg-type]
        want = _options(declared[f.name])
        if f.default is None:  # left out when None: never stored as null
            want -= {type(None)}
        elif f.default is ABSENT:  # left out when absent; null stays null
            want -= {typing.Literal[ABSENT]}
        else:
            assert f.default is MISSING
        assert _options(typed[f.name]) == want, f"{stored.__name__}.{f.name}"


PLAN = Plan(name="p", tasks={"a": TaskSpec(id="a", tool="noop")})


def _started() -> Event:
    data = {
        "name": PLAN.name,
        "plan": PLAN.to_dict(),
        "plan_hash": plan_hash(PLAN),
        "inputs": {},
        "workspace": "/nonexistent",
        "source": None,
    }
    return seal("RUN", 1, Draft(EventType.RUN_STARTED, AT, data), GENESIS_HASH)


def _second(type_: EventType, data: dict[str, Any]) -> tuple[Event, Event]:
    first = _started()
    return first, seal("RUN", 2, Draft(type_, AT, data), first.hash)


def _fold_refuses(events: tuple[Event, Event], match: str) -> None:
    with pytest.raises(IntegrityError, match=match):
        RunState.fold(list(events))
    state = RunState.fold([events[0]])
    with pytest.raises(IntegrityError, match=match):
        state.apply(events[1])


def test_the_fold_refuses_a_field_the_model_does_not_know_after_a_good_shape() -> None:
    good = {"task": "a", "attempt": 1, "tool": "noop"}
    assert RunState.fold(list(_second(EventType.ATTEMPT_STARTED, good))).running == 1
    # the same type with one key more: the good shape checked before does not admit it
    bad = _second(EventType.ATTEMPT_STARTED, {**good, "when": 3})
    _fold_refuses(bad, r"run RUN seq 2: attempt\.started payload: unexpected field\(s\) when")


def test_the_fold_refuses_a_payload_missing_a_field_it_needs() -> None:
    bad = _second(EventType.ATTEMPT_STARTED, {"task": "a", "tool": "noop"})
    _fold_refuses(bad, r"run RUN seq 2: attempt\.started payload: missing field\(s\) attempt")


_CROSSED: dict[str, Any] = {
    "scope": "run",
    "key": "",
    "dimension": "usd",
    "threshold": "0.8",
    "percent": 80,
    "spent": "0.8",
    "limit": "1",
    "task": "a",
    "asked": None,
    "reserved": None,
    "surprise": 1,
    "when": "now",
}


@given(keys=st.sets(st.sampled_from(sorted(_CROSSED))))
def test_the_fold_takes_exactly_the_payloads_that_fit_their_model(keys: set[str]) -> None:
    data = {key: _CROSSED[key] for key in sorted(keys)}
    events = _second(EventType.BUDGET_WARNING, data)
    fits = BudgetCrossed.REQUIRED <= keys <= BudgetCrossed.KEYS
    for _ in range(2):  # the second time the shape may be known: same verdict
        if fits:
            state = RunState.fold(list(events))
            assert ("run:", "usd", "0.8") in state.reported
        else:
            _fold_refuses(events, r"budget\.warning payload: (unexpected|missing) field")


def test_payload_is_a_view_of_the_event_it_is_asked_for() -> None:
    state = RunState.fold([_started()])
    started = AttemptStarted(task="a", attempt=1, tool="noop")
    event = seal("RUN", 2, Draft(EventType.ATTEMPT_STARTED, AT, started.to_data()), state.last_hash)
    state.apply(event)
    view = state.payload(event, AttemptStarted)
    assert view.wraps(event.data)  # the stored dict, not a copy
    assert view == started
    assert (view.task, view.attempt, view.tool) == ("a", 1, "noop")
    with pytest.raises(IntegrityError, match="is not a TaskSucceeded"):
        state.payload(event, TaskSucceeded)


# -- records carried inside payloads ---------------------------------------------------


def test_a_budget_refusal_reads_what_the_budget_error_writes() -> None:
    error = budget_exceeded_error(
        Scope("agent", "coder"), "usd", Decimal("0.1"), Decimal("0.095"), asked=Decimal("0.012")
    )
    record = ErrorRecord.of(error.to_data())
    refusal = record.refusal
    assert refusal is not None
    assert (refusal.scope, refusal.key, refusal.scope_id) == ("agent", "coder", "agent:coder")
    assert (refusal.dimension, refusal.limit, refusal.spent) == ("usd", "0.1", "0.095")
    assert (refusal.reserved, refusal.asked) == ("0", "0.012")
    assert refusal.to_data() is record.budget
    assert ErrorRecord(kind="transient", message="boom").refusal is None


def test_a_budget_refusal_missing_a_figure_is_an_integrity_error() -> None:
    budget = {"scope": "run", "key": "", "dimension": "tool_calls", "limit": 2, "spent": 2}
    record = ErrorRecord.of({"kind": "budget_exceeded", "message": "no", "budget": budget})
    with pytest.raises(IntegrityError, match=r"BudgetRefusal payload: missing field\(s\) asked"):
        _ = record.refusal


def test_a_tenant_crossing_reads_what_the_tenant_budget_writes() -> None:
    crossed = Crossing(Scope("tenant", "acme"), "usd", Decimal("0.8"), Decimal("8"), Decimal("10"))
    record = EffectRecord.of({**_effect_data(), "tenant_budget": [crossed.to_dict()]})
    [crossing] = record.tenant_crossings
    assert (crossing.scope_id, crossing.dimension, crossing.threshold) == (
        "tenant:acme",
        "usd",
        "0.8",
    )
    assert (crossing.percent, crossing.spent, crossing.limit) == (80, "8", "10")
    assert EffectRecord.of(_effect_data()).tenant_crossings == []
    odd = EffectRecord.of({**_effect_data(), "tenant_budget": [{**crossed.to_dict(), "x": 1}]})
    with pytest.raises(IntegrityError, match=r"TenantCrossing payload: unexpected field\(s\) x"):
        _ = odd.tenant_crossings


def _effect_data() -> dict[str, Any]:
    return {
        "key": "RUN/a/1/0",
        "kind": "model",
        "task": "a",
        "attempt": 1,
        "request": {},
        "response": {},
        "result_hash": None,
        "error": None,
        "started": AT,
        "ended": AT,
    }


def test_the_schema_describes_the_records_inside_payloads() -> None:
    schema = json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    crossed = Crossing(Scope("tenant", "acme"), "usd", Decimal("1"), Decimal("10"), Decimal("10"))
    row = {
        "run_id": "RUN",
        "seq": 2,
        "type": "effect.recorded",
        "at": AT,
        "data": {**_effect_data(), "tenant_budget": [crossed.to_dict()]},
    }
    assert validator.is_valid(row)
    row["data"]["tenant_budget"][0]["scope"] = "galaxy"
    assert not validator.is_valid(row)
    refusal = schema["$defs"]["ErrorRecord"]["properties"]["budget"]
    assert {"$ref": "#/$defs/BudgetRefusal"} in refusal["anyOf"]
    assert set(schema["$defs"]["BudgetRefusal"]["required"]) == BudgetRefusal.REQUIRED
    assert set(schema["$defs"]["TenantCrossing"]["required"]) == TenantCrossing.REQUIRED

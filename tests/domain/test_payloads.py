"""The typed payload models read and write every recorded event unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus.domain.errors import IntegrityError
from nexus.domain.events import Draft, EventType, seal
from nexus.domain.payloads import (
    ABSENT,
    MODELS,
    PAYLOADS,
    TASK_TYPES,
    AttemptFinished,
    BudgetCrossed,
    ErrorRecord,
    Payload,
    TaskSucceeded,
    payload_of,
    task_of,
)

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

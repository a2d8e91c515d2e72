"""A mission's evidence, read from its event log alone.

Everything the bundle says about a work item was recorded while the mission
ran: each ``mission.check`` call's result (the checks' outputs and their
hashes, the patch hash, the attempt), each ``mission.merge`` call's (the
commit on the mission branch), and the model and tool calls of the item's
task between two checks (one attempt's calls, tokens and cost). So the
evidence of a run is the same whenever it is read, on any machine, and needs
neither the repository nor the worktrees.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nexus.domain.events import Event, EventType
from nexus.domain.payloads import EffectRecord, TaskFailed
from nexus.missions.evidence import Attempt, CheckRun, Verdict, WorkItemEvidence, check_path
from nexus.missions.mission._config import MissionConfig, item_of_task, mission_config_of
from nexus.missions.spec import SpecMap

__all__ = ["MissionRecord", "mission_record"]

_VERDICT = {True: "pass", False: "fail"}


@dataclass(slots=True)
class _Open:
    """The attempt being gathered for one work item."""

    model_calls: int = 0
    tool_calls: int = 0
    tokens: int = 0
    cost: Decimal = Decimal(0)


@dataclass(slots=True)
class _Item:
    attempts: list[Attempt] = field(default_factory=list)
    current: _Open = field(default_factory=_Open)
    patch: str | None = None
    commit: str | None = None
    merged: bool = False
    failure: str = ""
    last_summary: str = ""


@dataclass(frozen=True, slots=True)
class MissionRecord:
    """What a mission's log shows: settings, spec, work items and the check outputs."""

    config: MissionConfig
    spec: SpecMap
    plan: dict[str, Any] | None
    items: tuple[WorkItemEvidence, ...]
    #: the check outputs, by sha256
    outputs: dict[str, bytes]
    status: str
    #: each gate attempt's results of the checks it rejected on (``CheckResult.to_data()``),
    #: in order: what failure mining learns from (an advisory finding rejected nothing)
    check_results: tuple[tuple[dict[str, Any], ...], ...] = ()
    #: the whole run's model calls, tokens and cost (the architect's too)
    model_calls: int = 0
    tokens: int = 0
    cost_usd: str = "0"

    @property
    def merged(self) -> list[str]:
        return [i.id for i in self.items if i.verdict.outcome == "merged"]


def _check_runs(
    item: str, attempt: int, results: Sequence[Any], outputs: dict[str, bytes], prefix: str = ""
) -> list[CheckRun]:
    runs = []
    for index, result in enumerate(results):
        if not isinstance(result, dict):
            continue
        text = str(result.get("output") or "").encode("utf-8")
        digest = hashlib.sha256(text).hexdigest()
        outputs[digest] = text
        name = f"{prefix}{result.get('name') or 'check'}"
        skipped = result.get("skipped")
        verdict = "skipped" if skipped else _VERDICT[bool(result.get("passed"))]
        diagnostics = result.get("diagnostics") or []
        first = (
            diagnostics[0].get("message", "")
            if diagnostics and isinstance(diagnostics[0], dict)
            else ""
        )
        runs.append(
            CheckRun(
                name=name,
                verdict=verdict,  # type: ignore[arg-type]
                output_file=check_path(item, attempt, index, name),
                output_sha256=digest,
                duration_ms=int(float(result.get("duration_s") or 0) * 1000),
                summary=str(skipped or first)[:300],
                required=bool(result.get("required", True)),
            )
        )
    return runs


def mission_record(events: Sequence[Event]) -> MissionRecord:
    """The evidence of the mission recorded in ``events`` (a whole run's log).

    Raises:
        UserError: the run is not a code mission.
    """
    from nexus.domain.errors import UserError

    if not events or events[0].type is not EventType.RUN_STARTED:
        raise UserError("the log does not start with run.started")
    plan = events[0].data.get("plan") or {}
    inputs = plan.get("inputs") or {}
    config = mission_config_of(inputs)
    if config is None:
        raise UserError("the run is not a code mission (its plan has no 'mission' input)")
    spec = SpecMap.model_validate(inputs["spec"])
    items: dict[str, _Item] = {}
    outputs: dict[str, bytes] = {}
    accepted_plan: dict[str, Any] | None = None
    attempts_checked: list[tuple[dict[str, Any], ...]] = []
    total = _Open()
    status = "running"
    for event in events:
        if event.type is EventType.EFFECT_RECORDED:
            record = EffectRecord.of(event.data)
            response = record.response if isinstance(record.response, dict) else {}
            request = record.request if isinstance(record.request, dict) else {}
            tool = request.get("tool") if record.kind == "tool" else None
            if tool == "mission.plan" and response.get("ok"):
                accepted_plan = response.get("plan")
            if record.kind == "model":
                spend = record.spend or {}
                total.model_calls += 1
                total.tokens += int(spend.get("tokens") or 0)
                total.cost += Decimal(str(spend.get("usd") or "0"))
            item_id = item_of_task(record.task)
            if item_id is None:
                continue
            item = items.setdefault(item_id, _Item())
            if record.kind == "model":
                item.current.model_calls += 1
                spend = record.spend or {}
                item.current.tokens += int(spend.get("tokens") or 0)
                item.current.cost += Decimal(str(spend.get("usd") or "0"))
            elif tool == "mission.check" and record.error is None:
                number = len(item.attempts) + 1
                results = response.get("results") or ()
                rejected_on = set(response.get("failed") or ())
                attempts_checked.append(
                    tuple(
                        r for r in results if isinstance(r, dict) and r.get("name") in rejected_on
                    )
                )
                checks = _check_runs(item_id, number, results, outputs)
                now = item.current
                item.attempts.append(
                    Attempt(
                        number=number,
                        checks=tuple(checks),
                        model_calls=now.model_calls,
                        tool_calls=now.tool_calls,
                        tokens=now.tokens,
                        cost_usd=str(now.cost),
                    )
                )
                item.current = _Open()
                item.last_summary = str(response.get("summary") or "")
                if response.get("accepted"):
                    item.patch = response.get("patch_sha256")
            elif tool == "mission.merge" and record.error is None:
                if response.get("merged"):
                    item.merged = True
                    item.commit = response.get("commit")
                    if item.attempts:
                        last = item.attempts[-1]
                        extra = _check_runs(
                            item_id,
                            last.number,
                            response.get("results") or (),
                            outputs,
                            prefix="merge:",
                        )
                        offset = len(last.checks)
                        extra = [
                            e.model_copy(
                                update={
                                    "output_file": check_path(
                                        item_id, last.number, offset + i, e.name
                                    )
                                }
                            )
                            for i, e in enumerate(extra)
                        ]
                        item.attempts[-1] = last.model_copy(
                            update={"checks": (*last.checks, *extra)}
                        )
                else:
                    item.last_summary = str(response.get("summary") or "")
            else:
                item.current.tool_calls += 1
        elif event.type is EventType.TASK_FAILED:
            item_id = item_of_task(str(event.data.get("task")))
            if item_id is not None:
                failed = TaskFailed.of(event.data)
                items.setdefault(item_id, _Item()).failure = str(
                    (failed.error or {}).get("message") or "the task failed"
                )
        elif event.type in (EventType.RUN_SUCCEEDED, EventType.RUN_FAILED, EventType.RUN_CANCELLED):
            status = event.type.value.split(".", 1)[1]
    for item in items.values():  # calls after the last check (the review) are its attempt's
        rest = item.current
        if item.attempts and (rest.model_calls or rest.tool_calls):
            last = item.attempts[-1]
            item.attempts[-1] = last.model_copy(
                update={
                    "model_calls": last.model_calls + rest.model_calls,
                    "tool_calls": last.tool_calls + rest.tool_calls,
                    "tokens": last.tokens + rest.tokens,
                    "cost_usd": str(Decimal(last.cost_usd) + rest.cost),
                }
            )
            item.current = _Open()
    planned = {str(i["id"]): i for i in (accepted_plan or {}).get("items") or ()}
    evidence = []
    for item_id in sorted(set(planned) | set(items)):
        seen = items.get(item_id, _Item())
        declared = planned.get(item_id, {})
        if seen.merged and seen.commit and seen.patch and seen.attempts:
            verdict = Verdict(outcome="merged")
        elif seen.attempts:
            verdict = Verdict(
                outcome="rejected",
                reason=seen.failure or seen.last_summary or "not merged when the mission ended",
            )
        else:
            verdict = Verdict(outcome="unmet", reason=seen.failure or "no attempt was made")
        evidence.append(
            WorkItemEvidence(
                id=item_id,
                title=str(declared.get("title") or ""),
                requirements=tuple(dict.fromkeys(declared.get("requirements") or ())),
                patch_sha256=seen.patch if verdict.outcome == "merged" else None,
                commit=seen.commit if verdict.outcome == "merged" else None,
                attempts=tuple(seen.attempts),
                verdict=verdict,
            )
        )
    return MissionRecord(
        config,
        spec,
        accepted_plan,
        tuple(evidence),
        outputs,
        status,
        tuple(attempts_checked),
        model_calls=total.model_calls,
        tokens=total.tokens,
        cost_usd=str(total.cost),
    )

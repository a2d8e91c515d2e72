"""Control flow in a workflow file: ``switch``/``cases`` routing tasks, ``loop`` tasks.

A routing task has no body: once its needs have succeeded, the engine renders
its ``switch`` template and the value picks one of its ``cases`` (each a list
of tasks); the tasks of the other cases are skipped. What is checked here,
each problem naming the task and the field:

* ``switch`` and ``cases`` come together, on a task with no body (no
  ``tool``, ``prompt``, ``foreach``, retries...);
* each case names tasks that exist, that ``need`` the routing task directly
  (they must wait for its pick), and no task is in two cases;
* a case key is a string, a boolean, a whole number or null, read by
  :func:`~nexus.domain.plan.case_name` as the engine reads the value, so two
  keys that name the same case (``true`` and ``"true"``) are refused;
* ``default`` says what runs when the value names no case. It is required
  unless the values are known before the run: ``switch`` is exactly
  ``{{ tasks.T.output.data.F }}`` and ``T``'s ``output_schema`` gives ``F``
  an ``enum`` (or ``type: boolean``); then every value needs a case (or a
  default), and a case no value names is refused.

The template itself (syntax, and that it reads only the tasks in ``needs``)
is checked as ``when`` is (:meth:`._tasks.TaskCompiler.condition`).

A ``loop`` task runs its body (a tool or an agent) again until ``until``
holds: ``until`` must be a template (a fixed value would judge every
iteration alike), ``max_iterations`` is required and at most
:data:`~nexus.domain.plan.MAX_ITERATIONS` (the file model says so), and only
a loop task's templates may read ``loop.output`` and ``loop.iteration``
(:func:`reads_loop`). ``until`` reads what the task's body may read, so it
is checked with the body's templates.

An ``aggregate`` task is a fan-out (``foreach``, or ``agents``: the same
prompt to each of the agents listed) whose items answer the same question;
:func:`check_aggregate` refuses it on a task that does not fan out, a
``key`` or ``quorum`` on ``first_success`` (which takes the first item to
succeed whatever it says), a ``key`` that is not a dotted path, a ``key`` on
an agent task whose answers are plain text (no ``output_schema``), and a
``quorum`` above the number of items when that number is known.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Mapping
from typing import Any

from nexus.domain.plan import (
    DEFAULT_CASE,
    AggregatePolicy,
    BarrierPolicy,
    ExtendPolicy,
    LoopPolicy,
    case_name,
)
from nexus.planning.workflow._errors import Reporter, kind, suggest
from nexus.planning.workflow._schema import _Replan, _Task
from nexus.templating import is_template

__all__ = [
    "BODY_KEYS",
    "all_needs",
    "check_aggregate",
    "check_barrier",
    "check_loop",
    "check_switch",
    "reads_loop",
    "routed_by",
]

#: What gives a task a body (something to run): a routing task has none of it.
BODY_KEYS = (
    "tool",
    "with",
    "prompt",
    "agent",
    "capability",
    "foreach",
    "retries",
    "backoff",
    "timeout",
    "profile",
    "output_schema",
    "complexity",
    "max_cost",
    "max_latency_ms",
    "budget",
    "loop",
    "bt",
    "writes",
    "agents",
    "aggregate",
    "compensate",
)

#: ``loop.output`` or ``loop.iteration`` in a template (Jinja's own ``loop``, in a
#: ``{% for %}``, has neither).
_LOOP_READ = re.compile(r"\bloop\s*\.\s*(?:output|iteration)\b")

#: ``quorum: "3 of 5"``.
_QUORUM_OF = re.compile(r"\s*(\d{1,9})\s+of\s+(\d{1,9})\s*")

#: ``{{ tasks.T.output.data.F }}``: a value an output schema may bound.
_SCHEMA_READ = re.compile(
    r"\s*\{\{\s*tasks\.(?P<task>[A-Za-z_][A-Za-z0-9_]*)\.output\.data\."
    r"(?P<field>[A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*"
)


def check_switch(
    tid: str, spec: _Task, tasks: Mapping[str, _Task], report: Reporter
) -> dict[str, tuple[str, ...]] | None:
    """The cases of routing task ``tid`` as the plan holds them (each case's tasks sorted).

    None when ``tid`` is not a routing task, or when it has problems (each one
    is reported).
    """
    if spec.switch is None and spec.cases is None:
        return None
    found = len(report.problems)
    if spec.switch is None:
        report.add(
            "`cases` needs a `switch`: the template whose value picks a case",
            task=tid,
            field="cases",
        )
    fields = type(spec).model_fields
    set_keys = {fields[name].alias or name for name in spec.model_fields_set}
    for key in BODY_KEYS:
        if key in set_keys:
            report.add(
                f"a switch task runs nothing (its value picks which of its cases run); "
                f"remove `{key}` and give it to a task of a case",
                task=tid,
                field=key,
            )
    cases = _cases(tid, spec, tasks, report)
    if cases is not None and spec.switch is not None:
        _check_default(tid, spec.switch, cases, tasks, report)
    if len(report.problems) > found or cases is None:
        return None
    return {name: tuple(sorted(targets)) for name, targets in cases.items()}


def _cases(
    tid: str, spec: _Task, tasks: Mapping[str, _Task], report: Reporter
) -> dict[str, list[str]] | None:
    """The cases by name, each with its tasks; None when there are none to check."""
    raw = spec.cases
    if not raw:
        report.add(
            "a switch needs `cases`: a mapping from each value to the tasks it runs, "
            f"such as {{bug: [fix], {DEFAULT_CASE}: [triage]}}",
            task=tid,
            field="cases",
        )
        return None
    cases: dict[str, list[str]] = {}
    written: dict[str, Any] = {}  # each case's key as written
    case_of: dict[str, str] = {}
    for key, value in raw.items():
        name = _key_name(key)
        if isinstance(key, str) and name != key:
            report.add(
                f"case {key!r} has blanks around it; a value is trimmed before it is "
                f"compared, so write {name!r}",
                task=tid,
                field="cases",
            )
            continue
        if name is None:
            report.add(
                f"case {key!r} is {kind(key)}; a case is named by a string, a boolean, "
                "a whole number or null",
                task=tid,
                field="cases",
            )
            continue
        field = f"cases.{name}"
        if name in written:
            report.add(
                f"case {name!r} is written twice: {json.dumps(written[name])} and "
                f"{json.dumps(key)} both name it",
                task=tid,
                field=field,
            )
            continue
        written[name] = key
        targets = [value] if isinstance(value, str) else value
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            report.add(
                f"a case lists the tasks it runs (a list of task ids), not {kind(value)}",
                task=tid,
                field=field,
            )
            continue
        cases[name] = targets
        for target in targets:
            _check_target(tid, name, target, tasks, case_of, report)
    return cases


def _key_name(key: Any) -> str | None:
    """The case a ``cases`` key names (None: not a key a value can match)."""
    if isinstance(key, float):
        return None  # 1.0 and 1 would both be "1": a float key is a typo waiting to happen
    return case_name(key)


def _check_target(
    tid: str,
    case: str,
    target: str,
    tasks: Mapping[str, _Task],
    case_of: dict[str, str],
    report: Reporter,
) -> None:
    field = f"cases.{case}"
    if target == tid:
        report.add("a switch cannot route to itself", task=tid, field=field)
        return
    if target not in tasks:
        report.add(
            f"runs unknown task {target!r} ({suggest(target, tasks, 'known tasks')})",
            task=tid,
            field=field,
        )
        return
    earlier = case_of.get(target)
    if earlier == case:
        report.add(f"lists {target!r} twice", task=tid, field=field)
        return
    if earlier is not None:
        report.add(
            f"task {target!r} is in case {earlier!r} and case {case!r}; a task runs for one "
            "case (give another case a task of its own)",
            task=tid,
            field=field,
        )
        return
    case_of[target] = case
    if tid not in tasks[target].needs:
        report.add(
            f"task {target!r} does not need {tid!r}, so it could start before the switch "
            f"picks; add {tid!r} to its needs",
            task=tid,
            field=field,
        )


def _check_default(
    tid: str,
    source: str,
    cases: dict[str, list[str]],
    tasks: Mapping[str, _Task],
    report: Reporter,
) -> None:
    """``default`` is there, or every value the switch can give has a case."""
    known = _known_values(source, tasks)
    if known is None:
        if DEFAULT_CASE not in cases:
            report.add(
                f"no `{DEFAULT_CASE}` case: the switch's value may be anything its template "
                "gives, so say what runs when it names no case "
                f"(`{DEFAULT_CASE}: []` runs nothing)",
                task=tid,
                field="cases",
            )
        return
    values, where = known
    for name in cases:
        if name != DEFAULT_CASE and name not in values:
            report.add(
                f"case {name!r} can never be picked: {where} is one of {', '.join(sorted(values))}",
                task=tid,
                field=f"cases.{name}",
            )
    missing = sorted(set(values) - set(cases))
    if missing and DEFAULT_CASE not in cases:
        report.add(
            f"no case for {', '.join(repr(m) for m in missing)}, which {where} may be; "
            f"add a case for each, or a `{DEFAULT_CASE}`",
            task=tid,
            field="cases",
        )


def _known_values(source: str, tasks: Mapping[str, _Task]) -> tuple[set[str], str] | None:
    """The case names a switch's values can have, when its source bounds them; and where."""
    match = _SCHEMA_READ.fullmatch(source)
    if match is None:
        return None
    reader = tasks.get(match["task"])
    schema = reader.output_schema if reader is not None else None
    if not isinstance(schema, dict):
        return None
    properties = schema.get("properties")
    prop = properties.get(match["field"]) if isinstance(properties, dict) else None
    if not isinstance(prop, dict):
        return None
    where = f"tasks.{match['task']}.output.data.{match['field']} (its output_schema)"
    enum = prop.get("enum")
    if isinstance(enum, list) and enum:
        names = {case_name(v) for v in enum}
        if None in names:
            return None  # a list or a mapping among the values: no case can name it
        return {n for n in names if n is not None}, where
    if prop.get("type") == "boolean":
        return {"true", "false"}, where
    return None


def check_loop(tid: str, spec: _Task, report: Reporter) -> LoopPolicy | None:
    """The task's ``loop`` as the plan holds it (None: it has none, or a problem, reported)."""
    loop = spec.loop
    if loop is None:
        return None
    if not is_template(loop.until):
        report.add(
            "`until` must be a template over the iteration's output, such as "
            "'{{ loop.output.done }}'; a fixed value would judge every iteration alike",
            task=tid,
            field="loop.until",
        )
        return None
    return LoopPolicy(until=loop.until, max_iterations=loop.max_iterations, on_max=loop.on_max)


def check_extend(tid: str, spec: _Task, report: Reporter) -> ExtendPolicy | None:
    """The task's ``extend`` as the plan holds it (None: it has none, or a problem, reported).

    The tasks an extension adds wait on the one task that added them, so an
    extending task runs once: not per item, iteration or case. ``on_failure:
    replan`` (or ``{replan: N}``) is the task's ``extend.replan`` said where a
    failure's handling is said; it needs ``extend``.
    """
    extend = spec.extend
    replan = spec.on_failure if isinstance(spec.on_failure, _Replan) else None
    if extend is None:
        if replan is not None:
            # implying `extend` would silently make the task's answer a plan: an
            # answer that was prose would then fail it, so it is said, not guessed
            report.add(
                "`replan` re-plans the tasks this task's plan extension added, and the "
                "task does not extend the plan; add `extend: true` (its answer's "
                "`tasks` then join the plan) or use on_failure 'fail' or 'compensate'",
                task=tid,
                field="on_failure",
            )
        return None
    rounds = extend.replan
    if replan is not None:
        if "replan" in extend.model_fields_set and extend.replan != replan.replan:
            report.add(
                f"`on_failure` re-plans {replan.replan} time(s) and `extend.replan` says "
                f"{extend.replan}: say it once",
                task=tid,
                field="on_failure",
            )
            return None
        rounds = replan.replan
    for key, value in (("foreach", spec.foreach), ("loop", spec.loop), ("switch", spec.switch)):
        if value is not None:
            report.add(
                f"a task that extends the plan runs once, so it cannot have `{key}`; "
                "move the extension to a task of its own",
                task=tid,
                field="extend",
            )
            return None
    return ExtendPolicy(max_tasks=extend.max_tasks, review=extend.review, replan=rounds)


def reads_loop(source: str) -> bool:
    """Whether a template reads ``loop.output`` or ``loop.iteration``, which only the
    templates of a ``loop`` task have."""
    return "loop" in source and _LOOP_READ.search(source) is not None


#: A ``key`` of ``aggregate``: a dotted path of names or list indexes.
_KEY = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


def check_aggregate(tid: str, spec: _Task, report: Reporter) -> AggregatePolicy | None:
    """The task's ``aggregate`` as the plan holds it (None: it has none, or a problem)."""
    aggregate = spec.aggregate
    if aggregate is None:
        return None
    found = len(report.problems)
    method = aggregate.method
    if spec.foreach is None and spec.agents is None:
        report.add(
            "`aggregate` combines the items of a fan-out: give the task a `foreach`, or "
            "`agents: [a, b, ...]` to ask each of those agents the same prompt",
            task=tid,
            field="aggregate",
        )
    if method == "first_success":
        for name in ("key", "quorum"):
            if getattr(aggregate, name) is not None:
                report.add(
                    f"first_success takes the first item to succeed, whatever it answers; "
                    f"remove `{name}`",
                    task=tid,
                    field=f"aggregate.{name}",
                )
    key = aggregate.key
    if key is not None:
        if _KEY.fullmatch(key) is None:
            report.add(
                f"key {key!r} must be a dotted path of names or list indexes, "
                "such as 'verdict' or 'scores.0'",
                task=tid,
                field="aggregate.key",
            )
        if spec.tool is None and spec.output_schema is None:
            report.add(
                "`key` picks a field of a structured answer; an agent task answers in "
                "plain text unless it has an `output_schema` (give it one, or drop `key` "
                "to compare the whole text)",
                task=tid,
                field="aggregate.key",
            )
    quorum = aggregate.quorum
    items = _known_items(spec)
    if quorum is not None and items is not None and quorum > items:
        report.add(
            f"quorum {quorum} is more than the {items} items the task fans out to",
            task=tid,
            field="aggregate.quorum",
        )
    if len(report.problems) > found:
        return None
    return AggregatePolicy(method=method, key=key, quorum=1 if quorum is None else quorum)


def _known_items(spec: _Task) -> int | None:
    """How many items the task fans out to, when the file says (None: a template)."""
    if spec.agents is not None:
        return len(spec.agents)
    if isinstance(spec.foreach, list):
        return len(spec.foreach)
    return None


def all_needs(spec: _Task, known: Container[str] | None = None) -> tuple[str, ...]:
    """Every task ``spec`` depends on: its ``needs``, then its ``needs_any`` (the graph
    the plan holds, checked for cycles like any ``needs``). With ``known``, a
    ``needs_any`` entry that names no task is left out (:func:`check_barrier`
    reports it under its own field)."""
    needs = list(spec.needs)
    for dep in spec.needs_any or ():
        if dep not in needs and (known is None or dep in known):
            needs.append(dep)
    return tuple(needs)


def routed_by(tasks: Mapping[str, _Task]) -> dict[str, list[str]]:
    """Each task some ``switch`` lists in its cases -> those switches."""
    found: dict[str, list[str]] = {}
    for tid, spec in tasks.items():
        for targets in (spec.cases or {}).values():
            for target in targets if isinstance(targets, list) else [targets]:
                if isinstance(target, str):
                    found.setdefault(target, []).append(tid)
    return found


def check_barrier(
    tid: str, spec: _Task, tasks: Mapping[str, _Task], switches: list[str], report: Reporter
) -> BarrierPolicy | None:
    """The task's barrier as the plan holds it (None: it has none, or a problem, reported).

    The needs the ``quorum`` counts are its ``needs_any`` when it has them
    (quorum 1 unless given), else its ``needs`` (all of them unless given); a
    ``wait`` without either waits for all of its ``needs``. ``switches`` are
    the switches that route to the task: they must stay required needs.
    """
    if spec.needs_any is None and spec.quorum is None and spec.wait is None:
        return None
    found = len(report.problems)
    counted = tuple(spec.needs) if spec.needs_any is None else tuple(spec.needs_any)
    field = "quorum" if spec.needs_any is None else "needs_any"
    if spec.needs_any is not None:
        if not spec.needs_any:
            report.add(
                "lists no task: it names the needs one of which must succeed",
                task=tid,
                field="needs_any",
            )
        for dep in spec.needs_any:
            if dep not in tasks:
                report.add(
                    f"names unknown task {dep!r} ({suggest(dep, tasks, 'known tasks')})",
                    task=tid,
                    field="needs_any",
                )
            elif dep in spec.needs:
                report.add(
                    f"{dep!r} is in both needs (must succeed) and needs_any (one of them "
                    "must); keep it in one",
                    task=tid,
                    field="needs_any",
                )
    elif not spec.needs:
        what = "quorum" if spec.quorum is not None else "wait"
        report.add(
            f"a {what} is about the task's needs, and it has none",
            task=tid,
            field=what,
        )
        return None
    default = len(counted) if spec.needs_any is None else 1
    quorum = _quorum(tid, spec.quorum, counted, default, report)
    for switch in switches:
        if switch in counted and (spec.needs_any is None and spec.quorum is not None):
            report.add(
                f"the quorum counts switch {switch!r}, which routes to this task: the task "
                "could start without the switch picking it (list the other needs in "
                "needs_any and keep the switch in needs)",
                task=tid,
                field=field,
            )
        if spec.wait is not None:
            report.add(
                f"switch {switch!r} routes to this task: its wait could start it before the "
                "switch picks (drop the wait, or route to a task that needs this one)",
                task=tid,
                field="wait",
            )
    if quorum is None or len(report.problems) > found:
        return None
    wait = spec.wait
    return BarrierPolicy(
        of=counted,
        quorum=quorum,
        timeout=None if wait is None else wait.timeout,
        on_timeout="fail" if wait is None else wait.on_timeout,
    )


def _quorum(
    tid: str, value: int | str | None, counted: tuple[str, ...], default: int, report: Reporter
) -> int | None:
    """``quorum`` as a count of ``counted`` (None: a problem, reported)."""
    of = len(counted)
    if value is None:
        return default if of else None  # an empty needs_any: reported already
    if isinstance(value, str):
        match = _QUORUM_OF.fullmatch(value)
        if match is None:
            report.add(
                f"must be a number of needs (3) or 'K of N' ('3 of 5'), got {value!r}",
                task=tid,
                field="quorum",
            )
            return None
        count, total = int(match[1]), int(match[2])
        if total != of:
            report.add(
                f"says {count} of {total}, but the task counts {of} needs "
                f"({', '.join(counted) or 'none'})",
                task=tid,
                field="quorum",
            )
            return None
    else:
        count = value
    if not 1 <= count <= of:
        report.add(
            f"must be between 1 and the {of} needs it counts ({', '.join(counted)}), got {count}",
            task=tid,
            field="quorum",
        )
        return None
    return count

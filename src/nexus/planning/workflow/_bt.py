"""A ``bt`` task's behaviour tree, read from a workflow file and checked.

The tree is written as nested mappings, each node one kind key and an
optional ``name``::

    bt:
      max_steps: 20
      root:
        sequence:
          - condition: "{{ inputs.enabled }}"
          - name: fetch
            action: {tool: http_get, with: {url: "{{ inputs.url }}"}}
          - selector:
              - retry: {times: 2, child: {action: {tool: sh, with: {cmd: make}}}}
              - action: {agent: fixer, prompt: "Fix: {{ bt.outputs.fetch }}"}
          - parallel: {success: 2, children: [...]}
          - timeout: {seconds: 30, child: {...}}

The file model (:mod:`._schema`) checks ``max_steps`` and ``output``; the
nodes are read here by hand, so each problem names the node by its id (its
``name``, else its path such as ``root/2/0``) in the field
(``bt.root/2/0.action.tool``). An action is checked exactly as a task of its
kind would be (:class:`._tasks.TaskCompiler`: the tool and its arguments, the
agent or capability, the templates and what they read), a condition must be
a template, thresholds must fit the children, and the tree is bounded
(:data:`~nexus.domain.bt.MAX_BT_NODES` nodes,
:data:`~nexus.domain.bt.MAX_BT_DEPTH` levels): the file is untrusted.
"""

from __future__ import annotations

import math
from typing import Any

from nexus.domain.bt import (
    ACTION,
    CONDITION,
    KINDS,
    MAX_BT_DEPTH,
    MAX_BT_NODES,
    MAX_BT_RETRY,
    PARALLEL,
    RETRY,
    SELECTOR,
    SEQUENCE,
    TIMEOUT,
    BtNode,
    BtSpec,
)
from nexus.domain.errors import WorkflowError
from nexus.planning.workflow._body import BodyCompiler, check_body, check_template
from nexus.planning.workflow._errors import kind, suggest
from nexus.planning.workflow._schema import _Task
from nexus.templating import is_template

__all__ = ["BT_EXCLUSIVE", "compile_bt"]

#: What a ``bt`` task may not have besides its tree: its body is the tree's actions.
BT_EXCLUSIVE = (
    "tool",
    "with",
    "prompt",
    "agent",
    "capability",
    "output_schema",
    "complexity",
    "max_cost",
    "max_latency_ms",
    "loop",
    "extend",
    "switch",
    "cases",
    "agents",
    "aggregate",
)
#: The longest a ``timeout`` node may wait (a day), as a task's ``timeout`` may.
MAX_BT_SECONDS = 86_400.0
_NAME_KEY = "name"
_ACTION_KEYS = ("tool", "with", "agent", "capability", "prompt")


class _Bad(Exception):  # a node cannot be read: its problem is reported
    pass


class _Reader:
    """Reads one task's tree, node by node, reporting every problem it can."""

    def __init__(self, tid: str, spec: _Task, compiler: BodyCompiler) -> None:
        self.tid = tid
        self.spec = spec
        self.compiler = compiler
        self.report = compiler.report
        self.count = 0
        self.ids: set[str] = set()

    def problem(self, node: str, key: str | None, message: str) -> None:
        field = f"bt.{node}" + (f".{key}" if key else "")
        self.report.add(message, task=self.tid, field=field)

    def node(self, raw: Any, path: str, depth: int) -> BtNode:
        """The node ``raw`` at ``path`` (its id unless it is named)."""
        self.count += 1
        if self.count > MAX_BT_NODES:
            self.problem(path, None, f"the tree has more than {MAX_BT_NODES} nodes (the limit)")
            raise _Bad
        if depth > MAX_BT_DEPTH:
            self.problem(path, None, f"the tree is nested more than {MAX_BT_DEPTH} levels deep")
            raise _Bad
        if not isinstance(raw, dict):
            self.problem(
                path,
                None,
                f"a node must be a mapping with one of {', '.join(KINDS)}, not {kind(raw)}",
            )
            raise _Bad
        nid = self.name(raw.get(_NAME_KEY), path)
        kinds = [k for k in raw if k in KINDS]
        others = [k for k in raw if k not in KINDS and k != _NAME_KEY]
        for key in others:
            self.problem(
                nid, str(key), f"unknown key {key!r} ({suggest(str(key), KINDS, 'node kinds')})"
            )
        if others and not kinds:
            raise _Bad  # the unknown key is the kind misspelt: said once
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            self.problem(nid, None, f"a node has exactly one of {', '.join(KINDS)} (found {found})")
            raise _Bad
        if others:
            raise _Bad
        key = kinds[0]
        value = raw[key]
        if key in (SEQUENCE, SELECTOR):
            return BtNode(id=nid, kind=key, children=self.children(value, nid, key, depth))
        if key == PARALLEL:
            return self.parallel(value, nid, depth)
        if key == CONDITION:
            return self.condition(value, nid)
        if key == ACTION:
            return self.action(value, nid)
        return self.decorator(key, value, nid, depth)

    def name(self, name: Any, path: str) -> str:
        if name is None:
            nid = path
        elif not isinstance(name, str) or not name.isidentifier():
            self.problem(
                path,
                _NAME_KEY,
                f"a node's name must be a name such as 'fetch' (letters, digits, _), got {name!r}",
            )
            raise _Bad
        else:
            nid = name
        if nid in self.ids:
            self.problem(nid, _NAME_KEY, f"two nodes are named {nid!r}; node ids must be unique")
            raise _Bad
        self.ids.add(nid)
        return nid

    def children(self, value: Any, nid: str, key: str, depth: int) -> tuple[BtNode, ...]:
        if not isinstance(value, list) or not value:
            what = "an empty list" if value == [] else kind(value)
            self.problem(nid, key, f"{key} takes a non-empty list of nodes, not {what}")
            raise _Bad
        found: list[BtNode] = []
        bad = False
        for index, raw in enumerate(value):
            try:
                found.append(self.node(raw, f"{nid}/{index}", depth + 1))
            except _Bad:
                bad = True
        if bad:
            raise _Bad
        return tuple(found)

    def table(self, value: Any, nid: str, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.problem(
                nid, key, f"{key} takes a mapping ({', '.join(allowed)}), not {kind(value)}"
            )
            raise _Bad
        unknown = [k for k in value if k not in allowed]
        for extra in unknown:
            self.problem(
                nid,
                f"{key}.{extra}",
                f"unknown key {extra!r} ({suggest(str(extra), allowed, 'allowed')})",
            )
        if unknown:
            raise _Bad
        return value

    def count_of(self, value: Any, nid: str, field: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(nid, field, f"must be a whole number from {low} to {high}, got {value!r}")
            raise _Bad
        return value

    def parallel(self, value: Any, nid: str, depth: int) -> BtNode:
        table = self.table(value, nid, PARALLEL, ("children", "success", "failure"))
        children = self.children(table.get("children"), nid, f"{PARALLEL}.children", depth)
        total = len(children)
        success = failure = None
        if table.get("success") is not None:
            success = self.count_of(table["success"], nid, f"{PARALLEL}.success", 1, total)
        if table.get("failure") is not None:
            failure = self.count_of(table["failure"], nid, f"{PARALLEL}.failure", 1, total)
        success = total if success is None else success
        failure = total - success + 1 if failure is None else failure
        return BtNode(id=nid, kind=PARALLEL, children=children, success=success, failure=failure)

    def condition(self, value: Any, nid: str) -> BtNode:
        if not isinstance(value, str) or not is_template(value):
            self.problem(
                nid,
                CONDITION,
                "a condition must be a template such as '{{ tasks.check.output.ok }}' "
                f"(a fixed value would always judge alike), got {value!r}",
            )
            raise _Bad
        if not _template_ok(self.tid, self.spec, self.compiler, value, f"bt.{nid}.condition"):
            raise _Bad
        return BtNode(id=nid, kind=CONDITION, condition=value)

    def action(self, value: Any, nid: str) -> BtNode:
        table = self.table(value, nid, ACTION, _ACTION_KEYS)
        for key in ("tool", "agent", "capability", "prompt"):
            got = table.get(key)
            if got is not None and (not isinstance(got, str) or not got):
                self.problem(nid, f"{ACTION}.{key}", f"must be a non-empty string, got {got!r}")
                raise _Bad
        if table.get("with") is not None and not isinstance(table["with"], dict):
            self.problem(nid, f"{ACTION}.with", f"with takes a mapping, not {kind(table['with'])}")
            raise _Bad
        leaf = self.spec.model_copy(
            update={
                "tool": table.get("tool"),
                "args": table.get("with"),
                "agent": table.get("agent"),
                "capability": table.get("capability"),
                "prompt": table.get("prompt"),
                "bt": None,
                "when": None,
            }
        )
        args = self.compiled_body(nid, leaf)
        return BtNode(
            id=nid,
            kind=ACTION,
            tool=leaf.tool,
            args=args if leaf.tool is not None else None,
            agent=leaf.agent,
            capability=leaf.capability,
            prompt=leaf.prompt,
        )

    def compiled_body(self, nid: str, leaf: _Task) -> dict[str, Any]:
        """Check an action as its own task would be checked; its problems name the node."""
        report = self.report
        found = len(report.problems)
        try:
            args = check_body(self.compiler, self.tid, leaf, True)
        finally:
            self._refield(found, nid)
        if len(report.problems) > found:
            raise _Bad
        return args

    def _refield(self, start: int, nid: str) -> None:
        """Name the node in the fields of the problems found since ``start``."""
        problems = self.report.problems
        seen = {str(p) for p in problems[:start]}  # the task's own (a foreach), not again
        moved: list[WorkflowError] = []
        for problem in problems[start:]:
            if str(problem) in seen:
                continue
            field = f"bt.{nid}.{ACTION}" + (f".{problem.field}" if problem.field else "")
            moved.append(
                WorkflowError(problem.detail, file=problem.file, task=problem.task, field=field)
            )
        problems[start:] = moved

    def decorator(self, key: str, value: Any, nid: str, depth: int) -> BtNode:
        amount = "times" if key == RETRY else "seconds"
        table = self.table(value, nid, key, (amount, "child"))
        if "child" not in table:
            self.problem(nid, key, f"{key} needs a `child` (the node it decorates)")
            raise _Bad
        times = seconds = None
        if key == RETRY:
            times = self.count_of(table.get("times"), nid, f"{key}.times", 1, MAX_BT_RETRY)
        else:
            got = table.get("seconds")
            if (
                isinstance(got, bool)
                or not isinstance(got, int | float)
                or not math.isfinite(got)
                or not 0 < got <= MAX_BT_SECONDS
            ):
                self.problem(
                    nid,
                    f"{key}.seconds",
                    f"must be a number of seconds over 0 and at most {MAX_BT_SECONDS:g}, "
                    f"got {got!r}",
                )
                raise _Bad
            seconds = float(got)
        child = self.node(table["child"], f"{nid}/0", depth + 1)
        kind_ = RETRY if key == RETRY else TIMEOUT
        return BtNode(id=nid, kind=kind_, children=(child,), times=times, seconds=seconds)


def _template_ok(tid: str, spec: _Task, compiler: BodyCompiler, source: str, field: str) -> bool:
    """Check a condition's or the output's template (:func:`._body.check_template`);
    False when it has a problem (reported)."""
    found = len(compiler.report.problems)
    check_template(compiler, tid, spec, source, field)
    return len(compiler.report.problems) == found


def compile_bt(tid: str, spec: _Task, compiler: BodyCompiler) -> BtSpec | None:
    """The task's tree as the plan holds it; None when it has problems (reported)."""
    tree = spec.bt
    if tree is None:
        return None
    report = compiler.report
    fields = type(spec).model_fields
    set_keys = {fields[name].alias or name for name in spec.model_fields_set}
    for key in BT_EXCLUSIVE:
        if key in set_keys:
            report.add(
                f"a bt task's body is its tree: put `{key}` in an action of the tree (or drop it)",
                task=tid,
                field=key,
            )
    compiler.names.bt_tasks.add(tid)
    reader = _Reader(tid, spec, compiler)
    try:
        root = reader.node(tree.root, "root", 1)
    except _Bad:
        return None
    if tree.output is not None and not _template_ok(tid, spec, compiler, tree.output, "bt.output"):
        return None
    return BtSpec(root=root, max_steps=tree.max_steps, output=tree.output)

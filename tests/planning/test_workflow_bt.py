"""``bt:`` in a workflow file: the tree compiles into the plan, and every problem names
the file, the task and the node (its name or its path)."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.domain.bt import MAX_BT_NODES
from nexus.domain.errors import WorkflowError
from nexus.domain.plan import Plan, plan_hash
from nexus.planning.workflow import compile_workflow
from nexus.tools.builtins import builtin_tools


def _doc(root: Any, **task: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "trees",
        "inputs": {"go": True},
        "agents": {"fixer": {"model": "test:fixer", "capabilities": ["fix"]}},
        "tasks": {
            "pre": {"tool": "noop"},
            "tree": {"needs": ["pre"], "bt": {"max_steps": 5, "root": root}, **task},
        },
    }


def _compile(doc: dict[str, Any]) -> Plan:
    return compile_workflow(doc, file="trees.yaml", known_tools=builtin_tools().names())


def _problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(WorkflowError) as caught:
        _compile(doc)
    return [str(p) for p in caught.value.problems]


def test_a_tree_compiles_with_ids_thresholds_and_bodies() -> None:
    root = {
        "sequence": [
            {"condition": "{{ inputs.go }}"},
            {"name": "fetch", "action": {"tool": "noop", "with": {"a": "{{ tasks.pre.output }}"}}},
            {
                "parallel": {
                    "success": 1,
                    "children": [
                        {"action": {"agent": "fixer", "prompt": "{{ bt.outputs.fetch }}"}},
                        {"timeout": {"seconds": 2.5, "child": {"action": {"tool": "noop"}}}},
                    ],
                }
            },
            {"retry": {"times": 2, "child": {"action": {"capability": "fix", "prompt": "p"}}}},
        ]
    }
    plan = _compile(_doc(root))
    tree = plan.tasks["tree"].bt
    assert tree is not None
    nodes = tree.nodes()
    assert list(nodes) == [
        "root",
        "root/0",
        "fetch",
        "root/2",
        "root/2/0",
        "root/2/1",
        "root/2/1/0",
        "root/3",
        "root/3/0",
    ]
    assert (nodes["root/2"].success, nodes["root/2"].failure) == (1, 2), "failure defaults"
    assert nodes["fetch"].args == {"a": "{{ tasks.pre.output }}"}
    assert nodes["root/2/1"].seconds == 2.5
    assert nodes["root/3"].times == 2
    again = Plan.from_dict(plan.to_dict())
    assert again == plan
    assert plan_hash(again) == plan_hash(plan)


def test_a_plan_without_bt_keeps_its_hash() -> None:
    plan = _compile({"version": 1, "name": "p", "tasks": {"a": {"tool": "noop"}}})
    assert "bt" not in plan.to_dict()["tasks"]["a"]


@pytest.mark.parametrize(
    ("root", "field", "words"),
    [
        ({"sequence": []}, "bt.root.sequence", "non-empty list of nodes, not an empty list"),
        ({"selector": "x"}, "bt.root.selector", "non-empty list of nodes, not a string"),
        ("x", "bt.root", "a node must be a mapping"),
        ({"sequnce": [1]}, "bt.root.sequnce", "did you mean 'sequence'?"),
        ({"sequence": [], "selector": []}, "bt.root", "exactly one of"),
        ({"condition": "true"}, "bt.root.condition", "must be a template"),
        ({"condition": "{{ nope }}"}, "bt.root.condition", "reads 'nope'"),
        ({"action": {"tool": "nope"}}, "bt.root.action.tool", "unknown tool 'nope'"),
        ({"action": {"tool": "noop", "wth": {}}}, "bt.root.action.wth", "did you mean 'with'?"),
        ({"action": {"agent": "ghost", "prompt": "p"}}, "bt.root.action.agent", "unknown agent"),
        ({"action": {"capability": "x", "prompt": "p"}}, "bt.root.action.capability", "no agent"),
        ({"action": {"agent": "fixer"}}, "bt.root.action.prompt", "needs a `prompt`"),
        ({"action": {"tool": "noop", "prompt": "p"}}, "bt.root.action.prompt", "not both"),
        (
            {"action": {"tool": "noop", "with": {"x": "{{ tasks.zzz.output }}"}}},
            "bt.root.action.with.x",
            "no task 'zzz'",
        ),
        (
            {"action": {"tool": "noop", "with": {"x": "{{ bt.nope }}"}}},
            "bt.root.action.with.x",
            "bt has outputs, step",
        ),
        (
            {"parallel": {"success": 3, "children": [{"action": {"tool": "noop"}}]}},
            "bt.root.parallel.success",
            "from 1 to 1, got 3",
        ),
        (
            {"parallel": {"failure": 0, "children": [{"action": {"tool": "noop"}}]}},
            "bt.root.parallel.failure",
            "from 1 to 1, got 0",
        ),
        ({"parallel": {"children": []}}, "bt.root.parallel.children", "non-empty"),
        (
            {"retry": {"times": 0, "child": {"action": {"tool": "noop"}}}},
            "bt.root.retry.times",
            "from 1 to 100",
        ),
        ({"retry": {"times": 1}}, "bt.root.retry", "needs a `child`"),
        (
            {"timeout": {"seconds": -1, "child": {"action": {"tool": "noop"}}}},
            "bt.root.timeout.seconds",
            "over 0",
        ),
        (
            {"sequence": [{"name": "a", "action": {"tool": "noop"}}, {"name": "a", "x": 1}]},
            "bt.a.name",
            "two nodes are named 'a'",
        ),
        ({"name": "no way", "action": {"tool": "noop"}}, "bt.root.name", "must be a name"),
    ],
)
def test_a_bad_node_is_named_in_its_problem(root: Any, field: str, words: str) -> None:
    problems = _problems(_doc(root))
    assert any(f"trees.yaml, task 'tree', field '{field}'" in p and words in p for p in problems), (
        problems
    )


def test_a_bt_task_has_no_body_of_its_own() -> None:
    problems = _problems(_doc({"action": {"tool": "noop"}}, tool="noop", loop=None))
    assert any("field 'tool': a bt task's body is its tree" in p for p in problems), problems


def test_bt_is_read_only_by_a_bt_task() -> None:
    doc = _doc({"action": {"tool": "noop"}})
    doc["tasks"]["plain"] = {"tool": "noop", "with": {"x": "{{ bt.step }}"}}
    problems = _problems(doc)
    assert any("task 'plain'" in p and "only the templates of a bt task" in p for p in problems)


def test_the_file_model_bounds_max_steps_and_suggests_keys() -> None:
    doc = _doc({"action": {"tool": "noop"}})
    doc["tasks"]["tree"]["bt"]["max_steps"] = 1001
    assert any("max_steps" in p and "1000" in p for p in _problems(doc))
    doc["tasks"]["tree"]["bt"] = {"max_step": 3, "root": {"action": {"tool": "noop"}}}
    assert any("did you mean 'max_steps'?" in p for p in _problems(doc))


def test_a_huge_tree_is_refused() -> None:
    leaves = [{"action": {"tool": "noop"}}] * (MAX_BT_NODES + 1)
    problems = _problems(_doc({"sequence": leaves}))
    assert any(f"more than {MAX_BT_NODES} nodes" in p for p in problems)
    deep: dict[str, Any] = {"action": {"tool": "noop"}}
    for _ in range(40):
        deep = {"retry": {"times": 1, "child": deep}}
    assert any("nested more than" in p for p in _problems(_doc(deep)))


def test_the_output_template_is_checked() -> None:
    doc = _doc({"action": {"tool": "noop"}})
    doc["tasks"]["tree"]["bt"]["output"] = "{{ tasks.zzz.output }}"
    assert any("field 'bt.output'" in p and "zzz" in p for p in _problems(doc))


def test_the_estimate_counts_max_steps_of_the_costliest_action() -> None:
    from nexus.budget.estimate import estimate_plan

    plan = _compile(_doc({"action": {"tool": "noop"}}))
    share = estimate_plan(plan).per_task["tree"]
    assert share.tool_calls == 5
    assert "max_steps (5)" in share.notes[-1]
    agent = _compile(_doc({"action": {"agent": "fixer", "prompt": "p"}}))
    assert estimate_plan(agent).per_task["tree"].calls == 5

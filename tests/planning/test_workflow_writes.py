"""``nexus validate`` on ``writes:`` and ``conflicts:``: canonical resources, nothing outside
the workspace, and under ``conflicts: reject`` no two unordered tasks writing one place."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import Plan, plan_hash
from nexus.domain.writes import MAX_WRITES, WritesError, overlap, resource
from nexus.planning import WorkflowBuilder
from nexus.planning.workflow import compile_workflow


def flow(conflicts: str | None = None, **tasks: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "name": "wf",
        "tasks": {tid: {"tool": "noop", **spec} for tid, spec in tasks.items()},
    }
    if conflicts is not None:
        doc["conflicts"] = conflicts
    return doc


def problems(doc: dict[str, Any]) -> list[str]:
    try:
        compile_workflow(doc, file="flow.yaml")
    except WorkflowError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_writes_compile_to_canonical_resources_and_keep_old_plans_hashes() -> None:
    plan = compile_workflow(
        flow(a={"writes": ["out/./a.txt", "out//a.txt", "key:db.users", "src/../docs/"]}),
        file="f",
    )
    assert plan.tasks["a"].writes == ("out/a.txt", "key:db.users", "docs")
    assert plan.to_dict()["tasks"]["a"]["writes"] == ["out/a.txt", "key:db.users", "docs"]
    assert Plan.from_dict(plan.to_dict()) == plan
    bare = compile_workflow(flow(a={}), file="f")
    assert "writes" not in bare.to_dict()["tasks"]["a"]
    assert "conflicts" not in bare.to_dict()
    assert plan_hash(compile_workflow(flow("serialize", a={}), file="f")) == plan_hash(bare)
    rejecting = compile_workflow(flow("reject", a={}), file="f")
    assert rejecting.conflicts == "reject"
    assert Plan.from_dict(rejecting.to_dict()).conflicts == "reject"
    assert plan_hash(rejecting) != plan_hash(bare)
    one = compile_workflow(flow(a={"writes": "out"}), file="f")
    assert one.tasks["a"].writes == ("out",)


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("../secrets", "leaves the workspace"),
        ("out/../../x", "leaves the workspace (it resolves to '../x')"),
        ("/etc/passwd", "not relative to the workspace"),
        ("~/.ssh", "not relative to the workspace"),
        ("out/*.txt", "glob"),
        ("key:", "a key's name"),
        ("key:two words", "a key's name"),
        ("", "not be empty"),
        ("out/\x00x", "control character"),
        ("x" * 1025, "longer than 1024"),
        ("./key:x", "would read as a key"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_task_and_the_entry(entry: str, words: str) -> None:
    found = problems(flow(a={"writes": ["ok", entry]}))
    assert len(found) == 1, found
    assert "task 'a', field 'writes[1]'" in found[0]
    assert words in found[0]


def test_writes_must_be_strings_and_bounded() -> None:
    (found,) = problems(flow(a={"writes": ["ok", 3]}))
    assert "tasks.a.writes[1]" in found
    assert "string" in found
    (found,) = problems(flow(a={"writes": [f"f{i}" for i in range(MAX_WRITES + 1)]}))
    assert f"the limit is {MAX_WRITES}" in found
    assert "field 'writes'" in found
    (found,) = problems({**flow(a={}), "conflicts": "ignore"})
    assert "conflicts" in found
    assert "serialize" in found


def test_a_templated_entry_reads_what_the_body_may_read() -> None:
    plan = compile_workflow(
        flow(a={"foreach": ["x", "y"], "writes": ["out/{{ item }}.txt", "key:db"]}), file="f"
    )
    assert plan.tasks["a"].writes == ("out/{{ item }}.txt", "key:db")
    (found,) = problems(flow(a={"writes": ["{{ tasks.b.output }}"]}, b={}))
    assert "field 'writes[0]'" in found
    assert "tasks.b" in found
    (found,) = problems(flow(a={"writes": ["out/{{ loop.iteration }}"]}))
    assert "field 'writes[0]'" in found
    assert "loop" in found
    (found,) = problems(flow(a={"writes": ["{{ nope("]}))
    assert "field 'writes[0]'" in found


def test_a_switch_task_writes_nothing() -> None:
    doc = flow(a={"writes": ["out"]}, b={"needs": ["a"]})
    doc["tasks"]["a"] = {"switch": "{{ 1 }}", "cases": {"default": ["b"]}, "writes": ["out"]}
    (found,) = problems(doc)
    assert "switch task runs nothing" in found
    assert "writes" in found


def test_reject_refuses_overlapping_writes_of_unordered_tasks_naming_both() -> None:
    found = problems(
        flow(
            "reject",
            a={"writes": ["out/report.md"]},
            b={"writes": ["out"]},
            c={"writes": ["key:db"]},
            d={"writes": ["key:db"], "needs": ["c"]},  # ordered after c: fine
            e={"writes": ["key:db"], "needs": ["f"]},  # c and e are not ordered
            f={},
        )
    )
    assert len(found) == 3, found
    assert "task 'b', field 'writes'" in found[0]
    assert "tasks 'a' and 'b' may run at the same time" in found[0]
    assert "'out/report.md', inside 'out'" in found[0]
    assert "task 'e'" in found[1]
    assert "tasks 'c' and 'e'" in found[1]
    assert "both write 'key:db'" in found[1]
    assert "task 'e'" in found[2]
    assert "tasks 'd' and 'e'" in found[2]
    # d needs c, e does not: a transitive order is an order too
    assert (
        problems(
            flow(
                "reject",
                a={"writes": ["."]},
                b={"needs": ["a"]},
                c={"needs": ["b"], "writes": ["src/app.py"]},
            )
        )
        == []
    )
    # the same file under serialize is fine: the engine runs them one at a time
    assert problems(flow(a={"writes": ["out"]}, b={"writes": ["out"]})) == []


def test_reject_leaves_templated_entries_and_foreach_items_to_the_engine() -> None:
    assert (
        problems(
            flow(
                "reject",
                a={"foreach": [1, 2], "writes": ["out/{{ item }}"]},
                b={"writes": ["out/{{ inputs | length }}"]},
                c={"foreach": [1, 2], "writes": ["shared"]},
            )
        )
        == []
    )


def test_reject_reports_a_bounded_number_of_pairs() -> None:
    tasks = {f"t{i}": {"writes": ["."]} for i in range(200)}
    found = problems(flow("reject", **tasks))
    assert 100 <= len(found) <= 101  # the reporter stops at 100 problems


def test_the_builder_says_what_the_file_says() -> None:
    wf = WorkflowBuilder("wf", conflicts="reject")
    a = wf.task("a", tool="noop", writes="out")
    wf.task("b", tool="noop", needs=[a], writes=["out/x", "key:db"])
    plan = wf.compile()
    assert plan.conflicts == "reject"
    assert plan.tasks["a"].writes == ("out",)
    assert plan.tasks["b"].writes == ("out/x", "key:db")


_SEGMENT = st.sampled_from(["a", "b", ".", "..", "", "c.txt"])


@given(st.lists(_SEGMENT, min_size=1, max_size=6))
def test_no_spelling_escapes_the_workspace(parts: list[str]) -> None:
    entry = "/".join(parts)
    try:
        path = resource(entry)
    except WritesError as exc:
        refused = str(exc)
        assert any(w in refused for w in ("leaves the workspace", "not relative", "empty"))
        return
    assert not path.startswith(("/", ".."))
    assert ".." not in path.split("/")
    assert resource(path) == path  # canonical: normalising again changes nothing
    assert overlap(path, path)
    assert overlap(".", path)

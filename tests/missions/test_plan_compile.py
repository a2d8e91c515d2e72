"""The constraint compiler: every rule, its failure, and what the architect is told."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from nexus.domain.errors import UserError
from nexus.missions.plan import (
    MAX_FEEDBACK_CHARS,
    MissionPlan,
    PlanProblem,
    PlanRejected,
    compile_plan,
    plan_schema,
)
from nexus.missions.spec import SpecMap, parse_spec

SPEC = """# Cache

## Requirements

- R1: Entries MUST expire after `ttl` seconds.
- R2: The cache MUST NOT hold more than `size` entries.
- R3: Hits SHOULD be counted.
- R4: The cache MAY be warmed from a file.

## Performance

- A lookup MUST take under 1 ms.
"""
CHECKS = ["tests", "lint", "types"]
FILES = ["src/cache/__init__.py", "src/cache/store.py", "tests/test_store.py", "README.md"]


@pytest.fixture(scope="module")
def spec() -> SpecMap:
    return parse_spec(SPEC, source="cache.md")


def item(item_id: str, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": item_id,
        "title": item_id.title(),
        "summary": "",
        "owns": [f"src/cache/{item_id}.py"],
        "tests": [],
        "needs": [],
        "requirements": [],
        "checks": ["tests"],
    }
    data.update(fields)
    return data


def good() -> dict[str, Any]:
    return {
        "items": [
            item("expiry", requirements=["R1"], tests=["tests/test_expiry.py"]),
            item("bound", requirements=["R2"], needs=["expiry"]),
        ],
        "unmet": [],
    }


def rejected(answer: Any, spec: SpecMap, **kwargs: Any) -> list[PlanProblem]:
    with pytest.raises(PlanRejected) as caught:
        compile_plan(answer, spec=spec, files=kwargs.pop("files", FILES), checks=CHECKS, **kwargs)
    return caught.value.problems


def one(problems: list[PlanProblem], item_id: str | None, field: str, words: str) -> PlanProblem:
    hits = [p for p in problems if p.item == item_id and p.field == field and words in p.message]
    assert hits, f"no problem on {item_id}/{field} with {words!r} in {problems}"
    return hits[0]


def test_a_good_plan_compiles_with_unmet_shoulds_listed(spec: SpecMap) -> None:
    plan = compile_plan(good(), spec=spec, files=FILES, checks=CHECKS)
    assert [i.id for i in plan.items] == ["expiry", "bound"]
    assert [(u.requirement, u.reason) for u in plan.unmet] == [
        ("R3", "not planned"),
        ("R4", "not planned"),
    ]
    assert plan.order() == (("expiry",), ("bound",))
    assert plan.owner_of("tests/test_expiry.py") == "expiry"
    assert plan.owner_of("src/cache/bound.py") == "bound"
    assert plan.owner_of("src/cache/store.py") is None
    assert MissionPlan.model_validate(plan.to_data()) == plan


def test_json_text_a_fence_and_bytes_are_read(spec: SpecMap) -> None:
    text = json.dumps(good())
    for answer in (text, f"```json\n{text}\n```", text.encode()):
        assert len(compile_plan(answer, spec=spec, files=FILES, checks=CHECKS).items) == 2


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ("{not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        ("[1, 2]", "a list, not an object"),
        (None, "null, not an object"),
        ({"unmet": []}, "is missing"),
        ({"items": "a, b"}, "text, not a list"),
        ({"items": [], "unmet": {}}, "not a list"),
        (
            "[" * 100_000,
            "nested too deeply",
        ),  # nested too deep for the parser: still a clean refusal
        (" " * 1_000_001, "the limit is 1,000,000"),
    ],
)
def test_a_malformed_answer_is_one_clear_problem(spec: SpecMap, answer: Any, words: str) -> None:
    problems = rejected(answer, spec)
    assert len(problems) == 1, problems
    assert words in problems[0].message


def test_items_are_dependency_ordered_stably(spec: SpecMap) -> None:
    answer = {
        "items": [
            item("c", needs=["b"], requirements=["R1"]),
            item("a", requirements=["R2"]),
            item("b", needs=["a"]),
            item("d"),
        ]
    }
    plan = compile_plan(answer, spec=spec, files=FILES, checks=CHECKS)
    assert [i.id for i in plan.items] == ["a", "b", "c", "d"]
    assert plan.order() == (("a", "d"), ("b",), ("c",))


def test_every_problem_is_collected_and_named(spec: SpecMap) -> None:
    answer = {
        "items": [
            item("a", checks=["test"], requirements=["R1", "R7"], colour="red"),
            item("a", requirements=["R2"]),
            item("Bad Id"),
            "not an item",
        ],
        "extra": 1,
    }
    problems = rejected(answer, spec)
    one(problems, None, "extra", "not a field of a plan")
    one(problems, "a", "colour", "not a field of a work item")
    one(problems, "a", "checks[0]", "did you mean 'tests'?")
    one(problems, "a", "requirements[1]", "'R7' is no requirement of the spec (known: R1, R2")
    one(problems, "a", "id", "is also the id of items[0]")
    one(problems, None, "items[2].id", "did you mean 'bad-id'?")
    one(problems, None, "items[3]", "not a work item object")


def test_a_cycle_is_rejected_naming_it(spec: SpecMap) -> None:
    answer = {
        "items": [
            item("a", needs=["b"], requirements=["R1", "R2"]),
            item("b", needs=["c"]),
            item("c", needs=["a"]),
            item("d", needs=["d", "e"]),
            item("e", needs=["d"]),
        ]
    }
    problems = rejected(answer, spec)
    one(problems, "a", "needs", "dependencies cycle: a -> b -> c -> a")
    one(problems, "d", "needs[0]", "cannot need itself")
    one(problems, "d", "needs", "dependencies cycle: d -> e -> d")


def test_needs_name_items_of_the_plan(spec: SpecMap) -> None:
    answer = {"items": [item("parse", requirements=["R1", "R2"]), item("fmt", needs=["pares"])]}
    one(rejected(answer, spec), "fmt", "needs[0]", "no item of the plan (did you mean 'parse'?)")


def test_every_must_is_claimed_or_unmet_with_a_reason(spec: SpecMap) -> None:
    answer = {"items": [item("a", requirements=["R1"])], "unmet": []}
    one(rejected(answer, spec), None, "unmet", "requirement 'R2' (MUST NOT")
    answer["unmet"] = [{"requirement": "R2", "reason": "needs a product decision"}]
    plan = compile_plan(answer, spec=spec, files=FILES, checks=CHECKS)
    assert plan.unmet[0].requirement == "R2"
    assert plan.unmet[0].reason == "needs a product decision"


def test_a_requirement_with_no_level_must_be_addressed() -> None:
    spec = parse_spec("# S\n\n## Requirements\n\n- The log is kept.\n", source="s.md")
    (req,) = spec.requirements
    assert req.level is None
    answer = {"items": [item("a")]}
    one(rejected(answer, spec), None, "unmet", f"requirement {req.id!r} (no level")


@pytest.mark.parametrize(
    ("unmet", "field", "words"),
    [
        ([{"requirement": "R1", "reason": "hard"}], "unmet[0].requirement", "claimed by item 'a'"),
        ([{"requirement": "R9", "reason": "x"}], "unmet[0].requirement", "no requirement"),
        ([{"requirement": "R2", "reason": " "}], "unmet[0].reason", "is empty"),
        ([{"requirement": "R2"}], "unmet[0]", "exactly 'requirement' and 'reason'"),
        (["R2"], "unmet[0]", "exactly 'requirement' and 'reason'"),
        ([{"requirement": "R2", "reason": "a\x00b"}], "unmet[0].reason", "control"),
        (
            [{"requirement": "R2", "reason": "x"}, {"requirement": "R2", "reason": "y"}],
            "unmet[1].requirement",
            "twice",
        ),
    ],
)
def test_bad_unmet_entries(spec: SpecMap, unmet: Any, field: str, words: str) -> None:
    answer = {"items": [item("a", requirements=["R1"])], "unmet": unmet}
    one(rejected(answer, spec), None, field, words)


def test_a_constraint_id_is_not_a_requirement(spec: SpecMap) -> None:
    cid = spec.constraints[0].id
    answer = {"items": [item("a", requirements=["R1", "R2", cid])]}
    one(rejected(answer, spec), "a", "requirements[2]", "is a constraint, not a requirement")


# -- ownership ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_owns", "b_owns", "field", "words"),
    [
        (
            ["src/cache/x.py"],
            ["src/cache/x.py"],
            "owns[0]",
            "'src/cache/x.py' is owned by item 'a'",
        ),
        (["./src//cache/x.py"], ["src/cache/x.py"], "owns[0]", "owned by item 'a'"),
        (
            ["src/cache/*.py"],
            ["src/cache/new.py"],
            "owns[0]",
            "'src/cache/new.py' is owned by item 'a' too (owns[0] 'src/cache/*.py')",
        ),
        # a glob and an existing file the other's glob matches
        (["src/cache/*.py"], ["src/**/store.py"], "owns[0]", "'src/cache/store.py'"),
        # two globs that match no existing file but could match one new file
        (["lib/*/y.py"], ["lib/**"], "owns[0]", "a new file such as 'lib/x/y.py'"),
        (["src/*.py"], ["src/x*.py"], "owns[0]", "a new file such as 'src/x.py'"),
    ],
)
def test_two_items_may_not_own_one_file(
    spec: SpecMap, a_owns: list[str], b_owns: list[str], field: str, words: str
) -> None:
    answer = {"items": [item("a", owns=a_owns, requirements=["R1", "R2"]), item("b", owns=b_owns)]}
    problem = one(rejected(answer, spec), "b", field, words)
    assert "give it to one of them" in problem.message


def test_tests_are_owned_too(spec: SpecMap) -> None:
    answer = {
        "items": [
            item("a", tests=["tests/test_store.py"], requirements=["R1", "R2"]),
            item("b", owns=["tests/*.py"]),
        ]
    }
    one(rejected(answer, spec), "b", "owns[0]", "'tests/test_store.py'")


def test_disjoint_globs_and_existing_files_pass(spec: SpecMap) -> None:
    answer = {
        "items": [
            item("a", owns=["src/cache/*.py"], requirements=["R1", "R2"]),
            item("b", owns=["src/cache/sub/**", "docs/*.md"], tests=["tests/test_b.py"]),
        ]
    }
    plan = compile_plan(answer, spec=spec, files=FILES, checks=CHECKS)
    assert plan.owner_of("src/cache/store.py") == "a"
    assert plan.owner_of("src/cache/sub/x/y.py") == "b"


@pytest.mark.parametrize(
    ("a_owns", "b_owns", "b_tests"),
    [
        (["src/cache/util"], ["src/cache/util/x.py"], []),
        (["src/cache/util"], ["src/cache/util/*.py"], []),
        (["docs/api"], ["src/cache/b.py"], ["docs/api/test_b.py"]),
    ],
)
def test_one_items_file_is_no_other_items_directory(
    spec: SpecMap, a_owns: list[str], b_owns: list[str], b_tests: list[str]
) -> None:
    # they share no file, yet their merges could never combine
    answer = {
        "items": [
            item("a", owns=a_owns, requirements=["R1", "R2"]),
            item("b", owns=b_owns, tests=b_tests),
        ]
    }
    problems = rejected(answer, spec)
    assert len(problems) == 1, problems
    assert problems[0].item == "b"
    assert "which item 'a' owns as a file (owns[0])" in problems[0].message
    assert "needs a directory" in problems[0].message


def test_a_glob_beside_a_directory_is_no_clash(spec: SpecMap) -> None:
    # 'src/cache/*' may make a file 'src/cache/util' but need not
    answer = {
        "items": [
            item("a", owns=["src/cache/*"], requirements=["R1", "R2"]),
            item("b", owns=["src/cache/util/x.py"]),
        ]
    }
    plan = compile_plan(answer, spec=spec, files=FILES, checks=CHECKS)
    assert plan.owner_of("src/cache/util/x.py") == "b"


def test_the_repositorys_files_and_directories_are_not_swapped(spec: SpecMap) -> None:
    answer = {
        "items": [
            item("a", owns=["README.md/intro.md"], requirements=["R1", "R2"]),
            item("b", owns=["src/cache"]),
        ]
    }
    problems = rejected(answer, spec)
    one(problems, "a", "owns[0]", "'README.md' to be a directory, but the repository has a file")
    one(problems, "b", "owns[0]", "'src/cache' is a directory of the repository")


def test_a_hardening_plan_proves_each_item_with_tests(spec: SpecMap) -> None:
    answer = good()  # 'bound' names no test file
    compile_plan(answer, spec=spec, files=FILES, checks=CHECKS)
    problems = rejected(answer, spec, require_tests=True)
    assert len(problems) == 1
    one(problems, "bound", "tests", "in a hardening mission every work item names the test")


def test_many_files_one_glob_clash_is_one_problem(spec: SpecMap) -> None:
    files = [f"src/m{n}.py" for n in range(500)]
    answer = {
        "items": [
            item("a", owns=["src/*.py"], requirements=["R1", "R2"]),
            item("b", owns=["src/**"]),
        ]
    }
    problems = rejected(answer, spec, files=files)
    assert len(problems) == 1
    assert "(and 499 more files)" in problems[0].message


def test_an_item_does_not_own_its_own_tests_as_code(spec: SpecMap) -> None:
    answer = {
        "items": [item("a", owns=["**"], tests=["tests/test_a.py"], requirements=["R1", "R2"])]
    }
    one(rejected(answer, spec), "a", "tests[0]", "the coder may not change the tests")


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"owns": ["../../etc/passwd"]}, "owns[0]", "'..'"),
        ({"owns": ["/etc/passwd"]}, "owns[0]", "absolute"),
        ({"owns": [".git/hooks/post-checkout"]}, "owns[0]", "'.git'"),
        ({"owns": [".nexus/state.db"]}, "owns[0]", "'.nexus'"),
        ({"owns": ["src/a\x00.py"]}, "owns[0]", "U+0000"),
        ({"tests": ["tests/test_*.py"]}, "tests[0]", "is a glob"),
        ({"owns": [], "tests": []}, "owns", "is empty"),
        ({"owns": "src/a.py"}, "owns", "not a list"),
        ({"owns": [1]}, "owns[0]", "a number, not text"),
        ({"owns": [f"f{n}.py" for n in range(51)]}, "owns", "the limit is 50"),
        ({"title": ""}, "title", "is empty"),
        ({"title": "two\nlines"}, "title", "line breaks"),
        ({"title": "x" * 201}, "title", "the limit is 200"),
        ({"summary": "a\x1b[31mred"}, "summary", "control"),
        ({"summary": ["x"]}, "summary", "not text"),
    ],
)
def test_field_refusals(spec: SpecMap, fields: dict[str, Any], field: str, words: str) -> None:
    answer = {"items": [item("a", requirements=["R1", "R2"], **fields)]}
    one(rejected(answer, spec), "a", field, words)


def test_the_paths_of_all_items_together_are_bounded(spec: SpecMap) -> None:
    answer = {
        "items": [
            item(f"i{n}", owns=[f"d{n}/f{k}.py" for k in range(50)], requirements=["R1", "R2"])
            for n in range(11)
        ]
    }
    one(rejected(answer, spec), None, "items", "own 550 paths in all; the limit is 500")


def test_item_count_is_bounded(spec: SpecMap) -> None:
    answer = {"items": [item(f"i{n}", requirements=["R1", "R2"]) for n in range(4)]}
    one(rejected(answer, spec, max_items=3), None, "items", "has 4 work items; the limit is 3")
    one(rejected({"items": []}, spec), None, "items", "at least one")


# -- what the architect is told ---------------------------------------------------------


def test_feedback_is_markdown_naming_each_problem(spec: SpecMap) -> None:
    answer = {"items": [item("a", needs=["a"], owns=["/abs"], requirements=["R1", "R2"])]}
    with pytest.raises(PlanRejected) as caught:
        compile_plan(answer, spec=spec, files=FILES, checks=CHECKS)
    error = caught.value
    assert isinstance(error, UserError)
    assert error.kind == "validation"
    text = error.feedback()
    assert text.startswith("## Your plan was rejected")
    assert "- item 'a', field 'needs[0]': an item cannot need itself" in text
    assert "- item 'a', field 'owns[0]': '/abs' is absolute" in text
    assert str(error).startswith("the plan is rejected: 2 problems")


def test_feedback_is_bounded_and_counts_what_it_leaves_out(spec: SpecMap) -> None:
    huge = "x" * 5000
    answer = {
        "items": [
            item(f"i{n}", owns=[huge, huge + "y", huge + "z"], requirements=["R1", "R2"])
            for n in range(50)
        ]
    }
    with pytest.raises(PlanRejected) as caught:
        compile_plan(answer, spec=spec, files=FILES, checks=CHECKS)
    text = caught.value.feedback()
    assert len(text) <= MAX_FEEDBACK_CHARS
    assert "more problems." in text
    assert huge not in text  # model-written values are quoted short


# -- the schema ---------------------------------------------------------------------------


def test_the_schema_is_strict_and_accepts_what_the_compiler_accepts(spec: SpecMap) -> None:
    schema = plan_schema(checks=CHECKS, requirements=[r.id for r in spec.requirements])
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    plan = compile_plan(good(), spec=spec, files=FILES, checks=CHECKS)
    validator.validate(plan.to_data())
    assert not validator.is_valid({**good(), "extra": 1})
    bad = good()
    bad["items"][0]["checks"] = ["deploy"]
    assert not validator.is_valid(bad)
    bad = good()
    del bad["items"][0]["summary"]
    assert not validator.is_valid(bad)


def test_a_schema_without_checks_allows_none() -> None:
    validator = jsonschema.Draft202012Validator(plan_schema(checks=[]))
    answer = {"items": [item("a", checks=[])], "unmet": []}
    assert validator.is_valid(answer)
    answer["items"][0]["checks"] = ["tests"]
    assert not validator.is_valid(answer)


def test_a_flood_of_problems_stays_readable(spec: SpecMap) -> None:
    flood = {f"k{n}" + "y" * 500: 1 for n in range(300)}
    answer = {"items": [item("a", requirements=["R1", "R2"], **flood)]}
    with pytest.raises(PlanRejected) as caught:
        compile_plan(answer, spec=spec, files=FILES, checks=CHECKS)
    error = caught.value
    assert len(error.problems) == 300
    assert all(len(p.field or "") <= 60 for p in error.problems)
    assert error.message.count("\n- ") == 50
    assert error.message.endswith("... and 250 more")
    assert len(error.message) < 20_000

# ruff: noqa: E501  (scripts of file contents read best on one line each)
"""``nexus mission``: bad input, --plan-only then approve, scope, the merge queue's rollback,
a brownfield repository whose tests must keep passing, and kill -9 in a check and in a merge.

The roles are the function agents of ``mission_agents``, each run driven by a
JSON script, so no model is needed and every path is exact.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mission_agents import AGENTS_YAML, agents_yaml
from mission_support import NEXUS, env, git, make_repo, nexus, work_items_on

pytestmark = pytest.mark.slow

SPEC = """# calc

## Requirements

- R1: `calc.a.one()` MUST return 1.
- R2: `calc.b.two()` MUST return 2.
"""
SEED = {
    "pyproject.toml": '[project]\nname = "calc"\nversion = "0"\n\n'
    '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
    "calc/__init__.py": '"""calc."""\n',
    "tests/__init__.py": "",
    "tests/test_seed.py": "def test_seed() -> None:\n    assert True\n",
}


def item(name: str, req: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": name,
        "title": f"{name}()",
        "summary": f"calc.{name}",
        "owns": [f"calc/{name}.py"],
        "tests": [f"tests/test_{name}.py"],
        "needs": [],
        "requirements": [req],
        "checks": [],
        **extra,
    }


def module(name: str, value: int) -> str:
    return f'"""{name}."""\n\n\ndef {"one" if name == "a" else "two"}() -> int:\n    """A number."""\n    return {value}\n'


def write(path: str, text: str) -> dict[str, Any]:
    return {"tool": "mission.write", "args": {"path": path, "text": text}}


def answer_with_tests(name: str) -> dict[str, Any]:
    fn, value = ("one", 1) if name == "a" else ("two", 2)
    text = f"from calc.{name} import {fn}\n\n\ndef test_{fn}() -> None:\n    assert {fn}() == {value}\n"
    return {
        "actions": [
            {"tool": "mission.tests.write", "args": {"path": f"tests/test_{name}.py", "text": text}}
        ]
    }


class Mission:
    """One mission's files: spec, repository, agents, script, working directory."""

    def __init__(self, root: Path, script: dict[str, Any], seed: dict[str, str] | None = None,
                 spec: str = SPEC, toml: str = "") -> None:  # fmt: skip
        self.root = root
        self.home = root / "home"
        self.repo = make_repo(root / "repo", seed or SEED)
        self.spec = root / "spec.md"
        self.spec.write_text(spec)
        self.agents = root / "agents.yaml"
        self.agents.write_text(AGENTS_YAML + "\n")
        self.script = root / "script.json"
        self.script.write_text(json.dumps(script))
        self.workdir = root / "work"
        if toml:
            (root / "nexus.toml").write_text(toml)
        self.vars = {
            "MISSION_SCRIPT": str(self.script),
            "MISSION_WORKDIR": str(self.workdir),
            "MISSION_REPO": str(self.repo),
        }

    def args(self, *more: str | Path) -> list[str | Path]:
        return ["mission", self.spec, "--repo", self.repo, "--agents", self.agents,
                "--workdir", self.workdir, "--json", *more]  # fmt: skip

    def run(self, *more: str | Path, **extra: str) -> Any:
        return nexus(self.home, *self.args(*more), **self.vars, **extra)

    def events(self) -> list[dict[str, Any]]:
        return nexus(self.home, "events", "latest", "--json").json()  # type: ignore[no-any-return]

    def tool_calls(self, tool: str) -> list[dict[str, Any]]:
        return [
            e["data"]
            for e in self.events()
            if e["type"] == "effect.recorded" and e["data"]["request"].get("tool") == tool
        ]


def two_items(**coder: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "architect": [{"items": [item("a", "R1"), item("b", "R2")], "unmet": []}],
        "tester": {"a": [answer_with_tests("a")], "b": [answer_with_tests("b")]},
        "coder": {
            "a": coder.get("a") or [{"actions": [write("calc/a.py", module("a", 1))]}],
            "b": coder.get("b") or [{"actions": [write("calc/b.py", module("b", 2))]}],
        },
    }


# -- bad input ------------------------------------------------------------------------------


def test_bad_input_is_named_with_its_exit_code(tmp_path: Path) -> None:
    m = Mission(tmp_path, two_items())
    no_model = nexus(m.home, "mission", m.spec, "--repo", m.repo, "--workdir", m.workdir)
    assert no_model.code == 2
    assert "no model for the architect role" in no_model.text
    assert nexus(m.home, *m.args("--mode", "sideways")).code == 2
    missing = nexus(m.home, "mission", tmp_path / "nope.md", "--repo", m.repo, "--model", "x:y")
    assert missing.code == 4
    plain = tmp_path / "plain"
    plain.mkdir()
    not_git = nexus(m.home, "mission", m.spec, "--repo", plain, "--agents", m.agents)
    assert not_git.code == 2
    assert str(plain) in not_git.text
    bad_role = tmp_path / "bad.yaml"
    bad_role.write_text("agents:\n  poet: {function: 'mission_agents:coder'}\n")
    wrong = nexus(m.home, "mission", m.spec, "--repo", m.repo, "--agents", bad_role)
    assert wrong.code == 2
    assert "no mission role 'poet'" in wrong.text
    inside = nexus(m.home, "mission", m.spec, "--repo", m.repo, "--agents", m.agents,
                   "--workdir", m.repo / "work", **m.vars)  # fmt: skip
    assert inside.code == 2
    assert "overlaps the repository" in inside.text
    assert not (m.repo / "work").exists()
    assert git(m.repo, "branch", "--list", "nexus/*") == ""  # nothing was started
    assert nexus(m.home, "runs", "--json").json() == []


# -- plan only, then approve ---------------------------------------------------------------


def test_plan_only_shows_the_plan_and_approve_runs_it(tmp_path: Path) -> None:
    m = Mission(tmp_path, two_items())
    planned = m.run("--plan-only")
    assert planned.code == 5, planned.text
    shown = planned.json()
    assert [i["id"] for i in shown["items"]] == ["a", "b"]
    assert shown["approve"].endswith(" work")
    assert "usd" in json.dumps(shown["estimate"])
    assert m.tool_calls("mission.open") == []  # nothing of the work ran
    approved = nexus(m.home, "approve", shown["run_id"], "work", "--json", **m.vars)
    assert approved.code == 0, approved.text
    summary = approved.json()
    assert sorted(summary["merged"]) == ["a", "b"]
    assert summary["requirements_met"] == ["R1", "R2"]
    assert work_items_on(m.repo, summary["branch"]) == ["a", "b"]


# -- scope ----------------------------------------------------------------------------------


def test_scope_is_held_by_the_tools_and_by_the_gate(tmp_path: Path) -> None:
    script = two_items(
        a=[{"actions": [write("calc/a.py", module("a", 1)), {"raw": "calc/sneaky.py", "text": "x = 1\n"}]}],
        b=[{"actions": [{"try": "mission.write", "args": {"path": "README.md", "text": "hi"}},
                        {"try": "mission.write", "args": {"path": "tests/test_b.py", "text": "x"}},
                        write("calc/b.py", module("b", 2))]}],
    )  # fmt: skip
    script["tester"]["b"] = [
        {"actions": [{"try": "mission.tests.read", "args": {"path": "calc/b.py"}},
                     *answer_with_tests("b")["actions"]]}
    ]  # fmt: skip
    m = Mission(tmp_path, script)
    done = m.run("--max-attempts", "1")
    assert done.code == 1, done.text
    summary = done.json()
    assert summary["merged"] == ["b"]
    assert summary["not_merged"] == ["a"]
    assert summary["requirements_unmet"] == ["R1"]
    assert work_items_on(m.repo, summary["branch"]) == ["b"]
    checks = [c["response"] for c in m.tool_calls("mission.check") if c["task"] == "item-a"]
    assert [c["failed"] for c in checks] == [["scope"]]
    assert "calc/sneaky.py" in checks[0]["feedback"]
    refusals = [
        e["data"]["error"]["message"]
        for e in m.events()
        if e["type"] == "effect.recorded" and e["data"].get("error")
    ]
    assert any("does not own 'README.md'" in r for r in refusals)
    assert any("its tests are the tester's" in r for r in refusals)
    assert any("implementation" in r and "calc/b.py" in r for r in refusals)
    evidence = json.loads((Path(summary["evidence"]) / "evidence.json").read_text())
    unmet = {r["id"]: r for r in evidence["requirements"]}["R1"]
    assert unmet["status"] == "unmet"
    assert unmet["reason"]


# -- the merge queue rolls back -------------------------------------------------------------

COMBINED = """
[mission.checks.apart]
command = ["python3", "-c", "import os, sys; sys.exit(os.path.exists('calc/a.py') and os.path.exists('calc/b.py'))"]
"""


def test_a_change_that_fails_on_the_combined_tree_is_rolled_back(tmp_path: Path) -> None:
    m = Mission(tmp_path, two_items(), toml=COMBINED)
    done = m.run("--max-attempts", "2")
    assert done.code == 1, done.text
    summary = done.json()
    assert len(summary["merged"]) == 1
    assert len(summary["not_merged"]) == 1
    loser = summary["not_merged"][0]
    # the branch holds the winner only: the loser's merges moved nothing
    assert work_items_on(m.repo, summary["branch"]) == summary["merged"]
    merges = [c["response"] for c in m.tool_calls("mission.merge") if c["task"] == f"item-{loser}"]
    assert merges
    assert {r["status"] for r in merges} == {"rejected"}
    assert all(r["commit"] is None for r in merges)
    assert "apart" in merges[0]["diagnostics"]


# -- a conflict goes to the integrator ------------------------------------------------------

SEEDED_A = module("a", 0)
PERSONS_A = SEEDED_A.replace("return 0", "return 0  # kept small on purpose")
RESOLVED_A = module("a", 1).replace("return 1", "return 1  # kept small on purpose")


def test_a_conflict_on_the_mission_branch_is_resolved_by_the_integrator(tmp_path: Path) -> None:
    # while the coder works, a person commits a change of the same line to the mission branch
    script = {
        "architect": [{"items": [item("a", "R1")], "unmet": [{"requirement": "R2", "reason": "later"}]}],
        "tester": {"a": [answer_with_tests("a")]},
        "coder": {"a": [{"actions": [write("calc/a.py", module("a", 1)),
                                     {"person": "calc/a.py", "text": PERSONS_A}]}]},
        "integrator": {"a": [{"actions": [{"tool": "mission.read", "args": {"path": "calc/a.py"}},
                                          write("calc/a.py", RESOLVED_A)]}]},
    }  # fmt: skip
    m = Mission(tmp_path, script, seed={**SEED, "calc/a.py": SEEDED_A})
    m.agents.write_text(agents_yaml("architect", "tester", "coder", "integrator") + "\n")
    done = m.run()
    assert done.code == 1, done.text  # R2 is unmet, by the plan's word
    summary = done.json()
    assert summary["merged"] == ["a"]
    branch = summary["branch"]
    assert git(m.repo, "show", f"{branch}:calc/a.py") == RESOLVED_A
    # the person's commit stays in the branch's history, under the item's
    log = git(m.repo, "log", "--format=%an %s", branch).splitlines()
    assert log[1] == "a person a person's change"
    assert work_items_on(m.repo, branch) == ["a"]
    merges = [c["response"] for c in m.tool_calls("mission.merge")]
    assert [r["status"] for r in merges] == ["conflict", "merged"]
    assert merges[0]["commit"] is None
    (synced,) = [c["response"] for c in m.tool_calls("mission.sync")]
    assert synced["conflicts"] == ["calc/a.py"]
    prompts = [
        e["data"]["prompt"]
        for e in m.events()
        if e["type"] == "attempt.started" and e["data"].get("state") == "integrate"
    ]
    assert len(prompts) == 1
    assert "calc/a.py" in prompts[0]
    assert "<<<<<<<" in prompts[0]
    assert "kept small on purpose" in prompts[0]
    checks = [c["response"] for c in m.tool_calls("mission.check")]
    assert [c["accepted"] for c in checks] == [True, True]  # before and after the integrator
    assert nexus(m.home, "evidence", "verify", summary["evidence"]).code == 0
    replay = nexus(m.home, "replay", "latest", "--json", **m.vars).json()
    assert replay["identical"] is True
    assert replay["tools_executed"] == 0


# -- brownfield -----------------------------------------------------------------------------

BROWN_SEED = {
    **SEED,
    "calc/core.py": '"""Core."""\n\n\ndef add(a: int, b: int) -> int:\n    """a + b."""\n    return a + b\n',
    "tests/test_core.py": "from calc.core import add\n\n\ndef test_add() -> None:\n    assert add(2, 3) == 5\n",
}
BROWN_SPEC = """# calc

## Requirements

- R1: `calc.core.mul(a, b)` MUST return the product of `a` and `b`.
"""
BROKEN = '"""Core."""\n\n\ndef add(a: int, b: int) -> int:\n    """a + b."""\n    return a - b\n\n\ndef mul(a: int, b: int) -> int:\n    """a * b."""\n    return a * b\n'
FIXED = BROKEN.replace("return a - b", "return a + b")


def test_brownfield_existing_tests_must_keep_passing(tmp_path: Path) -> None:
    mul_item = {**item("core", "R1"), "owns": ["calc/core.py"], "tests": ["tests/test_mul.py"]}
    script = {
        "architect": [{"items": [mul_item], "unmet": []}],
        "tester": {"core": [{"actions": [{"tool": "mission.tests.write", "args": {
            "path": "tests/test_mul.py",
            "text": "from calc.core import mul\n\n\ndef test_mul() -> None:\n    assert mul(3, 4) == 12\n",
        }}]}]},
        "coder": {"core": [
            {"actions": [{"tool": "mission.read", "args": {"path": "calc/core.py"}}, write("calc/core.py", BROKEN)]},
            {"actions": [write("calc/core.py", FIXED)]},
        ]},
    }  # fmt: skip
    m = Mission(tmp_path, script, seed=BROWN_SEED, spec=BROWN_SPEC)
    done = m.run("--mode", "brownfield")
    assert done.code == 0, done.text
    summary = done.json()
    assert summary["merged"] == ["core"]
    assert summary["attempts"] == 2
    checks = [c["response"] for c in m.tool_calls("mission.check")]
    assert [c["accepted"] for c in checks] == [False, True]
    assert "test_add" in checks[0]["feedback"]
    prompts = [
        e["data"]["prompt"]
        for e in m.events()
        if e["type"] == "attempt.started" and e["data"].get("state") == "code"
    ]
    assert "<context" in prompts[0]  # the index's ranked context of the repository
    assert "def add" in prompts[0]
    architect = [
        e["data"]["prompt"]
        for e in m.events()
        if e["type"] == "attempt.started" and e["data"].get("state") == "draft"
    ]
    assert "Mode: brownfield" in architect[0]
    assert "return a + b" in architect[0]  # the repository's code, ranked for the spec


# -- hardening ------------------------------------------------------------------------------

HARD_SPEC = """# calc

## Requirements

- R1: `calc.core.add` MUST raise `TypeError` when given a `bool`.
"""
GUARD = '    if isinstance(a, bool) or isinstance(b, bool):\n        raise TypeError("no bools")\n'
PUBLIC_HELPER = (
    BROWN_SEED["calc/core.py"].replace("    return a + b", "    check_int(a, b)\n    return a + b")
    + '\n\ndef check_int(a: int, b: int) -> None:\n    """Refuse bools."""\n'
    + GUARD
)
PRIVATE_HELPER = (
    BROWN_SEED["calc/core.py"].replace("    return a + b", "    _check_int(a, b)\n    return a + b")
    + "\n\ndef _check_int(a: int, b: int) -> None:\n"
    + GUARD
)
HARD_TEST = "import pytest\n\nfrom calc.core import add\n\n\ndef test_bools() -> None:\n    with pytest.raises(TypeError):\n        add(True, 1)\n"


def test_a_hardening_mission_proves_each_fix_and_adds_no_api(tmp_path: Path) -> None:
    fix = {**item("core", "R1"), "owns": ["calc/core.py"], "checks": ["tests"]}
    script = {
        "architect": [{"items": [{**fix, "tests": []}], "unmet": []},
                      {"items": [{**fix, "tests": ["tests/test_hardening.py"]}], "unmet": []}],
        "tester": {"core": [{"actions": [{"tool": "mission.tests.write",
                                          "args": {"path": "tests/test_hardening.py", "text": HARD_TEST}}]}]},
        "coder": {"core": [{"actions": [write("calc/core.py", PUBLIC_HELPER)]},
                           {"actions": [write("calc/core.py", PRIVATE_HELPER)]}]},
    }  # fmt: skip
    m = Mission(tmp_path, script, seed=BROWN_SEED, spec=HARD_SPEC)
    done = m.run("--mode", "hardening")
    assert done.code == 0, done.text
    assert done.json()["merged"] == ["core"]
    plans = [c["response"] for c in m.tool_calls("mission.plan")]
    assert [p["ok"] for p in plans] == [False, True]
    assert "every work item names the test files" in plans[0]["feedback"]
    checks = [c["response"] for c in m.tool_calls("mission.check")]
    assert [c["accepted"] for c in checks] == [False, True]
    # the item named only 'tests', yet every check ran, the api check among them
    assert checks[0]["failed"] == ["api"]
    assert {r["name"] for r in checks[1]["results"]} >= {"api", "lint", "security", "tests"}
    assert "public check_int is new" in checks[0]["feedback"]
    (merged,) = [c["response"] for c in m.tool_calls("mission.merge")]
    assert "api" in {r["name"] for r in merged["results"]}  # the combined tree, against the base
    architect = [
        e["data"]["prompt"]
        for e in m.events()
        if e["type"] == "attempt.started" and e["data"].get("state") == "draft"
    ]
    assert "Mode: hardening" in architect[0]


# -- kill -9 --------------------------------------------------------------------------------

SLOW = """
[mission.checks.slow]
command = ["python3", "-c", "import time; time.sleep(4)", "{marker}"]
"""


@contextlib.contextmanager
def running(m: Mission, **extra: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [str(NEXUS), *map(str, m.args())],
        env=env(m.home, **m.vars, **extra),
        cwd=m.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def wait_for(found: Any, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not found():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def host_pids(marker: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    pids.append(int(entry))
    return pids


def resumed(m: Mission) -> Any:
    run_id = nexus(m.home, "runs", "--json").json()[0]["run_id"]
    done = nexus(m.home, "resume", run_id, "--json", **m.vars)
    assert done.code == 0, done.text
    return done.json()


def test_kill_9_during_a_check_then_resume_merges_each_item_once(tmp_path: Path) -> None:
    marker = f"nexus-kill-check-{os.getpid()}"
    m = Mission(tmp_path, two_items(), toml=SLOW.format(marker=marker))
    with running(m) as proc:
        wait_for(lambda: host_pids(marker))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    summary = resumed(m)
    assert sorted(summary["merged"]) == ["a", "b"]
    assert work_items_on(m.repo, summary["branch"]) == ["a", "b"]
    assert git(m.repo, "status", "--porcelain", "--untracked-files=no") == ""


def test_kill_9_after_a_merge_landed_then_resume_adds_no_second_commit(tmp_path: Path) -> None:
    m = Mission(tmp_path, two_items())
    with running(m, NEXUS_MERGE_PAUSE_AT="landed") as proc:
        wait_for(lambda: any(m.workdir.glob("*/merge/.paused-landed")))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    summary = resumed(m)
    assert sorted(summary["merged"]) == ["a", "b"]
    assert work_items_on(m.repo, summary["branch"]) == ["a", "b"]  # one commit each
    statuses = [c["response"]["status"] for c in m.tool_calls("mission.merge")]
    assert "already_merged" in statuses
    replay = nexus(m.home, "replay", "latest", "--json", **m.vars).json()
    assert replay["identical"] is True
    assert replay["tools_executed"] == 0


# -- failure mining -------------------------------------------------------------------------

UNUSED = '"""a."""\n\nimport os\n\n\ndef one() -> int:\n    """A number."""\n    return 1\n'


def test_a_failure_that_recurs_is_proposed_and_once_accepted_applies(tmp_path: Path) -> None:
    script = {
        "architect": [{"items": [item("a", "R1")], "unmet": [{"requirement": "R2", "reason": "later"}]}],
        "tester": {"a": [answer_with_tests("a")]},
        "coder": {"a": [
            {"actions": [write("calc/a.py", UNUSED)]},
            {"actions": [write("calc/a.py", UNUSED.replace("import os", "import sys"))]},
            {"actions": [write("calc/a.py", module("a", 1))]},
        ]},
    }  # fmt: skip
    m = Mission(tmp_path, script)
    done = m.run()
    assert done.code == 1, done.text  # R2 is unmet, by the plan's word
    summary = done.json()
    assert summary["merged"] == ["a"]
    assert summary["requirements_unmet"] == ["R2"]
    assert summary["constraints_proposed"]  # the unused import, seen twice
    book = m.repo / ".nexus" / "constraints.yaml"
    assert summary["constraints"] == str(book)
    text = book.read_text()
    assert "status: proposed" in text
    assert "F401" in text
    # a person accepts it: the next mission's coder is told
    book.write_text(text.replace("status: proposed", "status: accepted"))
    again = Mission(tmp_path / "again", script)
    shutil.rmtree(again.repo)
    shutil.copytree(m.repo, again.repo)
    assert again.run().code == 1
    prompts = [
        e["data"]["prompt"]
        for e in again.events()
        if e["type"] == "attempt.started" and e["data"].get("state") == "code"
    ]
    assert "Never again" in prompts[0]
    assert "F401" in prompts[0]


def test_an_architect_that_never_plans_fails_the_mission_cleanly(tmp_path: Path) -> None:
    bad = {"items": [{**item("a", "R1"), "owns": ["../outside.py"]}], "unmet": []}
    m = Mission(tmp_path, {"architect": [bad]})
    done = m.run()
    assert done.code == 1, done.text
    summary = done.json()
    assert summary["status"] == "failed"
    assert summary["items"] == 0
    assert summary["requirements_unmet"] == ["R1", "R2"]
    assert len(m.tool_calls("mission.plan")) == 3  # three drafts, each rejected
    rejected = m.tool_calls("mission.plan")[0]["response"]
    assert rejected["ok"] is False
    assert "outside.py" in rejected["feedback"]
    assert git(m.repo, "branch", "--list", "nexus/*") == ""  # nothing to merge onto
    assert nexus(m.home, "evidence", "verify", summary["evidence"]).code == 0


def test_a_bad_mission_table_is_named(tmp_path: Path) -> None:
    m = Mission(tmp_path, two_items(), toml="[mission]\nmax_tokens = 0\n")
    done = m.run()
    assert done.code == 2
    assert "[mission] max_tokens must be a whole number" in done.text
    other = Mission(tmp_path / "o", two_items(), toml="[mission]\nmax_token = 5\n")
    typo = nexus(other.home, *other.args(), **other.vars)
    assert typo.code == 2
    assert "unknown key 'max_token'" in typo.text

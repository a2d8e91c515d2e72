"""A paused run says which budget ran out and the flag that raises it (issue 11, bug 4).

``nexus run`` used to say ``--budget usd=...`` whatever ran out. Each workflow
here runs out of a different limit -- the run's tokens, an agent's tool calls,
a task's dollars -- and the message must name the scope and the dimension, and
give a ``nexus resume --budget`` flag that, pasted, lets the run go on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import nexus

pytestmark = pytest.mark.slow

#: every answer of agent ``a`` is 10 words: 10 completion tokens; $1 a token when priced
LINE = "one two three four five six seven eight nine ten"
PRICED = '[pricing."scripted:a"]\ninput = 0\noutput = 1000000\n'


def workflow(folder: Path, budget: str, *, agent_budget: str = "", task_budget: str = "") -> None:
    agent_extra = f"    budget: {agent_budget}\n" if agent_budget else ""
    task_extra = f"    budget: {task_budget}\n" if task_budget else ""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nexus.toml").write_text(PRICED, encoding="utf-8")
    (folder / "flow.yaml").write_text(
        "version: 1\n"
        "name: pause\n" + (f"budget: {budget}\n" if budget else "") + "agents:\n"
        "  a:\n"
        "    model: scripted:a\n"
        "    max_tokens: 10\n"
        "    tools: [file.list]\n"
        f"{agent_extra}"
        "    scripted:\n"
        '      - \'@call file.list {"path": "."}\'\n'
        '      - \'@call file.list {"path": "."}\'\n'
        f"      - {LINE}\n"
        "tasks:\n"
        "  first: {agent: a, prompt: go}\n"
        "  second:\n"
        "    agent: a\n"
        "    prompt: go\n"
        "    needs: [first]\n"
        f"{task_extra}",
        encoding="utf-8",
    )


def run_id_of(home: Path) -> str:
    listed = nexus(home, "runs", "--json")
    assert listed.code == 0, listed.text
    return str(listed.json()[0]["run_id"])


@pytest.mark.parametrize(
    ("budgets", "ran_out", "flag"),
    [
        (
            {"budget": "{tokens: 30}"},
            "the run's tokens budget ran out (limit 30 tokens",
            "--budget tokens=60",
        ),
        (
            {"budget": "", "agent_budget": "{tool_calls: 1}"},
            "agent a's tool_calls budget ran out (limit 1 tool call",
            "--budget agent.a.tool_calls=2",
        ),
        (
            {"budget": "", "task_budget": "{usd: 5}"},
            "task second's usd budget ran out (limit $5.0000",
            "--budget task.second.usd=10",
        ),
    ],
    ids=["run-tokens", "agent-tool-calls", "task-usd"],
)
def test_the_pause_names_the_limit_and_the_flag_that_raises_it(
    tmp_path: Path, budgets: dict[str, str], ran_out: str, flag: str
) -> None:
    folder = tmp_path / "project"
    workflow(folder, **budgets)
    home = folder / "home"
    paused = nexus(home, "run", "flow.yaml", "--force")
    assert paused.code == 5, paused.text
    run_id = run_id_of(home)
    assert ran_out in paused.stdout, paused.stdout
    assert f"raise it and go on: nexus resume {run_id} {flag}" in paused.stdout, paused.stdout
    assert "--budget usd=..." not in paused.stdout
    # the flag as printed is one the command takes, and it lets the run go on
    resumed = nexus(home, "resume", run_id, *flag.split(" ", 1))
    assert resumed.code in (0, 5), resumed.text
    assert "error" not in resumed.stderr.lower(), resumed.text

"""The model gateway from the command line: estimates, budgets, cost, record/replay, streaming.

Every command runs the real ``nexus`` script in a project folder holding a
``nexus.toml``. Scripted models are priced through ``[pricing."scripted:a"]``
($1 a completion token) so money moves without a network; the streaming test
points ``[providers.openai]`` at the loopback fake model server, started in
this process (the CLI subprocess reaches it over 127.0.0.1).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import WORKFLOWS, Out, nexus

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from fakeserver import FakeServer, openai_stream, openai_usage, sse_reply

from nexus.gateway.base import Usage
from nexus.gateway.pricing import cost_of

GATEWAY = WORKFLOWS / "gateway"
#: every priced.yaml answer is four words: 4 completion tokens, $4
PRICED = '[pricing."scripted:a"]\ninput = 0\noutput = 1000000\n'
KEY = "sk-cli-test-Hq93-never-printed-5521"
NO_RUN = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def project(folder: Path, toml: str, *workflows: str) -> Path:
    """A project folder with this ``nexus.toml`` and these workflow files; its NEXUS_HOME."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nexus.toml").write_text(toml, encoding="utf-8")
    for name in workflows:
        shutil.copy(GATEWAY / name, folder / name)
    return folder / "home"


def only_run(home: Path) -> str:
    listed = nexus(home, "runs", "--json")
    assert listed.code == 0, listed.text
    (record,) = listed.json()
    return str(record["run_id"])


def error_line(out: Out) -> str:
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out.text
    return lines[0]


# -- plan --estimate ----------------------------------------------------------------------


def test_plan_estimate_prints_the_estimate_and_its_method(tmp_path: Path) -> None:
    home = project(tmp_path, PRICED, "priced.yaml")
    text = nexus(home, "plan", "priced.yaml", "--estimate")
    assert text.code == 0, text.text
    assert "priced  estimate $16.0000, 20 tokens, 4 model calls, 0 tool calls" in text.stdout
    assert "scripted:a" in text.stdout
    assert "method: One model call per agent-task instance" in text.stdout
    assert "over budget" not in text.text

    doc = nexus(home, "plan", "priced.yaml", "--estimate", "--json")
    assert doc.code == 0, doc.text
    estimate = doc.json()
    assert (estimate["usd"], estimate["calls"], estimate["tokens"]) == ("16", 4, 20)
    assert sorted(estimate["per_task"]) == ["t1", "t2", "t3", "t4"]
    assert {t["usd"] for t in estimate["per_task"].values()} == {"4"}
    assert estimate["by_agent"]["a"]["usd"] == "16"
    assert estimate["method"].startswith("One model call per agent-task instance")
    assert estimate["over_budget"] == []
    assert nexus(home, "runs", "--json").json() == [], "an estimate starts no run"


def test_plan_estimate_over_the_run_budget_exits_6_and_names_it(tmp_path: Path) -> None:
    home = project(tmp_path, PRICED + "[budgets.run]\nusd = 10\n", "priced.yaml")
    text = nexus(home, "plan", "priced.yaml", "--estimate")
    assert text.code == 6, text.text  # what `nexus run` is refused with
    assert "estimate $16.0000" in text.stdout
    assert (
        "over budget: budget exceeded: the preflight estimate for run is $16.0000, "
        "over its limit $10.0000"
    ) in text.stderr

    doc = nexus(home, "plan", "priced.yaml", "--estimate", "--json")
    assert doc.code == 6
    (problem,) = doc.json()["over_budget"]
    assert "for run is $16.0000, over its limit $10.0000" in problem


def test_an_agent_budget_under_the_estimate_is_named_too(tmp_path: Path) -> None:
    home = project(tmp_path, PRICED, "priced.yaml")
    workflow = home.parent / "priced.yaml"
    text = workflow.read_text(encoding="utf-8")
    workflow.write_text(
        text.replace("    max_tokens: 4\n", "    max_tokens: 4\n    budget: {usd: 6}\n")
    )
    out = nexus(home, "plan", "priced.yaml", "--estimate", "--json")
    assert out.code == 6, out.text
    (problem,) = out.json()["over_budget"]
    assert "agent a" in problem
    assert "$6.0000" in problem


# -- run, pause, resume, cost, replay -----------------------------------------------------


@pytest.mark.slow
def test_budgeted_run_refuses_then_forced_pauses_resumes_and_costs_out(tmp_path: Path) -> None:
    home = project(tmp_path, PRICED + "[budgets.run]\nusd = 10\n", "priced.yaml")

    refused = nexus(home, "run", "priced.yaml")
    assert refused.code == 6, refused.text  # refused by the preflight: not "the run failed"
    assert error_line(refused) == (
        "error: budget exceeded: the preflight estimate for run is $16.0000, over its limit "
        "$10.0000; the run was not started (force it with `nexus run --force` or "
        "Engine.start(force=True))"
    )
    assert nexus(home, "runs", "--json").json() == [], "a refused run must not be created"

    paused = nexus(home, "run", "priced.yaml", "--force")
    assert paused.code == 5, paused.text
    run_id = only_run(home)
    assert f"paused  run {run_id}  (2 paused, 2 succeeded)" in paused.stdout
    assert f"see: nexus cost {run_id}" in paused.stdout
    assert "the run's usd budget ran out (limit $10.0000, $8.0000 spent)" in paused.stdout
    assert f"raise it and go on: nexus resume {run_id} --budget usd=20" in paused.stdout

    halfway = nexus(home, "cost", run_id, "--json")
    assert halfway.code == 0, halfway.text
    report = halfway.json()
    assert report["status"] == "paused"
    assert (report["total"]["usd"], report["total"]["calls"]) == ("8", 2)
    assert report["estimate"]["usd"] == "16"
    assert report["estimate"]["forced_over_budget"] is True
    assert report["budgets"]["run"] == {
        "limits": {"usd": "10"},
        "spent": {"usd": "8", "tokens": 10, "tool_calls": 0},
    }
    events = [(e["type"], e["scope"], e["percent"]) for e in report["budget_events"]]
    assert events == [("budget.warning", "run", 80), ("budget.exceeded", "run", 100)]

    resumed = nexus(home, "resume", run_id, "--budget", "usd=20", "--quiet")
    assert resumed.code == 0, resumed.text
    assert f"succeeded  run {run_id}  (4 succeeded)" in resumed.stdout

    text = nexus(home, "cost", run_id)
    assert text.code == 0, text.text
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"run {run_id}  priced  $16  20 tokens in 4 model calls")
    for header in ("agent", "task", "model"):
        assert any(line.split()[:2] == [header, "calls"] for line in lines), header
    assert any(line.split() == ["scripted:a", "4", "4", "16", "0", "16"] for line in lines)
    assert any(line.split() == ["t3", "1", "1", "4", "0", "4"] for line in lines)
    assert "estimate $16 vs actual $16  (error 0%)" in text.stdout
    assert "budget.exceeded run  usd 100%" in text.stdout

    final = nexus(home, "cost", run_id, "--json").json()
    assert final["status"] == "succeeded"
    assert final["by_agent"] == {
        "a": {"usd": "16", "calls": 4, "tokens": 20, "prompt_tokens": 4, "completion_tokens": 16}
    }
    assert {t: row["usd"] for t, row in final["by_task"].items()} == {
        "t1": "4",
        "t2": "4",
        "t3": "4",
        "t4": "4",
    }
    assert final["by_model"]["scripted:a"]["usd"] == "16"
    vs = final["estimate"]["vs_actual"]
    assert (vs["estimate"], vs["actual"], vs["error"], vs["relative_error"]) == ("16", "16", "0", 0)
    assert final["budgets"]["run"]["limits"] == {"usd": "20"}
    assert final["budgets"]["run"]["spent"]["usd"] == "16"
    assert [e["type"] for e in final["budget_events"]] == [
        "budget.warning",
        "budget.exceeded",
        "budget.warning",
    ]

    replayed = nexus(home, "replay", run_id)
    assert replayed.code == 0, replayed.text
    assert replayed.stdout.startswith("identical")
    assert "0 tools executed" in replayed.stdout

    tenant = nexus(home, "cost", "--tenant", "default", "--json")
    assert tenant.code == 0, tenant.text
    assert tenant.json() == {
        "tenant": "default",
        "usd": "16",
        "tokens": 20,
        "calls": 4,
        "tool_calls": 0,
    }
    neither = nexus(home, "cost")
    assert neither.code == 2
    assert "name a run" in error_line(neither)


# -- record and replay --------------------------------------------------------------------


def outputs(home: Path, run_id: str) -> dict[str, Any]:
    doc = nexus(home, "inspect", run_id, "--json")
    assert doc.code == 0, doc.text
    return {tid: task["output"] for tid, task in doc.json()["tasks"].items()}


@pytest.mark.slow
def test_a_recorded_run_replays_offline_from_its_cassette(tmp_path: Path) -> None:
    names = ("recorded.yaml", "replayed.yaml", "answered.yaml")
    home = project(tmp_path, "", *names)
    flows = tmp_path / "flows"
    flows.mkdir()
    for name in names:
        (tmp_path / name).rename(flows / name)

    recorded = nexus(home, "run", "flows/recorded.yaml", "--record", "flows/cas.yaml", "--json")
    assert recorded.code == 0, recorded.text
    cassette = yaml.safe_load((flows / "cas.yaml").read_text(encoding="utf-8"))
    assert cassette["version"] == 1
    exchanges = cassette["interactions"]
    assert [i["request"]["model"] for i in exchanges] == ["scripted:writer", "scripted:reviewer"]
    assert exchanges[0]["response"]["text"] == "def add(a, b): return a + b"

    # replay:cas.yaml (the former name) and cassette:cas.yaml are found next to the
    # workflow file, not in the working directory, and answer alike
    want = outputs(home, recorded.json()["run_id"])
    assert want["review"]["text"] == "LGTM: def add(a, b): return a + b"
    runs = {recorded.json()["run_id"]}
    for name in ("replayed.yaml", "answered.yaml"):
        answered = nexus(home, "run", f"flows/{name}", "--json")
        assert answered.code == 0, answered.text
        assert outputs(home, answered.json()["run_id"]) == want
        runs.add(answered.json()["run_id"])

    (flows / "cas.yaml").rename(flows / "gone.yaml")
    for name, model in (
        ("replayed.yaml", "replay:cas.yaml"),
        ("answered.yaml", "cassette:cas.yaml"),
    ):
        missing = nexus(home, "run", f"flows/{name}")
        assert missing.code == 2, missing.text
        assert error_line(missing) == (
            f"error: agent 'writer': model '{model}': cassette {flows / 'cas.yaml'} "
            "does not exist; the run was not started"
        )
    assert {r["run_id"] for r in nexus(home, "runs", "--json").json()} == runs


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "args", "code", "message"),
    [
        pytest.param(
            "",
            ["resume", NO_RUN, "--budget", "nonsense"],
            2,
            "error: budget 'nonsense' must be written [agent.NAME.|task.ID.]DIMENSION=VALUE",
            id="budget-without-value",
        ),
        pytest.param(
            "",
            ["resume", NO_RUN, "--budget", "team.x.usd=5"],
            2,
            "error: budget 'team.x.usd=5': write usd=5, agent.NAME.usd=5 or task.ID.tool_calls=50",
            id="budget-unknown-scope",
        ),
        pytest.param(
            "",
            ["resume", NO_RUN, "--budget", "agent.x.usd=-1"],
            2,
            "must be a non-negative amount",
            id="budget-negative",
        ),
        pytest.param(
            "",
            ["resume", NO_RUN, "--budget", "usd=abc"],
            2,
            "must be a non-negative amount",
            id="budget-not-a-number",
        ),
        pytest.param(
            "",
            ["resume", NO_RUN, "--budget", "usd=5"],
            4,
            f"error: no run with id {NO_RUN}",
            id="budget-for-no-run",
        ),
        pytest.param(
            '[budgets.run]\nusd = "lots"\n',
            ["run", "priced.yaml"],
            2,
            'nexus.toml: budgets.run.usd: must be an amount in USD, like "5.00"',
            id="toml-budget-not-money",
        ),
        pytest.param(
            "[budgets.run]\nusd = -1\n",
            ["plan", "priced.yaml", "--estimate"],
            2,
            "nexus.toml: budgets.run.usd: must be a non-negative amount in USD, got -1",
            id="toml-budget-negative",
        ),
        pytest.param(
            "[budgets.run]\nusdd = 1\n",
            ["run", "priced.yaml"],
            2,
            "nexus.toml: budgets.run.usdd: unknown key (did you mean 'usd'?)",
            id="toml-budget-misspelt",
        ),
        pytest.param(
            "",
            ["--config", "missing.toml", "run", "priced.yaml"],
            4,
            "--config missing.toml: no such file",
            id="config-missing",
        ),
        pytest.param(
            "",
            ["--config", "missing.toml", "run", "priced.yaml"],
            4,
            "--config",
            id="config-missing-names-the-option",
        ),
    ],
)
def test_bad_budgets_and_config_are_clear_errors(
    tmp_path: Path, toml: str, args: list[str], code: int, message: str
) -> None:
    home = project(tmp_path, toml, "priced.yaml")
    out = nexus(home, *args)  # never a traceback
    assert out.code == code, out.text
    assert message in error_line(out)
    assert not (home / "nexus.db").exists() or nexus(home, "runs", "--json").json() == []


# -- streaming over the wire --------------------------------------------------------------


@pytest.fixture(scope="module")
def model_server() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.mark.slow
def test_run_stream_prints_the_tokens_of_a_real_wire_stream(
    tmp_path: Path, model_server: FakeServer
) -> None:
    model_server.reset()
    toml = f'[providers.openai]\nbase_url = "{model_server.url}/v1"\napi_key = "{KEY}"\n'
    home = project(tmp_path, toml, "streamed.yaml", "streamed_replay.yaml")
    pieces = ("Moon ", "pulls ", "the ", "sea ", "home")
    model_server.enqueue(
        sse_reply(openai_stream(pieces, usage=openai_usage(14, 5)), event_delay=0.01)
    )

    out = nexus(home, "run", "streamed.yaml", "--stream", "--record", "cas.yaml")
    assert out.code == 0, out.text
    run_id = only_run(home)
    assert out.stdout.startswith(f"succeeded  run {run_id}")
    assert "haiku Moon pulls the sea home" in " ".join(out.stderr.split())
    (request,) = model_server.requests
    body = request.json()
    assert (body["model"], body["stream"], body["max_completion_tokens"]) == (
        "gpt-4.1-mini",
        True,
        64,
    )
    assert request.headers["authorization"] == f"Bearer {KEY}"

    cost = nexus(home, "cost", run_id, "--json").json()
    expected = cost_of(Usage(prompt_tokens=14, completion_tokens=5), "openai:gpt-4.1-mini")
    assert Decimal(cost["by_model"]["openai:gpt-4.1-mini"]["usd"]) == expected
    exported = nexus(home, "export", run_id)
    events = nexus(home, "events", run_id, "--json")
    assert exported.code == events.code == 0
    for shown in (out, exported, events, nexus(home, "inspect", run_id, "--task", "haiku")):
        assert KEY not in shown.text
    assert KEY not in (tmp_path / "cas.yaml").read_text(encoding="utf-8")

    # the recorded wire exchange now answers offline: the server is asked nothing more
    replayed = nexus(home, "run", "streamed_replay.yaml", "--stream", "--json")
    assert replayed.code == 0, replayed.text
    assert len(model_server.requests) == 1
    again = outputs(home, replayed.json()["run_id"])
    assert again == outputs(home, run_id)
    assert again["haiku"]["text"] == "".join(pieces)

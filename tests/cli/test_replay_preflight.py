"""What ``nexus run`` settles before a run starts: replay cassettes, and the prices routing uses.

A ``replay:<cassette>`` model whose file is missing or broken stops ``nexus
run`` with exit 2 and a message naming the agent, the model and the file, and
no run is recorded; ``Engine.start`` makes the same check. ``[pricing]`` in
``nexus.toml`` steers routing: a task's ``max_cost`` excludes a model the
deployment prices high, and the run replays identically. Workflow and
cassette files are written into each test's folder.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cli_support import Out, nexus

from nexus.domain.errors import UserError
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.engine.facade import Engine
from nexus.gateway.base import ProviderRegistry
from nexus.gateway.cassette import Cassette, replay_factory
from nexus.gateway.scripted import scripted_factory
from nexus.store.sqlite import SQLiteStore

REPLAYED = """\
version: 1
name: replayed
agents:
  writer:
    model: {model}
    fallbacks: {fallbacks}
    scripted: ["def add(a, b): return a + b"]
tasks:
  draft: {{agent: writer, prompt: "Write add()."}}
"""

ROUTED = """\
version: 1
name: routed
agents:
  a:
    model: scripted:a
    fallbacks: [scripted:b]
    max_tokens: 16
    scripted: ["hi"]
tasks:
  t: {agent: a, prompt: "say hi", max_cost: 0.01}
"""

#: $1,000 a million tokens: one short call costs more than a cent
DEAR = '[pricing."scripted:a"]\ninput = 1000\noutput = 1000\n'


def project(folder: Path, workflow: str, toml: str = "") -> Path:
    """A project folder holding ``flows/flow.yaml`` and ``nexus.toml``; its NEXUS_HOME."""
    (folder / "flows").mkdir(parents=True)
    (folder / "flows" / "flow.yaml").write_text(workflow, encoding="utf-8")
    (folder / "nexus.toml").write_text(toml, encoding="utf-8")
    return folder / "home"


def no_runs(home: Path) -> None:
    listed = nexus(home, "runs", "--json")
    assert listed.code == 0, listed.text
    assert listed.json() == []


# -- replay cassettes -----------------------------------------------------------------------

BROKEN_YAML = "version: 1\ninteractions: [\n"
OLD_VERSION = "version: 0\ninteractions: []\n"


@pytest.mark.parametrize(
    ("model", "fallbacks", "files", "problem"),
    [
        pytest.param("replay:cas.yaml", [], {}, "does not exist", id="missing"),
        pytest.param(
            "replay:cas.yaml", [], {"cas.yaml": BROKEN_YAML}, "is not valid YAML", id="malformed"
        ),
        pytest.param(
            "scripted:writer",
            ["replay:cas.yaml"],
            {"cas.yaml": OLD_VERSION},
            "version: 0 is not supported",
            id="fallback-wrong-version",
        ),
    ],
)
def test_a_bad_cassette_stops_the_run_before_it_starts(
    tmp_path: Path, model: str, fallbacks: list[str], files: dict[str, str], problem: str
) -> None:
    home = project(tmp_path, REPLAYED.format(model=model, fallbacks=fallbacks))
    for name, text in files.items():
        (tmp_path / "flows" / name).write_text(text, encoding="utf-8")

    ran = nexus(home, "run", "flows/flow.yaml")
    assert ran.code == 2, ran.text
    # resolved next to the workflow file, not the working directory
    path = tmp_path / "flows" / "cas.yaml"
    assert ran.stderr.startswith(
        f"error: agent 'writer': model 'replay:cas.yaml': cassette {path}"
    ), ran.text
    assert problem in ran.stderr
    assert "the run was not started" in ran.stderr
    no_runs(home)


def test_the_error_is_json_with_json(tmp_path: Path) -> None:
    home = project(tmp_path, REPLAYED.format(model="replay:gone.yaml", fallbacks=[]))
    ran = nexus(home, "run", "flows/flow.yaml", "--json")
    assert ran.code == 2, ran.text
    error: dict[str, Any] = ran.json()["error"]
    assert error["exit_code"] == 2
    assert error["message"] == (
        f"agent 'writer': model 'replay:gone.yaml': cassette {tmp_path / 'flows' / 'gone.yaml'} "
        "does not exist; the run was not started"
    )
    no_runs(home)


def test_engine_start_checks_fallbacks_and_tiers_before_recording(tmp_path: Path) -> None:
    Cassette(path=tmp_path / "good.yaml").save()
    agent = AgentSpec(
        name="writer",
        model="scripted:writer",
        scripted=("hi",),
        fallbacks=("replay:good.yaml",),
        tiers={"small": "scripted:writer", "large": "replay:nope.yaml"},
    )
    plan = Plan(
        name="tiers",
        tasks={"t": TaskSpec(id="t", agent="writer", prompt="hi")},
        agents={"writer": agent},
        workspace=str(tmp_path),
    )
    providers = ProviderRegistry({"scripted": scripted_factory, "replay": replay_factory(tmp_path)})

    async def main() -> None:
        store = SQLiteStore.open(tmp_path / "db")
        try:
            with pytest.raises(UserError) as caught:
                await Engine(store, providers=providers).start(plan)
            assert await store.list_runs() == []
        finally:
            await store.close()
        assert type(caught.value) is UserError  # exit 2, not "not found" (4)
        assert caught.value.message == (
            f"agent 'writer': model 'replay:nope.yaml': cassette {tmp_path / 'nope.yaml'} "
            "does not exist; the run was not started"
        )

    asyncio.run(main())


# -- [pricing] steers routing ---------------------------------------------------------------


def attempt_of(home: Path, run_id: str) -> dict[str, Any]:
    shown = nexus(home, "events", run_id, "--type", "attempt.started", "--json")
    assert shown.code == 0, shown.text
    (event,) = shown.json()
    data: dict[str, Any] = event["data"]
    return data


def run_routed(home: Path) -> Out:
    ran = nexus(home, "run", "flows/flow.yaml", "--json")
    assert ran.code == 0, ran.text
    return ran


@pytest.mark.slow
def test_pricing_in_nexus_toml_steers_routing_and_replays(tmp_path: Path) -> None:
    shipped = project(tmp_path / "shipped", ROUTED)
    run_id = run_routed(shipped).json()["run_id"]
    assert attempt_of(shipped, run_id)["models"] == ["scripted:a", "scripted:b"]

    dear = project(tmp_path / "dear", ROUTED, DEAR)
    run_id = run_routed(dear).json()["run_id"]
    data = attempt_of(dear, run_id)
    assert data["model"] == "scripted:b"
    assert "scripted:a (est $" in data["model_route"]["why"]
    assert "> ceiling $0.01" in data["model_route"]["why"]

    replayed = nexus(dear, "replay", run_id, "--json")
    assert replayed.code == 0, replayed.text
    assert replayed.json()["identical"] is True

"""``nexus replay`` builds its engine from ``nexus.toml`` as ``nexus run`` does.

A run on an endpoint defined only in ``nexus.toml`` replays identically and at
once: no provider is missing, nothing waits for a connection.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import nexus

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from fakeserver import FakeServer

WORKFLOW = """\
version: 1
name: local
agents:
  writer: {model: "openai_compatible:lab/qwen-coder", max_tokens: 32}
tasks:
  first: {agent: writer, prompt: "Name a colour."}
  second: {needs: [first], agent: writer, prompt: "And another."}
"""


@pytest.fixture(scope="module")
def model_server() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.mark.slow
def test_replay_of_a_run_on_an_endpoint_defined_only_in_nexus_toml(
    tmp_path: Path, model_server: FakeServer
) -> None:
    model_server.reset()
    (tmp_path / "nexus.toml").write_text(
        f'[providers.openai_compatible.lab]\nbase_url = "{model_server.url}/v1"\n'
        'api_key = "not-needed"\n',
        encoding="utf-8",
    )
    (tmp_path / "local.yaml").write_text(WORKFLOW, encoding="utf-8")
    home = tmp_path / "home"

    ran = nexus(home, "run", "local.yaml", "--json")
    assert ran.code == 0, ran.text
    run_id = ran.json()["run_id"]
    assert len(model_server.requests) == 2

    # before: no provider for the endpoint, and "timed out waiting for the replayed
    # workers" after 30 s; identical means no worker waited for anything
    replayed = nexus(home, "replay", run_id, "--json")

    assert replayed.code == 0, replayed.text
    report = replayed.json()
    assert report["identical"] is True, report["first_divergence"]
    assert report["effects_served"] == 2
    assert len(model_server.requests) == 2, "a replay asks the model nothing"

    plain = nexus(home, "replay", run_id)
    assert plain.code == 0, plain.text
    assert plain.stdout.startswith("identical")


def test_replay_refuses_a_config_file_that_is_not_there(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = nexus(
        home, "--config", str(tmp_path / "gone.toml"), "replay", "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    )
    assert out.code == 4, out.text
    assert "gone.toml: no such file" in out.stderr

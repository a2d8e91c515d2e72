"""A code mission whose roles are models behind the real OpenAI wire protocol.

``nexus demo --model openai:gpt-test`` against a fake server on loopback that
answers like the API: the architect's plan as structured output, the tester's
and coder's tool calls (``mission_tests_write``, ``mission_write``), the
reviewer's verdict. The answers are the demo's recorded ones, so the words
item fails its tests once and is fixed from the gate's feedback -- which the
second coder request must carry. Then the run replays with no model call.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from mission_support import nexus, work_items_on

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from fakeserver import FakeServer, json_reply, openai_completion, openai_usage

pytestmark = pytest.mark.slow
KEY = "sk-mission-wire-test-never-printed"


@cache
def recorded() -> dict[str, Any]:
    text = resources.files("nexus.missions.demo").joinpath("responses.yaml").read_text()
    found = yaml.safe_load(text)
    assert isinstance(found, dict)
    return found


def text(answer: str) -> Any:
    return json_reply(openai_completion(answer, usage=openai_usage(120, 30), model="gpt-test"))


def calls(role: str, item: str, attempt: int) -> list[Any]:
    """The two replies of a tool-using step: its tool calls, then its final text."""
    answer = recorded()[role][item][attempt - 1]
    tool_calls = [
        (f"call-{role}-{item}-{attempt}-{i}", c["tool"].replace(".", "_"), json.dumps(c["args"]))
        for i, c in enumerate(answer["calls"])
    ]
    first = openai_completion(None, tool_calls=tool_calls, usage=openai_usage(200, 80))
    return [json_reply(first), text(answer["reply"])]


def script() -> list[Any]:
    data = recorded()
    review = text(json.dumps(data["reviewer"]["reply"]))
    replies = [text(json.dumps(data["architect"]["plan"]))]
    for item in ("slug", "words", "api"):
        replies += calls("tester", item, 1) + calls("coder", item, 1)
        if item == "words":  # the first change fails the tests: a second attempt
            replies += calls("coder", item, 2)
        replies.append(review)
    return replies


def test_a_mission_through_the_wire_protocol_and_its_replay(tmp_path: Path) -> None:
    with FakeServer() as server:
        server.enqueue(*script())
        (tmp_path / "nexus.toml").write_text(
            f'[providers.openai]\nbase_url = "{server.url}/v1"\napi_key = "{KEY}"\n'
        )
        home = tmp_path / "home"
        done = nexus(home, "demo", "--dir", tmp_path / "d", "--model", "openai:gpt-test", "--json")
        assert done.code == 0, done.text
        summary = done.json()
        requests = [r.json() for r in server.requests]
    assert len(requests) == 18
    assert sorted(summary["merged"]) == ["api", "slug", "words"]
    assert summary["requirements_met"] == ["R1", "R2", "R3", "R4"]
    assert summary["model_calls"] == 18  # the architect's, and 17 of the items' roles
    assert summary["tokens"] > 0
    assert work_items_on(Path(summary["repository"]), summary["branch"]) == [
        "api",
        "slug",
        "words",
    ]
    # the roles' tools reached the model by their wire names; the tester never got
    # the coder's write tool
    # every role's answer is bounded ([mission] max_tokens, 4096 by default)
    assert {r.get("max_completion_tokens") for r in requests} == {4096}
    tools_of = [sorted(t["function"]["name"] for t in r.get("tools") or ()) for r in requests]
    assert ["mission_list", "mission_tests_read", "mission_tests_write"] in tools_of
    assert ["mission_list", "mission_read", "mission_write"] in tools_of
    # the second coder request of the words item carries the gate's feedback
    words = [
        r
        for r in requests
        if "Work item words" in json.dumps(r["messages"]) and "mission_write" in json.dumps(r)
    ]
    feedback = [r for r in words if "DID NOT RAISE ValueError" in json.dumps(r["messages"])]
    assert feedback
    for shown in (done.text, nexus(home, "events", "latest", "--json").text):
        assert KEY not in shown
    cost = nexus(home, "cost", "latest", "--json")
    assert cost.code == 0
    replayed = nexus(home, "replay", "latest", "--json")
    assert replayed.code == 0, replayed.text
    report = replayed.json()
    assert report["identical"] is True
    assert report["tools_executed"] == 0

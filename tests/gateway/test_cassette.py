"""Cassettes: recorded through the real SDK adapters, then answering offline.

``cassette:<path>`` models are served from a cassette; ``replay:<path>``, the
provider's former name, still is (and is what runs recorded before the rename hold).

Run this file as a script to re-record ``examples/cassettes/release-notes.yaml``
from the fake server: ``.venv/bin/python tests/gateway/test_cassette.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fakeserver import (
    FakeServer,
    anthropic_message,
    anthropic_stream,
    anthropic_usage,
    collect,
    endpoint_for,
    json_reply,
    openai_completion,
    openai_stream,
    openai_usage,
    sse_reply,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.domain.errors import NotFoundError, UserError
from nexus.domain.events import EventType
from nexus.domain.plan import AgentSpec
from nexus.engine import Engine
from nexus.gateway.anthropic_provider import AnthropicProvider
from nexus.gateway.base import (
    ChatMessage,
    ModelProvider,
    ModelRequest,
    ModelResponse,
    ProviderRegistry,
    StreamEnd,
    StreamEvent,
    ToolCall,
    ToolSpec,
    Usage,
)
from nexus.gateway.cassette import (
    CASSETTE_PREFIXES,
    Cassette,
    CassetteProvider,
    CassetteProviders,
    Interaction,
    RecordingProvider,
    ReplayProvider,
    ReplayProviders,
    cassette_factory,
    match_key,
    replay_factory,
)
from nexus.gateway.factory import offline_providers
from nexus.gateway.openai_compat import OpenAICompatProvider
from nexus.planning.workflow import compile_workflow
from nexus.store.sqlite import SQLiteStore
from nexus.testing import Reply, TestModel

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cassettes" / "release-notes.yaml"
SECRET = "sk-proj-NEXUS-do-not-record-4f1c9a"


def ask(text: str, model: str = "openai:gpt-4.1-mini", **kwargs: Any) -> ModelRequest:
    return ModelRequest(model=model, messages=(ChatMessage("user", text),), **kwargs)


def answer(text: str, model: str = "openai:gpt-4.1-mini") -> dict[str, Any]:
    return ModelResponse(text, model, Usage(10, len(text.split())), finish_reason="stop").to_dict()


def cassette_of(*pairs: tuple[ModelRequest, str]) -> Cassette:
    return Cassette(Interaction(r.to_dict(), answer(text)) for r, text in pairs)


def replay_model(request: ModelRequest, path: str = "cassette.yaml") -> ModelRequest:
    return ModelRequest(
        model=f"cassette:{path}",
        messages=request.messages,
        turn=request.turn,
        tools=request.tools,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
    )


# -- record through the SDK adapters, replay offline --------------------------------------


def adapter(server: FakeServer, kind: str) -> tuple[ModelProvider, str]:
    if kind == "openai":
        server.enqueue(
            json_reply(
                openai_completion("Three fixes, one feature.", usage=openai_usage(52, 6, cached=32))
            ),
            sse_reply(openai_stream(["Fixed: ", "the retry ", "loop."], usage=openai_usage(40, 5))),
        )
        return OpenAICompatProvider(endpoint_for(server, key=SECRET)), "openai:gpt-4.1-mini"
    server.enqueue(
        json_reply(anthropic_message("Three fixes, one feature.", usage=anthropic_usage(52, 6))),
        sse_reply(
            anthropic_stream(["Fixed: ", "the retry ", "loop."], usage=anthropic_usage(40, 5))
        ),
    )
    provider = AnthropicProvider(endpoint_for(server, "anthropic", key=SECRET))
    return provider, "anthropic:claude-haiku-4-5"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_record_then_replay_offline_gives_identical_responses(
    server: FakeServer, tmp_path: Path, kind: str
) -> None:
    inner, model = adapter(server, kind)
    cassette = Cassette()
    recorder = RecordingProvider(inner, cassette)
    first = ask("Summarise the changes since v0.3.0", model, max_tokens=200)
    second = ask("And the fixes only?", model, turn=1, temperature=0.2)

    async def record() -> tuple[ModelResponse, list[str], ModelResponse]:
        try:
            live = await recorder.complete(first, {})
            texts, streamed = await collect(recorder.stream(second, {}))
            return live, texts, streamed
        finally:
            await recorder.aclose()

    live, live_texts, streamed = asyncio.run(record())
    assert live_texts == ["Fixed: ", "the retry ", "loop."]
    assert len(server.requests) == 2
    assert all(SECRET in str(dict(r.headers)) for r in server.requests)  # the key was used...
    saved = cassette.save(tmp_path / "cassettes" / "cassette.yaml")
    assert SECRET not in saved.read_text(encoding="utf-8")  # ...and never written
    server.reset()

    registry = ProviderRegistry({"cassette": cassette_factory(tmp_path)})
    agent = AgentSpec(name="writer", model="cassette:cassettes/cassette.yaml")
    replay = registry.provider_for(agent)

    async def play() -> tuple[ModelResponse, list[str], ModelResponse]:
        again = await replay.complete(replay_model(first, "cassettes/cassette.yaml"), {})
        stream = replay.stream(replay_model(second), {})  # type: ignore[attr-defined]
        texts, end = await collect(stream)
        return again, texts, end

    again, texts, end = asyncio.run(play())
    assert server.requests == []  # offline
    assert again.to_dict() == live.to_dict()
    assert end.to_dict() == streamed.to_dict()
    assert "".join(texts) == streamed.text
    assert len(texts) > 1
    assert again.model == model  # the recorded model and usage: cost shows the real call
    assert again.usage == live.usage
    assert again.usage.prompt_tokens == 52
    loaded = Cassette.load(saved)
    assert [i.to_dict() for i in loaded.interactions] == [
        {"request": first.to_dict(), "response": live.to_dict()},
        {"request": second.to_dict(), "response": streamed.to_dict()},
    ]


def test_a_failed_call_records_nothing(server: FakeServer) -> None:
    server.enqueue(json_reply({"error": {"message": "bad key"}}, status=401))
    cassette = Cassette()
    recorder = RecordingProvider(OpenAICompatProvider(endpoint_for(server, key=SECRET)), cassette)

    async def main() -> None:
        try:
            await recorder.complete(ask("hi"), {})
        finally:
            await recorder.aclose()

    with pytest.raises(Exception, match="bad key"):
        asyncio.run(main())
    assert len(cassette) == 0


def plain() -> ModelProvider:
    """A provider that cannot stream."""
    return TestModel(Reply("plain", usage=Usage(3, 1))).complete_only()


def test_recording_a_provider_that_cannot_stream_and_autosave(tmp_path: Path) -> None:
    cassette = Cassette(path=tmp_path / "auto.yaml")
    recorder = RecordingProvider(plain(), cassette, autosave=True)

    async def main() -> list[StreamEvent]:
        return [event async for event in recorder.stream(ask("hi"), {})]

    events = asyncio.run(main())
    assert len(events) == 1
    assert isinstance(events[0], StreamEnd)
    assert Cassette.load(tmp_path / "auto.yaml").interactions == cassette.interactions
    with pytest.raises(ValueError, match="path"):
        RecordingProvider(plain(), Cassette(), autosave=True)


# -- matching -----------------------------------------------------------------------------


def test_matching_ignores_the_model_only() -> None:
    request = ask("Draft the notes", temperature=0.0)
    key = match_key(request.to_dict())
    assert key == match_key(replay_model(request).to_dict())
    assert key != match_key(ask("Draft the notes").to_dict())
    assert key != match_key(ask("Draft the notes", temperature=0.0, turn=1).to_dict())


def test_first_unused_match_then_reuse() -> None:
    q = ask("Pick a codename")
    provider = CassetteProvider(cassette_of((q, "Aurora"), (ask("other"), "x"), (q, "Borealis")))

    async def main() -> list[str]:
        return [(await provider.complete(replay_model(q), {})).text for _ in range(4)]

    assert asyncio.run(main()) == ["Aurora", "Borealis", "Aurora", "Aurora"]


def test_no_match_names_the_cassette_its_size_and_the_request() -> None:
    provider = CassetteProvider(
        cassette_of((ask("a"), "1"), (ask("b"), "2")), name="cassette:demo.yaml"
    )
    long = "Please write the release notes for version 0.4.0 " * 5
    with pytest.raises(NotFoundError) as caught:
        asyncio.run(provider.complete(ask(long), {}))
    message = caught.value.message
    assert "cassette cassette:demo.yaml" in message
    assert "2 recorded interactions" in message
    assert "Please write the release notes for version 0.4.0 Please" in message
    assert long.strip() not in message
    assert "..." in message
    assert match_key(ask(long).to_dict())[:12] in message


def test_stream_splits_text_on_whitespace() -> None:
    text = "## v0.4.0\n\n- Response cache\n- Replay provider for cassettes, offline  \n"
    q = ask("notes")
    provider = CassetteProvider(cassette_of((q, text)))
    texts, end = asyncio.run(collect(provider.stream(q, {})))
    assert "".join(texts) == text == end.text
    assert 1 < len(texts) <= 4
    for before, after in itertools.pairwise(texts):  # cut only between words
        assert before[-1].isspace()
        assert not after[0].isspace()

    empty = CassetteProvider(cassette_of((q, "")))
    texts, end = asyncio.run(collect(empty.stream(q, {})))
    assert texts == []
    assert end.text == ""


# -- the file -----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(st.characters(exclude_categories=["Cs"]), max_size=60),
    turn=st.integers(0, 2**40),
    temperature=st.one_of(st.none(), st.floats(0, 2)),
)
def test_any_exchange_survives_save_and_load(
    tmp_path_factory: pytest.TempPathFactory, text: str, turn: int, temperature: float | None
) -> None:
    path = tmp_path_factory.mktemp("roundtrip") / "c.yaml"
    request = ask(text, turn=turn, temperature=temperature, tools=(ToolSpec("git_log", text),))
    response = ModelResponse(text, "openai:gpt-4.1-mini", Usage(1, 2), (ToolCall("c", "t", text),))
    cassette = Cassette()
    cassette.record(request, response)
    cassette.save(path)
    loaded = Cassette.load(path)
    assert loaded.interactions == cassette.interactions
    assert match_key(loaded.interactions[0].request) == match_key(request.to_dict())


def test_save_is_atomic_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    cassette_of((ask("a"), "1")).save(path)
    cassette_of((ask("b"), "2"), (ask("c"), "3")).save(path)
    assert len(Cassette.load(path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
    with pytest.raises(ValueError, match="no path"):
        Cassette().save()


GOOD_REQUEST = {"model": "openai:m", "messages": [{"role": "user", "content": "hi"}], "turn": 0}
GOOD_RESPONSE = {"text": "ok", "model": "openai:m", "usage": {"prompt_tokens": 1}}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("version: 1\ninteractions: [\n", "is not valid YAML"),
        ("- just\n- a list\n", "expected a mapping with 'version'"),
        (json.dumps({"version": 2, "interactions": []}), r"version: 2 is not supported"),
        (json.dumps({"interactions": []}), r"version: None is not supported"),
        (json.dumps({"version": 1}), "interactions: missing or not a list"),
        (
            json.dumps({"version": 1, "interactions": [{"request": GOOD_REQUEST}]}),
            r"interactions\[0\]: missing field 'response'",
        ),
        (
            json.dumps(
                {
                    "version": 1,
                    "interactions": [
                        {"request": GOOD_REQUEST, "response": GOOD_RESPONSE},
                        {"request": GOOD_REQUEST, "response": {"model": "openai:m"}},
                    ],
                }
            ),
            r"interactions\[1\]\.response\.text: missing or not a string",
        ),
        (
            json.dumps(
                {"version": 1, "interactions": [{"request": {"messages": []}, "response": {}}]}
            ),
            r"interactions\[0\]\.request\.model: missing",
        ),
        (
            json.dumps(
                {
                    "version": 1,
                    "interactions": [
                        {"request": GOOD_REQUEST, "response": {**GOOD_RESPONSE, "usage": "lots"}}
                    ],
                }
            ),
            r"interactions\[0\]\.response: not a model response",
        ),
        (
            "version: 1\ninteractions:\n"
            "- request: {model: 'openai:m', messages: [], at: 2026-01-01}\n"
            "  response: {text: ok, model: 'openai:m'}\n",
            r"interactions\[0\]\.request: not JSON",
        ),
    ],
)
def test_corrupt_files_name_the_file_and_the_entry(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=expected) as caught:
        Cassette.load(path)
    assert str(path) in caught.value.message


def test_missing_cassette_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"cassette .*nope\.yaml does not exist"):
        Cassette.load(tmp_path / "nope.yaml")


# -- the factory --------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["cassette", "replay"])
def test_factory_resolves_paths_and_loads_each_cassette_once(tmp_path: Path, prefix: str) -> None:
    path = cassette_of((ask("a"), "1")).save(tmp_path / "sub" / "c.yaml")
    factory = cassette_factory(tmp_path)
    relative = factory(AgentSpec(name="one", model=f"{prefix}:sub/c.yaml"))
    absolute = factory(AgentSpec(name="two", model=f"{prefix}:{path}"))
    assert relative is absolute
    assert relative.name == str(path.resolve())

    with pytest.raises(NotFoundError, match=r"agent 'three': cassette .*missing\.yaml"):
        factory(AgentSpec(name="three", model=f"{prefix}:missing.yaml"))
    with pytest.raises(
        UserError,
        match=r"agent 'four': model 'openai:gpt-4.1' is not a cassette model "
        r"\(cassette:<cassette path>\)",
    ):
        factory(AgentSpec(name="four", model="openai:gpt-4.1"))


def test_cassette_and_its_former_name_replay_are_one_provider(tmp_path: Path) -> None:
    cassette_of((ask("a"), "first"), (ask("a"), "second")).save(tmp_path / "c.yaml")
    registry = offline_providers(tmp_path)
    assert set(CASSETTE_PREFIXES) == {"cassette", "replay"}
    assert registry.prefixes() == ("cassette", "replay", "scripted")
    new = registry.provider_for(AgentSpec(name="new", model="cassette:c.yaml"))
    old = registry.provider_for(AgentSpec(name="old", model="replay:c.yaml"))
    assert new is old  # one file, one order of "first unused"

    async def main() -> list[str]:
        return [
            (await new.complete(replay_model(ask("a")), {})).text,
            (await old.complete(replay_model(ask("a")), {})).text,
        ]

    assert asyncio.run(main()) == ["first", "second"]
    # the former names are the same objects
    assert ReplayProvider is CassetteProvider
    assert ReplayProviders is CassetteProviders
    assert replay_factory is cassette_factory


@pytest.mark.parametrize("prefix", ["cassette", "replay"])
def test_the_registry_checks_cassettes_named_either_way(tmp_path: Path, prefix: str) -> None:
    Cassette(path=tmp_path / "good.yaml").save()
    registry = offline_providers(tmp_path)
    agent = AgentSpec(
        name="w",
        model="scripted:w",
        fallbacks=("cassette:good.yaml", "replay:good.yaml"),
        tiers={"large": f"{prefix}:nope.yaml"},
    )
    with pytest.raises(UserError) as caught:
        registry.check(agent)
    assert caught.value.message == (
        f"agent 'w': model '{prefix}:nope.yaml': cassette {tmp_path / 'nope.yaml'} does not exist"
    )
    registry.check(replace(agent, tiers={}))  # the good ones load


FIXTURE = ROOT / "tests" / "fixtures" / "events" / "cassette.yaml"


def run_answered_from(prefix: str, folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run whose agent's model, fallback and tier are ``<prefix>:cassette.yaml``;
    its ``attempt.started`` and the task's output."""
    shutil.copyfile(FIXTURE, folder / "cassette.yaml")
    model = f"{prefix}:cassette.yaml"
    plan = compile_workflow(
        {
            "version": 1,
            "name": "answered",
            "agents": {
                "writer": {
                    "model": model,
                    "instructions": "Write tersely.",
                    "fallbacks": [model],
                    "tiers": {"small": model},
                }
            },
            "tasks": {
                "draft": {
                    "agent": "writer",
                    "prompt": "Write add().",
                    "complexity": "small",
                    "max_cost": 0.01,
                }
            },
        },
        base_dir=folder,
    )

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        store = SQLiteStore.open(folder / "nexus.db")
        try:
            result = await Engine(store, providers=offline_providers(folder)).start(plan)
            assert result.status == "succeeded"
            events = await store.load(result.run_id)
        finally:
            await store.close()
        (started,) = [e.data for e in events if e.type is EventType.ATTEMPT_STARTED]
        (finished,) = [e.data for e in events if e.type is EventType.ATTEMPT_FINISHED]
        return dict(started), dict(finished["output"])

    return asyncio.run(main())


def test_a_run_is_answered_and_routed_alike_by_cassette_and_replay(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "old").mkdir()
    new_attempt, new_output = run_answered_from("cassette", tmp_path / "new")
    old_attempt, old_output = run_answered_from("replay", tmp_path / "old")
    assert new_output == old_output
    assert new_output["text"] == "def add(a, b): return a + b"
    # the model is recorded as written; routing knows both names (tier, price, latency)
    assert new_attempt["model"] == "cassette:cassette.yaml"
    assert old_attempt["model"] == "replay:cassette.yaml"
    assert json.dumps(new_attempt["model_route"]).replace("cassette:", "replay:") == json.dumps(
        old_attempt["model_route"]
    )
    assert new_attempt["model_route"]["considered"][0]["est_cost"] == "0"


# -- the example cassette -----------------------------------------------------------------

RELEASE_SYSTEM = (
    "You write release notes for Nexus. Group changes under Added, Changed and Fixed, "
    "one line each, in the imperative mood. Call git_log to see what changed."
)
GIT_LOG = ToolSpec(
    "git_log",
    "Commit subjects between a tag and HEAD",
    {"type": "object", "properties": {"since": {"type": "string"}}, "required": ["since"]},
)
COMMITS = (
    "9c41e7a Gateway: response cache keyed by the canonical request\n"
    "5be0d12 Gateway: replay provider serves recorded cassettes offline\n"
    "1f3a9c0 Accounting: streamed calls without usage are marked estimated\n"
    "e72b4d8 CLI: nexus cost RUN shows the breakdown per task and agent"
)
NOTES = (
    "## v0.4.0\n\n"
    "### Added\n"
    "- Cache model responses by canonical request; a repeat within the TTL costs 0 tokens.\n"
    "- Replay recorded model exchanges offline with `replay:<cassette>` models.\n"
    "- Show the cost breakdown per task and agent with `nexus cost RUN`.\n\n"
    "### Fixed\n"
    "- Mark streamed calls whose provider reports no usage as estimated.\n"
)


def release_notes_requests() -> tuple[ModelRequest, ModelRequest]:
    model = "openai:gpt-4.1-mini"
    opening = (
        ChatMessage("system", RELEASE_SYSTEM),
        ChatMessage("user", "Write the release notes for v0.4.0 (changes since v0.3.0)."),
    )
    call = ToolCall("call_7Qe2", "git_log", '{"since":"v0.3.0"}')
    follow = (
        *opening,
        ChatMessage("assistant", "", (call,)),
        ChatMessage("tool", COMMITS, tool_call_id="call_7Qe2"),
    )
    return (
        ModelRequest(model, opening, 0, (GIT_LOG,), 600, 0.0),
        ModelRequest(model, follow, 1, (GIT_LOG,), 600, 0.0),
    )


async def record_release_notes(server: FakeServer) -> Cassette:
    """The example: a tool call answered in full, then the notes streamed."""
    server.enqueue(
        json_reply(
            openai_completion(
                None,
                tool_calls=[("call_7Qe2", "git_log", '{"since":"v0.3.0"}')],
                usage=openai_usage(187, 18),
            )
        ),
        sse_reply(
            openai_stream(
                [NOTES[i : i + 48] for i in range(0, len(NOTES), 48)],
                usage=openai_usage(291, 96, cached=128),
            )
        ),
    )
    cassette = Cassette()
    recorder = RecordingProvider(OpenAICompatProvider(endpoint_for(server, key=SECRET)), cassette)
    first, second = release_notes_requests()
    try:
        await recorder.complete(first, {})
        await collect(recorder.stream(second, {}))
    finally:
        await recorder.aclose()
    return cassette


def test_example_cassette_is_current(server: FakeServer, tmp_path: Path) -> None:
    fresh = asyncio.run(record_release_notes(server)).save(tmp_path / "release-notes.yaml")
    assert fresh.read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8"), (
        "the example cassette is stale: run `.venv/bin/python tests/gateway/test_cassette.py`"
    )


def test_example_cassette_replays(server: FakeServer) -> None:
    first, second = release_notes_requests()
    factory = cassette_factory(ROOT)
    provider = factory(
        AgentSpec(name="notes", model="cassette:examples/cassettes/release-notes.yaml")
    )

    async def main() -> tuple[ModelResponse, list[str], ModelResponse]:
        tool_turn = await provider.complete(replay_model(first), {})
        texts, notes = await collect(provider.stream(replay_model(second), {}))
        return tool_turn, texts, notes

    tool_turn, texts, notes = asyncio.run(main())
    assert tool_turn.tool_calls[0].parsed_arguments() == {"since": "v0.3.0"}
    assert "".join(texts) == notes.text == NOTES
    assert notes.usage == Usage(291, 96, cached_tokens=128)
    assert server.requests == []


if __name__ == "__main__":  # re-record the example cassette
    with FakeServer() as fake:
        written = asyncio.run(record_release_notes(fake)).save(EXAMPLE)
    sys.stdout.write(f"wrote {os.path.relpath(written, ROOT)}\n")

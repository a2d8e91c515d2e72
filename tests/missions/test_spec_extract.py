"""Spec extraction: a model drafts a free-form document, the parser's code makes the SpecMap.

The model is a :class:`~nexus.testing.TestModel`; its answers go through the
agents' structured-output loop (validation, repairs), directly, inside the
engine and from ``nexus spec --llm`` as a recorded run.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from nexus.agents import AgentCall, AgentContext, AgentStepLimit, StructuredOutputError
from nexus.gateway.base import ProviderRegistry
from nexus.gateway.cassette import Cassette, RecordingProvider
from nexus.missions.spec import (
    EXTRACTION_TASK,
    SpecError,
    draft_schema,
    extract_spec,
    extraction_workflow,
    read_or_extract,
    reader_spec,
    requirement_id,
    spec_from_draft,
    spec_schema,
)
from nexus.planning.builder import WorkflowBuilder
from nexus.testing import Call, Reply, TestModel, temp_engine

NEXUS = Path(sys.executable).parent / "nexus"

NOTES = """\
# Upload service

We met on Tuesday to talk about the uploader. Everyone agreed that a failed
upload has to be retried three times before the user sees an error.

R7: The service MUST keep the original file name.
Ideally uploads are fast.

The client calls this:

```python
def upload(path: str, *, retries: int = 3) -> str: ...
```

Latency: a 1 MB upload must finish within 2 seconds on the office network.
"""

RETRY = "a failed upload has to be retried three times before the user sees an error."
NAME = "R7: The service MUST keep the original file name."
FAST = "Ideally uploads are fast."


def requirement(
    text: str, lines: list[int], *, level: str | None = "MUST", **more: Any
) -> dict[str, Any]:
    return {
        "text": text,
        "level": level,
        "section": ["Upload service"],
        "lines": lines,
        "criteria": more.get("criteria", []),
        "details": more.get("details", []),
        "interfaces": more.get("interfaces", []),
    }


UPLOAD = {
    "language": "python",
    "code": "def upload(path: str, *, retries: int = 3) -> str: ...",
    "section": [],
    "lines": [11, 13],
}
LATENCY = {
    "text": "a 1 MB upload must finish within 2 seconds on the office network.",
    "kind": "performance",
    "level": "MUST",
    "section": ["Upload service"],
    "lines": [15, 15],
}


def draft(*, reverse: bool = False) -> dict[str, Any]:
    reqs = [
        requirement(RETRY, [3, 4], criteria=[{"text": "three retries, then an error", "line": 4}]),
        requirement(NAME, [6, 6], level="SHOULD", interfaces=[UPLOAD]),  # the text says MUST
        requirement(FAST, [7, 7], level="SHOULD"),
    ]
    return {
        "requirements": reqs[::-1] if reverse else reqs,
        "constraints": [LATENCY],
        "interfaces": [],
    }


def extract(model: TestModel, text: str = NOTES, source: str = "notes.md") -> Any:
    return asyncio.run(extract_spec(text, source=source, model="test:reader", provider=model))


# -- a free-form document -> the model's draft -> a SpecMap -------------------------------------


def test_a_free_form_document_becomes_a_specmap_with_ids_the_parser_rule_makes() -> None:
    model = TestModel(draft(), repeat_last=False)
    spec = extract(model)

    assert model.calls == 1
    assert spec.extracted_by == "model"
    assert spec.title == "Upload service"  # the document's heading, not the model's word
    assert [r.id for r in spec.requirements] == [requirement_id(RETRY), "R7", requirement_id(FAST)]
    retry, name, fast = spec.requirements
    assert retry.text == RETRY
    assert retry.lines == (3, 4)
    assert [c.text for c in retry.criteria] == ["three retries, then an error"]
    assert name.text == "The service MUST keep the original file name."
    assert name.level == "MUST"  # the document's own keyword wins over the model's SHOULD
    assert fast.level == "SHOULD"  # no keyword: the model's reading of "Ideally"
    (iface,) = spec.interfaces
    assert (iface.requirement, iface.symbols, iface.section) == ("R7", ("upload",), name.section)
    (latency,) = spec.constraints
    assert latency.id == requirement_id(LATENCY["text"], "C")
    assert latency.kind == "performance"
    # the parser's checks: a MUST without criteria, an unquantified word
    kinds = {(a.kind, a.refs) for a in spec.ambiguities}
    assert ("no_criteria", ("R7",)) in kinds
    assert ("vague", (fast.id,)) in kinds
    jsonschema.validate(spec.model_dump(mode="json"), spec_schema())

    # what the model was asked: the schema (no ids in it), the document with line numbers
    request = model.requests[0]
    system, user = request.messages
    assert '"maximum": 15' in system.content
    assert '"id"' not in system.content
    assert " 6| R7: The service MUST keep the original file name." in user.content
    assert request.tools == ()


def test_an_id_the_model_writes_that_the_document_does_not_have_is_not_kept() -> None:
    made_up = requirement("R12: " + RETRY, [3, 4])
    spec = extract(TestModel({**draft(), "requirements": [made_up]}))
    (req,) = spec.requirements
    assert (req.id, req.text) == (requirement_id(RETRY), RETRY)


def test_ids_are_stable_across_extractions_listing_requirements_in_another_order() -> None:
    first = extract(TestModel(draft()))
    second = extract(TestModel(draft(reverse=True)))
    assert first == second
    assert [r.id for r in second.requirements] == [r.id for r in first.requirements]


def test_the_same_text_twice_gets_the_parser_suffix_and_a_duplicate_note() -> None:
    twice = [requirement(FAST, [7, 7]), requirement(FAST, [3, 3])]
    spec = extract(TestModel({**draft(), "requirements": twice}))
    assert [r.id for r in spec.requirements] == [requirement_id(FAST), requirement_id(FAST) + "-2"]
    assert [r.lines for r in spec.requirements] == [(3, 3), (7, 7)]  # document order
    assert any(a.kind == "duplicate" for a in spec.ambiguities)


# -- repairs and refusals ------------------------------------------------------------------------


def test_an_invalid_first_answer_is_repaired_on_the_second() -> None:
    wrong = draft()
    wrong["requirements"][0] = {**wrong["requirements"][0], "lines": [3, 40], "level": "must"}
    model = TestModel(wrong, draft(), repeat_last=False)
    spec = extract(model)

    assert model.calls == 2
    told = model.requests[1].messages[-1].content
    assert told.startswith("Your answer was rejected: the answer does not match the schema")
    assert "requirements/0/level: 'must' is not one of" in told
    assert "requirements/0/lines/1: 40 is greater than the maximum of 15" in told
    assert spec == extract(TestModel(draft()))


def test_a_model_that_never_answers_validly_fails_naming_the_model_and_the_problem() -> None:
    model = TestModel("Here are the requirements: retry uploads.")
    with pytest.raises(StructuredOutputError) as caught:
        extract(model)
    assert model.calls == 3  # the answer and its two repairs
    message = caught.value.message
    assert message.startswith("notes.md: model test:reader gave no usable SpecMap draft: ")
    assert "the answer is not JSON" in message
    assert "(after 2 repair attempts)" in message


def test_a_model_that_keeps_calling_tools_stops_at_its_step_limit() -> None:
    model = TestModel(Reply(calls=[Call("file.read", {"path": "notes.md"})]))
    with pytest.raises(AgentStepLimit, match=r"^notes\.md: model test:reader gave no usable"):
        extract(model)
    assert model.calls == reader_spec("test:reader").max_steps
    assert "is not available to you" in model.requests[1].messages[-1].content


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            {"requirements": [], "constraints": [], "interfaces": []},
            "notes.md: model test:reader found no requirements in it",
        ),
        (
            {
                **draft(),
                "requirements": [requirement(NAME, [6, 6]), requirement(NAME + " Really.", [7, 7])],
            },
            "notes.md:7: requirement id R7 is used twice, on line 6 and line 7",
        ),
    ],
    ids=["no-requirement", "explicit-id-twice"],
)
def test_a_draft_the_specmap_cannot_take_is_a_spec_error(
    answer: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        extract(TestModel(answer))
    assert caught.value.message.startswith(message)


def test_a_draft_from_elsewhere_is_checked_against_the_schema() -> None:
    with pytest.raises(SpecError) as caught:
        spec_from_draft({"requirements": [{"text": "x"}]}, text=NOTES, source="notes.md")
    message = caught.value.message
    assert message.startswith("notes.md: the draft does not match the SpecMap draft schema: ")
    assert "(root): 'constraints' is a required property" in message
    assert "requirements/0: 'lines' is a required property" in message


def test_every_line_number_is_bounded_by_the_document() -> None:
    schema = draft_schema(3)
    jsonschema.validate(
        {"requirements": [requirement("x", [1, 3])], "constraints": [], "interfaces": []}, schema
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"requirements": [requirement("x", [0, 1])], "constraints": [], "interfaces": []},
            schema,
        )


# -- the parser first, the model when it finds nothing ----------------------------------------


def test_read_or_extract_keeps_the_parser_for_a_structured_document() -> None:
    model = TestModel(draft())
    text = "# Cache\n\n- R1: Entries MUST expire after `ttl` seconds.\n"
    spec = asyncio.run(
        read_or_extract(text, source="cache.md", model="test:reader", provider=model)
    )
    assert (spec.extracted_by, [r.id for r in spec.requirements]) == ("parser", ["R1"])
    assert model.calls == 0


def test_read_or_extract_asks_the_model_only_when_the_parser_finds_nothing() -> None:
    free = "# Notes\n\nWe talked. Uploads retry.\n"
    with pytest.raises(SpecError) as caught:
        asyncio.run(read_or_extract(free, source="notes.md"))
    assert caught.value.message.startswith("notes.md: no requirements found; ")
    assert caught.value.message.endswith(
        "a free-form document can be read by a model (nexus spec --llm provider:model)"
    )
    answer = {
        "requirements": [requirement("Uploads retry.", [3, 3], level=None)],
        "constraints": [],
        "interfaces": [],
    }
    spec = asyncio.run(
        read_or_extract(free, source="notes.md", model="test:r", provider=TestModel(answer))
    )
    assert spec.extracted_by == "model"
    assert [r.text for r in spec.requirements] == ["Uploads retry."]


# -- inside the engine: recorded, replayable ---------------------------------------------------


def test_inside_the_engine_the_model_call_is_a_recorded_effect_that_replays() -> None:
    model = TestModel(draft(), repeat_last=False)
    flow = WorkflowBuilder("mission")
    seen: list[Any] = []

    @flow.function_agent(name="ingest")
    async def ingest(call: AgentCall, ctx: AgentContext) -> Any:
        spec = await extract_spec(
            NOTES, source="notes.md", model="test:reader", provider=model, ctx=ctx
        )
        seen.append(spec)
        return spec.model_dump(mode="json")

    flow.task("ingest", agent=ingest, prompt="read the spec")

    async def main() -> None:
        agents = flow.function_agents()
        async with temp_engine(providers=model.registry(), function_agents=agents) as engine:
            result = await engine.start(flow.compile())
            assert result.status == "succeeded", result.task("ingest").error
            events = await engine.store.load(result.run_id)
            effects = [e.data for e in events if e.type == "effect.recorded"]
            assert [e["kind"] for e in effects] == ["model"]
            report = await engine.replay(result.run_id)
            assert report.identical

    asyncio.run(main())
    assert model.calls == 1  # the replay asked the model nothing
    live, replayed = seen  # the replay ran the agent again, on the recorded answer
    assert live == replayed


def test_the_one_task_workflow_runs_in_an_engine_and_keeps_template_text_as_text() -> None:
    text = NOTES + "\nThe banner shows {{ user.name }} and {% raw %}.\n"
    model = TestModel(draft(), repeat_last=False)
    flow = extraction_workflow(
        text, source="notes.md", model="test:reader", builder=WorkflowBuilder
    )

    async def main() -> dict[str, Any]:
        async with temp_engine(providers=model.registry()) as engine:
            result = await engine.start(flow.compile())
            assert result.status == "succeeded", result.tasks
            assert (await engine.replay(result.run_id)).identical
            state, _ = await engine.load_state(result.run_id)
            output: dict[str, Any] = state.tasks[EXTRACTION_TASK].output
            return output

    output = asyncio.run(main())
    assert model.calls == 1
    assert (
        "17| The banner shows {{ user.name }} and {% raw %}."
        in model.requests[0].messages[-1].content
    )
    spec = spec_from_draft(output["data"], text=text, source="notes.md")
    assert spec == extract(TestModel(draft()), text=text)


# -- nexus spec --llm ---------------------------------------------------------------------------


def nexus(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(NEXUS), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={
            "NEXUS_HOME": str(cwd / ".nexus"),
            "NO_COLOR": "1",
            "COLUMNS": "200",
            "PATH": "/usr/bin:/bin",
        },
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def record_cassette(path: Path, answers: list[Any], text: str, source: str) -> None:
    """What ``nexus spec SOURCE --llm cassette:PATH`` will ask, recorded with a TestModel."""
    cassette = Cassette(path=path)
    model = TestModel(*answers, repeat_last=False)
    providers = ProviderRegistry(
        {"test": lambda _agent: RecordingProvider(model, cassette, autosave=True)}
    )
    flow = extraction_workflow(text, source=source, model="test:reader", builder=WorkflowBuilder)

    async def main() -> None:
        async with temp_engine(providers=providers) as engine:
            await engine.start(flow.compile())

    asyncio.run(main())
    assert model.calls == len(answers)


@pytest.mark.slow
def test_nexus_spec_llm_reads_a_free_form_document_in_a_recorded_run(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text(NOTES, encoding="utf-8")
    wrong = {**draft(), "requirements": "none"}
    record_cassette(tmp_path / "cas.yaml", [wrong, draft()], NOTES, "notes.md")

    done = nexus("spec", "notes.md", "--llm", "cassette:cas.yaml", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    jsonschema.validate(doc, spec_schema())
    assert doc == extract(TestModel(draft())).model_dump(mode="json")
    assert "read by cassette:cas.yaml in run " in done.stderr
    assert "2 model calls" in done.stderr  # the answer and its repair

    summary = nexus("spec", "notes.md", "--llm", "cassette:cas.yaml", cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    assert "3 requirements, 1 criterion, 1 interface, 1 constraint" in summary.stdout
    assert re.search(
        r"\n +R7 +MUST +The service MUST keep the original file name\.", summary.stdout
    )

    replayed = nexus("replay", "latest", "--json", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["identical"] is True


@pytest.mark.slow
def test_nexus_spec_without_a_model_or_with_a_failing_one_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# Notes\n\nWe talked. Uploads retry.\n", encoding="utf-8")

    no_model = nexus("spec", "notes.md", cwd=tmp_path)
    assert no_model.returncode == 2
    assert no_model.stderr.strip().endswith(
        "a free-form document can be read by a model: --llm provider:model"
    )

    typo = nexus("spec", "notes.md", "--llm", "opnai:gpt-4.1-mini", cwd=tmp_path)
    assert typo.returncode == 2
    assert typo.stderr.strip() == (
        "error: --llm 'opnai:gpt-4.1-mini': unknown model provider 'opnai' in "
        "'opnai:gpt-4.1-mini' (did you mean 'openai'?)"
    )

    record_cassette(
        tmp_path / "cas.yaml", ["no JSON here"] * 3, (tmp_path / "notes.md").read_text(), "notes.md"
    )
    failed = nexus("spec", "notes.md", "--llm", "cassette:cas.yaml", cwd=tmp_path)
    assert failed.returncode == 1
    message = failed.stderr.strip()
    assert message.startswith(
        "error: notes.md: model cassette:cas.yaml could not read it into a SpecMap: "
        "agent 'spec-reader': the answer is not JSON"
    )
    assert "(after 2 repair attempts)" in message
    assert "--conversation shows the exchange" in message

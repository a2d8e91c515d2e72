"""The model-backed reader: a free-form design document into a :class:`SpecMap`.

A model is asked for a *draft*: the requirements (text copied from the
document, level, section path, line numbers, acceptance criteria, details,
interfaces), the constraints and the loose interfaces -- as structured output
against :func:`draft_schema`, which has no ids and bounds every line number by
the document's length. The answer goes through the agents' own loop
(:class:`~nexus.agents.llm.LLMAgent`): it is validated against that schema and,
when it does not match, the model is told what was wrong and asked again (at
most :data:`~nexus.agents.llm.MAX_REPAIRS` times). There is no second repair
loop here.

The draft then becomes a SpecMap with the parser's own code
(:mod:`nexus.missions.spec._parser`): explicit ids (``R1:``) are those the
document's text holds, every other id is derived from the requirement's text
(``R-`` + 8 hex), duplicates get ``-2``, and the ambiguities are the parser's
checks (:func:`~nexus.missions.spec.find_ambiguities`). So a model never picks
an id, and the same requirement text gets the same id whatever order the model
lists it in. An RFC 2119 keyword in the text wins over the level the model
read; the title is the document's first heading, as the parser reads it.

Three ways to run it:

* :func:`extract_spec` -- one call of the loop with the
  :class:`~nexus.agents.base.AgentContext` given: inside the engine (a
  mission's function agent passes its own) every model call is a recorded
  effect of that task; without one, the provider is called directly and
  nothing is recorded;
* :func:`extraction_workflow` -- a one-task workflow (the document as its
  input), which ``nexus spec SPEC.md --llm MODEL`` runs through the project's
  engine, so the extraction is a run: recorded, replayable and costed;
* :func:`read_or_extract` -- the parser first, the model only when the parser
  finds no requirement and a model is given.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, get_args

from nexus.agents.base import AgentCall, AgentContext
from nexus.agents.llm import MAX_REPAIRS, AgentStepLimit, LLMAgent, StructuredOutputError
from nexus.domain.errors import PolicyDenied
from nexus.domain.plan import AgentSpec
from nexus.gateway.base import ModelProvider, ToolSpec
from nexus.missions.spec._checks import find_ambiguities
from nexus.missions.spec._markdown import parse_blocks
from nexus.missions.spec._model import (
    Constraint,
    ConstraintKind,
    Criterion,
    Interface,
    Level,
    Requirement,
    SpecError,
    SpecMap,
)
from nexus.missions.spec._parser import (
    _SYMBOL,
    _one_line,
    _Reader,
    _Req,
    _settle_ids,
    _title,
    parse_spec,
)
from nexus.missions.spec._text import explicit_id, level_of
from nexus.planning.builder import WorkflowBuilder

__all__ = [
    "EXTRACTION_INSTRUCTIONS",
    "EXTRACTION_TASK",
    "READER_AGENT",
    "draft_schema",
    "extract_spec",
    "extraction_prompt",
    "extraction_workflow",
    "found_no_requirements",
    "read_or_extract",
    "reader_spec",
    "spec_from_draft",
]

#: The agent that reads a document, and the task of the one-task extraction run.
READER_AGENT = "spec-reader"
EXTRACTION_TASK = "extract"

#: What the model is told, once, as its instructions. Plain text: in a workflow it
#: is rendered as a template, so it holds no template syntax.
EXTRACTION_INSTRUCTIONS = """\
You read software design documents and list, without interpreting beyond the text, what they \
require. The document comes with a line number before each line ("12| ...").

- requirements: every statement of something the system must, should or may do or be. \
Copy its text word for word from the document (without list markers or line numbers); \
keep an identifier such as "R1:" only when the document writes one, never invent one.
- level: MUST, MUST NOT, SHOULD, SHOULD NOT or MAY, as the wording means it ("has to", \
"needs to", "will" read as MUST; "ideally", "preferably" as SHOULD; "can", "is allowed to" \
as MAY); null when the text does not say how binding it is.
- section: the headings the statement sits under, outermost first; [] when there is none.
- lines: the first and last line number of the statement.
- criteria: how the document says the requirement will be checked (each with its line); \
details: other sentences that belong to the requirement; interfaces: code blocks, \
signatures or schemas that state its interface (language, code copied exactly, lines).
- constraints: performance, security, compatibility and other non-functional demands \
(kind: performance, security, compatibility or other), not repeated as requirements.
- interfaces (top level): interface code that belongs to no single requirement.

What the document leaves open stays open: do not add criteria, numbers or levels it does \
not state."""

_LEVELS: tuple[str, ...] = get_args(Level)
_KINDS: tuple[str, ...] = get_args(ConstraintKind)

B = TypeVar("B", bound=WorkflowBuilder)


def _line_count(text: str) -> int:
    return max(1, len(text.splitlines()))


def draft_schema(line_count: int) -> dict[str, Any]:
    """The JSON schema of a draft for a document of ``line_count`` lines.

    No ids anywhere; every line number is between 1 and ``line_count``, so an
    answer pointing outside the document is sent back to the model to repair.
    Every property is required (``null``/``[]`` when empty), as strict
    structured-output modes of providers want.
    """
    line: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": max(1, line_count)}
    lines = {
        "type": "array",
        "items": line,
        "minItems": 2,
        "maxItems": 2,
        "description": "first and last line number",
    }
    text = {"type": "string", "minLength": 1}
    section = {
        "type": "array",
        "items": {"type": "string"},
        "description": "the headings above it, outermost first",
    }
    level = {"enum": [*_LEVELS, None]}

    def record(**properties: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": properties,
            "required": sorted(properties),
            "additionalProperties": False,
        }

    interface = record(
        language={"type": "string", "description": "the code's language; '' when unknown"},
        code=text,
        section=section,
        lines=lines,
    )
    requirement = record(
        text={**text, "description": "copied word for word from the document"},
        level=level,
        section=section,
        lines=lines,
        criteria={"type": "array", "items": record(text=text, line=line)},
        details={"type": "array", "items": text},
        interfaces={"type": "array", "items": interface},
    )
    constraint = record(
        text={**text, "description": "copied word for word from the document"},
        kind={"enum": list(_KINDS)},
        level=level,
        section=section,
        lines=lines,
    )
    return record(
        requirements={"type": "array", "items": requirement},
        constraints={"type": "array", "items": constraint},
        interfaces={"type": "array", "items": interface},
    )


def extraction_prompt(text: str, source: str) -> str:
    """The user message: the document's name, then its lines, each after its number."""
    rows = text.splitlines() or [""]
    width = len(str(len(rows)))
    numbered = "\n".join(f"{n:>{width}}| {row}" for n, row in enumerate(rows, 1))
    return f"Design document {source} ({len(rows)} lines):\n\n{numbered}"


def reader_spec(model: str) -> AgentSpec:
    """The one-shot agent that reads a document: no tools, the first answer plus its repairs."""
    return AgentSpec(
        name=READER_AGENT,
        role=READER_AGENT,
        model=model,
        instructions=EXTRACTION_INSTRUCTIONS,
        max_steps=1 + MAX_REPAIRS,
    )


# -- from a draft to a SpecMap -----------------------------------------------------------


def _own_id(written: str, document: str) -> tuple[str | None, str]:
    """The explicit id a draft's text starts with, kept only when the document holds it."""
    rid, rest = explicit_id(written)
    if rid is not None and rid not in document:
        return None, rest  # the model wrote an id the document does not have
    return rid, rest


def _span(pair: Iterable[int]) -> tuple[int, int]:
    first, last = sorted(pair)
    return first, last


def _interface(item: Mapping[str, Any], section: tuple[str, ...]) -> Interface:
    code = str(item["code"])
    return Interface(
        language=str(item["language"]).strip(),
        code=code,
        symbols=tuple(dict.fromkeys(_SYMBOL.findall(code))),
        section=tuple(item["section"]) or section,
        lines=_span(item["lines"]),
    )


def _checked(draft: Any, schema: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = sorted(validator.iter_errors(draft), key=lambda e: list(e.absolute_path))
    if problems:
        listed = "; ".join(
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in problems[:10]
        )
        raise SpecError(f"the draft does not match the SpecMap draft schema: {listed}", file=source)
    assert isinstance(draft, Mapping)
    return draft


def spec_from_draft(draft: Any, *, text: str, source: str, model: str | None = None) -> SpecMap:
    """The SpecMap of ``text`` from a model's draft, with the parser's ids and checks.

    Requirements and constraints are put in document order (by their lines)
    before ids are settled, so the order the model listed them in changes
    nothing.

    Args:
        draft: the model's answer, a value of :func:`draft_schema`.
        text: the document the draft was made from.
        source: its path as the user gave it.
        model: the model that wrote the draft (named in errors).

    Raises:
        SpecError: the draft does not match the schema, two requirements take
            one explicit id, or the draft holds no requirement.
    """
    checked = _checked(draft, draft_schema(_line_count(text)), source)
    reader = _Reader(source)
    reqs = sorted(checked["requirements"], key=lambda r: (_span(r["lines"]), r["text"]))
    for item in reqs:
        rid, body = _own_id(item["text"], text)
        first, last = _span(item["lines"])
        reader.claim(rid, first)
        section = tuple(item["section"])
        req = _Req(
            explicit=rid,
            text=body,
            section=section,
            start=first,
            end=last,
            criteria=[
                Criterion(text=_one_line(c["text"]), line=c["line"]) for c in item["criteria"]
            ],
            details=[_one_line(d) for d in item["details"]],
        )
        reader.reqs.append(req)
        reader.interfaces.extend((req, _interface(i, section)) for i in item["interfaces"])
    reader.interfaces.extend((None, _interface(i, ())) for i in checked["interfaces"])
    reader.interfaces.sort(key=lambda pair: (pair[1].lines, pair[1].code))
    for item in sorted(checked["constraints"], key=lambda c: (_span(c["lines"]), c["text"])):
        rid, body = _own_id(item["text"], text)
        first, last = _span(item["lines"])
        reader.claim(rid, first)
        made = Constraint(
            id=rid or "C",  # settled with the requirements' ids
            kind=item["kind"],
            text=_one_line(body),
            level=level_of(body) or item["level"],
            section=tuple(item["section"]),
            lines=(first, last),
        )
        reader.constraints.append((rid, body, made))
    if not reader.reqs:
        by = f"model {model}" if model else "the model"
        raise SpecError(f"{by} found no requirements in it", file=source)
    _settle_ids(reader)
    requirements = tuple(
        Requirement(
            id=req.id,
            text=_one_line(req.text),
            level=level_of(req.text) or item["level"],  # the document's own keyword wins
            section=req.section,
            lines=(req.start, req.end),
            criteria=tuple(req.criteria),
            details=tuple(req.details),
        )
        for req, item in zip(reader.reqs, reqs, strict=True)
    )
    interfaces = tuple(
        iface.model_copy(update={"requirement": holder.id}) if holder is not None else iface
        for holder, iface in reader.interfaces
    )
    constraints = tuple(made for _, _, made in reader.constraints)
    return SpecMap(
        title=_title(parse_blocks(text).blocks, source),
        source=source,
        extracted_by="model",
        requirements=requirements,
        interfaces=interfaces,
        constraints=constraints,
        ambiguities=tuple(find_ambiguities(requirements, constraints)),
    )


# -- asking the model ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Direct:
    """An :class:`AgentContext` outside the engine: effects run as they are, unrecorded."""

    task: str = EXTRACTION_TASK
    attempt: int = 1
    streaming: bool = False

    @property
    def template_context(self) -> Mapping[str, Any]:
        return {}

    async def effect(
        self,
        kind: str,
        request: dict[str, Any],
        fn: Callable[[], Awaitable[Any]],
        *,
        estimate: Callable[[], dict[str, Any]] | None = None,
    ) -> Any:
        # what a recorded effect hands back: the result as JSON values
        return json.loads(json.dumps(await fn()))

    def tool_specs(self, names: Iterable[str]) -> tuple[ToolSpec, ...]:
        return ()

    async def call_tool(self, name: str, args: dict[str, Any], call_id: str) -> tuple[Any, str]:
        raise PolicyDenied(f"reading a spec calls no tools (the model asked for '{name}')")

    async def delta(self, text: str) -> None:
        return None


async def extract_spec(
    text: str,
    *,
    source: str,
    model: str,
    provider: ModelProvider,
    ctx: AgentContext | None = None,
) -> SpecMap:
    """Read a free-form design document with a model into a :class:`SpecMap`.

    Example:
        >>> spec = asyncio.run(extract_spec(text, source="notes.md",  # doctest: +SKIP
        ...                                 model="test:reader", provider=model))

    Args:
        text: the document.
        source: its path as the user gave it.
        model: ``provider:model``, as the request names it.
        provider: what answers (a provider, a fallback chain, a ``TestModel``).
        ctx: the attempt's context inside the engine, so each model call is a
            recorded effect of that task; None calls ``provider`` directly.

    Raises:
        StructuredOutputError: the model gave no answer matching the draft
            schema, even after its repairs (the message names the document,
            the model and what was wrong).
        AgentStepLimit: the model kept asking for tools instead of answering.
        SpecError: the draft holds no requirement, or one explicit id twice.
    """
    schema = draft_schema(_line_count(text))
    spec = reader_spec(model)
    call = AgentCall(
        agent=spec.name,
        prompt=extraction_prompt(text, source),
        instructions=spec.instructions,
        model=model,
        turn=0,
        models=(model,),
        output_schema=schema,
    )
    where = f"{source}: model {model} gave no usable SpecMap draft"
    try:
        output = await LLMAgent(spec, provider).run(call, ctx if ctx is not None else _Direct())
    except StructuredOutputError as exc:
        raise StructuredOutputError(f"{where}: {exc.message}", retryable=exc.retryable) from None
    except AgentStepLimit as exc:
        raise AgentStepLimit(f"{where}: {exc.message}") from None
    return spec_from_draft(output["data"], text=text, source=source, model=model)


def extraction_workflow(
    text: str,
    *,
    source: str,
    model: str,
    builder: type[B],
) -> B:
    """A one-task workflow that asks ``model`` for the draft of ``text``.

    The numbered document is the workflow's ``document`` input (so text that
    looks like a template stays text); task :data:`EXTRACTION_TASK` of agent
    :data:`READER_AGENT` answers with the draft in ``output["data"]``, for
    :func:`spec_from_draft`. ``builder`` is the class to build with:
    :class:`~nexus.planning.builder.WorkflowBuilder` to compile it, or
    :class:`nexus.Workflow` to run it in a project.
    """
    flow = builder(
        "spec-extract",
        description=f"read {source} into a SpecMap with {model}",
        inputs={"document": extraction_prompt(text, source)},
        retries=0,
    )
    spec = reader_spec(model)
    reader = flow.agent(
        spec.name,
        model=model,
        role=spec.role,
        instructions=spec.instructions,
        max_steps=spec.max_steps,
    )
    flow.task(
        EXTRACTION_TASK,
        agent=reader,
        prompt="{{ inputs.document }}",
        output_schema=draft_schema(_line_count(text)),
    )
    return flow


def found_no_requirements(error: SpecError) -> bool:
    """Whether ``error`` is the parser's "no requirements found" (a model may do better)."""
    return error.line is None and "no requirements found" in error.message


async def read_or_extract(
    text: str,
    *,
    source: str,
    model: str | None = None,
    provider: ModelProvider | None = None,
    ctx: AgentContext | None = None,
) -> SpecMap:
    """The parser's SpecMap of ``text``; the model's when the parser finds no requirement.

    Raises:
        SpecError: the parser refuses the document for another reason, or it
            finds no requirement and no model is given (the message says so).
        StructuredOutputError, AgentStepLimit: as :func:`extract_spec`.
    """
    try:
        return parse_spec(text, source=source)
    except SpecError as exc:
        if not found_no_requirements(exc):
            raise
        if model is None or provider is None:
            raise SpecError(
                f"{exc.message.removeprefix(f'{source}: ')}; a free-form document can be "
                "read by a model (nexus spec --llm provider:model)",
                file=source,
            ) from None
    return await extract_spec(text, source=source, model=model, provider=provider, ctx=ctx)

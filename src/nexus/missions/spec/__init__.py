"""Spec ingestion: a Markdown design document read into a :class:`SpecMap`.

>>> from nexus.missions.spec import parse_spec
>>> text = "# Cache\\n\\n- R1: Entries MUST expire after `ttl` seconds.\\n"
>>> spec = parse_spec(text, source="x.md")
>>> [(r.id, r.level) for r in spec.requirements]
[('R1', 'MUST')]

:func:`read_spec` reads a file with the deterministic parser (``_parser``);
:func:`extract_spec` has a model read a free-form document (``_extract``) into
the same SpecMap, with the same ids and checks, and
:func:`extraction_workflow` makes that a one-task run (``nexus spec --llm``).
See ``docs/missions.md``.
"""

from nexus.missions.spec._checks import find_ambiguities
from nexus.missions.spec._extract import (
    EXTRACTION_INSTRUCTIONS,
    EXTRACTION_TASK,
    READER_AGENT,
    draft_schema,
    extract_spec,
    extraction_prompt,
    extraction_workflow,
    found_no_requirements,
    read_or_extract,
    reader_spec,
    spec_from_draft,
)
from nexus.missions.spec._model import (
    Ambiguity,
    AmbiguityKind,
    Constraint,
    ConstraintKind,
    Criterion,
    Interface,
    Level,
    Requirement,
    SpecError,
    SpecMap,
    normalise,
    requirement_id,
    spec_schema,
)
from nexus.missions.spec._parser import LOOKS_FOR, parse_spec
from nexus.missions.spec._read import MARKDOWN_SUFFIXES, MAX_BYTES, read_spec, read_spec_text

__all__ = [
    "EXTRACTION_INSTRUCTIONS",
    "EXTRACTION_TASK",
    "LOOKS_FOR",
    "MARKDOWN_SUFFIXES",
    "MAX_BYTES",
    "READER_AGENT",
    "Ambiguity",
    "AmbiguityKind",
    "Constraint",
    "ConstraintKind",
    "Criterion",
    "Interface",
    "Level",
    "Requirement",
    "SpecError",
    "SpecMap",
    "draft_schema",
    "extract_spec",
    "extraction_prompt",
    "extraction_workflow",
    "find_ambiguities",
    "found_no_requirements",
    "normalise",
    "parse_spec",
    "read_or_extract",
    "read_spec",
    "read_spec_text",
    "reader_spec",
    "requirement_id",
    "spec_from_draft",
    "spec_schema",
]

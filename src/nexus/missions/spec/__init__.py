"""Spec ingestion: a Markdown design document read into a :class:`SpecMap`.

>>> from nexus.missions.spec import parse_spec
>>> text = "# Cache\\n\\n- R1: Entries MUST expire after `ttl` seconds.\\n"
>>> spec = parse_spec(text, source="x.md")
>>> [(r.id, r.level) for r in spec.requirements]
[('R1', 'MUST')]

:func:`read_spec` reads a file with the deterministic parser (``_parser``);
the model-backed reader for free-form documents produces the same SpecMap.
See ``docs/missions.md``.
"""

from nexus.missions.spec._checks import find_ambiguities
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
    "LOOKS_FOR",
    "MARKDOWN_SUFFIXES",
    "MAX_BYTES",
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
    "find_ambiguities",
    "normalise",
    "parse_spec",
    "read_spec",
    "read_spec_text",
    "requirement_id",
    "spec_schema",
]

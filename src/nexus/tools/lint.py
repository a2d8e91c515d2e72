"""The tool descriptor linter: what a tool says about itself, checked before any agent sees it.

A tool's descriptor (name, title, description, input and output schemas,
annotations) is text that goes straight into a model's context, so a
malicious or careless server can use it to steer the agent ("tool poisoning").
:func:`lint_descriptor` reads every string in the descriptor -- property names
and schema descriptions included, where such payloads like to hide -- and
returns :class:`Finding` values:

==========================  ========  ==================================================
code                        severity  what
==========================  ========  ==================================================
``invisible-unicode``       error     zero-width, bidi-override, tag (U+E0000 block),
                                      variation-selector or control characters
``hidden-instruction``      error     "ignore previous instructions", "do not tell the
                                      user", ``<IMPORTANT>`` tags, "before using this
                                      tool, read ...", "you are now ..."
``imperative``              warning   system-prompt-like orders to the model ("you must
                                      always", "IMPORTANT", "as an AI")
``secret-path``             error     ``~/.ssh``, ``id_rsa``, ``.env``, ``/etc/shadow``,
                                      ``.aws/credentials``, ``.netrc``, private key blocks
``secret-word``             warning   API keys, tokens, passwords mentioned
``tool-reference``          error     names a tool of *another* server or a built-in
                                      (tool shadowing); ``info`` for a sibling tool
``oversized-description``   error     a description (or any string) over the limit
``oversized-schema``        error     the schemas' canonical JSON over the limit
``invalid-name``            error     a name outside ``[A-Za-z0-9_.-]{1,128}`` (SEP-986)
``duplicate-name``          error     a server lists the same name twice
==========================  ========  ==================================================

A tool with an error-severity finding is not offered to agents (the MCP
client gives it the state ``blocked-by-lint``). The linter is pure: no I/O,
and the same descriptor always yields the same findings.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nexus.domain.canonical import canonical_bytes

__all__ = [
    "DEFAULT_MAX_DESCRIPTION",
    "DEFAULT_MAX_SCHEMA_BYTES",
    "Finding",
    "LintConfig",
    "Severity",
    "errors",
    "is_invisible",
    "lint_descriptor",
]

#: Longest description (in characters) a tool may carry.
DEFAULT_MAX_DESCRIPTION = 2000
#: Largest input + output schema, as canonical JSON bytes.
DEFAULT_MAX_SCHEMA_BYTES = 32 * 1024

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class Severity(StrEnum):
    """How bad a finding is; only ``error`` keeps a tool from being offered."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a descriptor.

    Attributes:
        severity: ``error`` blocks the tool; ``warning`` and ``info`` are shown.
        code: a stable identifier (see the module docstring); ``lint_ignore``
            in a server's configuration names these.
        message: what was found, quoting the offending text.
        where: the dotted path of the string in the descriptor
            (``description``, ``inputSchema.properties.path.description``).
    """

    severity: Severity
    code: str
    message: str
    where: str = ""

    def to_data(self) -> dict[str, str]:
        """The finding as plain JSON (for events and ``nexus tools``)."""
        return {
            "severity": str(self.severity),
            "code": self.code,
            "message": self.message,
            "where": self.where,
        }


@dataclass(frozen=True, slots=True)
class LintConfig:
    """Limits and exemptions.

    Attributes:
        max_description: longest string allowed anywhere in the descriptor.
        max_schema_bytes: largest ``inputSchema`` + ``outputSchema`` (canonical JSON).
        ignore: finding codes to drop (an explicit, per-server escape hatch for
            a false positive; it is recorded in the server's configuration).
    """

    max_description: int = DEFAULT_MAX_DESCRIPTION
    max_schema_bytes: int = DEFAULT_MAX_SCHEMA_BYTES
    ignore: frozenset[str] = field(default_factory=frozenset)


# -- invisible characters ----------------------------------------------------------

_HANGUL_FILLERS = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0})
_EMOJI_SELECTORS = frozenset({0xFE0E, 0xFE0F})


def is_invisible(ch: str, previous: str = "") -> bool:
    """Whether ``ch`` renders as nothing (or reorders what follows) in most UIs.

    Covers format characters (category ``Cf``: zero-width space and joiners,
    bidi embeddings, overrides and isolates, the word joiner, BOM, soft hyphen
    and the whole tag block U+E0000-U+E007F), control characters other than
    tab, newline and carriage return, variation selectors (usable to smuggle
    bytes) and the Hangul fillers. The emoji presentation selectors U+FE0E and
    U+FE0F are allowed right after a symbol (``previous``), where they belong.
    """
    code = ord(ch)
    category = unicodedata.category(ch)
    if category == "Cf":
        return True
    if category == "Cc":
        return ch not in "\t\n\r"
    if code in _EMOJI_SELECTORS:
        return not (previous and unicodedata.category(previous) == "So")
    if 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF:
        return True
    return code in _HANGUL_FILLERS or 0xE0000 <= code <= 0xE007F


def _invisible_in(text: str) -> list[str]:
    found: list[str] = []
    previous = ""
    for ch in text:
        if (ord(ch) > 0x7E or ord(ch) < 0x20) and is_invisible(ch, previous):
            found.append(f"U+{ord(ch):04X}")
        previous = ch
    return found


# -- text patterns -----------------------------------------------------------------

_I = re.IGNORECASE
_HIDDEN = [
    re.compile(
        r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}?\b(previous|prior|above|earlier|"
        r"preceding|all|any|other|system|your)\b[^.\n]{0,20}?\b(instructions?|prompts?|messages?|"
        r"rules|directions|guidelines|context)\b",
        _I,
    ),
    re.compile(
        r"\b(do\s+not|don'?t|never|must\s+not)\s+(tell|inform|mention|reveal|notify|show|alert|"
        r"disclose|let)\b[^.\n]{0,30}?\b(user|human|operator)s?\b",
        _I,
    ),
    re.compile(
        r"\bwithout\s+(telling|informing|notifying|alerting|asking)\s+(the\s+)?(user|human)", _I
    ),
    re.compile(
        r"\b(user|human)\s+(must|should|will|need)\s+not\s+(know|see|notice|be\s+(told|informed|aware))",
        _I,
    ),
    re.compile(
        r"</?\s*(important|system|instructions?|secret|hidden|admin|override|assistant|prompt)\s*>",
        _I,
    ),
    re.compile(r"\byou\s+are\s+now\b", _I),
    re.compile(r"\bkeep\s+(this|it|that)\s+(a\s+)?(secret|hidden|confidential)\b", _I),
    re.compile(r"\bnote\s+to\s+(the\s+)?(ai|assistant|model|llm|agent)\b", _I),
    re.compile(
        r"\bbefore\s+(using|calling|invoking|running)\s+(this|any|the|other)\b[^.\n]{0,60}?"
        r"\b(read|send|call|pass|include|upload|fetch|cat|forward|copy)\b",
        _I,
    ),
    re.compile(r"\b(new|updated|real|actual|hidden|secret)\s+(system\s+)?instructions?\s*:", _I),
]
_IMPERATIVE = [
    re.compile(
        r"\b(you|assistant|the\s+(ai|model|llm|agent|assistant))\s+(must|should|shall|have\s+to|"
        r"need\s+to)\s+(always|never|first|immediately|also|now)\b",
        _I,
    ),
    re.compile(r"\b(IMPORTANT|ATTENTION|CRITICAL|WARNING)\s*[:!]"),
    re.compile(r"\bas\s+an?\s+(ai|assistant|language\s+model)\b", _I),
    re.compile(r"\bsystem\s+(prompt|message)\b", _I),
    re.compile(r"\balways\s+(call|use|invoke|run|prefer)\s+this\b", _I),
]
_SECRET_PATHS = re.compile(
    r"(~/\.ssh\b|\.ssh/|\bid_(rsa|dsa|ecdsa|ed25519)\b|\bauthorized_keys\b"
    r"|/etc/(shadow|gshadow|sudoers|master\.passwd)\b"
    r"|(?<![\w.-])\.env(\.[A-Za-z0-9_-]+)?(?![\w-])"
    r"|\.aws/(credentials|config)\b|\.netrc\b|\.pgpass\b|\.git-credentials\b"
    r"|\.docker/config\.json|\.kube/config\b|\.npmrc\b|\.pypirc\b|\.gnupg\b"
    r"|\.config/gcloud\b|\bcredentials\.json\b|\bmcp\.json\b|/proc/(self|\d+)/environ"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----)",
    _I,
)
_SECRET_WORDS = re.compile(
    r"\b(api[_ -]?keys?|access[_ -]?tokens?|secret[_ -]?keys?|auth[_ -]?tokens?|bearer\s+tokens?"
    r"|passwords?|passwd|private[_ -]keys?|session[_ -]?cookies?|ssh[_ -]?keys?)\b",
    _I,
)


def _quote(text: str, match: re.Match[str]) -> str:
    start, end = max(0, match.start() - 20), min(len(text), match.end() + 20)
    snippet = " ".join(text[start:end].split())
    return f"...{snippet}..." if start or end < len(text) else snippet


# -- references to other tools ------------------------------------------------------


def _distinctive(name: str) -> bool:
    """A name unlikely to occur as an ordinary word (``git_status``, ``file.read``)."""
    return len(name) >= 4 and (
        any(c in name for c in "_-.")
        or any(c.isdigit() for c in name)
        or name[1:] != name[1:].lower()
    )


def _reference_pattern(name: str) -> re.Pattern[str]:
    escaped = re.escape(name)
    if _distinctive(name):
        return re.compile(rf"(?<![\w.-]){escaped}(?![\w-])")
    # An ordinary word ("shell", "python") counts only quoted or called a tool.
    return re.compile(
        rf"([`'\"]{escaped}[`'\"]|\b{escaped}\s+tool\b|\btool\s+[`'\"]?{escaped}\b)", _I
    )


def _name_forms(names: Iterable[str]) -> set[str]:
    forms: set[str] = set()
    for name in names:
        if not name:
            continue
        forms.add(name)
        if "." in name:  # "<server>.<tool>": descriptors name the bare tool
            forms.add(name.split(".", 1)[1])
    return forms


# -- walking the descriptor ---------------------------------------------------------


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in ``value`` -- dict keys included -- with its dotted path."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, sub in value.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(key, str):
                yield f"{path} (key)", key
            yield from _strings(sub, path)
    elif isinstance(value, list | tuple):
        for i, sub in enumerate(value):
            yield from _strings(sub, f"{where}[{i}]")


def _as_mapping(descriptor: Any) -> Mapping[str, Any]:
    if isinstance(descriptor, Mapping):
        return descriptor
    dump = getattr(descriptor, "model_dump", None)
    if callable(dump):
        data = dump(mode="json", by_alias=True, exclude_none=True)
        if isinstance(data, Mapping):
            return data
    raise TypeError(
        f"cannot lint a {type(descriptor).__name__}; pass a mapping or a pydantic model"
    )


def lint_descriptor(
    descriptor: Mapping[str, Any] | Any,
    *,
    other_tools: Iterable[str] = (),
    sibling_tools: Iterable[str] = (),
    config: LintConfig | None = None,
) -> list[Finding]:
    """Lint one tool descriptor.

    Args:
        descriptor: the tool object in its wire form (``name``, ``title``,
            ``description``, ``inputSchema``, ``outputSchema``, ``annotations``),
            as a mapping or a pydantic model such as ``mcp.types.Tool``.
        other_tools: names of tools from *other* sources (other MCP servers as
            ``<server>.<tool>``, built-ins); naming one is an error.
        sibling_tools: names of the same server's other tools; naming one is
            only ``info`` ("call ``list_files`` first" is ordinary).
        config: limits and ignored codes.

    Returns:
        The findings, errors first; empty when the descriptor is clean.

    Example:
        >>> [f.code for f in lint_descriptor({"name": "x", "description": "Hi\\u200b"})]
        ['invisible-unicode']
    """
    cfg = config or LintConfig()
    data = _as_mapping(descriptor)
    findings: list[Finding] = []
    add = findings.append
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        add(
            Finding(
                Severity.ERROR,
                "invalid-name",
                f"tool name {name!r} is not [A-Za-z0-9_.-]{{1,128}}",
                "name",
            )
        )
    own = {name} if isinstance(name, str) else set()
    others = [(n, _reference_pattern(n)) for n in sorted(_name_forms(other_tools) - own)]
    siblings = [(n, _reference_pattern(n)) for n in sorted(_name_forms(sibling_tools) - own)]
    for where, text in _strings(data, ""):
        findings.extend(_lint_text(where, text, cfg, others, siblings))
    schemas = {k: data[k] for k in ("inputSchema", "outputSchema") if k in data}
    try:
        size = len(canonical_bytes(schemas))
    except ValueError:
        size = len(repr(schemas).encode())
    if size > cfg.max_schema_bytes:
        add(
            Finding(
                Severity.ERROR,
                "oversized-schema",
                f"schemas are {size} bytes of JSON (limit {cfg.max_schema_bytes})",
                "inputSchema",
            )
        )
    kept = [f for f in findings if f.code not in cfg.ignore]
    return sorted(kept, key=lambda f: (_RANK[f.severity], f.where, f.code))


def _lint_text(
    where: str,
    text: str,
    cfg: LintConfig,
    others: list[tuple[str, re.Pattern[str]]],
    siblings: list[tuple[str, re.Pattern[str]]],
) -> Iterator[Finding]:
    invisible = _invisible_in(text)
    if invisible:
        shown = ", ".join(dict.fromkeys(invisible[:8]))
        yield Finding(
            Severity.ERROR,
            "invisible-unicode",
            f"{len(invisible)} invisible character(s) ({shown}) that the user cannot see",
            where,
        )
    if len(text) > cfg.max_description:
        yield Finding(
            Severity.ERROR,
            "oversized-description",
            f"{len(text)} characters (limit {cfg.max_description})",
            where,
        )
    # Match on the text with invisible characters removed, so they cannot split a phrase.
    visible = "".join(ch for ch in text if not is_invisible(ch)) if invisible else text
    for pattern in _HIDDEN:
        if m := pattern.search(visible):
            yield Finding(
                Severity.ERROR,
                "hidden-instruction",
                f"reads like an instruction to the model: {_quote(visible, m)!r}",
                where,
            )
            break
    for pattern in _IMPERATIVE:
        if m := pattern.search(visible):
            yield Finding(
                Severity.WARNING,
                "imperative",
                f"system-prompt-like imperative: {_quote(visible, m)!r}",
                where,
            )
            break
    if m := _SECRET_PATHS.search(visible):
        yield Finding(
            Severity.ERROR, "secret-path", f"refers to a secret path: {m.group(0)!r}", where
        )
    elif m := _SECRET_WORDS.search(visible):
        yield Finding(
            Severity.WARNING, "secret-word", f"mentions credentials: {m.group(0)!r}", where
        )
    for other, pattern in others:
        if pattern.search(visible):
            yield Finding(
                Severity.ERROR,
                "tool-reference",
                f"names the tool {other!r} of another source (possible tool shadowing)",
                where,
            )
    for sibling, pattern in siblings:
        if pattern.search(visible):
            yield Finding(
                Severity.INFO, "tool-reference", f"names the sibling tool {sibling!r}", where
            )


def errors(findings: Iterable[Finding]) -> list[Finding]:
    """The error-severity findings (those that block a tool)."""
    return [f for f in findings if f.severity is Severity.ERROR]

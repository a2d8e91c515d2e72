"""Reading a spec file: what is refused before the Markdown parse, and why.

A spec is a Markdown file (by its name), at most :data:`MAX_BYTES`, UTF-8
text without NUL bytes, and not empty. Each refusal is a :class:`SpecError`
naming the file (and the line, for bytes that are not text), never a
traceback.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from nexus.domain.errors import NotFoundError
from nexus.missions.spec._model import SpecError, SpecMap
from nexus.missions.spec._parser import parse_spec

__all__ = ["MARKDOWN_SUFFIXES", "MAX_BYTES", "read_spec", "read_spec_text"]

#: The names a Markdown document goes by.
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".txt")
#: The largest document read (1 MiB, a few hundred pages): a bound on time and memory.
MAX_BYTES = 1 << 20


def read_spec_text(path: Path | str) -> str:
    """The text of the spec at ``path``, checked to be a Markdown document.

    Raises:
        NotFoundError: there is no such file.
        SpecError: not a Markdown file, too large, not UTF-8 text, or empty.
    """
    path = Path(path)
    if path.is_dir():
        raise SpecError("is a directory, not a Markdown file", file=str(path))
    if path.is_file() and path.suffix.lower() not in MARKDOWN_SUFFIXES:
        raise SpecError(
            f"not a Markdown file (expected a name ending {', '.join(MARKDOWN_SUFFIXES)})",
            file=str(path),
        )
    return _read_text(path)


def _read_text(path: Path) -> str:
    """The UTF-8 text of the file at ``path``, at most :data:`MAX_BYTES`."""
    name = str(path)
    if path.is_dir():
        raise SpecError("is a directory, not a file", file=name)
    if not path.is_file():
        raise NotFoundError(f"{name}: no such file")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SpecError(
                f"is {size:,} bytes; a spec may be at most {MAX_BYTES:,} bytes", file=name
            )
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot be read: {exc.strerror or exc}", file=name) from None
    if len(data) > MAX_BYTES:  # it grew since the stat
        raise SpecError(f"is over {MAX_BYTES:,} bytes, the most a spec may be", file=name)
    return _decode(data, name)


def _decode(data: bytes, name: str) -> str:
    nul = data.find(b"\0")
    if nul >= 0:
        raise SpecError(
            "is binary, not Markdown text (a NUL byte)",
            file=name,
            line=data.count(b"\n", 0, nul) + 1,
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SpecError(
            f"is not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x})", file=name, line=line
        ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise SpecError("is empty; a spec lists requirements in Markdown", file=name)
    return text


def read_spec(path: Path | str) -> SpecMap:
    """Read the design document at ``path``: Markdown with the deterministic parser, or a
    SpecMap as ``nexus spec --json`` writes it (a ``.json`` file: a free-form document
    read once by a model, ``nexus spec --llm``, then kept).

    Example:
        >>> spec = read_spec("tests/missions/specs/durations.md")  # doctest: +SKIP
        >>> [r.id for r in spec.requirements][:2]  # doctest: +SKIP
        ['R1', 'R2']

    Raises:
        NotFoundError: there is no such file.
        SpecError: the file is not a readable Markdown document, an explicit
            id is used twice, or no requirement was found.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        return _read_specmap(path)
    return parse_spec(read_spec_text(path), source=str(path))


def _read_specmap(path: Path) -> SpecMap:
    name = str(path)
    text = _read_text(path)
    try:
        return SpecMap.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the document"
        raise SpecError(
            f"is not a SpecMap (as `nexus spec SPEC.md --json` writes one): {where}: "
            f"{first['msg']}",
            file=name,
        ) from None

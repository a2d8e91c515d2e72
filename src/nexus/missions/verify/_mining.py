"""Failure mining: a failure that keeps coming back becomes a proposed constraint.

:func:`failure_signature` gives a diagnostic's *shape* -- the check, the code
and the message with the particulars (quoted text, paths, numbers, hex
digests, identifiers) replaced by placeholders -- so the same mistake made in
another file, with another name, has the same signature. A
:class:`ConstraintBook` (``<repo>/.nexus/constraints.yaml``) counts the
signatures of failing checks across attempts, work items and missions; one
seen in two observations becomes a *proposed* constraint. A person accepts it
(``status: accepted``) or rejects it; accepted constraints apply to later
missions: as instructions every coder reads (:meth:`ConstraintBook.as_instructions`),
as checks every envelope requires (:meth:`ConstraintBook.checkers`), and,
when one carries a ``command``, as a check of its own (:meth:`ConstraintBook.as_checks`).

The file is YAML written by Nexus and edited by people, in a repository
others may control: it is read without following a link, up to
:data:`MAX_BOOK_BYTES`, with anchors and aliases refused (no alias bomb), and
validated field by field; it is written atomically (a new file renamed over
the old one beneath the repository's descriptor).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import stat
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nexus.domain.errors import UserError
from nexus.missions.verify._model import NAME_PATTERN, CheckResult, CheckSpec, Diagnostic, PassRule
from nexus.security.paths import mkdirs_beneath, open_beneath, open_root, read_at_most

__all__ = [
    "BOOK_PATH",
    "MAX_BOOK_BYTES",
    "RECUR",
    "Constraint",
    "ConstraintBook",
    "failure_signature",
]

#: Where the book lives in a repository.
BOOK_PATH = ".nexus/constraints.yaml"
#: The largest book read.
MAX_BOOK_BYTES = 1 << 20
#: Observations after which a failure class is proposed as a constraint.
RECUR = 2
_MAX_ENTRIES = 2000
_MAX_MISSIONS = 20
_SHAPE_CHARS = 160
_IGNORED_CODES = frozenset({"truncated", "summary", "not-run"})

_QUOTED = re.compile(r"\"[^\"\n]*\"|'[^'\n]*'|`[^`\n]*`|“[^”\n]*”")
_PATH = re.compile(
    r"(?:[\w.~-]*[/\\][\w./\\~-]*|\b[\w-]+\.(?:py|pyi|js|ts|tsx|go|rs|md|txt|json|ya?ml|toml|cfg|ini)\b)"
)
_HEX = re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}\b", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?\b\d+(?:\.\d+)?\b")
_NAME = re.compile(
    r"\b(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*\b|\b\w*(?:_\w*|[a-z][A-Z]\w*|[A-Za-z]\d\w*)\b"
)
_SPACE = re.compile(r"\s+")


def _shape(message: str) -> str:
    first = message.strip().split("\n", 1)[0]
    text = _QUOTED.sub("<q>", first)
    text = _PATH.sub("<path>", text)
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("<n>", text)
    text = _NAME.sub("<name>", text)
    return _SPACE.sub(" ", text).strip()[:_SHAPE_CHARS]


def failure_signature(d: Diagnostic) -> str:
    """The failure class of a diagnostic: ``check|code|message shape``.

    The shape is the first line of the message with quoted text, paths, hex
    digests, numbers and identifiers (dotted, with ``_``, camelCase or digits)
    replaced by ``<q>``, ``<path>``, ``<hex>``, ``<n>`` and ``<name>``,
    whitespace collapsed, at most 160 characters. The file and line are not
    part of it.

    Example:
        >>> from nexus.missions.verify import Diagnostic
        >>> failure_signature(Diagnostic("lint", "a.py", 3, "F401", "`os` imported but unused"))
        'lint|F401|<q> imported but unused'
    """
    return f"{d.check}|{d.code or '-'}|{_shape(d.message)}"


Status = Literal["observed", "proposed", "accepted", "rejected"]


class Constraint(BaseModel):
    """One failure class of the book.

    Attributes:
        id: ``NC-`` and 8 hex digits of the signature's SHA-256.
        checker: the check that failed.
        code: the diagnostic's code, if any.
        signature: :func:`failure_signature`.
        example: one diagnostic of the class, ``file:line: message``.
        count: observations (attempts) that had it.
        missions: the missions that saw it (the last 20).
        status: ``observed`` (seen once), ``proposed`` (seen twice or more),
            ``accepted`` or ``rejected`` (set by a person).
        instruction: what a coder should do instead, shown when accepted
            (default: the example).
        command: a command that checks the constraint; accepted, it becomes
            a check of later missions.
        passes: the command's pass rule.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^NC-[0-9a-f]{8}$")
    checker: str = Field(pattern=NAME_PATTERN)
    code: str | None = Field(default=None, max_length=200)
    signature: str = Field(min_length=1, max_length=600)
    example: str = Field(default="", max_length=2000)
    count: int = Field(default=1, ge=1)
    missions: tuple[str, ...] = Field(default=(), max_length=_MAX_MISSIONS)
    status: Status = "observed"
    instruction: str | None = Field(default=None, max_length=2000)
    command: tuple[str, ...] | None = None
    passes: PassRule = "exit_zero"


class _Book(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    constraints: tuple[Constraint, ...] = Field(default=(), max_length=_MAX_ENTRIES)


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors and aliases (the alias-bomb defence)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise UserError(
                f"line {event.start_mark.line + 1}: YAML anchors and aliases are not allowed here"
            )
        return super().compose_node(parent, index)


class ConstraintBook:
    """The failure classes of one repository (``.nexus/constraints.yaml``), read and written."""

    def __init__(self, repo: Path, constraints: Sequence[Constraint] = ()) -> None:
        self.repo = repo
        self._entries: dict[str, Constraint] = {c.signature: c for c in constraints}

    @property
    def path(self) -> Path:
        """The book's file."""
        return self.repo / BOOK_PATH

    @property
    def constraints(self) -> list[Constraint]:
        """Every entry, in the order first seen."""
        return list(self._entries.values())

    @classmethod
    def load(cls, repo: Path) -> ConstraintBook:
        """The book of ``repo``; an empty one when the file does not exist.

        Raises:
            UserError: naming the file (and the field or line) when it is a
                link, too large, not YAML, uses anchors or aliases, or does
                not follow the schema.
        """
        where = str(repo / BOOK_PATH)
        try:
            dirfd = open_root(os.path.realpath(repo))
        except OSError as exc:
            raise UserError(f"{repo}: the repository cannot be opened: {exc.strerror}") from None
        try:
            fd = open_beneath(dirfd, tuple(BOOK_PATH.split("/")), os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return cls(repo)
        except OSError as exc:
            raise UserError(
                f"{where}: cannot be read ({exc.strerror}; a symbolic link is never followed)"
            ) from None
        finally:
            os.close(dirfd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UserError(f"{where}: not a regular file")
            data = read_at_most(fd, MAX_BOOK_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_BOOK_BYTES:
            raise UserError(f"{where}: larger than {MAX_BOOK_BYTES} bytes")
        return cls(repo, _parse(data, where))

    def observe(self, results: Sequence[CheckResult], *, mission: str) -> list[Constraint]:
        """Count the failure classes of one attempt's results.

        Each signature counts once per call, however many diagnostics share
        it (ten unused imports in one attempt are one observation).

        Args:
            results: one attempt's check results; passing checks are ignored.
            mission: the mission (run) they belong to.

        Returns:
            The constraints this call proposed (their count reached :data:`RECUR`).
        """
        seen: dict[str, Diagnostic] = {}
        for result in results:
            if result.passed:
                continue
            for d in result.diagnostics:
                if d.code not in _IGNORED_CODES:
                    seen.setdefault(failure_signature(d), d)
        proposed = []
        for signature, d in seen.items():
            old = self._entries.get(signature)
            if old is None:
                self._entries[signature] = _new(signature, d, mission)
                continue
            missions = old.missions if mission in old.missions else (*old.missions, mission)
            status = old.status
            if status == "observed" and old.count + 1 >= RECUR:
                status = "proposed"
            entry = old.model_copy(
                update={
                    "count": old.count + 1,
                    "missions": missions[-_MAX_MISSIONS:],
                    "status": status,
                }
            )
            self._entries[signature] = entry
            if status != old.status:
                proposed.append(entry)
        self._forget()
        return proposed

    def accepted(self) -> list[Constraint]:
        """The constraints a person accepted: the ones later missions apply."""
        return [c for c in self._entries.values() if c.status == "accepted"]

    def checkers(self) -> list[str]:
        """The checks accepted constraints came from: every envelope should require them."""
        return sorted({c.checker for c in self.accepted()})

    def as_checks(self) -> list[CheckSpec]:
        """A check per accepted constraint with a ``command``, named ``constraint-<id>``."""
        return [
            CheckSpec(name=f"constraint-{c.id}", kind="command", command=c.command, passes=c.passes)
            for c in self.accepted()
            if c.command
        ]

    def as_instructions(self) -> str:
        """Markdown for every coder's prompt: the accepted constraints, one line each."""
        accepted = self.accepted()
        if not accepted:
            return ""
        lines = [
            "## Never again: constraints this repository has accepted",
            "",
            "Past changes failed these checks repeatedly; do not repeat them.",
            "",
        ]
        for c in accepted:
            what = (c.instruction or c.example).strip().replace("\n", " ")
            code = f" {c.code}" if c.code else ""
            lines.append(f"- **{c.checker}{code}** (seen {c.count} times): {what[:400]}")
        return "\n".join(lines) + "\n"

    def save(self) -> None:
        """Write the book (atomically: a new file renamed over the old one).

        Raises:
            UserError: ``.nexus`` is a link or not a directory, or the file
                cannot be written.
        """
        body = {
            "version": 1,
            "constraints": [
                c.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
                | {"id": c.id, "status": c.status, "count": c.count}
                for c in self._entries.values()
            ],
        }
        text = _HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)
        where = str(self.path)
        tmp = f".constraints.{secrets.token_hex(6)}.tmp"
        try:
            root = open_root(os.path.realpath(self.repo))
            try:
                folder = mkdirs_beneath(root, (".nexus",))
            finally:
                os.close(root)
            try:
                fd = open_beneath(folder, (tmp,), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as fh:
                        fh.write(text)
                        fh.flush()
                        os.fsync(fh.fileno())
                finally:
                    os.close(fd)
                try:
                    os.replace(tmp, "constraints.yaml", src_dir_fd=folder, dst_dir_fd=folder)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=folder)
                    raise
            finally:
                os.close(folder)
        except OSError as exc:
            raise UserError(
                f"{where}: cannot be written ({exc.strerror}; a symbolic link is never followed)"
            ) from None

    def _forget(self) -> None:
        """Keep the book bounded: the oldest one-off observations go first."""
        excess = len(self._entries) - _MAX_ENTRIES
        if excess <= 0:
            return
        for signature in [s for s, c in self._entries.items() if c.status == "observed"][:excess]:
            del self._entries[signature]


_HEADER = """\
# Failure classes Nexus has seen in this repository (docs/missions.md, "Failure mining").
# Set 'status: accepted' to apply one to later missions, or 'rejected' to ignore it;
# 'instruction' (what to do instead) and 'command' (a check for it) are yours to add.
"""


def _new(signature: str, d: Diagnostic, mission: str) -> Constraint:
    example = f"{d.where()}: {d.message}" if d.file else d.message
    return Constraint(
        id="NC-" + hashlib.sha256(signature.encode()).hexdigest()[:8],
        checker=d.check,
        code=d.code[:200] if d.code else None,
        signature=signature[:600],
        example=example.strip()[:2000],
        count=1,
        missions=(mission,),
        status="proposed" if RECUR <= 1 else "observed",
    )


def _parse(data: bytes, where: str) -> list[Constraint]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{where}: not UTF-8 text") from None
    try:
        raw = yaml.load(text, Loader=_NoAliasLoader)
    except UserError as exc:
        raise UserError(f"{where}: {exc.message}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{where}: not valid YAML: {exc}") from None
    except RecursionError:
        raise UserError(f"{where}: nested too deep") from None
    if raw is None:
        return []
    try:
        book = _Book.model_validate(raw)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem["loc"]) or "(top level)"
        raise UserError(f"{where}: field {field!r}: {problem['msg']}") from None
    counts = Counter(c.signature for c in book.constraints)
    duplicate = next((s for s, n in counts.items() if n > 1), None)
    if duplicate is not None:
        raise UserError(f"{where}: field 'constraints': signature {duplicate!r} appears twice")
    return list(book.constraints)

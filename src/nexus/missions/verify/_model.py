"""What a check is (:class:`CheckSpec`) and what running it found (:class:`CheckResult`).

A :class:`CheckSpec` is a frozen pydantic model: it comes from ``nexus.toml``
(:func:`~nexus.missions.verify.user_checks`) or from what a repository holds
(:func:`~nexus.missions.verify.default_checks`) and is recorded with the
mission's plan. Results are plain dataclasses that turn into JSON-safe data
(:meth:`CheckResult.to_data`) for the effect that records them, and back
(:meth:`CheckResult.from_data`) when a replay reads that effect.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nexus.domain.errors import UserError

__all__ = [
    "IN_PROCESS",
    "MAX_DIAGNOSTICS",
    "MAX_OUTPUT",
    "CheckKind",
    "CheckResult",
    "CheckSpec",
    "Diagnostic",
    "PassRule",
]

CheckKind: TypeAlias = Literal[
    "scope", "build", "lint", "types", "tests", "security", "secrets", "docs", "api", "command"
]
PassRule: TypeAlias = Literal["exit_zero", "junit", "no_findings"]

#: Kinds Nexus runs itself, over the files of the work tree, without a command.
IN_PROCESS: frozenset[str] = frozenset({"scope", "secrets", "docs", "api"})
#: The tail of a check's output kept in its result (bytes of UTF-8).
MAX_OUTPUT = 64 * 1024
#: Diagnostics kept per check; more are summed up in one last diagnostic.
MAX_DIAGNOSTICS = 200
#: A check's name: it names a file of the evidence bundle and a key of nexus.toml.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


class CheckSpec(BaseModel):
    """One check a work item's change must pass.

    Attributes:
        name: unique among the checks of a mission (``tests``, ``npm-test``).
        kind: what it checks; it decides how the output is read (ruff's JSON
            for ``lint``, mypy's lines for ``types``, JUnit XML for ``tests``,
            bandit's JSON for ``security``); ``command`` is any user command.
        command: the argv run in the sandbox, with the work tree as the
            working directory; ``None`` for the kinds Nexus runs itself
            (``scope``, ``secrets``, ``docs``). An element ``{changed}`` (or
            ``{changed:GLOB}``) becomes the changed files (matching ``GLOB``),
            each as ``./path``; ``{junit}`` and ``{scratch}`` inside an
            element become a JUnit report path and a scratch directory
            outside the work tree.
        passes: ``exit_zero`` (exit status 0), ``junit`` (the JUnit report
            exists and counts no failure or error, and the exit status is 0),
            or ``no_findings`` (the tool ran and found nothing).
        timeout_s: wall-clock seconds the check may take (its CPU seconds too).
        required: whether the gate rejects a change that fails it when the
            work item's envelope does not name the checks itself.
        read_paths: absolute host paths the command may read besides the
            system, Nexus's interpreter and the work tree (a project's own
            virtual environment or toolchain).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    kind: CheckKind
    command: tuple[str, ...] | None = None
    passes: PassRule = "exit_zero"
    timeout_s: float = Field(default=300.0, gt=0, le=86400)
    required: bool = True
    read_paths: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _command_fits_kind(self) -> CheckSpec:
        if self.kind in IN_PROCESS and self.command is not None:
            raise ValueError(f"a '{self.kind}' check runs in Nexus and takes no command")
        if self.kind not in IN_PROCESS and not self.command:
            raise ValueError(f"a '{self.kind}' check needs a non-empty command")
        if self.command is not None and any(not a or "\0" in a for a in self.command):
            raise ValueError("command arguments must be non-empty and hold no NUL byte")
        for path in self.read_paths:
            if not path.startswith("/") or "\0" in path or ".." in path.split("/"):
                raise ValueError(f"read path {path!r} must be absolute, without '..'")
        if self.read_paths and self.command is None:
            raise ValueError(f"a '{self.kind}' check runs in Nexus and takes no read_paths")
        return self


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding of a check, as precise as the tool says.

    Attributes:
        check: the check's name.
        file: the file, relative to the work tree, when known.
        line: the line (1-based), when known.
        code: the tool's rule or error code (``F401``, ``arg-type``,
            ``B602``, ``failure``...), when there is one.
        message: what is wrong, in one or a few lines; never a secret's value.
    """

    check: str
    file: str | None
    line: int | None
    code: str | None
    message: str

    def to_data(self) -> dict[str, Any]:
        """The diagnostic as JSON-safe data."""
        return {
            "check": self.check,
            "file": self.file,
            "line": self.line,
            "code": self.code,
            "message": self.message,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Diagnostic:
        """The diagnostic :meth:`to_data` gave.

        Raises:
            UserError: a field is missing or of the wrong type.
        """
        try:
            check, message = data["check"], data["message"]
            file, line, code = data.get("file"), data.get("line"), data.get("code")
        except (KeyError, TypeError) as exc:
            raise UserError(f"check diagnostic: missing field {exc}") from None
        ok = (
            isinstance(check, str)
            and isinstance(message, str)
            and (file is None or isinstance(file, str))
            and (line is None or (isinstance(line, int) and not isinstance(line, bool)))
            and (code is None or isinstance(code, str))
        )
        if not ok:
            raise UserError(f"check diagnostic: a field has the wrong type in {dict(data)!r:.200}")
        return cls(check=check, file=file, line=line, code=code, message=message)

    def where(self) -> str:
        """``file:line``, ``file`` or an empty string."""
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(slots=True)
class CheckResult:
    """What one check found on one work tree.

    Attributes:
        name: the check's name.
        kind: the check's kind.
        passed: whether it passed. A skipped check passed when there was
            nothing for it to check, and failed when it is required and its
            tool is missing.
        skipped: why it did not run, or ``None`` when it ran.
        diagnostics: what it found (at most :data:`MAX_DIAGNOSTICS`).
        output: the tail of what it printed (stdout, then stderr), at most
            :data:`MAX_OUTPUT` bytes, secrets redacted.
        output_sha256: SHA-256 (hex) of ``output`` encoded as UTF-8.
        exit_code: the command's exit status; ``None`` for in-process checks
            and skipped ones.
        duration_s: how long it took.
        limits_hit: sandbox limits the command hit (``wall_time``, ``output``...).
        required: the check's ``required`` (the gate's default envelope).
    """

    name: str
    kind: str
    passed: bool
    skipped: str | None
    diagnostics: list[Diagnostic]
    output: str
    output_sha256: str
    exit_code: int | None
    duration_s: float
    limits_hit: list[str] = field(default_factory=list)
    required: bool = True

    @classmethod
    def make(
        cls,
        spec: CheckSpec,
        *,
        passed: bool,
        diagnostics: list[Diagnostic],
        output: str = "",
        skipped: str | None = None,
        exit_code: int | None = None,
        duration_s: float = 0.0,
        limits_hit: list[str] | None = None,
    ) -> CheckResult:
        """A result for ``spec``: the output cut to its tail, hashed, diagnostics capped."""
        kept = bound_output(output)
        return cls(
            name=spec.name,
            kind=spec.kind,
            passed=passed,
            skipped=skipped,
            diagnostics=cap_diagnostics(spec.name, diagnostics),
            output=kept,
            output_sha256=hashlib.sha256(kept.encode("utf-8")).hexdigest(),
            exit_code=exit_code,
            duration_s=round(duration_s, 3),
            limits_hit=list(limits_hit or ()),
            required=spec.required,
        )

    @property
    def verdict(self) -> Literal["pass", "fail", "error", "skipped"]:
        """The evidence bundle's verdict (:data:`~nexus.missions.evidence.CheckVerdict`).

        ``skipped`` when there was nothing to check or an optional tool is
        missing; ``error`` when a required tool is missing or a sandbox limit
        was hit (the check could not give an answer); else ``pass`` or ``fail``.
        """
        if self.skipped is not None:
            return "skipped" if self.passed else "error"
        if self.limits_hit:
            return "error"
        return "pass" if self.passed else "fail"

    @property
    def summary(self) -> str:
        """One line for reports: the outcome and the first diagnostic."""
        if self.skipped is not None:
            return f"skipped: {self.skipped}"[:200]
        if self.passed:
            return "passed"
        if not self.diagnostics:
            return f"failed (exit {self.exit_code})"
        first = self.diagnostics[0]
        where = f"{first.where()}: " if first.file else ""
        line = first.message.strip().split("\n", 1)[0]
        more = f" (+{len(self.diagnostics) - 1} more)" if len(self.diagnostics) > 1 else ""
        return f"{where}{line}"[:200] + more

    def redacted(self, redact: Callable[[str], str]) -> CheckResult:
        """This result with ``redact`` applied to its output and messages, the hash recomputed."""
        output = bound_output(redact(self.output))
        found = [replace(d, message=redact(d.message)) for d in self.diagnostics]
        if output == self.output and found == self.diagnostics:
            return self
        digest = hashlib.sha256(output.encode("utf-8")).hexdigest()
        return replace(self, output=output, diagnostics=found, output_sha256=digest)

    def to_data(self) -> dict[str, Any]:
        """The result as JSON-safe data (what the effect of a check records)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "passed": self.passed,
            "skipped": self.skipped,
            "diagnostics": [d.to_data() for d in self.diagnostics],
            "output": self.output,
            "output_sha256": self.output_sha256,
            "exit_code": self.exit_code,
            "duration_s": self.duration_s,
            "limits_hit": list(self.limits_hit),
            "required": self.required,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> CheckResult:
        """The result :meth:`to_data` gave (a replay reads it from the recorded effect).

        Raises:
            UserError: a field is missing or of the wrong type.
        """
        try:
            diagnostics = [Diagnostic.from_data(d) for d in data["diagnostics"]]
            result = cls(
                name=data["name"],
                kind=data["kind"],
                passed=data["passed"],
                skipped=data.get("skipped"),
                diagnostics=diagnostics,
                output=data["output"],
                output_sha256=data["output_sha256"],
                exit_code=data.get("exit_code"),
                duration_s=float(data["duration_s"]),
                limits_hit=list(data.get("limits_hit") or ()),
                required=data.get("required", True),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"check result: missing or invalid field {exc}") from None
        if not all(isinstance(v, bool) for v in (result.passed, result.required)) or not all(
            isinstance(v, str) for v in (result.name, result.kind, result.output)
        ):
            raise UserError(f"check result {result.name!r}: a field has the wrong type")
        return result


def bound_output(text: str, limit: int = MAX_OUTPUT) -> str:
    """The tail of ``text`` that fits in ``limit`` bytes of UTF-8, marked when cut."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    marker = f"[... {len(data) - limit} bytes cut ...]\n"
    tail = data[len(data) - limit + len(marker) :]
    return marker + tail.decode("utf-8", errors="ignore")


def cap_diagnostics(check: str, found: list[Diagnostic]) -> list[Diagnostic]:
    """At most :data:`MAX_DIAGNOSTICS`, the last one saying how many were left out."""
    if len(found) <= MAX_DIAGNOSTICS:
        return found
    left = len(found) - (MAX_DIAGNOSTICS - 1)
    more = Diagnostic(check, None, None, "truncated", f"... and {left} more diagnostics")
    return [*found[: MAX_DIAGNOSTICS - 1], more]


def check_name_ok(name: str) -> bool:
    """Whether ``name`` may name a check."""
    return bool(_NAME.match(name))

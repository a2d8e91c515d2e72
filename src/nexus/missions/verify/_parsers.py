"""Reading what a checker printed into :class:`~nexus.missions.verify.Diagnostic` values.

Every parser takes untrusted text (the checked code can print anything, and
chooses what the tools see) and never raises on it: output it cannot read is
``None`` (the caller then reports the output's tail instead).

JUnit XML is read with :mod:`xml.parsers.expat` directly, without building a
tree: a document over :data:`MAX_JUNIT_BYTES`, with a document type
declaration (so with entities -- the billion-laughs and external-entity
attacks), deeper than :data:`_MAX_DEPTH` or with more than
:data:`_MAX_ELEMENTS` elements is refused as a whole.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from nexus.missions.verify._model import Diagnostic

__all__ = [
    "MAX_JUNIT_BYTES",
    "JUnitRefused",
    "JUnitReport",
    "parse_bandit",
    "parse_build",
    "parse_junit",
    "parse_lines",
    "parse_mypy",
    "parse_ruff",
]

#: The largest JUnit report read.
MAX_JUNIT_BYTES = 16 << 20
_MAX_DEPTH = 64
_OUTCOMES = ("failure", "error", "skipped")
_MAX_ELEMENTS = 200_000
_MESSAGE = 2000
_MYPY = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+)(?::\d+)?: (?P<sev>error|note|warning): "
    r"(?P<msg>.*?)(?:  \[(?P<code>[a-z0-9-]+)\])?$"
)


def _short(text: str, limit: int = _MESSAGE) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _relative(path: object, root: str) -> str | None:
    """``path`` relative to the work tree ``root`` (paths inside are the host's paths)."""
    if not isinstance(path, str) or not path:
        return None
    if path.startswith(root.rstrip("/") + "/"):
        path = path[len(root.rstrip("/")) + 1 :]
    while path.startswith("./"):
        path = path[2:]
    return path


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def parse_ruff(check: str, stdout: str, root: str) -> list[Diagnostic] | None:
    """ruff's ``--output-format=json``: a list of ``{code, message, filename, location}``."""
    data = _json(stdout)
    if not isinstance(data, list):
        return None
    out = []
    for item in data:
        if not isinstance(item, dict):
            return None
        location = item.get("location")
        line = _int(location.get("row")) if isinstance(location, dict) else None
        code = item.get("code")
        out.append(
            Diagnostic(
                check=check,
                file=_relative(item.get("filename"), root),
                line=line,
                code=code if isinstance(code, str) else None,
                message=_short(str(item.get("message", ""))),
            )
        )
    return out


def parse_mypy(check: str, stdout: str, root: str) -> list[Diagnostic] | None:
    """mypy's ``file:line:col: error: message  [code]`` lines; notes are folded into errors."""
    out: list[Diagnostic] = []
    for raw in stdout.splitlines():
        m = _MYPY.match(raw.rstrip())
        if m is None:
            continue
        if m["sev"] == "note":
            if out and out[-1].file == _relative(m["file"], root):
                last = out[-1]
                message = _short(f"{last.message}\n  note: {m['msg']}")
                out[-1] = Diagnostic(check, last.file, last.line, last.code, message)
            continue
        out.append(
            Diagnostic(
                check=check,
                file=_relative(m["file"], root),
                line=int(m["line"]),
                code=m["code"],
                message=_short(m["msg"]),
            )
        )
    return out


def parse_bandit(check: str, stdout: str, root: str) -> list[Diagnostic] | None:
    """bandit's ``-f json``: ``results`` of ``{filename, line_number, test_id, issue_text}``."""
    data = _json(stdout)
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        return None
    out = []
    for item in data["results"]:
        if not isinstance(item, dict):
            return None
        code = item.get("test_id")
        severity = item.get("issue_severity", "")
        out.append(
            Diagnostic(
                check=check,
                file=_relative(item.get("filename"), root),
                line=_int(item.get("line_number")),
                code=code if isinstance(code, str) else None,
                message=_short(f"{item.get('issue_text', '')} (severity {severity})"),
            )
        )
    return out


def parse_build(check: str, stdout: str, root: str) -> list[Diagnostic] | None:
    """The build script's JSON lines (``{file, line, code, message}``)."""
    out = []
    for raw in stdout.splitlines():
        item = _json(raw)
        if not isinstance(item, dict):
            continue
        code = item.get("code")
        out.append(
            Diagnostic(
                check=check,
                file=_relative(item.get("file"), root),
                line=_int(item.get("line")),
                code=code if isinstance(code, str) else None,
                message=_short(str(item.get("message", ""))),
            )
        )
    return out


def parse_lines(check: str, stdout: str, root: str) -> list[Diagnostic]:
    """One finding per non-empty line (the ``no_findings`` rule of a user command)."""
    out = []
    for raw in stdout.splitlines():
        if raw.strip():
            out.append(Diagnostic(check, None, None, None, _short(raw, 500)))
    return out


# -- JUnit XML -------------------------------------------------------------------------


class JUnitRefused(ValueError):
    """The report cannot be read safely or at all; the message says why."""


@dataclass(slots=True)
class JUnitReport:
    """What a JUnit report counts, and its failing test cases."""

    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    failed: list[Diagnostic] = field(default_factory=list)


@dataclass(slots=True)
class _Case:
    classname: str
    name: str
    file: str | None
    line: int | None
    outcome: str | None = None
    message: str = ""
    text: list[str] = field(default_factory=list)


def parse_junit(check: str, data: bytes, root: str) -> JUnitReport:
    """Count the test cases of a JUnit XML report and describe the failing ones.

    Counts come from the ``<testcase>`` elements themselves, not from the
    ``tests=``/``failures=`` attributes a report could state falsely.

    Raises:
        JUnitRefused: too large, a DTD or entity, too deep, too many
            elements, or not well-formed XML.
    """
    if len(data) > MAX_JUNIT_BYTES:
        raise JUnitRefused(f"the JUnit report is {len(data)} bytes, over {MAX_JUNIT_BYTES}")
    report = JUnitReport()
    stack: list[str] = []
    case: _Case | None = None
    count = 0

    def refuse_dtd(*_: object) -> None:
        raise JUnitRefused("the JUnit report has a document type declaration (refused)")

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal case, count
        count += 1
        stack.append(tag)
        if len(stack) > _MAX_DEPTH or count > _MAX_ELEMENTS:
            raise JUnitRefused("the JUnit report is nested too deep or has too many elements")
        if tag == "testcase":
            case = _Case(
                classname=attrs.get("classname", ""),
                name=attrs.get("name", ""),
                file=_relative(attrs.get("file"), root),
                line=int(attrs["line"]) if attrs.get("line", "").isdigit() else None,
            )
        elif case is not None and tag in _OUTCOMES and case.outcome in (None, "skipped"):
            case.outcome = tag
            case.message = attrs.get("message", "")

    def end(tag: str) -> None:
        nonlocal case
        stack.pop()
        if tag == "testcase" and case is not None:
            _close(check, case, report)
            case = None

    def text(data: str) -> None:
        failing = case is not None and case.outcome in ("failure", "error")
        if failing and case is not None and sum(len(t) for t in case.text) < _MESSAGE * 2:
            case.text.append(data)

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    parser.ExternalEntityRefHandler = lambda *_: 0  # never fetch anything
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise JUnitRefused(f"the JUnit report is not well-formed XML: {exc}") from None
    except RecursionError:
        raise JUnitRefused("the JUnit report is nested too deep") from None
    return report


def _close(check: str, case: _Case, report: JUnitReport) -> None:
    report.tests += 1
    if case.outcome == "skipped":
        report.skipped += 1
        return
    if case.outcome not in ("failure", "error"):
        return
    if case.outcome == "failure":
        report.failures += 1
    else:
        report.errors += 1
    test = f"{case.classname}.{case.name}" if case.classname else case.name
    detail = case.message.strip() or "".join(case.text).strip()
    first = detail.splitlines()[0] if detail else ""
    body = "".join(case.text).strip()
    message = f"{test}: {first}" if first else test
    if body and body != first:
        message += "\n" + _short(body[-1200:], 1200)
    file = case.file
    if file is None and case.classname:
        # pytest's classname is the module path with dots: tests.test_x.TestY
        parts = case.classname.split(".")
        guess = [p for p in parts if not p[:1].isupper()]
        file = "/".join(guess) + ".py" if guess else None
    report.failed.append(Diagnostic(check, file, case.line, case.outcome, _short(message)))

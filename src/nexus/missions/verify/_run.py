"""Running checks on a work tree: in-process ones in Nexus, commands in the process sandbox.

:func:`run_checks` runs at most ``parallel`` checks at a time. A command runs
under :func:`~nexus.tools.sandbox.run_sandboxed` with the work tree as its
writable workspace, no network, the limits of :attr:`CheckSandbox.profile`
narrowed to the check's timeout, and one extra writable directory of its own
outside the work tree (``{scratch}``; the JUnit report is written there and
read back without following links). Outputs are cut to their tail and every
secret Nexus knows (the environment's, the secret scan's finds, the
redaction rules' shapes) is redacted from them and from the diagnostics.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from nexus.domain.errors import UserError
from nexus.missions.verify._inproc import (
    FileReader,
    check_api,
    check_docs,
    check_scope,
    glob_match,
    scan_secrets,
)
from nexus.missions.verify._model import CheckResult, CheckSpec, Diagnostic
from nexus.missions.verify._parsers import (
    MAX_JUNIT_BYTES,
    JUnitRefused,
    parse_bandit,
    parse_build,
    parse_junit,
    parse_lines,
    parse_mypy,
    parse_ruff,
)
from nexus.redaction import Redactor
from nexus.security.paths import split_beneath
from nexus.security.trusted import TrustedPaths
from nexus.tools.profile import ExecProfile
from nexus.tools.sandbox import PYTHON, SandboxResult, run_sandboxed

__all__ = ["CHECK_PROFILE", "CheckSandbox", "run_checks"]

#: The limits of one check's command; a check's ``timeout_s`` narrows the time ones.
CHECK_PROFILE = ExecProfile(
    cpu_seconds=900,
    memory_mb=2048,
    wall_seconds=900.0,
    max_processes=64,
    max_output_bytes=16 << 20,
    max_file_mb=256,
    max_write_mb=512,
)
_SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
_CHANGED = re.compile(r"^\{changed(?::(?P<glob>.+))?\}$")
_GIT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@{}^~-]{0,199}$")
_TAIL_LINES = 30


@dataclass(frozen=True, slots=True)
class CheckSandbox:
    """Where check commands run.

    Attributes:
        profile: the limits of each command (:data:`CHECK_PROFILE` by
            default); its ``network`` should stay ``"none"``.
        trusted: the paths the sandbox binds read-only inside the work tree
            (default: Nexus's own, see :func:`~nexus.security.trusted.trusted_paths`).
        env: extra variables for every command (``PYTHONDONTWRITEBYTECODE=1``
            is always set, so no bytecode lands in the work tree).
    """

    profile: ExecProfile = CHECK_PROFILE
    trusted: TrustedPaths | None = None
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Run:
    """What every check of one :func:`run_checks` call shares."""

    root: str
    changed: list[str]
    raw_changed: list[str]
    owns: list[str]
    sandbox: CheckSandbox
    redactor: Redactor
    base: dict[str, bytes | None] | None
    secrets: tuple[list[Diagnostic], list[str]] | None = None


async def run_checks(
    worktree: Path,
    checks: Sequence[CheckSpec],
    *,
    changed: Sequence[str],
    owns: Sequence[str],
    parallel: int = 2,
    sandbox: CheckSandbox | None = None,
    base_ref: str | None = None,
) -> list[CheckResult]:
    """Run ``checks`` on ``worktree``, at most ``parallel`` at once.

    Args:
        worktree: the work item's work tree.
        checks: what to run (names must be unique).
        changed: the paths the change touched, relative to the work tree
            (added, modified and deleted).
        owns: the globs of the work item's file scope (see
            :func:`~nexus.missions.verify.glob_match`).
        parallel: how many checks run at the same time (at least 1).
        sandbox: where commands run (limits, trusted paths, extra variables).
        base_ref: a git revision holding the files before the change; the
            docs check compares public signatures against it (without it the
            docs check only asks for docstrings).

    Returns:
        One result per check, in the order of ``checks``.

    Raises:
        UserError: the work tree is not a directory, two checks share a
            name, or ``parallel`` is below 1.
        PolicyDenied: the sandbox cannot run here (see
            :func:`~nexus.tools.sandbox.run_sandboxed`).
    """
    if not await asyncio.to_thread(worktree.is_dir):
        raise UserError(f"run_checks: the work tree {str(worktree)!r} is not a directory")
    if parallel < 1:
        raise UserError(f"run_checks: parallel must be at least 1, not {parallel}")
    names = [c.name for c in checks]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise UserError(f"run_checks: two checks are named {duplicate!r}")
    root = await asyncio.to_thread(os.path.realpath, worktree)
    normal = []
    for path in changed:
        parts = split_beneath(path)
        if parts and "/".join(parts) not in normal:
            normal.append("/".join(parts))
    base = None
    if base_ref is not None and any(c.kind in ("docs", "api") for c in checks):
        base = await _base_contents(root, base_ref, [p for p in normal if p.endswith(".py")])
    run = _Run(
        root=root,
        changed=normal,
        raw_changed=list(changed),
        owns=list(owns),
        sandbox=sandbox or CheckSandbox(),
        redactor=Redactor.from_environ(),
        base=base,
    )
    # the secret scan comes first: what it finds is redacted from every other output
    found = await asyncio.to_thread(scan_secrets, "secrets", FileReader(root), normal)
    run.secrets = found
    for value in found[1]:
        run.redactor.add_secret(value, min_length=8)
    gate = asyncio.Semaphore(parallel)
    results: list[CheckResult | None] = [None] * len(checks)

    async def one(i: int, spec: CheckSpec) -> None:
        async with gate:
            results[i] = _redacted(await _run_one(spec, run), run.redactor)

    async with asyncio.TaskGroup() as group:
        for i, spec in enumerate(checks):
            group.create_task(one(i, spec))
    return [r for r in results if r is not None]


async def _run_one(spec: CheckSpec, run: _Run) -> CheckResult:
    started = time.monotonic()
    if spec.kind == "scope":
        found = check_scope(spec.name, run.raw_changed, run.owns)
        return _in_process(spec, found, started, f"{len(run.raw_changed)} changed path(s)")
    if spec.kind == "secrets":
        assert run.secrets is not None
        found = [replace(d, check=spec.name) for d in run.secrets[0]]
        return _in_process(spec, found, started, f"{len(run.changed)} changed file(s) scanned")
    if spec.kind == "docs":
        found = await asyncio.to_thread(
            check_docs, spec.name, FileReader(run.root), run.changed, run.base
        )
        mode = "signatures against the base" if run.base is not None else "docstrings only"
        return _in_process(spec, found, started, f"{len(run.changed)} changed file(s), {mode}")
    if spec.kind == "api":
        if run.base is None:  # no base_ref, or git could not read it: nothing to compare
            missing = Diagnostic(spec.name, None, None, "no-base",
                                 "the files before the change could not be read, so the "
                                 "public API cannot be compared")  # fmt: skip
            return _in_process(spec, [missing], started, "no base to compare with")
        found = await asyncio.to_thread(
            check_api, spec.name, FileReader(run.root), run.changed, run.base
        )
        return _in_process(spec, found, started, f"{len(run.changed)} changed file(s)")
    return await _run_command(spec, run, started)


def _in_process(
    spec: CheckSpec, found: list[Diagnostic], started: float, summary: str
) -> CheckResult:
    lines = [summary] + [f"{d.where() or '-'}: {d.code}: {d.message}" for d in found]
    return CheckResult.make(
        spec,
        passed=not found,
        diagnostics=found,
        output="\n".join(lines) + "\n",
        duration_s=time.monotonic() - started,
    )


def _expand(spec: CheckSpec, run: _Run, scratch: str) -> tuple[list[str], str | None]:
    """The argv with its placeholders filled, or why there is nothing to run."""
    assert spec.command is not None
    argv: list[str] = []
    for arg in spec.command:
        m = _CHANGED.match(arg)
        if m is None:
            argv.append(
                arg.replace("{junit}", f"{scratch}/junit.xml").replace("{scratch}", scratch)
            )
            continue
        pattern = m["glob"]
        picked = [
            p
            for p in run.changed
            if _picks(pattern, p) and os.path.lexists(os.path.join(run.root, p))
        ]
        if not picked:
            return [], f"no changed file matches {pattern or '*'}"
        argv += [f"./{p}" for p in picked]  # './' so that no name reads as an option
    return argv, None


def _picks(pattern: str | None, path: str) -> bool:
    """Whether ``{changed:pattern}`` takes ``path``: the glob matches it or its base name."""
    if pattern is None:
        return True
    return glob_match(pattern, path) or glob_match(pattern, path.rsplit("/", 1)[-1])


def _missing_tool(argv: Sequence[str], root: str) -> str | None:
    """Why the command's program is not there, or None."""
    if argv[0] == PYTHON and "-m" in argv[1:4]:
        module = argv[argv.index("-m", 1) + 1] if argv.index("-m", 1) + 1 < len(argv) else ""
        top = module.split(".")[0]
        if not top or importlib.util.find_spec(top) is None:
            return f"the Python module {module!r} is not installed in Nexus's environment"
        return None
    program = argv[0]
    if "/" in program:
        path = program if program.startswith("/") else os.path.join(root, program)
        return None if os.path.exists(path) else f"{program!r} does not exist"
    if shutil.which(program, path=_SANDBOX_PATH) is None:
        return f"{program!r} is not on the sandbox's PATH ({_SANDBOX_PATH})"
    return None


async def _run_command(spec: CheckSpec, run: _Run, started: float) -> CheckResult:
    scratch = await asyncio.to_thread(tempfile.mkdtemp, prefix="nexus-check-")
    try:
        argv, nothing = _expand(spec, run, scratch)
        if nothing is not None:
            return CheckResult.make(spec, passed=True, diagnostics=[], skipped=nothing)
        missing = _missing_tool(argv, run.root)
        if missing is not None:
            found = []
            if spec.required:
                found = [Diagnostic(spec.name, None, None, "missing-tool", missing)]
            return CheckResult.make(
                spec, passed=not spec.required, diagnostics=found, skipped=missing,
                output=missing + "\n",
            )  # fmt: skip
        base = run.sandbox.profile
        profile = replace(
            base,
            wall_seconds=min(base.wall_seconds, spec.timeout_s),
            cpu_seconds=max(1, min(base.cpu_seconds, math.ceil(spec.timeout_s))),
            write_paths=(*base.write_paths, scratch),
            read_paths=(*base.read_paths, *spec.read_paths),
        )
        env = {**run.sandbox.env, "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"}
        result = await run_sandboxed(
            argv, profile=profile, workspace=Path(run.root), env=env, trusted=run.sandbox.trusted
        )
        junit = None
        if spec.passes == "junit":
            junit = await asyncio.to_thread(
                FileReader(scratch).read, "junit.xml", MAX_JUNIT_BYTES + 1
            )
        passed, found = _judge(spec, run.root, result, junit)
        return CheckResult.make(
            spec,
            passed=passed,
            diagnostics=found,
            output=_output(result),
            exit_code=result.exit_code,
            duration_s=time.monotonic() - started,
            limits_hit=list(result.limits_hit),
        )
    finally:
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, scratch, True))


def _output(result: SandboxResult) -> str:
    out = result.stdout.decode("utf-8", errors="replace")
    err = result.stderr.decode("utf-8", errors="replace")
    return out + (f"\n--- stderr ---\n{err}" if err else "")


def _tail(check: str, result: SandboxResult, why: str) -> Diagnostic:
    text = _output(result).strip().splitlines()[-_TAIL_LINES:]
    shown = "\n".join(line[:300] for line in text)
    return Diagnostic(check, None, None, f"exit-{result.exit_code}", f"{why}:\n{shown}".strip())


def _judge(
    spec: CheckSpec, root: str, result: SandboxResult, junit: bytes | None
) -> tuple[bool, list[Diagnostic]]:
    """Whether the command passed under its rule, and what it found."""
    name, code = spec.name, result.exit_code
    stdout = result.stdout.decode("utf-8", errors="replace")
    limits = [
        Diagnostic(name, None, None, f"limit-{limit}",
                   f"the check hit the sandbox's {limit.replace('_', ' ')} limit "
                   f"(timeout {spec.timeout_s:g}s); its result cannot be trusted")
        for limit in result.limits_hit
    ]  # fmt: skip
    denials = [
        Diagnostic(name, None, None, f"denied-{d['reason']}", f"the sandbox refused: {d['detail']}")
        for d in result.denials[:5]
    ]
    found: list[Diagnostic] = []
    if spec.passes == "junit":
        passed, found = _junit(name, root, result, junit)
    elif spec.passes == "no_findings":
        parsed = parse_bandit(name, stdout, root) if spec.kind == "security" else None
        if parsed is None and spec.kind != "security":
            parsed = parse_lines(name, stdout, root)
        if parsed is None or code not in (0, 1):
            passed, found = False, [_tail(name, result, f"the tool failed (exit {code})")]
        else:
            passed, found = not parsed, parsed
    else:
        passed = code == 0
        if not passed:
            parser = {"build": parse_build, "lint": parse_ruff, "types": parse_mypy}.get(spec.kind)
            parsed = parser(name, stdout, root) if parser is not None else None
            found = parsed or [_tail(name, result, f"exited with {code}")]
    if limits:
        passed = False
    if not passed:
        found = [*limits, *found, *denials]
    return passed, found


def _junit(
    name: str, root: str, result: SandboxResult, junit: bytes | None
) -> tuple[bool, list[Diagnostic]]:
    code = result.exit_code
    if junit is None:
        why = "the command wrote no JUnit report (or not a regular file)"
        return False, [Diagnostic(name, None, None, "no-junit", why), _tail(name, result, why)]
    try:
        report = parse_junit(name, junit, root)
    except JUnitRefused as exc:
        return False, [Diagnostic(name, None, None, "junit-refused", str(exc))]
    if report.failures or report.errors:
        # the report wins over the exit status: a conftest can make pytest exit 0
        head = Diagnostic(
            name, None, None, "summary",
            f"{report.failures} failed, {report.errors} errors of {report.tests} tests "
            f"(exit {code})",
        )  # fmt: skip
        return False, [head, *report.failed]
    if code == 0 or (code == 5 and report.tests == 0):  # pytest's 'no tests collected'
        return True, []
    return False, [
        _tail(name, result, f"exited with {code} though the JUnit report has no failure")
    ]


def _redacted(result: CheckResult, redactor: Redactor) -> CheckResult:
    """``result`` with secrets replaced in its output and diagnostics (hash recomputed)."""
    return result.redacted(redactor.redact_text)


async def _base_contents(root: str, ref: str, paths: list[str]) -> dict[str, bytes | None] | None:
    """The files at ``ref`` (None for one absent there); None when git cannot say.

    git runs on the host against a repository the checked code could have
    written to, so it runs plumbing only (``cat-file``: no hooks, filters or
    fsmonitor), with no configuration but the repository's, no transport
    allowed (a partial clone's lazy fetch could run one) and no prompts.
    """
    git = shutil.which("git")
    if git is None or not _GIT_REF.match(ref) or ref.startswith("-"):
        return None
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_NO_LAZY_FETCH": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "LANG": "C",
    }
    hardened = [git, "-c", "protocol.allow=never", "-c", "core.fsmonitor=false", "-C", root]

    async def cat(spec: str) -> bytes | None:
        proc = await asyncio.create_subprocess_exec(
            *hardened, "cat-file", "blob", spec,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env=env,
        )  # fmt: skip
        try:
            async with asyncio.timeout(20):
                data, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return None
        return data if proc.returncode == 0 else None

    if not await _is_commit(hardened, env, ref):
        return None
    return {path: await cat(f"{ref}:{path}") for path in paths}


async def _is_commit(hardened: list[str], env: dict[str, str], ref: str) -> bool:
    proc = await asyncio.create_subprocess_exec(
        *hardened, "cat-file", "-e", f"{ref}^{{commit}}",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        async with asyncio.timeout(20):
            return await proc.wait() == 0
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False

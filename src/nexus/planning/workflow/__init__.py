"""Workflow files: a YAML description of a mission, compiled into a :class:`Plan`.

A workflow file is a mapping::

    version: 1                      # required, must be 1
    name: release-notes             # required, [A-Za-z0-9_.-]+
    description: optional text
    inputs:                         # declared inputs and their default values
      version: "1.0"
      db_password: {secret: true, env: DB_PASSWORD}   # a secret: never recorded
    workspace: out                  # relative to the file's directory, or absolute
    fail_fast: true                 # false = keep running independent tasks after a failure
    max_parallel: 16                # >= 1
    max_failures: 5                 # with fail_fast: false, end the run at the 5th failure
    max_failure_rate: 0.5           # ... or at half of its ended tasks failed (from 10 on)
    agents:
      writer:
        role: writer
        model: scripted:writer      # "provider:model"
        capabilities: [write]
        instructions: You write short release notes.
        scripted: ["Release {{ inputs.version }}: faster, safer."]
        max_concurrency: 0          # 0 = unlimited
    defaults: {retries: 2, timeout: 60, backoff: {initial: 0.5, multiplier: 2, maximum: 30}}
    tasks:
      changelog:                    # a tool task: `tool` plus optional `with`
        tool: shell
        with: {cmd: "git log --oneline -5"}
      draft:                        # an agent task: `prompt` plus `agent` or `capability`
        needs: [changelog]          # a list, or a single task id
        capability: write
        prompt: "Write notes from: {{ tasks.changelog.output.stdout }}"
      per_platform:
        needs: [draft]
        foreach: [linux, macos]     # a list, or a template such as "{{ inputs.platforms }}"
        tool: shell
        with: {cmd: "echo {{ item }}"}
        retries: 0                  # overrides `defaults`; also timeout, backoff, priority
        approval: required          # or {timeout: 3600, on_timeout: fail|escalate}

An input is declared by its default value, or by a mapping with the key
``secret`` or ``env`` and no keys but ``secret``, ``default``, ``env`` and
``description`` (so a default that is such a mapping is written
``{default: {...}}``). A secret input's value is never recorded (see
:mod:`nexus.engine.secret_inputs`); inputs named like secrets
(:func:`nexus.redaction.is_secret_name`: ``password``, ``api_key``,
``PGPASSWORD``, ``*_TOKEN``...) and inputs with ``env`` are secret unless
declared ``secret: false``. ``env`` names the environment variable that gives
the value when no ``-i`` does, also at resume.

Task ids and agent names match ``[A-Za-z_][A-Za-z0-9_-]*``. Unknown keys are
errors. Templates are Jinja2 (see :mod:`nexus.templating`): their syntax
is checked here, a template that reads ``tasks.<id>`` must (transitively)
depend on that task, and every other name it reads must exist (a declared
input, ``run.id``, ``item`` in a foreach task...). Agent instructions are
templates too.

What the file is checked against besides itself -- the tools and their
argument schemas, the model providers, the project's MCP servers -- comes
from the caller as a :class:`WorkflowContext` (planning reads no
configuration): :meth:`nexus.app.Project.workflow_context` gives a project's.

:func:`load_workflow` reads a file and :func:`compile_workflow` compiles an
already parsed document; :func:`validate_workflow` returns the plan or every
problem instead of raising. Every problem is a
:class:`~nexus.domain.errors.WorkflowError` naming the file, the task and the
field, and all of a file's problems are reported at once (one error whose
message lists each on a line, and whose ``problems`` holds each); a missing
file is a :class:`~nexus.domain.errors.NotFoundError`. Compilation is linear
in the size of the file: a 10,000-task workflow compiles in a fraction of a
second.

The package, one concern a module: :mod:`._yaml` reads the file (its limits,
the strict YAML loader), :mod:`._schema` is the file model (pydantic) and its
validation, :mod:`._compiler` runs the steps below in order,
:mod:`._inputs`, :mod:`._agents` and :mod:`._tasks` compile their sections,
:mod:`._values` checks JSON values and templates, :mod:`._names` the names
templates read, :mod:`._arguments` a tool task's arguments, :mod:`._grants`
the tools, profiles, budgets, model providers and MCP servers, :mod:`._graph`
the dependencies and the reads, :mod:`._context` is what the caller knows,
and :mod:`._errors` gathers and phrases the problems. :mod:`._extension`
compiles the tasks a running task adds to its run's plan the same way.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import Plan
from nexus.planning.workflow._compiler import check_document, compile_document
from nexus.planning.workflow._context import ToolInfo, WorkflowContext, tool_infos, with_names
from nexus.planning.workflow._extension import Extension, compile_extension
from nexus.planning.workflow._schema import WORKFLOW_VERSION
from nexus.planning.workflow._values import MAX_TEMPLATE_TEXT
from nexus.planning.workflow._yaml import (
    MAX_ALIAS_NODES,
    MAX_WORKFLOW_BYTES,
    MAX_YAML_NODES,
    parse_yaml,
    read_workflow,
)

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_TEMPLATE_TEXT",
    "MAX_WORKFLOW_BYTES",
    "MAX_YAML_NODES",
    "WORKFLOW_VERSION",
    "Extension",
    "ToolInfo",
    "Validation",
    "WorkflowContext",
    "compile_extension",
    "compile_workflow",
    "load_workflow",
    "tool_infos",
    "validate_workflow",
]


@dataclass(frozen=True, slots=True)
class Validation:
    """What :func:`validate_workflow` found.

    Attributes:
        plan: the compiled plan; None when there is a problem.
        problems: every problem, in the order found (empty: valid).
    """

    plan: Plan | None
    problems: tuple[WorkflowError, ...]


def load_workflow(
    path: str | Path,
    *,
    inputs: dict[str, Any] | None = None,
    known_tools: Collection[str] | None = None,
    context: WorkflowContext | None = None,
) -> Plan:
    """Read, validate and compile a workflow file.

    Args:
        path: the YAML workflow file.
        inputs: values overriding the file's declared ``inputs``.
        known_tools: when given, tool tasks must name one of these tools.
        context: what the file is checked against (tools, their argument
            schemas, model providers, the project's MCP servers).

    Returns:
        The compiled plan; its workspace is resolved against the file's directory.

    Raises:
        NotFoundError: the file does not exist.
        WorkflowError: the file cannot be read, is not valid YAML, or is not a
            valid workflow. The message names the file, task and field of
            every problem, one a line.
    """
    file_path = Path(path)
    file = str(path)
    text = read_workflow(file_path, file)
    doc = parse_yaml(text, file)
    return compile_workflow(
        doc,
        file=file,
        base_dir=file_path.resolve().parent,
        inputs=inputs,
        known_tools=known_tools,
        context=context,
    )


def validate_workflow(
    path: str | Path,
    *,
    inputs: dict[str, Any] | None = None,
    known_tools: Collection[str] | None = None,
    context: WorkflowContext | None = None,
) -> Validation:
    """Check a workflow file as :func:`load_workflow` does, returning every problem.

    A file that cannot be read or parsed is one problem.

    Raises:
        NotFoundError: the file does not exist.
    """
    file_path = Path(path)
    file = str(path)
    try:
        doc = parse_yaml(read_workflow(file_path, file), file)
    except WorkflowError as exc:
        return Validation(None, exc.problems)
    plan, problems = check_document(
        doc,
        file=file,
        base_dir=file_path.resolve().parent,
        inputs=inputs,
        context=with_names(context, known_tools),
    )
    return Validation(plan, tuple(problems))


def compile_workflow(
    doc: Any,
    *,
    file: str = "<workflow>",
    base_dir: Path | None = None,
    inputs: dict[str, Any] | None = None,
    known_tools: Collection[str] | None = None,
    context: WorkflowContext | None = None,
) -> Plan:
    """Validate an already parsed workflow document and compile it into a plan.

    Args:
        doc: the document, as parsed from YAML or JSON (any value is accepted
            and rejected with a WorkflowError when it is not a workflow).
        file: the name used in error messages.
        base_dir: the directory relative ``workspace`` paths are resolved
            against, and the workspace when the document sets none. Without it
            an unset workspace stays None and a relative one is resolved
            against the current directory.
        inputs: values overriding the document's declared ``inputs``; every
            key must be declared there.
        known_tools: when given, tool tasks must name one of these tools.
        context: what the document is checked against (see
            :class:`WorkflowContext`); ``known_tools`` adds to its tools.

    Returns:
        The plan, with tasks in document order.

    Raises:
        WorkflowError: the document is not a valid workflow; it lists every
            problem found (:attr:`~nexus.domain.errors.WorkflowError.problems`).
    """
    return compile_document(
        doc,
        file=file,
        base_dir=base_dir,
        inputs=inputs,
        context=with_names(context, known_tools),
    )

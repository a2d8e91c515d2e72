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
is checked here, and a template that reads ``tasks.<id>`` must (transitively)
depend on that task.

:func:`load_workflow` reads a file and :func:`compile_workflow` compiles an
already parsed document. Every problem is reported as a
:class:`~nexus.domain.errors.WorkflowError` naming the file, the task and the
field (a missing file is a :class:`~nexus.domain.errors.NotFoundError`).
Compilation is linear in the size of the file: a 10,000-task workflow
compiles in a fraction of a second.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
from collections.abc import Collection, Hashable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from nexus.domain.errors import NotFoundError, TemplateError, WorkflowError
from nexus.domain.graph import find_cycle, topological_order
from nexus.domain.plan import AgentSpec, ApprovalPolicy, Plan, RetryPolicy, TaskSpec
from nexus.redaction import is_secret_name
from nexus.security.paths import read_at_most
from nexus.security.workspaces import workspace_problem
from nexus.templating import MAX_TEMPLATE_CHARS, inspect_template, is_template

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = ["WORKFLOW_VERSION", "compile_workflow", "load_workflow"]

#: The only workflow file format version this module reads.
WORKFLOW_VERSION = 1

_ID_PATTERN = r"[A-Za-z_][A-Za-z0-9_-]*"
_ID_RE = re.compile(_ID_PATTERN)
_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
_MAX_SAFE_INT = 2**53 - 1
_MAX_DEPTH = 64
#: The largest workflow file read (1 MiB); a larger one is refused unread.
MAX_WORKFLOW_BYTES = 1 << 20
#: The most YAML nodes aliases may add to a document (each alias counts the
#: nodes it stands for): ordinary anchors stay far below, an alias bomb does not.
MAX_ALIAS_NODES = 100_000
#: The most YAML nodes (scalars, lists, mappings) a document may have: PyYAML
#: resolves and builds each in Python (~5-15 us), so this bounds the parse time.
MAX_YAML_NODES = 250_000
#: The most characters of templates that need Jinja2 to parse (~3 us a
#: character); plain ``{{ a.b }}`` references are read without it and not counted.
MAX_TEMPLATE_TEXT = 128_000
_LIST_KNOWN = 10  # list the known names in a message when there are at most this many

# --------------------------------------------------------------------------- models

_SafeInt = Annotated[int, Field(ge=-_MAX_SAFE_INT, le=_MAX_SAFE_INT)]
_Count = Annotated[int, Field(ge=0, le=_MAX_SAFE_INT)]
_NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @staticmethod
    def _empty_is(value: Any, empty: Any) -> Any:
        """An empty YAML value (``key:``) means the empty container."""
        return empty if value is None else value


class _Backoff(_Model):
    initial: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    multiplier: float | None = Field(default=None, ge=1, allow_inf_nan=False)
    maximum: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class _Defaults(_Model):
    retries: _Count = 0
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    backoff: _Backoff = Field(default_factory=_Backoff)

    @field_validator("backoff", mode="before")
    @classmethod
    def _no_backoff(cls, value: Any) -> Any:
        return cls._empty_is(value, {})


class _Agent(_Model):
    role: str = ""
    model: str
    capabilities: list[_NonEmpty] = Field(default_factory=list)
    instructions: str = ""
    scripted: list[str] = Field(default_factory=list)
    max_concurrency: _Count = 0
    tools: list[_NonEmpty] = Field(default_factory=list)
    max_steps: Annotated[int, Field(ge=1, le=1000)] = 8
    fallbacks: list[_NonEmpty] = Field(default_factory=list)
    tiers: dict[Literal["small", "medium", "large"], _NonEmpty] = Field(default_factory=dict)
    max_tokens: Annotated[int, Field(ge=1, le=_MAX_SAFE_INT)] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    budget: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None

    @field_validator("capabilities", "scripted", "tools", "fallbacks", mode="before")
    @classmethod
    def _no_items(cls, value: Any) -> Any:
        return cls._empty_is(value, [])


class _Approval(_Model):
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    on_timeout: Literal["fail", "escalate"] = "fail"


class _Task(_Model):
    needs: list[str] = Field(default_factory=list)
    tool: _NonEmpty | None = None
    args: dict[str, Any] | None = Field(default=None, alias="with")
    agent: _NonEmpty | None = None
    capability: _NonEmpty | None = None
    prompt: str | None = None
    foreach: Any = None
    retries: _Count | None = None
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    backoff: _Backoff | None = None
    priority: _SafeInt = 0
    approval: _Approval | None = None
    profile: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    complexity: Literal["small", "medium", "large"] | None = None
    max_cost: float | str | None = None
    max_latency_ms: Annotated[int, Field(ge=1, le=_MAX_SAFE_INT)] | None = None
    budget: dict[str, Any] | None = None

    @field_validator("approval", mode="before")
    @classmethod
    def _required_is_default(cls, value: Any) -> Any:
        if value == "required":
            return {}
        if isinstance(value, str):
            raise ValueError("must be 'required' or a mapping {timeout, on_timeout}")
        return value

    @field_validator("needs", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str) else value


class _Workflow(_Model):
    version: Literal[1]
    name: Annotated[str, StringConstraints(pattern=_NAME_PATTERN)]
    description: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    workspace: _NonEmpty | None = None
    fail_fast: bool = True
    max_parallel: Annotated[int, Field(ge=1, le=_MAX_SAFE_INT)] = 16
    agents: dict[str, _Agent] = Field(default_factory=dict)
    defaults: _Defaults = Field(default_factory=_Defaults)
    mcp_servers: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    tasks: dict[str, _Task]

    @field_validator("inputs", "agents", "defaults", mode="before")
    @classmethod
    def _no_entries(cls, value: Any) -> Any:
        return cls._empty_is(value, {})


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model whose keys are validated at ``loc`` (the location of an unknown key)."""
    parent = loc[:-1]
    if not parent:
        return _Workflow
    if parent[0] == "tasks":
        if len(parent) == 2:
            return _Task
        if len(parent) == 3 and parent[2] == "backoff":
            return _Backoff
    if parent[0] == "agents" and len(parent) == 2:
        return _Agent
    if parent == ("defaults",):
        return _Defaults
    if parent == ("defaults", "backoff"):
        return _Backoff
    return None


_INPUT_KEYS = frozenset({"secret", "default", "env", "description"})
_ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _input_declaration(value: Any) -> dict[str, Any] | None:
    """``value`` when it declares an input (``{secret: true, default: ...}``), else None."""
    if (
        isinstance(value, dict)
        and ("secret" in value or "env" in value)
        and _INPUT_KEYS.issuperset(value)
    ):
        return value
    return None


# --------------------------------------------------------------------------- YAML


_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKey(yaml.MarkedYAMLError):
    """A mapping has the same key twice."""


class _StrictLoader(_SafeLoader):
    """A SafeLoader that rejects duplicate keys and reads dates as plain strings.

    Plans are JSON, so ``released: 2024-05-01`` stays the string ``"2024-05-01"``
    instead of becoming a :class:`datetime.date`.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Hashable, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            first = seen.get(key)
            if first is not None:
                raise _DuplicateKey(
                    problem=(
                        f"duplicate key {key!r} (first defined at line {first.start_mark.line + 1})"
                    ),
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node
        mapping: dict[Hashable, Any] = super().construct_mapping(node, deep=deep)
        return mapping

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        # called by the parser once per node as the document is composed: count them
        self._nodes = getattr(self, "_nodes", 0) + 1
        if self._nodes > MAX_YAML_NODES:
            raise _AliasBomb(
                problem=(
                    f"the document has more than {MAX_YAML_NODES:,} values "
                    "(scalars, lists, mappings): the limit"
                ),
                problem_mark=None,
            )
        tag: str = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return tag

    def construct_document(self, node: yaml.Node) -> Any:
        _check_aliases(node)
        return super().construct_document(node)


class _AliasBomb(yaml.MarkedYAMLError):
    """Aliases make the document too large (or make it contain itself)."""


def _check_aliases(root: yaml.Node) -> None:
    """Refuse a document whose aliases stand for more than :data:`MAX_ALIAS_NODES` nodes.

    The composer hands over a graph in which an alias is the very node it
    names, so a 700-byte "billion laughs" is ~100 nodes that stand for 10**9.
    The size each node stands for is computed once (memoised by identity), so
    this costs one visit per distinct node, whatever the aliases multiply.
    """
    size: dict[int, int] = {}
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    scalar = yaml.ScalarNode
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1
            for child in _children(node):
                total += 1 if type(child) is scalar else size[id(child)]
            size[key] = total
            if total - distinct > MAX_ALIAS_NODES:
                raise _AliasBomb(
                    problem=(
                        f"aliases expand the document past the limit of {MAX_ALIAS_NODES:,} "
                        "extra nodes (an alias bomb?)"
                    ),
                    problem_mark=node.start_mark,
                )
            continue
        if key in size:
            continue
        if key in on_path:
            raise _AliasBomb(
                problem="an alias refers to itself (the value would contain itself)",
                problem_mark=node.start_mark,
            )
        children = _children(node)
        distinct += 1 + len(children)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if type(c) is not scalar and id(c) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value  # type: ignore[no-any-return]
    return []


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _read_workflow(path: Path, file: str) -> str:
    """The text of a regular file of at most :data:`MAX_WORKFLOW_BYTES`.

    Opened non-blocking, so a FIFO cannot hang the open; the kind and size are
    checked on the open descriptor (no race with a rename), and at most one
    byte past the limit is ever read (the file may grow after the check).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFoundError(f"workflow file not found: {file}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise WorkflowError(f"cannot read the workflow file: {reason}", file=file) from None
    try:
        info = os.fstat(fd)
        mode = info.st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
            raise WorkflowError(
                f"cannot read the workflow file: it is {kind}, not a regular file", file=file
            )
        data = read_at_most(fd, MAX_WORKFLOW_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise WorkflowError(f"cannot read the workflow file: {reason}", file=file) from None
    finally:
        os.close(fd)
    if len(data) > MAX_WORKFLOW_BYTES:
        size = max(info.st_size, len(data))
        raise WorkflowError(
            f"the workflow file is {size / (1 << 20):.1f} MiB; the limit is "
            f"{MAX_WORKFLOW_BYTES >> 20} MiB",
            file=file,
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkflowError(
            f"cannot read the workflow file: not UTF-8 text (byte {exc.start})", file=file
        ) from None


def _parse_yaml(text: str, file: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{problem} ({exc.context})"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise WorkflowError(f"invalid YAML{where}: {problem}", file=file) from None
    except yaml.YAMLError as exc:
        raise WorkflowError(f"invalid YAML: {exc}", file=file) from None
    except RecursionError:
        raise WorkflowError("invalid YAML: nested too deeply", file=file) from None


# --------------------------------------------------------------------------- public API


def load_workflow(
    path: str | Path,
    *,
    inputs: dict[str, Any] | None = None,
    known_tools: Collection[str] | None = None,
) -> Plan:
    """Read, validate and compile a workflow file.

    Args:
        path: the YAML workflow file.
        inputs: values overriding the file's declared ``inputs``.
        known_tools: when given, tool tasks must name one of these tools.

    Returns:
        The compiled plan; its workspace is resolved against the file's directory.

    Raises:
        NotFoundError: the file does not exist.
        WorkflowError: the file cannot be read, is not valid YAML, or is not a
            valid workflow. The message names the file, task and field.
    """
    file_path = Path(path)
    file = str(path)
    text = _read_workflow(file_path, file)
    doc = _parse_yaml(text, file)
    return compile_workflow(
        doc,
        file=file,
        base_dir=file_path.resolve().parent,
        inputs=inputs,
        known_tools=known_tools,
    )


def compile_workflow(
    doc: Any,
    *,
    file: str = "<workflow>",
    base_dir: Path | None = None,
    inputs: dict[str, Any] | None = None,
    known_tools: Collection[str] | None = None,
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

    Returns:
        The plan, with tasks in document order.

    Raises:
        WorkflowError: the document is not a valid workflow.
    """
    return _Compiler(file, known_tools).compile(doc, base_dir, inputs)


# --------------------------------------------------------------------------- compiler


class _Compiler:
    def __init__(self, file: str, known_tools: Collection[str] | None) -> None:
        self.file = file
        self.known_tools = None if known_tools is None else frozenset(known_tools)
        self.mcp_names: frozenset[str] = frozenset()
        self.template_chars = 0  # of templates Jinja2 must parse (see MAX_TEMPLATE_TEXT)

    def error(self, message: str, *, task: str | None = None, field: str | None = None) -> NoReturn:
        raise WorkflowError(message, file=self.file, task=task, field=field)

    # -- structure ---------------------------------------------------------

    def compile(self, doc: Any, base_dir: Path | None, overrides: dict[str, Any] | None) -> Plan:
        wf = self.validate(doc)
        self.mcp_names = frozenset(wf.mcp_servers or {})
        plan_inputs, secret_inputs = self.merge_inputs(wf.inputs, overrides)
        agents = {name: self.agent(name, spec) for name, spec in wf.agents.items()}
        capabilities = {cap for agent in agents.values() for cap in agent.capabilities}
        default_retry = _retry_policy(wf.defaults, None, None)
        default_timeout = wf.defaults.timeout
        reads: dict[str, list[tuple[str, str]]] = {}
        tasks: dict[str, TaskSpec] = {}
        for tid, spec in wf.tasks.items():
            self.check_kind(tid, spec, agents, capabilities)
            args, foreach = self.check_values(tid, spec, wf.tasks, reads)
            if spec.retries is None and spec.backoff is None:
                retry = default_retry
            else:
                retry = _retry_policy(wf.defaults, spec.retries, spec.backoff)
            timeout = spec.timeout if spec.timeout is not None else default_timeout
            tasks[tid] = TaskSpec(
                id=tid,
                needs=tuple(spec.needs),
                tool=spec.tool,
                args=args,
                agent=spec.agent,
                capability=spec.capability,
                prompt=spec.prompt,
                foreach=foreach,
                retry=retry,
                timeout=None if timeout is None else float(timeout),
                priority=spec.priority,
                approval=_approval_policy(spec.approval),
                profile=self.profile(tid, spec.profile),
                output_schema=self.output_schema(tid, spec),
                routing=self.routing(tid, spec),
                budget=self.budget(spec.budget, f"tasks.{tid}.budget", task=tid),
            )
        needs = {tid: task.needs for tid, task in tasks.items()}
        self.check_needs(needs)
        if reads:
            self.check_reads(needs, reads)
        return Plan(
            name=wf.name,
            tasks=tasks,
            agents=agents,
            inputs=plan_inputs,
            workspace=self.workspace(wf.workspace, base_dir),
            fail_fast=wf.fail_fast,
            max_parallel=wf.max_parallel,
            version=wf.version,
            mcp_servers=self.mcp_servers(wf.mcp_servers),
            budget=self.budget(wf.budget, "budget"),
            secret_inputs=secret_inputs,
        )

    def validate(self, doc: Any) -> _Workflow:
        if doc is None:
            self.error("the workflow is empty")
        if not isinstance(doc, dict):
            self.error(f"a workflow must be a mapping of keys to values, not {_kind(doc)}")
        version = doc.get("version", WORKFLOW_VERSION)
        if type(version) is not int or version != WORKFLOW_VERSION:
            self.error(
                f"unsupported workflow version {version!r}; this Nexus reads version "
                f"{WORKFLOW_VERSION}",
                field="version",
            )
        for section, what in (("tasks", "task id"), ("agents", "agent name")):
            entries = doc.get(section)
            if isinstance(entries, dict):
                for key in entries:
                    if not isinstance(key, str) or _ID_RE.fullmatch(key) is None:
                        self.error(
                            f"invalid {what} {key!r}: it must match {_ID_PATTERN}",
                            task=key if section == "tasks" and isinstance(key, str) else None,
                            field=section,
                        )
        if "tasks" in doc and not doc["tasks"] and isinstance(doc["tasks"], dict | None):
            self.error("the workflow has no tasks", field="tasks")
        try:
            return _Workflow.model_validate(doc)
        except ValidationError as exc:
            raise self.convert(exc) from None
        except RecursionError:
            raise WorkflowError("the workflow is nested too deeply", file=self.file) from None

    def convert(self, exc: ValidationError) -> WorkflowError:
        errors = exc.errors(include_url=False)
        first = errors[0]
        if first["type"] == "missing":
            # A misspelt key is reported as both missing and unknown: the typo explains more.
            parent = first["loc"][:-1]
            typos = [
                e for e in errors if e["type"] == "extra_forbidden" and e["loc"][:-1] == parent
            ]
            first = typos[0] if typos else first
        loc = tuple(first["loc"])
        kind = first["type"]
        key = loc[-1] if loc else ""
        if key == "[key]":  # a mapping key (not its value) is invalid
            loc = loc[:-1]
            key = loc[-1]
        if kind == "missing":
            message = f"missing required key '{key}'"
        elif kind == "extra_forbidden":
            message = f"unknown key '{key}'"
            model = _model_at(loc)
            if model is not None:
                allowed = _keys_of(model)
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(allowed)
                message += f" ({hint})"
        else:
            message = first["msg"]
            if first["loc"][-1:] == ("[key]",):
                message = f"key {key!r}: {message}"
            value = first.get("input")
            if not isinstance(value, dict | list) and len(repr(value)) <= 60:
                message += f", got {value!r}"
        if len(errors) > 1:
            more = len(errors) - 1
            message += f" (and {more} more error{'s' if more > 1 else ''})"
        task = loc[1] if len(loc) > 1 and loc[0] == "tasks" and isinstance(loc[1], str) else None
        return WorkflowError(message, file=self.file, task=task, field=_path(loc) or None)

    def merge_inputs(
        self, declared: dict[str, Any], overrides: dict[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, str | None]]:
        """The inputs' values (defaults, then ``overrides``) and the secret ones' ``env``."""
        merged: dict[str, Any] = {}
        secret: dict[str, str | None] = {}
        for key, value in declared.items():
            if not isinstance(key, str):
                self.error(f"input names must be strings, not {_kind(key)}", field="inputs")
            declaration = _input_declaration(value)
            if declaration is None:
                if is_secret_name(key):
                    secret[key] = None
                merged[key] = self.json(value, f"inputs.{key}")
                continue
            env = self.input_declaration(key, declaration)
            if declaration.get("secret", is_secret_name(key) or env is not None):
                secret[key] = env
            if "default" in declaration:
                merged[key] = self.json(declaration["default"], f"inputs.{key}.default")
        for key, value in (overrides or {}).items():
            if key not in declared:
                known = (
                    "declared inputs: " + ", ".join(sorted(declared))
                    if declared
                    else "the workflow declares no inputs"
                )
                self.error(f"unknown input {key!r} ({known})", field="inputs")
            merged[key] = self.json(value, f"inputs.{key}")
        return merged, secret

    def input_declaration(self, key: str, declaration: dict[str, Any]) -> str | None:
        """Check an input's declaration mapping; its ``env`` variable, if any."""
        where = f"inputs.{key}"
        flag = declaration.get("secret", False)
        if not isinstance(flag, bool):
            self.error(
                f"'secret' must be true or false, got {_kind(flag)}", field=f"{where}.secret"
            )
        description = declaration.get("description", "")
        if not isinstance(description, str):
            self.error("'description' must be text", field=f"{where}.description")
        env = declaration.get("env")
        if env is None:
            return None
        if not isinstance(env, str) or _ENV_RE.fullmatch(env) is None:
            self.error(
                "'env' must name an environment variable ([A-Za-z_][A-Za-z0-9_]*)",
                field=f"{where}.env",
            )
        if declaration.get("secret") is False:
            self.error(
                "'env' gives secret inputs their value; this input is declared secret: false",
                field=f"{where}.env",
            )
        return env

    def workspace(self, workspace: str | None, base_dir: Path | None) -> str | None:
        """The workspace's real path, resolved once here (see :mod:`nexus.security.workspaces`).

        With a file (``base_dir``) it must lie under the file's directory or the
        current one; a document built in code is only kept out of system
        directories.
        """
        if workspace is None and base_dir is None:
            return None
        if workspace is None:
            path = base_dir if base_dir is not None else Path.cwd()
            written = "the workflow file's directory"
        else:
            path = Path(workspace).expanduser()
            if not path.is_absolute():
                path = (base_dir if base_dir is not None else Path.cwd()) / path
            written = f"{workspace!r}"
        real = os.path.realpath(path)
        roots = None
        if base_dir is not None:
            roots = list(dict.fromkeys([os.path.realpath(base_dir), os.path.realpath(os.getcwd())]))
        problem = workspace_problem(real, roots=roots)
        if problem is not None:
            shown = "" if os.path.normpath(path) == real else f" ({path} resolves to {real})"
            self.error(f"workspace {written}{shown} may not be used: {problem}", field="workspace")
        return real

    # -- agents and tasks ---------------------------------------------------

    def agent(self, name: str, spec: _Agent) -> AgentSpec:
        provider, sep, model = spec.model.partition(":")
        if not sep or not provider.strip() or not model.strip():
            self.error(
                f"model {spec.model!r} must be 'provider:model', e.g. 'openai:gpt-4o'",
                field=f"agents.{name}.model",
            )
        for i, line in enumerate(spec.scripted):
            self.template(line, task=None, field=f"agents.{name}.scripted[{i}]")
        models = [(f"agents.{name}.fallbacks[{i}]", m) for i, m in enumerate(spec.fallbacks)]
        models += [(f"agents.{name}.tiers.{tier}", m) for tier, m in sorted(spec.tiers.items())]
        for where, model_name in models:
            first, sep, rest = model_name.partition(":")
            if not sep or not first.strip() or not rest.strip():
                self.error(f"model {model_name!r} must be 'provider:model'", field=where)
        for i, tool_name in enumerate(spec.tools):
            server = tool_name.partition(".")[0] if "." in tool_name else None
            from_mcp = server is not None and server in self.mcp_names
            if self.known_tools is not None and tool_name not in self.known_tools and not from_mcp:
                self.error(
                    f"unknown tool {tool_name!r} ({_known('known tools', self.known_tools)})",
                    field=f"agents.{name}.tools[{i}]",
                )
        grant = None
        if spec.profile is not None:
            try:
                grant = _profile_grant(self.file, "", spec.profile)
            except WorkflowError as exc:
                self.error(exc.message, field=f"agents.{name}.profile")
        return AgentSpec(
            name=name,
            role=spec.role,
            model=spec.model,
            capabilities=tuple(spec.capabilities),
            instructions=spec.instructions,
            scripted=tuple(spec.scripted),
            max_concurrency=spec.max_concurrency,
            tools=tuple(spec.tools),
            max_steps=spec.max_steps,
            fallbacks=tuple(spec.fallbacks),
            tiers=dict(sorted(spec.tiers.items())),
            max_tokens=spec.max_tokens,
            temperature=spec.temperature,
            budget=self.budget(spec.budget, f"agents.{name}.budget"),
            profile=grant,
        )

    def budget(
        self, raw: dict[str, Any] | None, where: str, *, task: str | None = None
    ) -> dict[str, Any] | None:
        """Validate a ``budget:`` table; keep its canonical form (money as a string)."""
        if raw is None:
            return None
        from nexus.domain.budget import Limits
        from nexus.domain.errors import UserError

        try:
            return Limits.from_dict(raw, where).to_dict()
        except UserError as exc:
            field = "budget" if task is not None else where
            raise WorkflowError(exc.message, file=self.file, task=task, field=field) from None

    def output_schema(self, tid: str, spec: _Task) -> dict[str, Any] | None:
        """Check that ``output_schema`` is a valid JSON schema (any draft jsonschema knows)."""
        raw = spec.output_schema
        if raw is None:
            return None
        if spec.tool is not None:
            self.error("output_schema applies to agent tasks", task=tid, field="output_schema")
        import jsonschema

        schema = self.json(raw, "output_schema", task=tid)
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            self.error(
                f"not a valid JSON schema at {where}: {exc.message}",
                task=tid,
                field="output_schema",
            )
        return dict(schema)

    def routing(self, tid: str, spec: _Task) -> dict[str, Any] | None:
        """A task's model-routing constraints: complexity, max_cost, max_latency_ms."""
        if spec.complexity is None and spec.max_cost is None and spec.max_latency_ms is None:
            return None
        if spec.tool is not None:
            self.error(
                "model routing (complexity, max_cost, max_latency_ms) applies to agent tasks",
                task=tid,
                field="complexity" if spec.complexity is not None else "max_cost",
            )
        data: dict[str, Any] = {}
        if spec.complexity is not None:
            data["tier"] = spec.complexity
        if spec.max_cost is not None:
            from decimal import Decimal, InvalidOperation

            try:
                cost = Decimal(str(spec.max_cost))
            except InvalidOperation:
                cost = Decimal(-1)
            if not cost.is_finite() or cost <= 0:
                self.error(
                    f"max_cost must be a positive amount in USD, got {spec.max_cost!r}",
                    task=tid,
                    field="max_cost",
                )
            data["max_cost"] = str(cost)
        if spec.max_latency_ms is not None:
            data["max_latency_ms"] = spec.max_latency_ms
        return data

    def check_values(
        self,
        tid: str,
        spec: _Task,
        tasks: Mapping[str, object],
        reads: dict[str, list[tuple[str, str]]],
    ) -> tuple[dict[str, Any], Any]:
        """Check a task's JSON values and templates; return its ``with`` and ``foreach``."""
        refs: list[tuple[str, str]] = []
        args: dict[str, Any] = {}
        if spec.args is not None:
            args = self.json(spec.args, "with", task=tid)
            for field, text in _strings(args, "with"):
                refs.extend((ref, field) for ref in self.template(text, task=tid, field=field))
        if spec.prompt is not None:
            refs.extend((ref, "prompt") for ref in self.template(spec.prompt, tid, "prompt"))
        foreach = self.foreach(tid, spec.foreach, refs)
        if refs:
            self.check_refs(tid, tuple(spec.needs), refs, tasks, reads)
        return args, foreach

    def mcp_servers(self, raw: dict[str, Any] | None) -> dict[str, Any]:
        """Validate the ``mcp_servers`` table (its tools are discovered at run time)."""
        if not raw:
            return {}
        from nexus.domain.errors import UserError
        from nexus.tools.mcp import parse_mcp_servers

        try:
            parse_mcp_servers(raw)
        except UserError as exc:
            raise WorkflowError(exc.message, file=self.file, field="mcp_servers") from None
        return dict(raw)

    def profile(self, tid: str, raw: dict[str, Any] | None) -> dict[str, Any] | None:
        return _profile_grant(self.file, tid, raw)

    def check_kind(
        self,
        tid: str,
        spec: _Task,
        agents: Mapping[str, AgentSpec],
        capabilities: Collection[str],
    ) -> None:
        agentish = [
            key
            for key, value in (
                ("prompt", spec.prompt),
                ("agent", spec.agent),
                ("capability", spec.capability),
            )
            if value is not None
        ]
        if spec.tool is not None:
            if agentish:
                self.error(
                    f"a task is either a tool task (`tool`, `with`) or an agent task "
                    f"(`prompt` with `agent` or `capability`), not both; remove "
                    f"`{agentish[0]}` or `tool`",
                    task=tid,
                    field=agentish[0],
                )
            server = spec.tool.partition(".")[0] if "." in spec.tool else None
            from_mcp = server is not None and server in self.mcp_names
            if self.known_tools is not None and spec.tool not in self.known_tools and not from_mcp:
                self.error(
                    f"unknown tool {spec.tool!r} ({_known('known tools', self.known_tools)})",
                    task=tid,
                    field="tool",
                )
            return
        if not agentish:
            self.error(
                "the task does nothing: give it a `tool` (with `with`), or a `prompt` "
                "with an `agent` or `capability`",
                task=tid,
            )
        if spec.args is not None:
            self.error(
                "`with` is for tool tasks; an agent task takes a `prompt`", task=tid, field="with"
            )
        if spec.agent is not None and spec.capability is not None:
            self.error("set either `agent` or `capability`, not both", task=tid, field="capability")
        if spec.agent is None and spec.capability is None:
            self.error(
                "a `prompt` needs an `agent` or a `capability` to say who runs it",
                task=tid,
                field="prompt",
            )
        if spec.prompt is None:
            self.error("an agent task needs a `prompt`", task=tid, field="prompt")
        if spec.agent is not None and spec.agent not in agents:
            self.error(
                f"unknown agent {spec.agent!r} ({_known('defined agents', agents)})",
                task=tid,
                field="agent",
            )
        if spec.capability is not None and spec.capability not in capabilities:
            self.error(
                f"no agent has capability {spec.capability!r} "
                f"({_known('available capabilities', capabilities)})",
                task=tid,
                field="capability",
            )

    def foreach(self, tid: str, value: Any, refs: list[tuple[str, str]]) -> Any:
        if value is None:
            return None
        if isinstance(value, list):
            items = self.json(value, "foreach", task=tid)
            for field, text in _strings(items, "foreach"):
                refs.extend((ref, field) for ref in self.template(text, task=tid, field=field))
            return items
        if isinstance(value, str) and is_template(value):
            refs.extend((ref, "foreach") for ref in self.template(value, tid, "foreach"))
            return value
        if isinstance(value, str):
            hint = f"a list such as [{value}] or a template such as '{{{{ inputs.items }}}}'"
        else:
            hint = f"a list or a template such as '{{{{ inputs.items }}}}', not {_kind(value)}"
        self.error(f"foreach must be {hint}", task=tid, field="foreach")

    def template(self, source: str, task: str | None, field: str) -> list[str]:
        """Check a string's template syntax; return the task ids it reads, sorted."""
        if not is_template(source):
            return []
        if len(source) > MAX_TEMPLATE_CHARS:
            self.error(
                f"the template is {len(source):,} characters long; the limit is "
                f"{MAX_TEMPLATE_CHARS:,}",
                task=task,
                field=field,
            )
        fast = _simple_refs(source)
        if fast is not None:
            return sorted(fast)
        self.template_chars += len(source)
        if self.template_chars > MAX_TEMPLATE_TEXT:
            self.error(
                f"the templates that need Jinja2 (more than plain {{{{ a.b }}}} references) "
                f"total more than {MAX_TEMPLATE_TEXT:,} characters (the limit)",
                task=task,
                field=field,
            )
        try:
            return sorted(inspect_template(source))
        except TemplateError as exc:
            self.error(f"{exc.message.rstrip('.')} in {_snippet(source)}", task=task, field=field)

    # -- the graph ----------------------------------------------------------

    def check_refs(
        self,
        tid: str,
        needs: tuple[str, ...],
        refs: list[tuple[str, str]],
        tasks: Mapping[str, object],
        reads: dict[str, list[tuple[str, str]]],
    ) -> None:
        """Check what can be checked locally; queue indirect reads for :meth:`check_reads`."""
        direct = set(needs)
        for ref, field in refs:
            if ref in direct:
                continue
            if ref == tid:
                self.error(
                    f"reads its own output (tasks.{ref}); a task can only read the tasks "
                    "it depends on",
                    task=tid,
                    field=field,
                )
            if ref not in tasks:
                hyphenated = [t for t in tasks if t.startswith(ref + "-")]
                hint = (
                    f"; to read '{hyphenated[0]}' write tasks['{hyphenated[0]}']"
                    if hyphenated
                    else ""
                )
                self.error(
                    f"reads tasks.{ref} but there is no task {ref!r}{hint}",
                    task=tid,
                    field=field,
                )
            reads.setdefault(tid, []).append((ref, field))

    def check_needs(self, needs: dict[str, tuple[str, ...]]) -> None:
        for tid, deps in needs.items():
            seen: set[str] = set()
            for dep in deps:
                if dep == tid:
                    self.error("depends on itself", task=tid, field="needs")
                if dep not in needs:
                    close = difflib.get_close_matches(dep, needs, n=1)
                    hint = f"did you mean {close[0]!r}?" if close else _known("known tasks", needs)
                    self.error(f"needs unknown task {dep!r} ({hint})", task=tid, field="needs")
                if dep in seen:
                    self.error(f"lists {dep!r} twice", task=tid, field="needs")
                seen.add(dep)
        cycle = find_cycle(needs)
        if cycle is not None:
            self.error(
                "dependency cycle: " + " -> ".join(cycle) + " (each task needs the next)",
                task=cycle[0],
                field="needs",
            )

    def check_reads(
        self, needs: dict[str, tuple[str, ...]], reads: dict[str, list[tuple[str, str]]]
    ) -> None:
        """Every task read by a template must be a transitive dependency of the reader.

        One pass in topological order carries, per task, a bit mask of the read
        targets among its ancestors (only tasks read other than through a direct
        ``needs`` entry get a bit). A mask is dropped once all its dependents
        have been visited, so at most the graph's width of masks are alive.
        """
        targets = sorted({ref for pending in reads.values() for ref, _ in pending})
        bit = {ref: 1 << i for i, ref in enumerate(targets)}
        waiting: dict[str, int] = dict.fromkeys(needs, 0)
        for deps in needs.values():
            for dep in deps:
                waiting[dep] += 1
        masks: dict[str, int] = {}
        failures: list[tuple[str, str, str]] = []
        for tid in topological_order(needs):
            mask = 0
            for dep in needs[tid]:
                mask |= masks[dep] | bit.get(dep, 0)
                waiting[dep] -= 1
                if not waiting[dep]:
                    del masks[dep]
            if waiting[tid]:
                masks[tid] = mask
            for ref, field in reads.get(tid, ()):
                if not mask & bit[ref]:
                    failures.append((tid, ref, field))
                    break
        if failures:
            position = {tid: i for i, tid in enumerate(needs)}
            tid, ref, field = min(failures, key=lambda failure: position[failure[0]])
            self.error(
                f"reads tasks.{ref} but does not depend on it; add it to needs",
                task=tid,
                field=field,
            )

    # -- JSON values ----------------------------------------------------------

    def json(self, value: Any, field: str, task: str | None = None) -> Any:
        """A fresh copy of ``value``, checked to be plain JSON (plans are hashed as JSON)."""
        return self._json(value, field, task, 0)

    def _json(self, value: Any, field: str, task: str | None, depth: int) -> Any:
        if value is None or isinstance(value, str | bool):
            return value
        if isinstance(value, int):
            if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
                return value
            self.error(f"integer {value} is too large for JSON", task=task, field=field)
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            self.error(f"{value} is not a JSON number", task=task, field=field)
        if depth >= _MAX_DEPTH:
            field = field if len(field) <= 60 else field[:57] + "..."
            self.error(
                f"value is nested more than {_MAX_DEPTH} levels deep (or refers to itself)",
                task=task,
                field=field,
            )
        if isinstance(value, list):
            return [
                self._json(item, f"{field}[{i}]", task, depth + 1) for i, item in enumerate(value)
            ]
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self.error(f"key {key!r} must be a string (quote it)", task=task, field=field)
                out[key] = self._json(item, f"{field}.{key}", task, depth + 1)
            return out
        self.error(
            f"{_kind(value)} is not a JSON value; use a string, number, boolean, null, "
            "list or mapping",
            task=task,
            field=field,
        )


# --------------------------------------------------------------------------- helpers

# A template made only of text and ``{{ name.attr['key'] }}`` expressions compiles
# for sure, and its task reads can be found without Jinja (which costs ~0.5 ms
# per distinct template to compile). Anything else goes through Jinja.
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ACCESS = rf"(?:\.{_IDENT}|\[\s*(?:'[^'\\{{}}]*'|\"[^\"\\{{}}]*\")\s*\])"
_EXPR = rf"\{{\{{\s*(?P<head>{_IDENT})(?P<first>{_ACCESS})?{_ACCESS}*\s*\}}\}}"
_EXPR_RE = re.compile(_EXPR)
_SIMPLE_RE = re.compile(rf"(?:[^{{]++|\{{(?![{{%#])|{_EXPR})*+")
_KEYWORDS = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "elif", "true", "false", "none"}
    | {"True", "False", "None"}
)


def _simple_refs(source: str) -> set[str] | None:
    """Task ids read by a simple template; None when Jinja must look at it."""
    if _SIMPLE_RE.fullmatch(source) is None:
        return None
    refs: set[str] = set()
    for match in _EXPR_RE.finditer(source):
        head, first = match.group("head", "first")
        if head in _KEYWORDS:
            return None
        if head == "tasks" and first:
            refs.add(first[1:] if first[0] == "." else first.strip("[] \t\r\n")[1:-1])
    return refs


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside a JSON value, with its field path (``with.env.HOME``)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def _profile_grant(file: str, tid: str, raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """Validate a task's ``profile:`` now, so a typo fails before the run starts."""
    if raw is None:
        return None
    from nexus.domain.errors import UserError
    from nexus.tools.profile import ExecProfile

    try:
        ExecProfile.from_dict(raw, "profile")  # validate; keep only what the task says
    except UserError as exc:
        raise WorkflowError(exc.message, file=file, task=tid, field="profile") from None
    return dict(raw)


def _approval_policy(value: _Approval | None) -> ApprovalPolicy | None:
    if value is None:
        return None
    timeout = None if value.timeout is None else float(value.timeout)
    return ApprovalPolicy(timeout=timeout, on_timeout=value.on_timeout)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _retry_policy(defaults: _Defaults, retries: int | None, own: _Backoff | None) -> RetryPolicy:
    """A task's retry policy: its own settings, else the workflow's defaults, else the base."""
    base = RetryPolicy()
    backoff = own or _Backoff()
    return RetryPolicy(
        retries=retries if retries is not None else defaults.retries,
        initial=_first(backoff.initial, defaults.backoff.initial, base.initial),
        multiplier=_first(backoff.multiplier, defaults.backoff.multiplier, base.multiplier),
        maximum=_first(backoff.maximum, defaults.backoff.maximum, base.maximum),
    )


def _first(*values: float | None) -> float:
    for value in values:
        if value is not None:
            return float(value)
    raise AssertionError("no value")  # pragma: no cover - the last value is a float


def _known(label: str, names: Collection[str]) -> str:
    if not names:
        return f"no {label.split(' ', 1)[-1]} are defined"
    ordered = sorted(names)
    if len(ordered) > _LIST_KNOWN:
        return f"{label}: " + ", ".join(ordered[:_LIST_KNOWN]) + f", ... ({len(ordered)} in all)"
    return f"{label}: " + ", ".join(ordered)


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__} value"


def _snippet(source: str, limit: int = 60) -> str:
    return repr(source if len(source) <= limit else source[: limit - 3] + "...")

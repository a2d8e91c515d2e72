"""Mission roles as data: what each agent of a code mission is, may do and is told.

A role is a YAML file shipped in this package (``architect``, ``coder``,
``tester``, ``reviewer``, ``integrator``); :func:`load_roles` reads them and
lays a project's ``[mission.roles.NAME]`` tables from ``nexus.toml`` over
them. A project may change how a role is run and what it is told -- ``model``,
``function`` (a Python function agent, ``pkg.module:fn``, instead of a
model), ``instructions`` and ``prompt`` -- but not what it may do: its tools
and its ``reads``/``writes`` policy stay as shipped, so no project file can
let the tester read the implementation it tests.

``instructions`` and ``prompt`` are Jinja templates rendered in the bounded
sandbox of :mod:`nexus.templating`; the names they may read are the role's
``context`` (each documented in the role's file), checked when the role is
loaded. Spec text, model output and repository content reach a template only
as values, never as template source, so ``{{ 7*7 }}`` in a requirement
stays ``{{ 7*7 }}``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any, Literal

import jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nexus.domain.errors import InternalError, TemplateError, UserError
from nexus.missions.plan import plan_schema
from nexus.templating import inspect_reads, render_text

__all__ = [
    "OVERRIDABLE",
    "READS",
    "ROLE_NAMES",
    "WRITES",
    "Role",
    "load_roles",
    "packaged_roles",
]

#: The roles a code mission has, in the order they act.
ROLE_NAMES = ("architect", "coder", "tester", "reviewer", "integrator")
#: What a role may read, as the mission's file tools enforce it.
READS: Mapping[str, str] = {
    "repository": "every file of the repository, read-only",
    "item": "every file of the item's worktree",
    "contract": "the item's requirements, interfaces and test files; never the files it owns",
    "diff": "the item's diff and check results, and the files of its worktree",
    "conflicts": "the files in conflict in the merge worktree",
}
#: What a role may write.
WRITES: Mapping[str, str] = {
    "none": "nothing",
    "owned": "the files the item owns (its 'owns'), never its tests",
    "tests": "the item's test files (its 'tests')",
    "conflicts": "the files in conflict in the merge worktree",
}
#: The fields a project's ``[mission.roles.NAME]`` table may set.
OVERRIDABLE = ("model", "function", "instructions", "prompt")
_WRITE_TOOLS = frozenset({"mission.write", "mission.tests.write"})
_ENTRYPOINT = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")


class Role(BaseModel):
    """One mission role: who it is, what it may touch, how it answers, what it is told.

    Attributes:
        name: the role's name (one of :data:`ROLE_NAMES`).
        description: one line on what it does.
        capabilities: what it can do, for routing (``plan``, ``code``...).
        tools: the mission tools it is granted (registry names).
        reads: what it may read (a key of :data:`READS`).
        writes: what it may write (a key of :data:`WRITES`).
        output_schema: ``"plan"`` (the architect's :func:`plan_schema`), a
            JSON schema, or None for a free-text answer.
        context: the names ``instructions`` and ``prompt`` may read, each with
            what it holds.
        instructions: the system message, a template.
        prompt: the task's message, a template.
        model: the model it runs on (``provider:model``); empty: the mission's default.
        function: a Python function agent (``pkg.module:fn``) that plays the
            role instead of a model; None for a model.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Literal["architect", "coder", "tester", "reviewer", "integrator"]
    description: str = Field(min_length=1)
    capabilities: tuple[str, ...]
    tools: tuple[str, ...]
    reads: Literal["repository", "item", "contract", "diff", "conflicts"]
    writes: Literal["none", "owned", "tests", "conflicts"]
    output_schema: Literal["plan"] | dict[str, Any] | None = None
    context: dict[str, str]
    instructions: str
    prompt: str
    model: str = ""
    function: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Role:
        if self.writes == "none" and _WRITE_TOOLS & set(self.tools):
            raise ValueError(f"writes nothing but is granted {sorted(_WRITE_TOOLS)}")
        if isinstance(self.output_schema, dict):
            try:
                jsonschema.validators.validator_for(self.output_schema).check_schema(
                    self.output_schema
                )
            except jsonschema.SchemaError as exc:
                raise ValueError(f"output_schema is not a JSON schema: {exc.message}") from None
        return self

    @property
    def is_function(self) -> bool:
        """True when a Python function agent plays the role instead of a model."""
        return self.function is not None

    def answer_schema(
        self,
        *,
        checks: Sequence[str] = (),
        requirements: Sequence[str] | None = None,
        max_items: int = 50,
    ) -> dict[str, Any] | None:
        """The JSON schema the role's answer must match, or None for free text.

        The architect's depends on the mission: the checks and requirement ids
        it may name, and the most work items (see :func:`plan_schema`).
        """
        if self.output_schema == "plan":
            return plan_schema(checks=checks, requirements=requirements, max_items=max_items)
        return None if self.output_schema is None else dict(self.output_schema)

    def render_instructions(self, **context: Any) -> str:
        """The role's instructions rendered with ``context`` (see :meth:`render_prompt`)."""
        return self._render("instructions", self.instructions, context)

    def render_prompt(self, **context: Any) -> str:
        """The role's prompt rendered with ``context``: the names in :attr:`context`.

        Values are data: whatever text they hold is written as it is.

        Raises:
            InternalError: a name of :attr:`context` is missing, or one it does
                not declare is given (the caller's bug).
            TemplateError: the template fails to render (a project's template
                asked for more work than the sandbox allows, say).
        """
        return self._render("prompt", self.prompt, context)

    def _render(self, field: str, source: str, context: Mapping[str, Any]) -> str:
        missing = sorted(set(self.context) - set(context))
        extra = sorted(set(context) - set(self.context))
        if missing or extra:
            raise InternalError(
                f"role {self.name!r}: {field} rendered with missing {missing} / undeclared {extra}"
            )
        return render_text(source, dict(context), where=f"role '{self.name}', field '{field}'")

    def overridden(self, table: Mapping[str, Any], *, where: str) -> Role:
        """This role with a project's ``[mission.roles.NAME]`` table laid over it.

        Raises:
            UserError: an unknown field, a value of the wrong type, a model
                and a function both, a malformed function or model, or a
                template that does not compile or reads a name the role is not
                given; every problem is listed, each naming ``where`` and the field.
        """
        problems: list[str] = []
        values: dict[str, Any] = {}
        for key, value in table.items():
            spot = f"{where}, field {str(key)!r}"
            if key not in OVERRIDABLE:
                problems.append(f"{spot}: unknown field{_hint(str(key), OVERRIDABLE)}")
            elif not isinstance(value, str) or not value.strip():
                problems.append(f"{spot}: must be non-empty text")
            elif key == "model" and ":" not in value:
                problems.append(
                    f"{spot}: {value!r} is not provider:model (e.g. 'openai:gpt-4.1-mini')"
                )
            elif key == "function" and not _ENTRYPOINT.match(value):
                problems.append(f"{spot}: {value!r} is not written pkg.module:function")
            elif key in ("instructions", "prompt"):
                problems += [f"{spot}: {p}" for p in self._template_problems(value)]
                values[key] = value
            else:
                values[key] = value
        if "model" in values and "function" in values:
            problems.append(
                f"{where}: sets both 'model' and 'function': a role is one or the other"
            )
        if problems:
            raise UserError("\n".join(problems))
        if "function" in values:
            values.setdefault("model", "")
        elif "model" in values:
            values["function"] = None
        return self.model_copy(update=values)

    def _template_problems(self, source: str) -> list[str]:
        try:
            reads = inspect_reads(source)
        except TemplateError as exc:
            return [exc.message]
        return [
            f"reads {name!r}, which the {self.name} is not given{_hint(name, self.context)}"
            for name in sorted(reads)
            if name not in self.context
        ]


def _hint(name: str, known: Sequence[str] | Mapping[str, Any]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else " (allowed: " + ", ".join(names) + ")"


@cache
def packaged_roles() -> Mapping[str, Role]:
    """The roles shipped in this package, by name, as written (no project overrides).

    Raises:
        InternalError: a shipped role file is broken (a bug in Nexus).
    """
    roles: dict[str, Role] = {}
    folder = resources.files(__package__ or "nexus.missions.roles")
    for name in ROLE_NAMES:
        text = (folder / f"{name}.yaml").read_text(encoding="utf-8")
        try:
            role = Role.model_validate(yaml.safe_load(text))
        except (ValidationError, yaml.YAMLError) as exc:
            raise InternalError(f"the shipped role {name}.yaml is broken: {exc}") from exc
        problems = role._template_problems(role.instructions) + role._template_problems(role.prompt)
        if role.name != name or problems:
            raise InternalError(f"the shipped role {name}.yaml is broken: {problems or role.name}")
        roles[name] = role
    return roles


def load_roles(project: Mapping[str, Any] | None, *, source: str) -> dict[str, Role]:
    """The mission's roles: the shipped ones, with the project's ``[mission.roles.NAME]`` over them.

    Args:
        project: the parsed ``nexus.toml`` (the whole document; only
            ``mission.roles`` is read), or None for the shipped roles as they are.
        source: where ``project`` was read from, for messages (``nexus.toml``).

    Raises:
        UserError: ``[mission]`` or ``[mission.roles]`` is not a table, a role
            no mission has, or a bad field (see :meth:`Role.overridden`); the
            message names ``source``, the table and the field, and every
            problem is listed.

    Example:
        >>> roles = load_roles({"mission": {"roles": {"coder": {"model": "ollama:qwen"}}}},
        ...                    source="nexus.toml")
        >>> roles["coder"].model, roles["tester"].reads
        ('ollama:qwen', 'contract')
    """
    roles = dict(packaged_roles())
    if project is None:
        return roles
    mission = project.get("mission", {})
    if not isinstance(mission, Mapping):
        raise UserError(f"{source}: [mission] must be a table")
    tables = mission.get("roles", {})
    if not isinstance(tables, Mapping):
        raise UserError(f"{source}: [mission.roles] must be a table of roles")
    problems: list[str] = []
    for name, table in tables.items():
        where = f"{source}: [mission.roles.{name}]"
        if name not in roles:
            problems.append(f"{where}: unknown role{_hint(str(name), ROLE_NAMES)}")
        elif not isinstance(table, Mapping):
            problems.append(f"{where}: must be a table")
        else:
            try:
                roles[name] = roles[name].overridden(table, where=where)
            except UserError as exc:
                problems.append(exc.message)
    if problems:
        raise UserError("\n".join(problems))
    return roles

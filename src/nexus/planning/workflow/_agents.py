"""A workflow's ``agents:`` entries, compiled into :class:`~nexus.domain.plan.AgentSpec`.

An agent names its model as ``provider:model`` (and so do its fallbacks and
tiers), with a provider the project has when the caller says which it has;
it may list tools (known ones, or ``server.tool`` of the MCP servers), and
may carry a budget and an exec profile. Its instructions and scripted replies
are templates: their syntax and the names they read are checked here, and
what its instructions read of the run (``tasks.<id>``, ``item``) is kept in
:class:`AgentFacts` for the checks of each task that may run on it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nexus.domain.plan import AgentSpec
from nexus.planning.workflow._errors import Reporter
from nexus.planning.workflow._grants import (
    ToolNames,
    budget_limits,
    check_provider,
    check_within,
    exec_profile,
    mcp_granted,
)
from nexus.planning.workflow._names import TemplateNames
from nexus.planning.workflow._schema import _Agent
from nexus.planning.workflow._values import NO_READS, Reads, Values

if TYPE_CHECKING:
    from nexus.tools.profile import ExecProfile

__all__ = ["AgentFacts", "compile_agent"]


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """What the checks of a task need to know about an agent it may run on.

    Attributes:
        name: the agent.
        instructions: the names its instructions read.
        tools: the tools it may call.
        mcp_tools: its MCP tools, each with its index in ``tools``.
        profile: its ``profile:`` grant as written.
        profile_valid: whether that grant is valid (an invalid one is reported
            once, as such, and not read for grants).
    """

    name: str
    instructions: Reads
    tools: tuple[str, ...]
    mcp_tools: tuple[tuple[int, str], ...]
    profile: dict[str, Any] | None
    profile_valid: bool

    def ungranted(self, grant: dict[str, Any] | None) -> list[tuple[int, str]]:
        """Its MCP tools that ``grant`` does not allow."""
        return [(i, tool) for i, tool in self.mcp_tools if not mcp_granted(grant, tool)]

    def report_ungranted(self, report: Reporter) -> None:
        """Report the MCP tools its own profile does not grant (a task without one runs it)."""
        if not self.profile_valid:
            return
        for i, tool in self.ungranted(self.profile):
            report.add(
                f"agent {self.name!r} may call MCP tool {tool!r}, but its profile does not "
                f"grant it; add profile: {{mcp_tools: [{tool!r}]}} to the agent (or to each "
                "task it runs)",
                field=f"agents.{self.name}.tools[{i}]",
            )


class _AgentCompiler:
    """One agent's entry, checked field by field (a problem in one does not hide the next)."""

    __slots__ = (
        "allowed",
        "name",
        "names",
        "providers",
        "report",
        "spec",
        "task_ids",
        "tools",
        "values",
    )

    def __init__(
        self,
        name: str,
        spec: _Agent,
        values: Values,
        tools: ToolNames,
        names: TemplateNames,
        providers: Collection[str] | None,
        task_ids: Collection[str],
        allowed: Mapping[str, ExecProfile],
    ) -> None:
        self.name = name
        self.spec = spec
        self.values = values
        self.report = values.report
        self.tools = tools
        self.names = names
        self.providers = providers
        self.task_ids = task_ids
        self.allowed = allowed

    def models(self) -> None:
        name, spec, report = self.name, self.spec, self.report
        models = [(f"agents.{name}.model", spec.model)]
        models += [(f"agents.{name}.fallbacks[{i}]", m) for i, m in enumerate(spec.fallbacks)]
        models += [(f"agents.{name}.tiers.{tier}", m) for tier, m in sorted(spec.tiers.items())]
        for where, model in models:
            with report.step():
                provider, sep, rest = model.partition(":")
                if not sep or not provider.strip() or not rest.strip():
                    if where.endswith(".model"):
                        report.error(
                            f"model {model!r} must be 'provider:model', e.g. 'openai:gpt-4o'",
                            field=where,
                        )
                    report.error(f"model {model!r} must be 'provider:model'", field=where)
                check_provider(model, self.providers, report, field=where)

    def template(self, source: str, field: str) -> Reads:
        """A template of the agent's, its syntax and names checked; what it reads."""
        reads = NO_READS
        with self.report.step():
            reads = self.values.template(source, task=None, field=field)
            # item and index depend on the task the agent runs: each task checks them
            self.names.check(reads, items=True, task=None, field=field)
            for ref in sorted(reads.get("tasks", ())):
                if ref not in self.task_ids:
                    self.report.add(f"reads tasks.{ref} but there is no task {ref!r}", field=field)
        return reads

    def compile(self) -> tuple[AgentSpec | None, AgentFacts]:
        name, spec, report = self.name, self.spec, self.report
        failed = len(report.problems)
        self.models()
        instructions = self.template(spec.instructions, f"agents.{name}.instructions")
        for i, line in enumerate(spec.scripted):
            self.template(line, f"agents.{name}.scripted[{i}]")
        mcp_tools = []
        for i, tool_name in enumerate(spec.tools):
            with report.step():
                self.tools.check(tool_name, report, task=None, field=f"agents.{name}.tools[{i}]")
                if self.tools.is_mcp(tool_name):
                    mcp_tools.append((i, tool_name))
        grant = None
        with report.step() as checked:
            grant = exec_profile(spec.profile, report, task=None, field=f"agents.{name}.profile")
        if checked.ok and spec.profile is not None:
            tools = [(t, self.allowed[t]) for t in dict.fromkeys(spec.tools) if t in self.allowed]
            owner = f"tool {tools[0][0]!r}" if len(tools) == 1 else f"any of agent {name!r}'s tools"
            check_within(
                spec.profile, tools, report, owner=owner, task=None, field=f"agents.{name}.profile"
            )
        budget = None
        with report.step():
            budget = budget_limits(spec.budget, f"agents.{name}.budget", report)
        facts = AgentFacts(
            name=name,
            instructions=instructions,
            tools=tuple(spec.tools),
            mcp_tools=tuple(mcp_tools),
            profile=spec.profile,
            profile_valid=checked.ok,
        )
        if len(report.problems) > failed:
            return None, facts
        agent = AgentSpec(
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
            budget=budget,
            profile=grant,
        )
        return agent, facts


def compile_agent(
    name: str,
    spec: _Agent,
    values: Values,
    tools: ToolNames,
    names: TemplateNames,
    *,
    providers: Collection[str] | None,
    task_ids: Collection[str],
    allowed: Mapping[str, ExecProfile],
) -> tuple[AgentSpec | None, AgentFacts]:
    """The agent ``name`` as the plan holds it (None when its entry has problems, all
    reported), and what the checks of its tasks need to know about it.

    ``allowed`` holds, per tool, the most a grant may get it (empty: grants
    are not checked).
    """
    compiler = _AgentCompiler(name, spec, values, tools, names, providers, task_ids, allowed)
    return compiler.compile()

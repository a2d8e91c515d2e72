"""A workflow's ``agents:`` entries, compiled into :class:`~nexus.domain.plan.AgentSpec`.

An agent names its model as ``provider:model`` (and so do its fallbacks and
tiers), may list tools (known ones, or ``server.tool`` of the workflow's MCP
servers), and may carry a budget and an exec profile; its scripted replies
are templates whose syntax is checked here.
"""

from __future__ import annotations

from nexus.domain.plan import AgentSpec
from nexus.planning.workflow._grants import ToolNames, budget_limits, exec_profile
from nexus.planning.workflow._schema import _Agent
from nexus.planning.workflow._values import Values

__all__ = ["compile_agent"]


def compile_agent(name: str, spec: _Agent, values: Values, tools: ToolNames) -> AgentSpec:
    """The agent ``name`` as the plan holds it, or the first problem with its entry."""
    report = values.report
    provider, sep, model = spec.model.partition(":")
    if not sep or not provider.strip() or not model.strip():
        report.error(
            f"model {spec.model!r} must be 'provider:model', e.g. 'openai:gpt-4o'",
            field=f"agents.{name}.model",
        )
    for i, line in enumerate(spec.scripted):
        values.template(line, task=None, field=f"agents.{name}.scripted[{i}]")
    models = [(f"agents.{name}.fallbacks[{i}]", m) for i, m in enumerate(spec.fallbacks)]
    models += [(f"agents.{name}.tiers.{tier}", m) for tier, m in sorted(spec.tiers.items())]
    for where, model_name in models:
        first, sep, rest = model_name.partition(":")
        if not sep or not first.strip() or not rest.strip():
            report.error(f"model {model_name!r} must be 'provider:model'", field=where)
    for i, tool_name in enumerate(spec.tools):
        tools.check(tool_name, report, task=None, field=f"agents.{name}.tools[{i}]")
    grant = exec_profile(spec.profile, report, task=None, field=f"agents.{name}.profile")
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
        budget=budget_limits(spec.budget, f"agents.{name}.budget", report),
        profile=grant,
    )

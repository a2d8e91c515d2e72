"""The Python API: build the same plan a workflow file describes, in code.

Tasks, tools and agents are referred to by the objects that define them, not
by strings, so a typo is a Python error. The builder produces the same
document a YAML file would and compiles it with the same checks
(:func:`~nexus.planning.workflow.compile_workflow`), so code and files can
never drift apart in what they accept.

Example:
    >>> wf = Workflow("hello", inputs={"who": "world"})
    >>> @tool
    ... def greet(who: str) -> str:
    ...     return f"hello {who}"
    >>> first = wf.task("greet", tool=greet, args={"who": "{{ inputs.who }}"})
    >>> echo = wf.task("echo", needs=[first], tool="shell",
    ...                args={"cmd": "echo {{ tasks.greet.output }}"})
    >>> result = wf.run_sync(home=tmp)  # doctest: +SKIP

``Workflow`` here is :class:`nexus.Workflow`, which adds ``run``/``run_sync``
(:mod:`nexus.app`) to :class:`WorkflowBuilder`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nexus.agents.base import AgentFunction, FunctionAgent
from nexus.agents.resolver import entrypoint_of
from nexus.domain.plan import Plan
from nexus.planning.workflow import compile_workflow
from nexus.tools.base import FunctionTool, ToolRegistry
from nexus.tools.builtins import builtin_tools


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A handle on a task of a :class:`Workflow`, for ``needs=[...]``."""

    id: str


@dataclass(frozen=True, slots=True)
class AgentRef:
    """A handle on a model-backed agent of a :class:`Workflow`."""

    name: str


class WorkflowBuilder:
    """A plan under construction.

    :class:`nexus.Workflow` (in :mod:`nexus.app`) adds ``run`` and ``run_sync``:
    planning builds plans and runs none.

    Args:
        name: the workflow's name.
        inputs: declared inputs and their defaults.
        workspace: working directory for tool tasks (default: the current one).
        fail_fast: stop the run at the first failed task.
        max_parallel: attempts running at once.
        retries: default retries per task.
        timeout: default timeout per attempt, in seconds.
    """

    def __init__(
        self,
        name: str,
        *,
        inputs: dict[str, Any] | None = None,
        workspace: str | Path | None = None,
        fail_fast: bool = True,
        max_parallel: int = 16,
        retries: int = 0,
        timeout: float | None = None,
    ) -> None:
        self.name = name
        self._doc: dict[str, Any] = {
            "version": 1,
            "name": name,
            "inputs": dict(inputs or {}),
            "fail_fast": fail_fast,
            "max_parallel": max_parallel,
            "defaults": {"retries": retries, "timeout": timeout},
            "agents": {},
            "tasks": {},
        }
        if workspace is not None:
            self._doc["workspace"] = str(Path(workspace).resolve())
        self._tools: dict[str, FunctionTool] = {}
        self._functions: dict[str, FunctionAgent] = {}

    # -- agents -------------------------------------------------------------
    def agent(
        self,
        name: str,
        *,
        model: str,
        capabilities: Sequence[str] = (),
        instructions: str = "",
        role: str = "",
        scripted: Sequence[str] = (),
        max_concurrency: int = 0,
    ) -> AgentRef:
        """Declare a model-backed agent (``model`` is ``provider:model``)."""
        self._doc["agents"][name] = {
            "role": role,
            "model": model,
            "capabilities": list(capabilities),
            "instructions": instructions,
            "scripted": list(scripted),
            "max_concurrency": max_concurrency,
        }
        return AgentRef(name)

    def function_agent(
        self,
        fn: AgentFunction | None = None,
        *,
        name: str | None = None,
        capabilities: Sequence[str] = (),
    ) -> Any:
        """Declare a Python function as an agent (usable as a decorator).

        The function is called as ``fn(call, ctx)``; it must act on the world
        only through ``ctx.effect(...)`` so runs stay replayable.
        """

        def register(f: AgentFunction) -> FunctionAgent:
            agent = FunctionAgent(
                name=name or str(getattr(f, "__name__", "agent")),
                fn=f,
                capabilities=tuple(capabilities),
            )
            self._functions[agent.name] = agent
            self._doc["agents"][agent.name] = {
                "role": "function",
                "model": f"function:{agent.name}",
                "capabilities": list(capabilities),
            }
            return agent

        return register(fn) if fn is not None else register

    # -- tasks --------------------------------------------------------------
    def task(
        self,
        task_id: str,
        *,
        tool: str | FunctionTool | None = None,
        args: dict[str, Any] | None = None,
        needs: Iterable[TaskRef | str] = (),
        agent: AgentRef | FunctionAgent | None = None,
        capability: str | None = None,
        prompt: str | None = None,
        foreach: list[Any] | str | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        priority: int = 0,
    ) -> TaskRef:
        """Add a tool task (``tool``) or an agent task (``prompt`` + ``agent``/``capability``)."""
        entry: dict[str, Any] = {
            "needs": [n.id if isinstance(n, TaskRef) else n for n in needs],
            "priority": priority,
        }
        if isinstance(tool, FunctionTool):
            self._tools[tool.name] = tool
            entry["tool"] = tool.name
        elif tool is not None:
            entry["tool"] = tool
        if args is not None:
            entry["with"] = args
        if isinstance(agent, FunctionAgent | AgentRef):
            entry["agent"] = agent.name
        for key, value in (
            ("capability", capability),
            ("prompt", prompt),
            ("foreach", foreach),
            ("retries", retries),
            ("timeout", timeout),
        ):
            if value is not None:
                entry[key] = value
        self._doc["tasks"][task_id] = entry
        return TaskRef(task_id)

    # -- compile and run ------------------------------------------------------
    def function_tools(self) -> list[FunctionTool]:
        """The Python function tools this workflow's tasks use."""
        return list(self._tools.values())

    def function_agents(self) -> list[FunctionAgent]:
        """The Python function agents this workflow declares."""
        return list(self._functions.values())

    def tools(self) -> ToolRegistry:
        """The built-in tools plus the function tools this workflow uses."""
        registry = builtin_tools()
        for function_tool in self._tools.values():
            registry.add(function_tool)
        return registry

    def compile(
        self, inputs: dict[str, Any] | None = None, *, known_tools: Iterable[str] | None = None
    ) -> Plan:
        """Validate and compile, with the same checks as a workflow file.

        Args:
            inputs: values for the declared inputs.
            known_tools: the tool names tasks may use (default: :meth:`tools`;
                running with a project adds its WASM tools).

        A function agent defined in a module another process can import is
        recorded with its ``module:name``
        (:attr:`~nexus.domain.plan.AgentSpec.entrypoint`), so ``nexus replay``
        can load it; one defined in a script (``__main__``) or inside a
        function is recorded without, and only a process handed the agent can
        replay the run.

        Raises:
            WorkflowError: the workflow is invalid (names the task and field).
        """
        plan = compile_workflow(
            self._doc,
            file=f"<workflow {self.name}>",
            inputs=inputs,
            known_tools=list(known_tools) if known_tools is not None else self.tools().names(),
        )
        found = {name: entrypoint_of(agent) for name, agent in self._functions.items()}
        entrypoints = {name: ref for name, ref in found.items() if ref is not None}
        if not entrypoints:
            return plan
        agents = {
            name: replace(spec, entrypoint=entrypoints[name]) if name in entrypoints else spec
            for name, spec in plan.agents.items()
        }
        return replace(plan, agents=agents)

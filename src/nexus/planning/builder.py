"""The Python API: build the same plan a workflow file describes, in code.

Tasks, tools, agents and MCP servers are referred to by the objects that
define them, not by strings, so a typo is a Python error. Everything a
workflow file says has a typed keyword here: budgets (:class:`Budget`),
exec-profile grants (:class:`Profile`), approvals (:class:`Approval`),
retries and their :class:`Backoff`, timeouts, output schemas, model routing,
declared and secret inputs (:class:`Input`), MCP servers
(:meth:`WorkflowBuilder.mcp_server`) and the workspace. The builder produces
the same document a YAML file would and compiles it with the same checks
(:func:`~nexus.planning.workflow.compile_workflow`), so code and files can
never drift apart in what they accept: the same workflow written both ways
has the same plan hash.

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

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from nexus.agents.base import AgentFunction, FunctionAgent
from nexus.agents.resolver import entrypoint_of
from nexus.domain.plan import Plan
from nexus.planning.options import (
    Aggregate,
    Approval,
    Backoff,
    Bt,
    Budget,
    Compensate,
    Extend,
    Extensions,
    Fsm,
    Input,
    Loop,
    Profile,
    Replan,
    Wait,
)
from nexus.planning.workflow import WorkflowContext, compile_workflow
from nexus.redaction import is_secret_name
from nexus.tools.base import FunctionTool, ToolRegistry
from nexus.tools.builtins import builtin_tools

__all__ = ["AgentRef", "McpServerRef", "TaskRef", "WorkflowBuilder"]

#: A task's model-routing tier (``complexity``) and the tiers of an agent's ``tiers``.
Tier = Literal["small", "medium", "large"]


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A handle on a task of a :class:`Workflow`, for ``needs=[...]``."""

    id: str


@dataclass(frozen=True, slots=True)
class AgentRef:
    """A handle on a model-backed agent of a :class:`Workflow`."""

    name: str


@dataclass(frozen=True, slots=True)
class McpServerRef:
    """A handle on an MCP server of a :class:`Workflow` (:meth:`WorkflowBuilder.mcp_server`)."""

    name: str

    def tool(self, name: str) -> str:
        """The name tasks, agents and profiles use for the server's tool ``name``.

        A pattern works too, for a profile's ``mcp_tools``: ``tool("*")`` is
        every tool of the server.

        Example:
            >>> McpServerRef("time").tool("get_current_time")
            'time.get_current_time'
        """
        return f"{self.name}.{name}"


class WorkflowBuilder:
    """A plan under construction.

    :class:`nexus.Workflow` (in :mod:`nexus.app`) adds ``run`` and ``run_sync``:
    planning builds plans and runs none.

    The keywords are the keys of a workflow file (docs/workflows.md).

    Args:
        name: the workflow's name.
        description: what it is for (not part of the plan).
        inputs: the inputs, each by its default value or declared with an
            :class:`Input` (no default, secret, from the environment).
        workspace: working directory for tool tasks (default: the current one).
        fail_fast: stop the run at the first failed task.
        max_parallel: attempts running at once.
        max_failures: with ``fail_fast=False``, end the run once this many tasks
            have failed (what is left is cancelled).
        max_failure_rate: with ``fail_fast=False``, end the run once this share
            (0 to 1) of its ended tasks has failed, judged from 10 ended tasks on.
        conflicts: two tasks whose ``writes`` overlap: ``"serialize"`` runs them
            one at a time, ``"reject"`` refuses the plan unless ``needs`` orders
            them (docs/workflows.md, Writes).
        retries: default retries per task.
        timeout: default timeout per attempt, in seconds.
        backoff: default wait between a task's attempts.
        budget: the run's budget.
        extensions: how far tasks that ``extend`` the plan may grow it.
        on_failure: what a task failing for good does, unless it says otherwise:
            ``"fail"`` or ``"compensate"`` (docs/workflows.md, Sagas).
        cache: what the run may re-use from earlier runs: ``["plans"]``, the
            plan an extending agent task made in an earlier run of the same
            plan (docs/planning.md, The plan cache).

    Raises:
        TypeError: a keyword is given a value of the wrong type (a ``dict``
            where a :class:`Budget` is expected, say).
    """

    def __init__(
        self,
        name: str,
        *,
        description: str | None = None,
        inputs: Mapping[str, Input | Any] | None = None,
        workspace: str | Path | None = None,
        fail_fast: bool = True,
        max_parallel: int = 16,
        max_failures: int | None = None,
        max_failure_rate: float | None = None,
        conflicts: Literal["serialize", "reject"] = "serialize",
        retries: int = 0,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        budget: Budget | None = None,
        extensions: Extensions | None = None,
        on_failure: Literal["fail", "compensate"] | None = None,
        cache: Iterable[Literal["plans"]] | None = None,
    ) -> None:
        self.name = name
        defaults: dict[str, Any] = {"retries": retries, "timeout": timeout}
        if backoff is not None:
            defaults["backoff"] = _table(backoff, Backoff, "backoff", f"Workflow({name!r})")
        self._doc: dict[str, Any] = {
            "version": 1,
            "name": name,
            "inputs": {key: _input(key, value) for key, value in (inputs or {}).items()},
            "fail_fast": fail_fast,
            "max_parallel": max_parallel,
            "defaults": defaults,
            "agents": {},
            "tasks": {},
        }
        if description is not None:
            self._doc["description"] = description
        if workspace is not None:
            self._doc["workspace"] = str(Path(workspace).resolve())
        if max_failures is not None:
            self._doc["max_failures"] = max_failures
        if max_failure_rate is not None:
            self._doc["max_failure_rate"] = max_failure_rate
        if conflicts != "serialize":
            self._doc["conflicts"] = conflicts
        if budget is not None:
            self._doc["budget"] = _table(budget, Budget, "budget", f"Workflow({name!r})")
        if extensions is not None:
            self._doc["extensions"] = _table(
                extensions, Extensions, "extensions", f"Workflow({name!r})"
            )
        if on_failure is not None:
            self._doc["on_failure"] = on_failure
        if cache is not None:
            self._doc["cache"] = _strings(cache)
        self._tools: dict[str, FunctionTool] = {}
        self._functions: dict[str, FunctionAgent] = {}

    def outputs(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """What the workflow gives when another runs it as a sub-workflow (``outputs:``).

        Each value is JSON, and its templates read the workflow's own ``tasks``
        and ``inputs``: ``wf.outputs(artifact="{{ tasks.package.output.path }}")``.
        Called again, it adds to (and replaces) what was given.
        """
        table = self._doc.setdefault("outputs", {})
        table.update(values or {})
        table.update(more)

    # -- MCP servers --------------------------------------------------------
    def mcp_server(
        self,
        name: str,
        *,
        command: str | None = None,
        args: Sequence[str] = (),
        env: Sequence[str] | Mapping[str, str] = (),
        cwd: str | Path | None = None,
        url: str | None = None,
        call_timeout: float | None = None,
        connect_timeout: float | None = None,
        breaker_threshold: int | None = None,
        breaker_cooldown: float | None = None,
        lint_ignore: Sequence[str] = (),
    ) -> McpServerRef:
        """Declare an MCP server the workflow's tasks and agents may use (docs/mcp.md).

        Give either ``command`` (a stdio server) or ``url`` (streamable HTTP).
        Its tools are named ``<name>.<tool>`` (:meth:`McpServerRef.tool`); each
        is denied unless a :class:`Profile`'s ``mcp_tools`` grants it, and
        until its descriptor is approved (``nexus tools approve``). The server
        starts only when a run uses one of its tools.

        Args:
            name: the server's name (letters, digits, ``_``, ``-``).
            command: the executable of a stdio server.
            args: its arguments.
            env: names of variables passed through from Nexus's environment,
                or a mapping of variables to set; nothing else is passed.
            cwd: its working directory.
            url: the endpoint of a streamable-HTTP server.
            call_timeout: seconds a tool call may take (default 30).
            connect_timeout: seconds for the handshake (default 15).
            breaker_threshold: consecutive failures that open its circuit (default 5).
            breaker_cooldown: seconds the circuit stays open (default 30).
            lint_ignore: descriptor-linter findings not held against its tools.

        Returns:
            A handle whose :meth:`~McpServerRef.tool` names the server's tools.
        """
        entry: dict[str, Any] = {}
        for key, value in (
            ("command", command),
            ("args", list(args)),
            ("env", dict(env) if isinstance(env, Mapping) else list(env)),
            ("cwd", None if cwd is None else str(cwd)),
            ("url", url),
            ("call_timeout", call_timeout),
            ("connect_timeout", connect_timeout),
            ("breaker_threshold", breaker_threshold),
            ("breaker_cooldown", breaker_cooldown),
            ("lint_ignore", list(lint_ignore)),
        ):
            if value is not None and value != [] and value != {}:
                entry[key] = value
        self._doc.setdefault("mcp_servers", {})[name] = entry
        return McpServerRef(name)

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
        tools: Sequence[str | FunctionTool] = (),
        max_steps: int | None = None,
        fallbacks: Sequence[str] = (),
        tiers: Mapping[Tier, str] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        budget: Budget | None = None,
        profile: Profile | None = None,
    ) -> AgentRef:
        """Declare a model-backed agent (docs/agents.md).

        Args:
            name: the agent's name.
            model: ``provider:model`` (``openai:gpt-4.1-mini``, ``scripted:x``...).
            capabilities: what it can do; tasks route by ``capability=``.
            instructions: its system prompt (a template).
            role: ``researcher``, ``planner``, ``coder``, ``tester``,
                ``reviewer`` or ``analyzer`` frame the prompt; other words label.
            scripted: the answers of a ``scripted:`` model, in order.
            max_concurrency: attempts it runs at once (0: unlimited).
            tools: the tools it may call in its loop: registry names, MCP tools
                (:meth:`McpServerRef.tool`), or ``@nexus.tool`` functions.
            max_steps: model calls per attempt (default 8).
            fallbacks: models tried, in order, when the primary fails.
            tiers: a model per routing tier (``small``, ``medium``, ``large``).
            max_tokens: the answer's limit per call.
            temperature: sampling temperature, 0 to 2.
            budget: limits for this agent across the run.
            profile: the exec-profile grant of the tools it calls (a task's own wins).

        Raises:
            TypeError: ``budget`` or ``profile`` is not of its type.
        """
        where = f"Workflow.agent({name!r})"
        entry: dict[str, Any] = {
            "role": role,
            "model": model,
            "capabilities": list(capabilities),
            "instructions": instructions,
            "scripted": list(scripted),
            "max_concurrency": max_concurrency,
        }
        if tools:
            entry["tools"] = [self._tool_name(t) for t in tools]
        for key, value in (
            ("max_steps", max_steps),
            ("fallbacks", list(fallbacks) or None),
            ("tiers", None if tiers is None else dict(tiers)),
            ("max_tokens", max_tokens),
            ("temperature", temperature),
            ("budget", _table(budget, Budget, "budget", where)),
            ("profile", _table(profile, Profile, "profile", where)),
        ):
            if value is not None:
                entry[key] = value
        self._doc["agents"][name] = entry
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
        backoff: Backoff | None = None,
        priority: int = 0,
        approval: Approval | bool | None = None,
        profile: Profile | None = None,
        output_schema: Mapping[str, Any] | None = None,
        complexity: Tier | None = None,
        max_cost: Decimal | str | None = None,
        max_latency_ms: int | None = None,
        budget: Budget | None = None,
        when: str | None = None,
        switch: str | None = None,
        cases: Mapping[str | bool | int | None, Iterable[TaskRef | str]] | None = None,
        loop: Loop | None = None,
        extend: Extend | bool | None = None,
        bt: Bt | None = None,
        writes: Iterable[str] | None = None,
        agents: Iterable[AgentRef | FunctionAgent | str] | None = None,
        aggregate: Aggregate | str | None = None,
        compensate: Compensate | None = None,
        on_failure: Literal["fail", "compensate", "replan"] | Replan | None = None,
        fsm: Fsm | None = None,
        needs_any: Iterable[TaskRef | str] | None = None,
        quorum: int | str | None = None,
        wait: Wait | None = None,
        workflow: str | Path | WorkflowBuilder | None = None,
    ) -> TaskRef:
        """Add a tool task (``tool``) or an agent task (``prompt`` + ``agent``/``capability``),
        or a routing task (``switch`` + ``cases``, nothing else to run).

        Args:
            task_id: the task's id.
            tool: a tool task's tool: a registry name, an MCP tool
                (:meth:`McpServerRef.tool`) or a ``@nexus.tool`` function.
            args: the tool's arguments (``with:``; templates allowed).
            needs: tasks that must succeed first.
            agent: the agent that runs an agent task.
            capability: or the capability that routes it to an agent.
            prompt: what an agent task asks (a template).
            foreach: a list, or a template rendering one: one run per item.
            retries: retries after the first attempt (default: the workflow's).
            timeout: seconds per attempt (default: the workflow's).
            backoff: the wait between attempts (default: the workflow's).
            priority: higher starts first among ready tasks.
            approval: wait for ``nexus approve`` before starting (True, or an
                :class:`Approval` with a timeout).
            profile: the exec-profile grant of its tool (or its agent's tools).
            output_schema: agent tasks: the JSON schema the answer must match.
            complexity: agent tasks: the routing tier.
            max_cost: agent tasks: the most a call may cost, in USD.
            max_latency_ms: agent tasks: the typical latency a model must have.
            budget: limits for this task (each ``foreach`` item).
            when: a condition over the tasks in ``needs``, such as
                ``"{{ tasks.check.output.ok }}"``: a false value skips the task
                (docs/workflows.md, Conditions).
            switch: a routing task's value, a template over the tasks in
                ``needs`` (``"{{ tasks.classify.output.kind }}"``); it picks
                one of ``cases`` (docs/workflows.md, Switch).
            cases: a routing task's cases: each value (``"bug"``, ``True``,
                ``3``, or ``"default"`` for any other) and the tasks it runs,
                as ids since they are added later (each must need this task);
                the tasks of the cases not picked are skipped.
            loop: run the body again until a condition over its latest output
                holds: a :class:`Loop` (docs/workflows.md, Loop).
            extend: its answer's ``tasks`` join the running plan (True, or an
                :class:`Extend` with a limit; docs/planning.md).
            bt: the task's body is a behaviour tree of conditions and actions:
                a :class:`Bt` (docs/workflows.md, Behaviour trees); the task
                then has no ``tool`` or ``prompt`` of its own.
            writes: the resources the task writes: paths relative to the
                workspace (a directory covers what is below it) or
                ``"key:<name>"``; templates allowed (docs/workflows.md, Writes).
            compensate: what undoes the task when a saga compensates it: a
                :class:`Compensate` (docs/workflows.md, Sagas).
            on_failure: ``"compensate"``: the task failing for good starts the
                saga; ``"fail"``: it does not (default: the workflow's).
                ``"replan"`` (once) or a :class:`Replan` (N times), on a task
                with ``extend``: when tasks its extension added fail, it is
                asked for a repaired plan (docs/planning.md).
            fsm: the task's body is a state machine, each state with its own
                body: an :class:`Fsm` (docs/workflows.md, State machines); the
                task then has no ``tool``, ``agent`` or ``prompt`` of its own.
            needs_any: tasks one of which (or ``quorum`` of which) must
                succeed first; the others run on (docs/workflows.md, Barriers).
            quorum: how many of ``needs_any`` (else of ``needs``) must
                succeed: a number, or ``"3 of 5"``.
            wait: how long to wait on the needs, and what then: a :class:`Wait`.
            workflow: run a sub-workflow as this task: a workflow file (a path
                relative to the working directory, or a name in ``workflows/``),
                or another :class:`WorkflowBuilder` (its document as it is now);
                ``args`` give its inputs (docs/workflows.md, Sub-workflows).

            agents: an agent task asked of each of these agents (one item
                each, ``item`` its name) instead of one ``agent``.
            aggregate: a fan-out's items made into one answer: an
                :class:`Aggregate`, or its method alone (``"vote"``...)
                (docs/workflows.md, Aggregate).


        Raises:
            TypeError: ``backoff``, ``approval``, ``profile``, ``budget``,
                ``loop``, ``bt``, ``aggregate``, ``fsm``, ``compensate`` or ``wait``
                is not of its type.
        """
        where = f"Workflow.task({task_id!r})"
        entry: dict[str, Any] = {
            "needs": [n.id if isinstance(n, TaskRef) else n for n in needs],
            "priority": priority,
        }
        if tool is not None:
            entry["tool"] = self._tool_name(tool)
        if args is not None:
            entry["with"] = args
        if isinstance(agent, FunctionAgent | AgentRef):
            entry["agent"] = agent.name
        if extend is True:
            entry["extend"] = True
        elif extend is not False and extend is not None:
            entry["extend"] = _table(extend, Extend, "extend", where)
        if approval is True:
            entry["approval"] = "required"
        elif approval is not False and approval is not None:
            entry["approval"] = _table(approval, Approval, "approval", where)
        for key, value in (
            ("capability", capability),
            ("prompt", prompt),
            ("foreach", foreach),
            ("retries", retries),
            ("timeout", timeout),
            ("backoff", _table(backoff, Backoff, "backoff", where)),
            ("profile", _table(profile, Profile, "profile", where)),
            ("output_schema", None if output_schema is None else dict(output_schema)),
            ("complexity", complexity),
            ("max_cost", None if max_cost is None else str(max_cost)),
            ("max_latency_ms", max_latency_ms),
            ("budget", _table(budget, Budget, "budget", where)),
            ("when", when),
            ("switch", switch),
            ("cases", None if cases is None else _cases(cases)),
            ("loop", _table(loop, Loop, "loop", where)),
            ("bt", _table(bt, Bt, "bt", where)),
            ("writes", None if writes is None else _strings(writes)),
            ("agents", None if agents is None else [_agent_name(a) for a in agents]),
            (
                "aggregate",
                aggregate
                if isinstance(aggregate, str)
                else _table(aggregate, Aggregate, "aggregate", where),
            ),
            ("fsm", self._fsm(fsm, where)),
            ("compensate", self._compensate(compensate, where)),
            ("on_failure", on_failure.to_dict() if isinstance(on_failure, Replan) else on_failure),
            ("needs_any", None if needs_any is None else _ids(needs_any)),
            ("quorum", quorum),
            ("wait", _table(wait, Wait, "wait", where)),
        ):
            if value is not None:
                entry[key] = value
        if isinstance(workflow, WorkflowBuilder):
            # a copy: what the other workflow gains later is not this task's
            entry["workflow"] = copy.deepcopy(workflow._doc)
            self._tools.update(workflow._tools)
            self._functions.update(workflow._functions)
        elif isinstance(workflow, str | Path):
            entry["workflow"] = str(workflow)
        elif workflow is not None:
            raise TypeError(
                f"{where}: workflow must be a path or a Workflow, not {type(workflow).__name__}"
            )
        self._doc["tasks"][task_id] = entry
        return TaskRef(task_id)

    def _compensate(self, value: Compensate | None, where: str) -> dict[str, Any] | None:
        """A :class:`Compensate` as the file writes it; a function tool is registered."""
        table = _table(value, Compensate, "compensate", where)
        if table is not None and isinstance(table.get("tool"), FunctionTool):
            table["tool"] = self._tool_name(table["tool"])
        return table

    def _fsm(self, fsm: Fsm | None, where: str) -> dict[str, Any] | None:
        """``fsm`` as the file writes it; its states' function tools are registered and
        their agents named."""
        table = _table(fsm, Fsm, "fsm", where)
        if fsm is None or table is None:
            return table
        for name, state in fsm.states.items():
            entry = table["states"][name]
            if state.tool is not None:
                entry["tool"] = self._tool_name(state.tool)
            if isinstance(state.agent, FunctionAgent | AgentRef):
                entry["agent"] = state.agent.name
        return table

    def _tool_name(self, tool: str | FunctionTool) -> str:
        """The name a task or agent writes for ``tool``; a function tool is registered."""
        if isinstance(tool, FunctionTool):
            self._tools[tool.name] = tool
            return tool.name
        return tool

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
        self,
        inputs: dict[str, Any] | None = None,
        *,
        known_tools: Iterable[str] | None = None,
        context: WorkflowContext | None = None,
    ) -> Plan:
        """Validate and compile, with the same checks as a workflow file.

        Args:
            inputs: values for the declared inputs.
            known_tools: the tool names tasks may use (default: :meth:`tools`
                when no ``context`` is given).
            context: what the workflow is checked against, as ``nexus run``
                checks a file: the tools and their argument schemas, the
                project's model providers and MCP servers, and the grants MCP
                tools need (:meth:`nexus.app.Project.workflow_context`;
                :meth:`nexus.Workflow.run` passes the project's, with this
                workflow's function tools). This workflow's function agents'
                ``function:`` models are known to it.

        A function agent defined in a module another process can import is
        recorded with its ``module:name``
        (:attr:`~nexus.domain.plan.AgentSpec.entrypoint`), so ``nexus replay``
        can load it; one defined in a script (``__main__``) or inside a
        function is recorded without, and only a process handed the agent can
        replay the run.

        Raises:
            WorkflowError: the workflow is invalid (names the task and field).
        """
        names = list(known_tools) if known_tools is not None else None
        if context is None and names is None:
            names = self.tools().names()
        if context is not None and self._functions:
            providers = context.providers
            if providers is not None and "function" not in providers:
                context = replace(context, providers=(*providers, "function"))
        plan = compile_workflow(
            self._doc,
            file=f"<workflow {self.name}>",
            inputs=inputs,
            known_tools=names,
            context=context,
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


def _agent_name(agent: AgentRef | FunctionAgent | str) -> str:
    """An agent as a task's ``agents:`` list names it."""
    return agent if isinstance(agent, str) else agent.name


def _ids(tasks: Iterable[TaskRef | str]) -> list[str]:
    """Task references as a workflow file writes them: their ids."""
    return [t.id if isinstance(t, TaskRef) else t for t in tasks]


def _cases(
    cases: Mapping[str | bool | int | None, Iterable[TaskRef | str]],
) -> dict[Any, list[str]]:
    """A switch's cases as a workflow file writes them: each case's task ids."""
    return {
        key: [t.id if isinstance(t, TaskRef) else t for t in targets]
        for key, targets in cases.items()
    }


def _strings(value: Iterable[str]) -> list[str]:
    """A list the file would write: one string alone is a list of it (not of its letters)."""
    return [value] if isinstance(value, str) else list(value)


def _table(value: Any, kind: type[Any], name: str, where: str) -> dict[str, Any] | None:
    """``value`` (a :mod:`~nexus.planning.options` table, or None) as the file writes it.

    Raises:
        TypeError: ``value`` is not a ``kind``.
    """
    if value is None:
        return None
    if not isinstance(value, kind):
        raise TypeError(
            f"{where}: {name} must be a nexus.{kind.__name__}, not {type(value).__name__} "
            f"(e.g. {name}=nexus.{kind.__name__}(...))"
        )
    table: dict[str, Any] = value.to_dict()
    return table


def _input(name: str, value: Any) -> Any:
    """An input as the file writes it: its default, or its declaration mapping."""
    if not isinstance(value, Input):
        return value
    entry = value.to_dict()
    if "secret" not in entry and "env" not in entry:
        # a file tells a declaration from a default by these keys; the name decides
        entry = {"secret": is_secret_name(name), **entry}
    return entry

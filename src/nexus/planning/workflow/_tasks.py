"""A workflow's ``tasks:`` entries, compiled into :class:`~nexus.domain.plan.TaskSpec`.

A task is a tool task (``tool`` plus optional ``with``) or an agent task (a
``prompt`` with an ``agent`` or a ``capability``), never both. Its values are
plain JSON and its templates are checked (:mod:`._values`, :mod:`._names`);
the tasks its templates read are checked against the graph later
(:mod:`._graph`). A tool task's ``with`` is checked against the tool's
argument schema (:mod:`._arguments`); an MCP tool must be granted by the
task's profile, and so must the MCP tools of the agents an agent task may run
on when the task has a profile of its own. Retry settings fall back to the
workflow's ``defaults``, then to :class:`~nexus.domain.plan.RetryPolicy`'s.

Each field is checked on its own, so a task's problems are all reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nexus.domain.plan import ApprovalPolicy, RetryPolicy, TaskSpec
from nexus.planning.workflow._agents import AgentFacts
from nexus.planning.workflow._arguments import Arguments
from nexus.planning.workflow._bt import compile_bt
from nexus.planning.workflow._control import (
    all_needs,
    check_aggregate,
    check_barrier,
    check_extend,
    check_loop,
    check_switch,
    reads_loop,
    routed_by,
)
from nexus.planning.workflow._errors import kind, known
from nexus.planning.workflow._fsm import compile_fsm
from nexus.planning.workflow._grants import (
    ToolNames,
    budget_limits,
    check_within,
    exec_profile,
    mcp_granted,
)
from nexus.planning.workflow._graph import Reads, check_refs
from nexus.planning.workflow._names import ITEM_NAMES, TemplateNames
from nexus.planning.workflow._saga import check_compensate
from nexus.planning.workflow._schema import (
    _Agent,
    _Approval,
    _Backoff,
    _Defaults,
    _Replan,
    _Task,
)
from nexus.planning.workflow._values import Reads as TemplateReads
from nexus.planning.workflow._values import Values, strings
from nexus.planning.workflow._writes import compile_writes
from nexus.templating import is_template

if TYPE_CHECKING:
    from nexus.tools.profile import ExecProfile

__all__ = ["TaskCompiler"]


class TaskCompiler:
    """Compiles the tasks of one workflow, one entry at a time.

    It collects in :attr:`reads` the task reads that :func:`._graph.check_reads`
    must prove once every task is known, and in :attr:`agents_run_bare` the
    agents some task runs without a profile of its own (their own profile
    must then grant their MCP tools). Grants are checked when ``grants``.
    """

    __slots__ = (
        "agents",
        "agents_run_bare",
        "allowed",
        "arguments",
        "capabilities",
        "default_retry",
        "defaults",
        "facts",
        "grants",
        "names",
        "on_failure",
        "reads",
        "report",
        "routed",
        "tasks",
        "tools",
        "values",
    )

    def __init__(
        self,
        tasks: Mapping[str, _Task],
        defaults: _Defaults,
        agents: Mapping[str, _Agent],
        facts: Mapping[str, AgentFacts],
        values: Values,
        tools: ToolNames,
        names: TemplateNames,
        arguments: Arguments,
        *,
        grants: bool,
        allowed: Mapping[str, ExecProfile],
        on_failure: str = "fail",
    ) -> None:
        self.tasks = tasks
        self.defaults = defaults
        self.default_retry = _retry_policy(defaults, None, None)
        self.agents = agents
        self.facts = facts
        self.capabilities = {cap for agent in agents.values() for cap in agent.capabilities}
        self.values = values
        self.report = values.report
        self.tools = tools
        self.names = names
        self.arguments = arguments
        self.grants = grants
        self.allowed = allowed
        self.reads: Reads = {}
        self.agents_run_bare: set[str] = set()
        #: the workflow's ``on_failure``: a task's own wins
        self.on_failure = on_failure
        #: the tasks some switch routes to -> those switches (for barrier checks)
        self.routed = routed_by(tasks)

    def compile(self, tid: str, spec: _Task) -> TaskSpec | None:
        """The task ``tid`` as the plan holds it; None when its entry has problems (reported)."""
        report = self.report
        found = len(report.problems)
        switch = spec.switch is not None or spec.cases is not None
        tree = spec.bt is not None
        if tree:
            self.names.bt_tasks.add(tid)
        machine = spec.fsm is not None
        with report.step() as kind_ok:
            # a routing task runs nothing; a bt's actions and an fsm's states run
            if not switch and not tree and not machine:
                self.check_kind(tid, spec)
        cases = check_switch(tid, spec, self.tasks, report) if switch else None
        loop = check_loop(tid, spec, report)
        extend = check_extend(tid, spec, report)
        aggregate = check_aggregate(tid, spec, report)
        barrier = check_barrier(tid, spec, self.tasks, self.routed.get(tid, []), report)
        args: dict[str, Any] = {}
        foreach: Any = None
        with report.step() as values_ok:
            args, foreach = self.check_values(tid, spec)
        bt = compile_bt(tid, spec, self) if tree else None
        profile = output_schema = routing = budget = None
        profile_ok = True
        if spec.profile is not None:
            with report.step() as step:
                profile = exec_profile(spec.profile, report, task=tid, field="profile")
            profile_ok = step.ok
        fsm = compile_fsm(self, tid, spec, profile_ok) if machine else None
        if kind_ok.ok and not switch and not tree and not machine:
            if spec.tool is not None:
                self.check_tool(tid, spec, args if values_ok.ok else None, profile_ok)
            else:
                self.check_agents(tid, spec, profile_ok)
        if spec.output_schema is not None:
            with report.step():
                output_schema = self.output_schema(tid, spec)
        if spec.complexity is not None or spec.max_cost is not None or spec.max_latency_ms:
            with report.step():
                routing = self.routing(tid, spec)
        if spec.budget is not None:
            with report.step():
                budget = budget_limits(spec.budget, f"tasks.{tid}.budget", report, task=tid)
        writes: tuple[str, ...] = ()
        if spec.writes:
            with report.step():
                writes = compile_writes(tid, spec.writes, report)
        compensate = check_compensate(self, tid, spec)
        if len(report.problems) > found:
            return None
        retry = self.retry_policy(spec.retries, spec.backoff)
        timeout = spec.timeout if spec.timeout is not None else self.defaults.timeout
        return TaskSpec(
            id=tid,
            needs=all_needs(spec),
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
            profile=profile,
            output_schema=output_schema,
            routing=routing,
            budget=budget,
            when=spec.when,
            switch=spec.switch,
            cases=cases,
            loop=loop,
            extend=extend,
            bt=bt,
            writes=writes,
            agents=None if spec.agents is None else tuple(spec.agents),
            aggregate=aggregate,
            fsm=fsm,
            compensate=compensate,
            # a re-plan is the extension's (above); when the re-plans are used up the
            # task fails for good as the workflow's on_failure says
            on_failure=(
                spec.on_failure
                if spec.on_failure is not None and not isinstance(spec.on_failure, _Replan)
                else self.on_failure
            ),
            barrier=barrier,
        )

    def retry_policy(self, retries: int | None, backoff: _Backoff | None) -> RetryPolicy:
        """A body's retry policy: its own settings, else the workflow's defaults."""
        if retries is None and backoff is None:
            return self.default_retry
        return _retry_policy(self.defaults, retries, backoff)

    def check_tool(
        self, tid: str, spec: _Task, args: dict[str, Any] | None, profile_ok: bool
    ) -> None:
        """A tool task's arguments fit the tool's schema; an MCP tool is granted by its profile."""
        tool = spec.tool
        assert tool is not None
        mcp = self.tools.is_mcp(tool)
        if args is not None:
            self.arguments.check(tool, args, mcp=mcp, task=tid)
        if profile_ok and spec.profile is not None and tool in self.allowed:
            check_within(
                spec.profile,
                [(tool, self.allowed[tool])],
                self.report,
                owner=f"tool {tool!r}",
                task=tid,
                field="profile",
            )
        if mcp and self.grants and profile_ok and not mcp_granted(spec.profile, tool):
            server = tool.partition(".")[0]
            self.report.add(
                f"MCP tool {tool!r} is not granted by the task's profile; add "
                f"profile: {{mcp_tools: [{tool!r}]}} (patterns such as '{server}.*' work too)",
                task=tid,
                field="profile",
            )

    def candidates(self, spec: _Task) -> list[AgentFacts]:
        """The agents an agent task may run on."""
        if spec.agents is not None:
            names = list(dict.fromkeys(spec.agents))
        elif spec.agent is not None:
            names = [spec.agent] if spec.agent in self.facts else []
        else:
            names = [n for n, a in self.agents.items() if spec.capability in a.capabilities]
        return [self.facts[name] for name in names if name in self.facts]

    def check_agents(self, tid: str, spec: _Task, profile_ok: bool) -> None:
        """What the instructions of the task's agents need of it; their tools' grants."""
        candidates = self.candidates(spec)
        if profile_ok and spec.profile is not None:
            names = dict.fromkeys(t for facts in candidates for t in facts.tools)
            tools = [(t, self.allowed[t]) for t in names if t in self.allowed]
            check_within(
                spec.profile,
                tools,
                self.report,
                owner="the tools of the agents it may run on",
                task=tid,
                field="profile",
            )
        for facts in candidates:
            field = f"agents.{facts.name}.instructions"
            for name in sorted(ITEM_NAMES & facts.instructions.keys()):
                if spec.foreach is None and spec.agents is None:
                    self.report.add(
                        f"reads {name}, which only a foreach task has (in the instructions "
                        f"of agent {facts.name!r}, which this task may run on)",
                        task=tid,
                        field=field,
                    )
            if not self.grants:
                continue
            if spec.profile is None:
                self.agents_run_bare.add(facts.name)
            elif profile_ok:
                for _, tool in facts.ungranted(spec.profile):
                    self.report.add(
                        f"the task's profile does not grant MCP tool {tool!r}, which agent "
                        f"{facts.name!r} may call; add it to mcp_tools",
                        task=tid,
                        field="profile",
                    )

    def check_kind(self, tid: str, spec: _Task) -> None:
        """A tool task names a known tool; an agent task says what to do and who does it."""
        error = self.report.error
        agentish = [
            key
            for key, value in (
                ("prompt", spec.prompt),
                ("agent", spec.agent),
                ("capability", spec.capability),
                ("agents", spec.agents),
            )
            if value is not None
        ]
        if spec.tool is not None:
            if agentish:
                error(
                    f"a task is either a tool task (`tool`, `with`) or an agent task "
                    f"(`prompt` with `agent` or `capability`), not both; remove "
                    f"`{agentish[0]}` or `tool`",
                    task=tid,
                    field=agentish[0],
                )
            self.tools.check(spec.tool, self.report, task=tid, field="tool")
            return
        if not agentish:
            error(
                "the task does nothing: give it a `tool` (with `with`), or a `prompt` "
                "with an `agent` or `capability`",
                task=tid,
            )
        if spec.args is not None:
            error(
                "`with` is for tool tasks; an agent task takes a `prompt`", task=tid, field="with"
            )
        if spec.agents is not None:
            self.check_fan_out(tid, spec)
            return
        if spec.agent is not None and spec.capability is not None:
            error("set either `agent` or `capability`, not both", task=tid, field="capability")
        if spec.agent is None and spec.capability is None:
            error(
                "a `prompt` needs an `agent` or a `capability` to say who runs it",
                task=tid,
                field="prompt",
            )
        if spec.prompt is None:
            error("an agent task needs a `prompt`", task=tid, field="prompt")
        if spec.agent is not None and spec.agent not in self.agents:
            error(
                f"unknown agent {spec.agent!r} ({known('defined agents', self.agents)})",
                task=tid,
                field="agent",
            )
        if spec.capability is not None and spec.capability not in self.capabilities:
            error(
                f"no agent has capability {spec.capability!r} "
                f"({known('available capabilities', self.capabilities)})",
                task=tid,
                field="capability",
            )

    def check_fan_out(self, tid: str, spec: _Task) -> None:
        """An ``agents:`` fan-out: a prompt, each agent known and listed once, and no
        other way of picking agents or items."""
        agents = spec.agents
        assert agents is not None
        error = self.report.add
        if spec.prompt is None:
            error("an agent task needs a `prompt`", task=tid, field="prompt")
        for other in ("agent", "capability"):
            if getattr(spec, other) is not None:
                error(f"`agents` asks each agent it lists; remove `{other}`", task=tid, field=other)
        for other in ("foreach", "extend"):
            if getattr(spec, other) is not None:
                error(
                    "`agents` makes one item per agent (`item` is the agent's name); a task "
                    f"cannot also have `{other}`",
                    task=tid,
                    field=other,
                )
        seen: set[str] = set()
        for index, name in enumerate(agents):
            field = f"agents[{index}]"
            if name in seen:
                error(f"agent {name!r} is listed twice", task=tid, field=field)
            seen.add(name)
            if name not in self.agents:
                error(
                    f"unknown agent {name!r} ({known('defined agents', self.agents)})",
                    task=tid,
                    field=field,
                )

    def check_values(
        self, tid: str, spec: _Task, *, state: bool = False
    ) -> tuple[dict[str, Any], Any]:
        """Check a task's JSON values and templates; return its ``with`` and ``foreach``.

        ``state``: ``spec`` is the body of an fsm task's state (the task with the
        state's ``tool``/``with``/``prompt``...): its task-level fields (``foreach``,
        ``when``) are the task's, checked with it, and its templates may read ``fsm``.
        """
        values = self.values
        refs: list[tuple[str, str]] = []
        templates: list[tuple[str, TemplateReads]] = []

        def read(field: str, reads: TemplateReads) -> None:
            if reads:
                templates.append((field, reads))
                refs.extend((ref, field) for ref in sorted(reads.get("tasks", ())))

        args: dict[str, Any] = {}
        if spec.args is not None:
            args = values.json(spec.args, "with", task=tid)
            for field, text in strings(args, "with"):
                read(field, values.template(text, task=tid, field=field))
        if spec.prompt is not None:
            read("prompt", values.template(spec.prompt, tid, "prompt"))
        foreach = spec.foreach if state else self.foreach(tid, spec.foreach, read)
        if spec.when is not None and not state:
            templates.extend(self.condition(tid, spec.when, "when"))
        if spec.switch is not None:
            templates.extend(self.condition(tid, spec.switch, "switch"))
        if spec.loop is not None:
            read("loop.until", values.template(spec.loop.until, tid, "loop.until"))
        else:
            self.no_loop_reads(tid, spec, args, state=state)
        for index, entry in enumerate(() if state else spec.writes or ()):
            # judged when an attempt starts: it reads what the body may read
            read(f"writes[{index}]", values.template(entry, tid, f"writes[{index}]"))
        if spec.tool is None and spec.switch is None and spec.cases is None and spec.bt is None:
            # what the instructions of its agents read of the run, read for this task
            for facts in self.candidates(spec):
                field = f"agents.{facts.name}.instructions"
                refs.extend(
                    (ref, field)
                    for ref in sorted(facts.instructions.get("tasks", ()))
                    if ref in self.tasks
                )
        if refs:
            check_refs(tid, all_needs(spec), refs, self.tasks, self.reads, self.report)
        items = spec.foreach is not None or spec.agents is not None
        for field, reads in templates:
            self.names.check(
                reads,
                items=items and not field.startswith(("foreach", "when", "switch")),
                task=tid,
                field=field,
                fsm=state,
            )
        return args, foreach

    def no_loop_reads(
        self, tid: str, spec: _Task, args: dict[str, Any], *, state: bool = False
    ) -> None:
        """Report a template of a task without ``loop`` that reads ``loop.output`` or
        ``loop.iteration`` (it would fail to render: ``loop`` is undefined)."""
        texts = [*strings(args, "with")]
        for field, text in (
            ("prompt", spec.prompt),
            ("foreach", spec.foreach),
            ("when", spec.when),
            ("switch", spec.switch),
            *((f"writes[{i}]", entry) for i, entry in enumerate(spec.writes or ())),
        ):
            if state and field != "prompt":
                continue  # the task's own fields, checked with the task
            if isinstance(text, str):
                texts.append((field, text))
        for field, text in texts:
            if reads_loop(text):
                self.report.add(
                    "reads loop.output or loop.iteration, which only a loop task has "
                    "(give the task a `loop`)",
                    task=tid,
                    field=field,
                )

    def condition(self, tid: str, source: str, field: str) -> list[tuple[str, TemplateReads]]:
        """Check a ``when`` condition or a ``switch``: its syntax, and that it reads only
        the tasks in ``needs``.

        It is judged when the task's needs have ended, so it may read them and
        nothing later; a ``foreach`` task's is judged once, before its items,
        so it reads no ``item``.
        """
        what = "the condition" if field == "when" else "the switch"
        needs = all_needs(self.tasks[tid])
        reads = self.values.template(source, tid, field)
        for ref in sorted(reads.get("tasks", ())):
            if ref not in self.tasks:
                self.report.add(
                    f"{what} reads tasks.{ref} but there is no task {ref!r} "
                    f"({known('known tasks', self.tasks)})",
                    task=tid,
                    field=field,
                )
            elif ref not in needs:
                self.report.add(
                    f"{what} reads tasks.{ref}, which is not in the task's needs; "
                    f"a {what.split()[1]} may only read the tasks the task needs "
                    f"(add {ref!r} to needs)",
                    task=tid,
                    field=field,
                )
        return [(field, reads)] if reads else []

    def foreach(self, tid: str, value: Any, read: Callable[[str, TemplateReads], None]) -> Any:
        """A ``foreach`` list (checked as JSON) or template; ``read`` gets what it reads."""
        if value is None:
            return None
        values = self.values
        if isinstance(value, list):
            items = values.json(value, "foreach", task=tid)
            for field, text in strings(items, "foreach"):
                read(field, values.template(text, task=tid, field=field))
            return items
        if isinstance(value, str) and is_template(value):
            read("foreach", values.template(value, tid, "foreach"))
            return value
        if isinstance(value, str):
            hint = f"a list such as [{value}] or a template such as '{{{{ inputs.items }}}}'"
        else:
            hint = f"a list or a template such as '{{{{ inputs.items }}}}', not {kind(value)}"
        self.report.error(f"foreach must be {hint}", task=tid, field="foreach")

    def output_schema(self, tid: str, spec: _Task) -> dict[str, Any] | None:
        """Check that ``output_schema`` is a valid JSON schema (any draft jsonschema knows)."""
        raw = spec.output_schema
        if raw is None:
            return None
        if spec.tool is not None:
            self.report.error(
                "output_schema applies to agent tasks", task=tid, field="output_schema"
            )
        import jsonschema

        schema = self.values.json(raw, "output_schema", task=tid)
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            self.report.error(
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
            self.report.error(
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
                self.report.error(
                    f"max_cost must be a positive amount in USD, got {spec.max_cost!r}",
                    task=tid,
                    field="max_cost",
                )
            data["max_cost"] = str(cost)
        if spec.max_latency_ms is not None:
            data["max_latency_ms"] = spec.max_latency_ms
        return data


def _approval_policy(value: _Approval | None) -> ApprovalPolicy | None:
    if value is None:
        return None
    timeout = None if value.timeout is None else float(value.timeout)
    return ApprovalPolicy(timeout=timeout, on_timeout=value.on_timeout)


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

"""The application layer: one place builds an engine from typed configuration.

Every way of running Nexus goes through here -- the ``nexus`` commands (``run``,
``resume``, ``approve``/``reject``, ``replay``, ``validate``, ``plan``, ``cost``),
the Python API (:meth:`Workflow.run`, :meth:`Workflow.run_sync`) and the test
kit's engines (:func:`nexus.testing.temp_engine`, :func:`~nexus.testing.sqlite_engine`)
-- so they all get the same parts:

* configuration: a :class:`Project` holds the environment's
  :class:`~nexus.config.Settings` and the project's ``nexus.toml`` as a
  :class:`~nexus.config.NexusConfig`, read once per command. The file is named
  by value (``nexus --config FILE``, ``Workflow.run(config=FILE)``), else by
  ``NEXUS_CONFIG``, else it is the project's ``nexus.toml`` if there is one
  (found upward from the working directory: :func:`~nexus.config.find_project`);
* store: the SQLite store in the home, signing what it writes with the home's
  audit key (:meth:`Project.open_store`);
* tools: the built-ins (under ``[tools.<name>]``: what a workflow's ``profile:``
  may grant them) plus the ``[wasm_tools]`` declared, each behind its launch
  pin, built once per project (:meth:`Project.tools`); the MCP servers of
  ``[mcp_servers]`` plus the plan's own (the plan wins on a name clash), those
  whose tools a task or an agent of the plan names connected while the engine
  is open (:mod:`nexus.engine.toolset`);
* models: ``scripted``, ``cassette:<path>`` (or ``replay:<path>``, resolved
  against the workflow file's folder), and the SDK providers configured by
  ``[providers]``, held to ``[residency]``; with ``[cache] enabled`` each SDK
  provider answers from the response cache first; with ``record`` every model
  exchange is saved to a cassette as it happens;
* money: the pricing table with ``[pricing]`` over it, the tenant and its
  ``[budgets.tenant]``, the default ``[budgets.run]``;
* protection: the home and the configuration file in use are trusted paths no
  task may write, wherever they are (not only where the environment says);
* redaction: ``[redaction] pii``.

The layers: this module sits above ``engine``, ``planning``, ``store``,
``tools``, ``gateway`` and ``config``, and only ``cli`` (and users) sit above it.
:class:`Workflow` is :class:`~nexus.planning.builder.WorkflowBuilder` (the plan
under construction, in ``planning``) plus the two methods that run it here.

Example:
    >>> project = Project.load(home="/tmp/demo/.nexus")  # doctest: +SKIP
    >>> async with project.open_store() as store:  # doctest: +SKIP
    ...     async with project.engine(store, plan=plan) as engine:
    ...         result = await engine.start(plan)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexus.agents.base import FunctionAgent
from nexus.config import NexusConfig, Settings, load_config, project_file
from nexus.domain.budget import Limits
from nexus.domain.errors import UserError, WorkflowError
from nexus.domain.plan import AgentSpec, Plan
from nexus.engine.facade import Engine, RunResult
from nexus.engine.results import RunCost
from nexus.engine.toolset import run_tools
from nexus.gateway.base import ModelProvider, ProviderRegistry
from nexus.gateway.factory import offline_providers
from nexus.gateway.sdk import SDK_PREFIXES, SDKProviders
from nexus.planning.builder import WorkflowBuilder
from nexus.planning.goal import ToolNote, goal_workflow, read_agents
from nexus.planning.workflow import WorkflowContext, compile_workflow, tool_infos
from nexus.security.trusted import TrustedPaths, trusted_paths
from nexus.store.base import Store
from nexus.store.heads import HeadSigner
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import ToolRegistry
from nexus.tools.builtins import builtin_tools
from nexus.tools.catalog import describe

if TYPE_CHECKING:
    from nexus.missions.mission import MissionSetup

#: ``nexus.missions.mission.MISSION_WORKFLOW``, named here so that a command that
#: runs no mission does not import the missions (a test holds the two equal)
MISSION_WORKFLOW = "code-mission"

__all__ = [
    "MISSION_WORKFLOW",
    "Project",
    "Workflow",
    "project_tools",
    "recorded_plan",
    "recorded_workflow_dir",
]


class Project:
    """What one command runs with: the settings and the project's configuration.

    Build one per command (:meth:`load`) and pass it down; it reads nothing
    after it is built, except the WASM modules it compiles into tools once, on
    the first call of :meth:`tools`.

    Args:
        config: the project's configuration (default: all defaults).
        settings: where state lives (default: read from the environment).
    """

    __slots__ = ("_tools", "config", "settings")

    def __init__(self, config: NexusConfig | None = None, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self.config = config if config is not None else NexusConfig()
        self._tools: ToolRegistry | None = None

    @classmethod
    def load(cls, config: str | Path | None = None, *, home: str | Path | None = None) -> Project:
        """Read the settings and ``nexus.toml`` (once).

        Args:
            config: the configuration file; it must exist (default:
                ``NEXUS_CONFIG``, else the project's ``nexus.toml`` if present).
            home: the state directory (default: ``NEXUS_HOME``, else the
                project's ``.nexus``, else ``./.nexus``).

        Raises:
            NotFoundError: ``config`` or ``NEXUS_CONFIG`` names no file.
            UserError: the file is invalid (the message names it and the key).
        """
        settings = Settings() if home is None else Settings(home=Path(home))
        environ = {**os.environ, "NEXUS_HOME": str(settings.home)}
        return cls(load_config(config, environ=environ), settings)

    @property
    def home(self) -> Path:
        """The state directory."""
        return self.settings.home

    def trusted(self) -> TrustedPaths:
        """What no task may write: this project's home and configuration file among them."""
        # no file yet: the one the project would read, wherever in it this started
        config = self.config.path or project_file()
        return trusted_paths(home=self.home, config=config)

    def tools(self) -> ToolRegistry:
        """The built-in tools plus the WASM tools ``nexus.toml`` declares (built once)."""
        if self._tools is None:
            self._tools = project_tools(self.config, self.home)
        return self._tools

    def workflow_context(self) -> WorkflowContext:
        """What a workflow file is checked against here (``nexus validate``, ``run``, ``plan``).

        The tools with their argument schemas, the model providers this project
        serves, and the MCP servers of ``nexus.toml``; an MCP tool's arguments
        are checked against the descriptor approved for it, when there is one
        (no server is started).
        """
        providers = (*offline_providers(Path.cwd()).prefixes(), *SDK_PREFIXES)
        return WorkflowContext(
            tools=tool_infos(self.tools()),
            providers=providers,
            mcp_servers=tuple(self.config.mcp_servers),
            mcp_schema=self._approved_schema,
        )

    def _approved_schema(self, tool: str) -> dict[str, Any] | None:
        from nexus.tools.pins import PinStore  # the MCP SDK loads only for an MCP tool task

        approval = PinStore.at_home(self.home).get_key(tool)
        descriptor = approval.descriptor if approval is not None else None
        schema = descriptor.get("inputSchema") if descriptor is not None else None
        return dict(schema) if isinstance(schema, dict) else None

    @asynccontextmanager
    async def open_store(self, *, sign: bool = True) -> AsyncIterator[SQLiteStore]:
        """The home's SQLite store, closed on exit.

        With ``sign`` (the default) it signs what it writes with the home's
        audit key, created on first use; commands that only read pass False.

        Raises:
            UserError: the audit key cannot be created or read.
        """
        store = self.store(sign=sign)
        try:
            yield store
        finally:
            await store.close()

    def store(self, *, sign: bool = True) -> SQLiteStore:
        """The home's SQLite store, open: the caller closes it (:meth:`open_store` does).

        Raises:
            UserError: ``sign`` and the audit key cannot be created or read.
        """
        signer = HeadSigner.for_home(self.home) if sign else None
        return SQLiteStore.open(
            self.settings.db_path, durability=self.settings.durability, signer=signer
        )

    @asynccontextmanager
    async def engine(
        self,
        store: Store,
        *,
        plan: Plan | None = None,
        base_dir: Path | None = None,
        record: Path | None = None,
        tools: ToolRegistry | None = None,
        function_agents: Iterable[FunctionAgent] = (),
    ) -> AsyncIterator[Engine]:
        """An engine configured from this project, its connections open while inside.

        Args:
            store: where the event log lives.
            plan: the plan it will drive; of its MCP servers and
                ``[mcp_servers]``, those it uses are connected (a task's tool
                or an agent's tools names one of theirs). None (a replay)
                connects none: a replay executes no tool.
            base_dir: where ``cassette:`` paths are resolved (the
                workflow file's folder; default: the working directory).
            record: save every model exchange to this cassette file.
            tools: the tools tasks may name (default: :meth:`tools`).
            function_agents: Python agents the plans may name.
        """
        registry = tools if tools is not None else self.tools_for(plan)
        async with AsyncExitStack() as stack:
            providers = _providers(self.config, stack, base_dir or Path.cwd(), record)
            if plan is not None:
                servers = dict(self.config.mcp_servers)
                servers.update(plan.mcp_servers)
                connected = replace(plan, mcp_servers=servers) if servers else plan
                registry = await stack.enter_async_context(
                    run_tools(connected, registry, self.home)
                )
            yield self._engine(store, providers, registry, function_agents)

    def tools_for(self, plan: Plan | None) -> ToolRegistry:
        """The tools ``plan`` runs with: :meth:`tools`, plus a code mission's own.

        A code mission's tools are rebuilt from the settings its plan records,
        so a resumed or replayed mission has the tools it started with.
        """
        if plan is None or plan.name != MISSION_WORKFLOW:
            return self.tools()
        from nexus.missions.mission import tools_for_plan

        source = str(self.config.path or "nexus.toml")
        return tools_for_plan(self.tools(), plan, self.config.mission, source=source)

    def mission_plan(self, setup: MissionSetup) -> tuple[Plan, ToolRegistry]:
        """The plan of a prepared code mission, and the tools it runs with.

        It is checked as a workflow file is, against this project's tools plus
        the mission's; roles played by Python function agents are recorded
        with their ``module:function``, so ``nexus resume`` and ``nexus replay``
        load them again.

        Raises:
            WorkflowError: the mission's workflow does not compile (a role's
                model is not one this project serves, say).
        """
        from nexus.missions.mission import with_mission_tools

        registry = with_mission_tools(self.tools(), setup.state)
        context = replace(self.workflow_context(), tools=tool_infos(registry))
        if setup.functions and context.providers is not None:
            context = replace(context, providers=(*context.providers, "function"))
        plan = compile_workflow(
            setup.document, file=f"the mission of {setup.spec.source}", context=context
        )
        if setup.functions:
            agents = {
                name: replace(spec, entrypoint=setup.functions[name])
                if name in setup.functions
                else spec
                for name, spec in plan.agents.items()
            }
            plan = replace(plan, agents=agents)
        return plan, registry

    def build_engine(
        self,
        store: Store,
        *,
        tools: ToolRegistry | None = None,
        function_agents: Iterable[FunctionAgent] = (),
    ) -> Engine:
        """An engine configured from this project, for code that cannot enter :meth:`engine`.

        The same tools, prices, tenant, budgets, residency, redaction and
        trusted paths, and the same providers but for two parts that must be
        closed: the response cache (``[cache]``) is not consulted and no MCP
        server is connected. An SDK client it builds is closed when collected,
        as one built by a bare :class:`~nexus.engine.facade.Engine` is.
        ``cassette:`` paths are resolved against the working directory.

        Args:
            store: where the event log lives.
            tools: the tools tasks may name (default: :meth:`tools`).
            function_agents: Python agents the plans may name.
        """
        providers = _providers(self.config, None, Path.cwd(), None)
        registry = tools if tools is not None else self.tools()
        return self._engine(store, providers, registry, function_agents)

    def _engine(
        self,
        store: Store,
        providers: ProviderRegistry,
        tools: ToolRegistry,
        function_agents: Iterable[FunctionAgent],
    ) -> Engine:
        config = self.config
        return Engine(
            store,
            tools=tools,
            providers=providers,
            function_agents=function_agents,
            pricing=config.pricing(),
            tenant=config.tenant,
            tenant_budget=_limits(config.tenant_budget, "budgets.tenant"),
            run_budget=_limits(config.run_budget, "budgets.run"),
            residency=_residency(config),
            pii=config.redaction_pii,
            trusted=self.trusted(),
        )


def project_tools(config: NexusConfig, home: Path | None = None) -> ToolRegistry:
    """The built-in tools, under ``config``'s ``[tools.<name>]``, plus the WASM tools it declares.

    A declared module runs only while its launch pin is approved
    (``nexus tools approve wasm:NAME --pin …``): see :mod:`nexus.tools.pins`.

    Raises:
        UserError: a declared tool takes a built-in tool's name.
    """
    registry = builtin_tools(config.tools)
    if not config.wasm_tools:
        return registry
    from nexus.tools.pins import PinStore
    from nexus.tools.wasm import guard_launch

    pins = PinStore.at_home(home if home is not None else Settings().home)
    for name, declared in config.wasm_tools.items():
        if name in registry:
            raise UserError(
                f"{config.path}: [wasm_tools.{name}]: the name '{name}' is taken by a "
                "built-in tool; choose another"
            )
        registry.add(guard_launch(declared.build(), pins))
    return registry


async def recorded_plan(store: Store, run_id: str) -> Plan:
    """The plan a recorded run started with.

    Raises:
        NotFoundError: no run with this id.
    """
    state, _ = await Engine(store).load_state(run_id)
    return state.plan


async def recorded_workflow_dir(store: Store, run_id: str) -> Path | None:
    """The folder of the workflow file a recorded run started from, which its
    ``cassette:`` paths are relative to; None for a run started from Python.

    Raises:
        NotFoundError: no run with this id.
    """
    _, events = await Engine(store).load_state(run_id)
    source = events[0].data.get("source")
    if not isinstance(source, str) or not Path(source).is_absolute():
        return None  # "python:<name>", or no file
    return Path(source).parent


def _residency(config: NexusConfig) -> Any:
    from nexus.gateway.routing import Residency

    return Residency.from_dict(config.residency) if config.residency else None


def _providers(
    config: NexusConfig, stack: AsyncExitStack | None, base_dir: Path, record: Path | None
) -> ProviderRegistry:
    """The model providers: offline ones, the SDK ones of ``[providers]`` (cached,
    held to ``[residency]``), each recording to ``record`` when given.

    ``stack`` closes what they open; without one (:meth:`Project.build_engine`)
    no response cache is opened.
    """
    from nexus.gateway.cassette import CASSETTE_PREFIXES, Cassette, RecordingProvider

    sdk = SDKProviders(config.providers, residency=_residency(config))
    sdk_factory: Callable[[AgentSpec], Any] = sdk
    if stack is not None:
        stack.push_async_callback(sdk.aclose)
    if stack is not None and config.cache.enabled:
        from nexus.gateway.cache import CachingProvider, SQLiteResponseCache

        cache = SQLiteResponseCache(config.cache.path)
        stack.callback(cache.close)
        ttl = config.cache.ttl
        sdk_factory = _wrapped(sdk, lambda p: CachingProvider(p, cache, ttl=ttl))
    registry = offline_providers(base_dir)
    for prefix in SDK_PREFIXES:
        registry.add(prefix, sdk_factory)
    if record is None:
        return registry
    cassette = Cassette(path=record)
    recorded = ProviderRegistry()
    for prefix in registry.prefixes():
        factory = registry.factory(prefix)
        if prefix not in CASSETTE_PREFIXES:
            factory = _wrapped(factory, lambda p: RecordingProvider(p, cassette, autosave=True))
        recorded.add(prefix, factory)
    return recorded


def _wrapped(factory: Callable[[AgentSpec], Any], wrap: Callable[[Any], Any]) -> Any:
    def make(agent: AgentSpec) -> ModelProvider:
        provider: ModelProvider = wrap(factory(agent))
        return provider

    return make


def _limits(data: Any, key: str) -> Limits | None:
    return None if not data else Limits.from_dict(data, f"nexus.toml {key}")


def goal_document(
    goal: str,
    agents: str | Path | dict[str, Any],
    tools: ToolRegistry,
    *,
    review: bool = False,
    max_tasks: int = 50,
    planner: str | None = None,
    cache: Sequence[str] = (),
) -> dict[str, Any]:
    """The workflow document of a mission from ``goal`` (see :mod:`nexus.planning.goal`).

    ``agents`` is an agents file (a path) or its content; the tools it lists
    under ``tools:`` must be in ``tools``, which describes them to the planner.

    Raises:
        UserError: the goal is empty or too long.
        WorkflowError: the agents file is invalid, names an unknown tool, or no
            agent can plan (each names the file).
        NotFoundError: the agents file does not exist.
    """
    file = str(agents) if not isinstance(agents, dict) else "<agents>"
    content = read_agents(agents) if not isinstance(agents, dict) else agents
    named = content.get("tools") or []
    if not isinstance(named, list) or not all(isinstance(t, str) for t in named):
        raise WorkflowError("`tools` must be a list of tool names", file=file, field="tools")
    notes: list[ToolNote] = []
    for index, name in enumerate(named):
        if name not in tools:
            known = ", ".join(sorted(tools.names())[:20])
            raise WorkflowError(
                f"unknown tool {name!r} (known tools: {known})", file=file, field=f"tools[{index}]"
            )
        described = describe(tools.get(name))
        schema = described["input_schema"]
        notes.append(
            ToolNote(name, described["description"], schema if isinstance(schema, dict) else None)
        )
    return goal_workflow(
        goal,
        content,
        file=file,
        tools=notes,
        planner=planner,
        review=review,
        max_tasks=max_tasks,
        cache=cache,
    )


class Workflow(WorkflowBuilder):
    """A plan under construction (see :class:`~nexus.planning.builder.WorkflowBuilder`)
    that runs as the CLI runs it: same ``nexus.toml``, providers, residency and tools.

    Example:
        >>> wf = Workflow("hello")
        >>> wf.task("say", tool="shell", args={"cmd": "echo hello"})
        TaskRef(id='say')
        >>> wf.run_sync(home=".nexus")  # doctest: +SKIP
    """

    def project_tools(self, project: Project) -> ToolRegistry:
        """The project's tools plus the function tools this workflow uses."""
        base = project.tools()
        registry = ToolRegistry(base.get(name) for name in base.names())
        for function_tool in self.function_tools():
            registry.add(function_tool)
        return registry

    async def run(
        self,
        *,
        home: str | Path | None = None,
        inputs: dict[str, Any] | None = None,
        config: str | Path | None = None,
        project: Project | None = None,
    ) -> RunResult:
        """Run in-process against the SQLite store in ``home`` (default ``$NEXUS_HOME``).

        The engine is built as ``nexus run`` builds it, from the project's
        ``nexus.toml`` (``config``, else ``$NEXUS_CONFIG``, else the
        project's): its providers, residency, cache, pricing, budgets,
        WASM tools and MCP servers apply. The run is signed with the home's
        audit key (``home/keys/audit.ed25519``, created on first use), so
        ``nexus audit verify --require-signed`` holds for it.

        Args:
            home: the state directory.
            inputs: values for the workflow's inputs.
            config: the ``nexus.toml`` to use; it must exist.
            project: a project already loaded (then ``home`` and ``config``
                must not be given).

        Returns:
            The :class:`~nexus.engine.facade.RunResult`: each task's status,
            output and error (``result.outputs["draft"]``,
            ``result.task("draft")``) and what the run cost
            (``result.cost``, a :class:`~nexus.engine.results.RunCost`).

        Raises:
            UserError: the configuration is invalid, the workflow is invalid,
                or the home's audit key cannot be created or read.
            NotFoundError: ``config`` names no file.
        """
        if project is None:
            project = Project.load(config, home=home)
        elif home is not None or config is not None:
            raise UserError("Workflow.run: give either project, or home and config")
        tools = self.project_tools(project)
        # checked as `nexus run` checks a file, with this workflow's function tools
        context = replace(project.workflow_context(), tools=tool_infos(tools))
        plan = self.compile(inputs, context=context)
        async with (
            project.open_store() as store,
            project.engine(
                store, plan=plan, tools=tools, function_agents=self.function_agents()
            ) as engine,
        ):
            result = await engine.start(plan, source=f"python:{self.name}")
            # what `nexus cost` reports, from the log the run just wrote
            cost = RunCost.of(await store.load(result.run_id), project.config.pricing())
        return replace(result, cost=cost)

    def run_sync(
        self,
        *,
        home: str | Path | None = None,
        inputs: dict[str, Any] | None = None,
        config: str | Path | None = None,
        project: Project | None = None,
    ) -> RunResult:
        """:meth:`run` for code that has no event loop (scripts, notebooks)."""
        return asyncio.run(self.run(home=home, inputs=inputs, config=config, project=project))

    @classmethod
    def from_goal(
        cls,
        goal: str,
        agents: str | Path | dict[str, Any],
        *,
        review: bool = False,
        max_tasks: int = 50,
        planner: str | None = None,
        tools: ToolRegistry | None = None,
        cache: Sequence[str] = (),
    ) -> Workflow:
        """A mission from ``goal``: the agent whose role is ``planner`` turns it into
        tasks for the other agents (and the tools the agents file lists), checked like
        a workflow file's, then run (docs/planning.md, Missions from a goal).

        Args:
            goal: what the mission is for, in words.
            agents: an agents file (YAML: ``agents:``, optional ``tools:``,
                ``budget:``, ``max_parallel:``, ``extensions:``) or its content.
            review: the plan waits for ``nexus approve RUN plan`` first.
            max_tasks: the most tasks the plan may hold.
            planner: the planning agent, when no single one has role ``planner``.
            tools: where the tools the agents file lists are found (default:
                the built-in tools).
            cache: ``["plans"]``: re-use the plan an earlier run of the same goal,
                agents and inputs made (docs/planning.md, The plan cache).

        Raises:
            UserError: the goal is empty or too long.
            WorkflowError: the agents file is invalid or no agent can plan.
        """
        registry = tools if tools is not None else builtin_tools()
        doc = goal_document(
            goal,
            agents,
            registry,
            review=review,
            max_tasks=max_tasks,
            planner=planner,
            cache=cache,
        )
        wf = cls(doc["name"], fail_fast=False)
        wf._doc = doc
        return wf

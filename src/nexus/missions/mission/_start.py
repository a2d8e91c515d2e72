"""Preparing a code mission: from a spec and a repository to a plan the engine can run.

:func:`prepare_mission` reads the spec, opens the repository (read only: the
user's checkout, index and HEAD are never touched), settles the mission's id,
branch, base commit, working directory and checks, gives each role an agent
(a model, or a Python function agent), and builds the workflow document and
the tools. Nothing is recorded until the engine starts the plan.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus.agents.resolver import AgentResolver
from nexus.domain.errors import UserError
from nexus.domain.plan import AgentSpec
from nexus.missions.mission._config import MissionConfig, Mode
from nexus.missions.mission._prompts import Prompts
from nexus.missions.mission._tools import MissionState
from nexus.missions.mission._workflow import ROLES, literal, mission_workflow
from nexus.missions.roles import Role, load_roles
from nexus.missions.spec import SpecMap
from nexus.missions.verify import ConstraintBook, user_checks
from nexus.missions.workspace import Repo, overlapped
from nexus.security.workspaces import workspace_problem

__all__ = ["MISSION_KEYS", "MissionSetup", "mission_state", "prepare_mission"]

#: The keys of ``nexus.toml``'s ``[mission]`` table.
MISSION_KEYS = (
    "model",
    "max_attempts",
    "review",
    "roles",
    "checks",
    "workdir",
    "max_items",
    "max_tokens",
)
#: The longest answer a role's model may give, unless ``[mission] max_tokens`` or the
#: role's agent entry says otherwise: a model with no limit may write until its
#: context is full (a small local one does), and its next turn then cannot be sent.
DEFAULT_MAX_TOKENS = 4096
#: What the architect is told of the mission's mode.
_MODE_NOTES: dict[str, str] = {
    "greenfield": "\n\nMode: greenfield. The repository is new or nearly empty: plan the "
    "modules the spec asks for.",
    "brownfield": "\n\nMode: brownfield. The repository has code and tests that must keep "
    "passing: change what exists where the spec asks, own the files you change.",
    "hardening": "\n\nMode: hardening. Add no feature: plan tests, fixes and checks that make "
    "what exists meet the spec's requirements and constraints, and own the files you touch. "
    "Every work item names the test files that prove its fix, every check runs on every "
    "item, and the 'api' check rejects a change that adds, removes or re-signs a public "
    "function, class or method (private helpers are fine).",
}
#: Roles a mission cannot do without.
_REQUIRED_ROLES = ("architect", "coder")


@dataclass(frozen=True, slots=True)
class MissionSetup:
    """A mission ready to start: its settings, spec, workflow document and shared state."""

    config: MissionConfig
    spec: SpecMap
    document: dict[str, Any]
    state: MissionState
    #: role -> ``module:function`` for the roles played by Python function agents
    functions: dict[str, str]


def _table(project: Mapping[str, Any], source: str) -> dict[str, Any]:
    unknown = sorted(k for k in project if k not in MISSION_KEYS)
    if unknown:
        raise UserError(
            f"{source}: [mission]: unknown key {unknown[0]!r} (known: {', '.join(MISSION_KEYS)})"
        )
    return dict(project)


def _mission_id(spec: SpecMap, repo: Repo, base: str) -> str:
    """A new id for each mission: the spec's title, the base and a random part."""
    stem = "".join(c if c.isalnum() else "-" for c in (spec.title or "mission").lower())
    stem = "-".join(p for p in stem.split("-") if p)[:24] or "mission"
    salt = hashlib.sha256(f"{repo.path}\0{base}\0".encode() + os.urandom(8)).hexdigest()[:8]
    return f"{stem}-{salt}"


def _agents(
    roles: Mapping[str, Role],
    model: str | None,
    agents_file: Mapping[str, Any] | None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The workflow's agent entries by role, and the function agents' entrypoints.

    A role is played by, in this order: the agents file's entry for it (a
    workflow agent entry, or ``function: module:function``), the project's
    ``[mission.roles.NAME]`` (``function`` or ``model``), else ``model``. Its
    tools are the role's own (a project cannot widen them).
    """
    given = dict((agents_file or {}).get("agents") or {})
    unknown = sorted(str(n) for n in given if n not in ROLES)
    if unknown:
        raise UserError(
            f"--agents: no mission role {unknown[0]!r} (the roles are {', '.join(ROLES)})"
        )
    entries: dict[str, dict[str, Any]] = {}
    functions: dict[str, str] = {}
    for name in ROLES:
        role = roles[name]
        entry: dict[str, Any] = dict(given.get(name) or {})
        function = entry.pop("function", None) or (None if entry else role.function)
        if function:
            functions[name] = str(function)
            entries[name] = {"role": name, "model": f"function:{name}"}
            continue
        chosen = entry.get("model") or role.model or model
        if not chosen:
            if name in _REQUIRED_ROLES:
                raise UserError(
                    f"no model for the {name} role: pass --model PROVIDER:MODEL, set "
                    f"[mission] model or [mission.roles.{name}] in nexus.toml, or give the "
                    "role a Python function agent"
                )
            continue  # an optional role without a model is left out
        instructions = entry.get("instructions") or role.instructions
        entries[name] = {
            **{k: v for k, v in entry.items() if k not in ("model", "instructions", "tools")},
            "role": name,
            "model": chosen,
            "instructions": literal(instructions),
            "capabilities": list(role.capabilities),
            "tools": list(role.tools),
            "max_steps": int(entry.get("max_steps") or 24),
            "max_tokens": int(entry.get("max_tokens") or max_tokens),
        }
    return entries, functions


def prepare_mission(
    spec: SpecMap,
    repo_path: Path,
    *,
    project: Mapping[str, Any],
    source: str,
    home: Path,
    mode: Mode = "greenfield",
    model: str | None = None,
    agents_file: Mapping[str, Any] | None = None,
    workdir: Path | None = None,
    max_attempts: int | None = None,
    plan_review: bool = False,
    budget: Mapping[str, Any] | None = None,
) -> MissionSetup:
    """A code mission on ``repo_path`` for ``spec``, ready for the engine.

    Args:
        spec: the design spec, read.
        repo_path: the git repository (its work tree; never changed).
        project: ``nexus.toml``'s ``[mission]`` table.
        source: where ``project`` came from, for errors.
        home: the state directory (the working directory default lies beside it).
        mode: greenfield, brownfield or hardening.
        model: the model every role without its own uses.
        agents_file: ``--agents``: agents by role (a workflow agent entry, or
            ``function: module:function``).
        workdir: where worktrees go (default: ``<home>/../.nexus-missions/<id>``).
        max_attempts: gate attempts per work item.
        plan_review: the work items wait for ``nexus approve RUN work``.
        budget: the run's budget.

    Raises:
        UserError: the repository, the table or a role cannot be used (named).
    """
    table = _table(project, source)
    repo = Repo.open(repo_path)
    base = repo.head()
    mission_id = _mission_id(spec, repo, base)
    root = _mission_root(workdir or table.get("workdir"), home, repo)
    root.mkdir(parents=True, exist_ok=True)
    folder = root.resolve() / mission_id
    checks = [*user_checks(table.get("checks") or {}, source=source)]
    book = ConstraintBook.load(repo.path)
    checks.extend(book.as_checks())
    roles = load_roles({"mission": table}, source=source)
    limit = table.get("max_tokens", DEFAULT_MAX_TOKENS)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1_000_000:
        raise UserError(f"{source}: [mission] max_tokens must be a whole number of tokens >= 1")
    entries, functions = _agents(roles, model or table.get("model"), agents_file, limit)
    config = MissionConfig(
        id=mission_id,
        repo=str(repo.path),
        branch=f"nexus/{mission_id}",
        base=base,
        workdir=str(folder),
        mode=mode,
        max_attempts=int(max_attempts or table.get("max_attempts") or 3),
        checks=tuple(c.model_dump(mode="json") for c in checks),
        review=bool(table.get("review", True)) and "reviewer" in entries,
        max_items=int(table.get("max_items") or 30),
        constraints=book.as_instructions(),
    )
    state = mission_state(config, spec, roles=roles, present=tuple(entries))
    files = repo.tracked_files(base)
    names = state.check_names()
    schema = roles["architect"].answer_schema(
        checks=names, requirements=[r.id for r in spec.requirements], max_items=config.max_items
    )
    document = mission_workflow(
        config,
        spec.model_dump(mode="json"),
        entries,
        architect_prompt=state.prompts.architect(
            files,
            names,
            index_context=state.prompts.repository_context(repo.path),
            max_items=config.max_items,
        )
        + _MODE_NOTES[mode],
        plan_schema=schema or {},
        plan_review=plan_review,
        budget=budget,
    )
    _check_functions(functions)
    return MissionSetup(config, spec, document, state, functions)


def _mission_root(given: str | Path | None, home: Path, repo: Repo) -> Path:
    """Where missions keep their worktrees: as given, else beside the state home.

    When the state home's folder is the repository (``nexus init`` in a
    checkout), the first of these that lies outside it and may be a workspace
    (:func:`~nexus.security.workspaces.workspace_problem`) is taken instead:
    the user's cache (``$XDG_CACHE_HOME/nexus/missions``), then
    ``.nexus-missions`` beside the repository.

    Raises:
        UserError: the directory given lies in the repository or holds it, or no
            default can be used.
    """
    if given:
        root = Path(given).expanduser()
        root = root if root.is_absolute() else Path.cwd() / root
        if overlapped(repo, root) is not None:
            raise UserError(
                f"the mission's workdir {root} (--workdir or [mission] workdir) overlaps the "
                f"repository {repo.path}: put it outside (the checkout is never touched)"
            )
        return root
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nexus"
    tried = [
        home.parent / ".nexus-missions",
        cache / "missions",
        repo.path.parent / ".nexus-missions",
    ]
    for root in tried:
        if (
            overlapped(repo, root) is None
            and workspace_problem(os.path.realpath(root), roots=None) is None
        ):
            return root
    raise UserError(
        f"no default place for the mission's worktrees outside the repository {repo.path} "
        f"({', '.join(map(str, tried))}): give one with --workdir or [mission] workdir"
    )


def mission_state(
    config: MissionConfig,
    spec: SpecMap,
    *,
    roles: Mapping[str, Role] | None = None,
    present: Sequence[str] = ROLES,
) -> MissionState:
    """The state a mission's tools share (also rebuilt from a recorded plan on resume)."""
    index_dir = config.workdir_path / "index" if config.mode != "greenfield" else None
    prompts = Prompts(
        spec,
        roles if roles is not None else load_roles(None, source="nexus.toml"),
        constraints=config.constraints,
        index_dir=index_dir,
    )
    return MissionState(config=config, spec=spec, prompts=prompts, roles=tuple(present))


def _check_functions(functions: Mapping[str, str]) -> None:
    """Import each function agent now, so a wrong reference fails before anything runs."""
    resolver = AgentResolver(providers=None)  # type: ignore[arg-type]  # functions only
    for role, ref in functions.items():
        resolver.function(AgentSpec(name=role, role=role, model=f"function:{role}", entrypoint=ref))

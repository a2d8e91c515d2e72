"""The tools a code mission's tasks call: plan, expand, open, files, check, merge.

Each is an ordinary tool (a recorded effect: a replay calls none of them and
reads their recorded results), built for one mission from its
:class:`~nexus.missions.mission.MissionConfig` alone (:func:`mission_tools`),
so ``nexus resume`` rebuilds exactly the same ones from the run's record.

Which work item a call is for comes from the *task* that makes it
(``item-W``), never from the arguments a model wrote: a coder working on ``W``
cannot name another item's worktree. The file tools are the built-in
``file.*`` tools (race-free, no symlink followed, nothing Nexus trusts
written) bound to that item's worktree, narrowed further by role:

* ``mission.read`` / ``mission.list``: anything in the item's worktree but ``.git``;
* ``mission.write``: only the files the item owns (its ``owns`` and ``tests``);
* ``mission.tests.read``: the tester's view -- everything but the item's own
  implementation files (it writes tests from the contract, not from the code);
* ``mission.tests.write``: only the item's test files.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import posixpath
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus.domain.errors import NexusError, PolicyDenied, UserError
from nexus.missions.mission._config import MissionConfig, item_of_task
from nexus.missions.mission._prompts import Prompts
from nexus.missions.mission._workflow import item_tasks
from nexus.missions.plan import MissionPlan, PlanRejected, WorkItem, compile_plan
from nexus.missions.roles import as_data
from nexus.missions.spec import SpecMap
from nexus.missions.verify import (
    CheckResult,
    CheckSandbox,
    CheckSpec,
    default_checks,
    gate,
    merge_checks,
    run_checks,
)
from nexus.missions.workspace import (
    MergeQueue,
    Repo,
    Worktrees,
    changed_files,
    commit_change,
    discard_changes,
    merge_into,
    patch_sha256,
    scope_violations,
)
from nexus.security.trusted import TRUSTED_NAMES
from nexus.tools.base import Tool, ToolContext, ToolRegistry
from nexus.tools.builtins import FileList, FileRead, FileWrite
from nexus.tools.sandbox import remove_stale_placeholders

__all__ = ["MISSION_TOOLS", "MissionState", "mission_tools"]

#: Every tool a mission registers, by name.
MISSION_TOOLS = (
    "mission.check",
    "mission.expand",
    "mission.list",
    "mission.merge",
    "mission.open",
    "mission.plan",
    "mission.read",
    "mission.sync",
    "mission.tests.read",
    "mission.tests.write",
    "mission.write",
)
_PLAN_FILE = "plan.json"
#: Checks keep their caches in the sandbox's private /tmp, never in the work tree
#: (a cache file there would be a change the item does not own)
_SANDBOX = CheckSandbox(
    env={"HOME": "/tmp", "XDG_CACHE_HOME": "/tmp/.cache", "RUFF_CACHE_DIR": "/tmp/.ruff"}
)
#: The built-in checks' names (:func:`nexus.missions.verify.default_checks` gives those
#: that apply to a work tree); a work item's envelope may name them and the project's.
BUILTIN_CHECKS = ("scope", "build", "lint", "types", "tests", "security", "secrets", "docs")
#: What a hardening mission adds: the public API neither grows, shrinks nor changes.
HARDENING_API_CHECK = CheckSpec(name="api", kind="api", timeout_s=60)
_PATH_ARG = {"type": "string", "description": "a path relative to the work item's worktree"}


@dataclass(slots=True)
class MissionState:
    """What one mission's tools share: its settings, spec, roles and accepted plan."""

    config: MissionConfig
    spec: SpecMap
    prompts: Prompts
    roles: tuple[str, ...]
    _plan: MissionPlan | None = None
    _repo: Repo | None = None
    _queue: MergeQueue | None = None

    @property
    def repo(self) -> Repo:
        if self._repo is None:
            self._repo = Repo.open(self.config.repo_path)
        return self._repo

    def checks(self, worktree: Path) -> list[CheckSpec]:
        """The checks of a change in ``worktree``: the built-in ones that apply to what it
        holds now, then the project's and the accepted constraints' (recorded at start)."""
        extra = [CheckSpec.model_validate(c) for c in self.config.checks]
        found = default_checks(worktree)
        if self.config.mode == "hardening":
            found.append(HARDENING_API_CHECK)
        return merge_checks(found, extra)

    def check_names(self) -> list[str]:
        """The checks a work item's envelope may name: the built-in ones and the recorded."""
        recorded = [n for n in self.config.check_names() if n not in BUILTIN_CHECKS]
        hardening = [HARDENING_API_CHECK.name] if self.config.mode == "hardening" else []
        return [*BUILTIN_CHECKS, *hardening, *recorded]

    def envelope(self, checks: Sequence[CheckSpec], item: WorkItem) -> list[CheckSpec]:
        """The item's checks: those its envelope names (all the mission's when it names
        none, and always all in a hardening mission: a fix may break anything)."""
        if not item.checks or self.config.mode == "hardening":
            return list(checks)
        wanted = set(item.checks) | {c.name for c in checks if c.kind == "scope"}
        return [c for c in checks if c.name in wanted]

    def worktrees(self) -> Worktrees:
        return Worktrees(self.repo, self.config.workdir_path / "worktrees")

    def queue(self) -> MergeQueue:
        """The mission's merge queue (it keeps no state of git's but the mission's base)."""
        if self._queue is None:
            self._queue = MergeQueue(
                self.repo, self.config.branch, self.config.workdir_path / "merge"
            )
        return self._queue

    def plan(self) -> MissionPlan:
        """The accepted plan (kept in the mission's workdir by ``mission.plan``)."""
        if self._plan is None:
            path = self.config.workdir_path / _PLAN_FILE
            try:
                self._plan = MissionPlan.model_validate_json(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise NexusError(
                    f"mission {self.config.id}: no accepted plan in {path} yet", retryable=False
                ) from None
        return self._plan

    def keep_plan(self, plan: MissionPlan) -> None:
        path = self.config.workdir_path / _PLAN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(plan.to_data(), sort_keys=True), encoding="utf-8")
        tmp.replace(path)
        self._plan = plan

    def item(self, ctx: ToolContext, tool: str) -> WorkItem:
        """The work item the calling task runs; a task that runs none is refused."""
        item_id = item_of_task(ctx.task)
        if item_id is None:
            raise PolicyDenied(f"tool '{tool}': only a work item's task (item-...) may call it")
        for item in self.plan().items:
            if item.id == item_id:
                return item
        raise PolicyDenied(f"tool '{tool}': the plan has no work item {item_id!r}")


@dataclass(frozen=True, slots=True)
class _MissionTool:
    """What every ``mission.*`` tool but the file tools has: the mission's shared state, a
    name and a description; none is pure (each call is a recorded effect)."""

    state: MissionState
    name: str = ""
    description: str = ""
    pure: bool = False


@dataclass(frozen=True, slots=True)
class _PlanTool(_MissionTool):
    """``mission.plan``: compile the architect's answer into the mission's plan."""

    name: str = "mission.plan"
    description: str = "Check a proposed plan of work items; answers ok, or the problems."
    input_schema: Mapping[str, Any] = field(
        default_factory=lambda: {
            "type": "object",
            "required": ["answer"],
            "properties": {"answer": {}},
        }
    )

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        answer = args.get("answer")
        if isinstance(answer, dict) and "data" in answer:  # an agent's structured answer
            answer = answer["data"]
        state = self.state
        files = await asyncio.to_thread(state.repo.tracked_files, state.config.base)
        try:
            plan = compile_plan(
                answer,
                spec=state.spec,
                files=files,
                checks=state.check_names(),
                max_items=state.config.max_items,
                require_tests=state.config.mode == "hardening",
            )
        except PlanRejected as rejected:
            return {
                "ok": False,
                "feedback": rejected.feedback(),
                "problems": [dataclasses.asdict(p) for p in rejected.problems],
            }
        state.keep_plan(plan)
        return {"ok": True, "plan": plan.to_data()}


@dataclass(frozen=True, slots=True)
class _ExpandTool(_MissionTool):
    """``mission.expand``: one task per work item of the accepted plan (plan extension)."""

    name: str = "mission.expand"
    description: str = "Turn the accepted plan's work items into the mission's tasks."

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        plan = self.state.plan()
        data = plan.to_data()
        items = list(data["items"])
        return {
            "summary": f"{len(items)} work items",
            "tasks": item_tasks(
                items,
                self.state.config,
                self.state.roles,
                review_schema=self.state.prompts.review_schema(),
            ),
            "unmet": data.get("unmet", []),
        }


@dataclass(frozen=True, slots=True)
class _OpenTool(_MissionTool):
    """``mission.open``: the work item's worktree (opened, or reattached) and its role prompts."""

    name: str = "mission.open"
    description: str = "Open the work item's worktree on the mission branch."

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        state = self.state
        item = state.item(ctx, self.name)
        config = state.config

        def open_it() -> tuple[Path, str]:
            # the item starts from the mission branch as it is when first opened (its
            # dependencies merged); reattaching after a crash keeps that start
            base_file = config.workdir_path / "bases" / item.id
            if base_file.is_file():
                tip = base_file.read_text(encoding="ascii").strip()
            else:
                tip = state.repo.ensure_branch(config.branch, config.base)
                base_file.parent.mkdir(parents=True, exist_ok=True)
                base_file.write_text(tip + "\n", encoding="ascii")
            path = state.worktrees().open(item.id, branch=config.item_branch(item.id), start=tip)
            return path, tip

        path, tip = await asyncio.to_thread(open_it)
        return {
            "item": item.id,
            "branch": config.item_branch(item.id),
            "base": tip,
            "prompts": state.prompts.for_item(item, path),
        }


def _item_base(state: MissionState, item: WorkItem) -> str:
    """The commit the item's branch started from (where the mission branch was at open)."""
    base_file = state.config.workdir_path / "bases" / item.id
    return base_file.read_text(encoding="ascii").strip()


@dataclass(frozen=True, slots=True)
class _FileTool:
    """One of the ``mission.*`` file tools: a built-in file tool on the item's worktree."""

    state: MissionState
    name: str
    inner: FileRead | FileWrite | FileList
    mode: str  # "read", "write", "tests.read", "tests.write", "list"
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=dict)
    pure: bool = False

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        state = self.state
        item = state.item(ctx, self.name)
        worktree = state.config.worktree(item.id)
        if not worktree.is_dir():
            raise NexusError(f"tool '{self.name}': the worktree of {item.id} is not open")
        raw = args.get("path", ".")
        if not isinstance(raw, str) or not raw or "\x00" in raw:
            raise UserError(f"tool '{self.name}': 'path' must be a non-empty string")
        normal = posixpath.normpath(raw.strip() or ".")
        if normal.startswith("/") or normal == ".." or normal.startswith("../"):
            raise PolicyDenied(
                f"tool '{self.name}': {raw!r} is outside the work item's worktree "
                "(paths are relative to it)"
            )
        relative = "" if normal == "." else normal
        if any(part.casefold() == ".git" for part in relative.split("/")):
            # the worktree's own, or a nested repository's whose config git would obey
            raise PolicyDenied(f"tool '{self.name}': {raw!r} is inside .git")
        if self.mode != "list" and relative:
            if self.mode == "write" and scope_violations([relative], item.owns):
                raise PolicyDenied(
                    f"tool '{self.name}': work item {item.id} does not own {raw!r} "
                    f"(it owns: {', '.join(item.owns) or 'nothing'}; its tests are the tester's)"
                )
            if self.mode == "tests.write" and scope_violations([relative], item.tests):
                raise PolicyDenied(
                    f"tool '{self.name}': the tester of {item.id} writes only its tests "
                    f"({', '.join(item.tests) or 'none'}), not {raw!r}"
                )
            if (
                self.mode == "tests.read"
                and not scope_violations([relative], item.owns)
                and scope_violations([relative], item.tests)
            ):
                raise PolicyDenied(
                    f"tool '{self.name}': {raw!r} is {item.id}'s implementation, which its "
                    "tester does not read: write the tests from the contract"
                )
        bound = dataclasses.replace(ctx, workspace=worktree, profile=None, grant=None, wrote=None)
        return await self.inner({**args, "path": relative or "."}, bound)


@dataclass(frozen=True, slots=True)
class _CheckTool(_MissionTool):
    """``mission.check``: commit the item's worktree, run its checks, and gate the result."""

    name: str = "mission.check"
    description: str = "Commit the work item's change and run its checks through the gate."

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        state = self.state
        item = state.item(ctx, self.name)
        config = state.config
        worktree = config.worktree(item.id)
        step = str(args.get("step", ctx.attempt))
        attempt = _count_attempt(config, item.id, step)
        base = await asyncio.to_thread(_item_base, state, item)
        # a check killed with the process left the sandbox's placeholders for trusted
        # names (nexus.toml, .nexus) in the worktree: they are no one's work
        await asyncio.to_thread(remove_stale_placeholders, worktree, TRUSTED_NAMES)
        change = await asyncio.to_thread(
            commit_change,
            worktree,
            base,
            f"{item.title or item.id} (attempt {attempt})",
            {"Nexus-Mission": config.id, "Nexus-Work-Item": item.id},
        )
        changed, patch = change.changed, change.patch
        checks = state.envelope(state.checks(worktree), item)
        started = time.monotonic()
        results = await run_checks(
            worktree,
            checks,
            changed=changed,
            owns=(*item.owns, *item.tests),
            base_ref=base,
            sandbox=_SANDBOX,
        )
        checks_s = round(time.monotonic() - started, 3)
        await asyncio.to_thread(discard_changes, worktree)  # what the checks left behind
        verdict = gate(results, [c.name for c in checks if c.required] or None)
        accepted = verdict.accepted and bool(changed)
        summary = (
            "accepted"
            if accepted
            else ("no file changed" if not changed else f"failed: {', '.join(verdict.failed)}")
        )
        return {
            "item": item.id,
            "attempt": attempt,
            "accepted": accepted,
            "summary": summary,
            "feedback": as_data(verdict.feedback)
            if changed
            else "You changed no file: write the change.",
            "failed": list(verdict.failed),
            "results": [r.to_data() for r in results],
            "checks_s": checks_s,
            "changed": list(changed),
            "commit": change.commit,
            "patch_sha256": patch_sha256(patch),
            "review_prompt": state.prompts.review(item, patch, results) if accepted else "",
        }


def _count_attempt(config: MissionConfig, item: str, step: str) -> int:
    """The attempt a check at ``step`` is: one more than the steps checked before it.

    Kept in the workdir by step, so a check interrupted and run again at the
    same step counts once.
    """
    folder = config.workdir_path / "attempts" / item
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{int(step):06d}").touch()
    steps = sorted(p.name for p in folder.iterdir())
    return steps.index(f"{int(step):06d}") + 1


@dataclass(frozen=True, slots=True)
class _MergeTool(_MissionTool):
    """``mission.merge``: the item's change through the merge queue onto the mission branch."""

    name: str = "mission.merge"
    description: str = "Merge the work item's accepted change onto the mission branch."

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        state = self.state
        item = state.item(ctx, self.name)
        config = state.config
        attempt = len(list((config.workdir_path / "attempts" / item.id).glob("*")))
        combined: list[CheckResult] = []
        spent: list[float] = []

        async def check(path: Path) -> tuple[bool, str]:
            started = time.monotonic()
            # the combined tree: the item's checks again, on everything the mission changed
            checks = [c for c in state.envelope(state.checks(path), item) if c.kind != "scope"]
            changed = await asyncio.to_thread(changed_files, path, config.base)
            results = await run_checks(
                path, checks, changed=changed, owns=("**",), base_ref=config.base, sandbox=_SANDBOX
            )
            combined[:] = results
            verdict = gate(results, [c.name for c in checks if c.required] or None)
            spent.append(time.monotonic() - started)
            return verdict.accepted, verdict.feedback

        outcome = await state.queue().merge(
            item.id,
            config.item_branch(item.id),
            message=f"{item.title or item.id}\n\n{item.summary}".strip(),
            trailers={
                "Nexus-Mission": config.id,
                "Nexus-Requirements": ", ".join(item.requirements) or "none",
            },
            check=check,
        )
        data = outcome.to_data()
        merged = outcome.status in ("merged", "already_merged")
        return {
            **data,
            "item": item.id,
            "merged": merged,
            "attempt": attempt,
            "diagnostics": as_data(outcome.diagnostics),
            "summary": outcome.status
            if merged
            else f"{outcome.status}: {outcome.diagnostics[:500]}",
            "results": [r.to_data() for r in combined],
            "checks_s": round(sum(spent), 3),
        }


@dataclass(frozen=True, slots=True)
class _SyncTool(_MissionTool):
    """``mission.sync``: merge the mission branch's tip into the item's worktree, for the
    integrator (the queue found a conflict: the branch moved under the item)."""

    name: str = "mission.sync"
    description: str = "Merge the mission branch into the work item's worktree."

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        state = self.state
        item = state.item(ctx, self.name)
        config = state.config
        worktree = config.worktree(item.id)

        def sync() -> tuple[str, list[str]]:
            tip = state.repo.resolve(config.branch)
            if tip is None:
                raise NexusError(f"mission {config.id}: no branch {config.branch}")
            # a change the item commits is measured from the tip it now stands on
            base_file = config.workdir_path / "bases" / item.id
            base_file.write_text(tip + "\n", encoding="ascii")
            return tip, merge_into(worktree, tip)

        tip, conflicts = await asyncio.to_thread(sync)
        texts = {}
        for path in conflicts:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                texts[path] = (worktree / path).read_text(encoding="utf-8")
        return {
            "item": item.id,
            "base": tip,
            "conflicts": conflicts,
            "integrator_prompt": state.prompts.integrate(
                item, {"conflicts": [{"path": p, "text": t} for p, t in texts.items()]}
            ),
        }


def mission_tools(state: MissionState) -> list[Tool]:
    """The tools of one mission (register them beside the project's)."""
    path_only = {"type": "object", "required": ["path"], "properties": {"path": _PATH_ARG}}
    write = {
        "type": "object",
        "required": ["path", "text"],
        "properties": {"path": _PATH_ARG, "text": {"type": "string"}},
    }
    listing = {"type": "object", "properties": {"path": _PATH_ARG}}
    return [
        _PlanTool(state),
        _ExpandTool(state),
        _OpenTool(state),
        _CheckTool(state),
        _MergeTool(state),
        _SyncTool(state),
        _FileTool(
            state,
            "mission.read",
            FileRead(),
            "read",
            "Read a file of the work item's worktree.",
            path_only,
        ),
        _FileTool(
            state,
            "mission.list",
            FileList(),
            "list",
            "List a directory of the work item's worktree.",
            listing,
        ),
        _FileTool(
            state,
            "mission.write",
            FileWrite(),
            "write",
            "Write a file the work item owns (its code and its tests).",
            write,
        ),
        _FileTool(
            state,
            "mission.tests.read",
            FileRead(),
            "tests.read",
            "Read a file of the worktree (not the item's implementation).",
            path_only,
        ),
        _FileTool(
            state,
            "mission.tests.write",
            FileWrite(),
            "tests.write",
            "Write one of the work item's test files.",
            write,
        ),
    ]


def with_mission_tools(registry: ToolRegistry, state: MissionState) -> ToolRegistry:
    """``registry`` plus the mission's tools."""
    out = ToolRegistry([registry.get(name) for name in registry.names()])
    for tool in mission_tools(state):
        out.add(tool)
    return out

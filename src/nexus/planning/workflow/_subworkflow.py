"""Sub-workflows: ``workflow: path.yaml`` on a task, compiled inline into the plan.

A task with ``workflow:`` runs another workflow file as one step. The file is
read and compiled here, when its parent is (see docs/adr/0007): its tasks join
the parent's plan as ``<task>/<id>`` (ids no file can write), its first tasks
need what the task needs, and the task itself becomes the one that ends it --
it needs every task of the sub-workflow and its output is the sub-workflow's
``outputs:`` (a ``noop`` over templates that read its tasks). Inside, the
templates keep reading what their file declares: the engine gives them the
sub-workflow's ``inputs`` (its defaults, with the task's ``with`` over them)
and its own ``tasks`` (:mod:`nexus.engine.scopes`). The sub-workflow's
``budget:`` is the task's budget, a scope every call inside counts against.

The file is untrusted as any workflow file is: it is read with the same limits
(:mod:`._yaml`), must lie under the top workflow's directory or the current
one and outside the directories a workspace may not be in
(:func:`~nexus.security.workspaces.workspace_problem`), and is compiled with
every check. A file that includes itself, directly or through others, is
refused with the chain; so is nesting deeper than :data:`MAX_DEPTH`, and more
than :data:`MAX_SUBWORKFLOWS` sub-workflows or :data:`MAX_SUB_TASKS` tasks
brought in by one top file. A problem inside names the parent's file, task
and field, then the sub-workflow's file, task and field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nexus.domain.errors import NotFoundError, WorkflowError
from nexus.domain.plan import (
    SCOPE_SEP,
    AgentSpec,
    BarrierPolicy,
    Plan,
    RetryPolicy,
    SubWorkflow,
    TaskSpec,
)
from nexus.planning.workflow._errors import Reporter, known
from nexus.planning.workflow._schema import _Task
from nexus.planning.workflow._yaml import parse_yaml, read_workflow
from nexus.security.workspaces import workspace_problem

__all__ = [
    "MAX_DEPTH",
    "MAX_SUBWORKFLOWS",
    "MAX_SUB_TASKS",
    "RUN_SETTINGS",
    "Nesting",
    "SubPlan",
    "expand",
    "first_tasks",
]

#: The deepest sub-workflows may nest (a workflow that runs one is at depth 1).
MAX_DEPTH = 8

#: The most sub-workflows one top workflow file may bring in, nested ones included.
MAX_SUBWORKFLOWS = 256

#: The most tasks sub-workflows may bring into one plan.
MAX_SUB_TASKS = 10_000

#: The keys of a workflow a sub-workflow may not set: they are the run's.
RUN_SETTINGS = (
    "workspace",
    "fail_fast",
    "max_parallel",
    "max_failures",
    "max_failure_rate",
    "conflicts",
    "extensions",
    "mcp_servers",
)

#: What a task that runs a sub-workflow may have besides ``workflow``.
_TASK_KEYS = frozenset({"workflow", "needs", "args", "budget"})

_SUFFIXES = (".yaml", ".yml", ".json")
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


@dataclass(slots=True)
class _Tally:
    """What one top workflow's sub-workflows brought in so far (shared down the tree)."""

    files: int = 0
    tasks: int = 0


@dataclass(frozen=True, slots=True)
class Nesting:
    """Where a workflow being compiled sits among sub-workflows.

    Attributes:
        chain: the files that led to it, outermost first, as
            (real path, the name messages use); empty for a top workflow.
        roots: the directories a sub-workflow file must lie under (the top
            file's and the current one).
        tally: the counts shared by every sub-workflow of the top file.
        depth: how deep it is nested (0: the top workflow).
    """

    chain: tuple[tuple[str, str], ...] = ()
    roots: tuple[str, ...] = ()
    tally: _Tally = field(default_factory=_Tally)
    depth: int = 0

    @classmethod
    def top(cls, file: str, base_dir: Path | None) -> Nesting:
        """The nesting of a top workflow (``file``, in ``base_dir``; None: built in code)."""
        here = os.path.realpath(os.getcwd())
        if base_dir is None:
            return cls(roots=(here,))
        real = os.path.realpath(base_dir)
        path = os.path.realpath(base_dir / Path(file).name)
        return cls(chain=((path, file),), roots=tuple(dict.fromkeys([real, here])))

    @property
    def inside(self) -> bool:
        """Whether this is a sub-workflow (not the top file)."""
        return self.depth > 0


@dataclass(frozen=True, slots=True)
class SubPlan:
    """A sub-workflow file, compiled (see ``compile_sub`` in :func:`expand`).

    Attributes:
        plan: its tasks and agents, by their ids in the file.
        outputs: its ``outputs:`` (templates over its tasks), checked.
        declared: its declared inputs.
        required: the declared inputs with no default (``with`` must give them).
    """

    plan: Plan
    outputs: dict[str, Any]
    declared: frozenset[str]
    required: frozenset[str]


#: How :func:`expand` compiles a file: (document, file name, its directory, nesting)
#: -> the sub-plan or None, and its problems.
CompileSub = Callable[[Any, str, Path, Nesting], tuple[SubPlan | None, list[WorkflowError]]]


def expand(
    tid: str,
    spec: _Task,
    args: dict[str, Any],
    *,
    budget: dict[str, Any] | None,
    base_dir: Path | None,
    nesting: Nesting,
    report: Reporter,
    compile_sub: CompileSub,
) -> tuple[list[TaskSpec], dict[str, AgentSpec]] | None:
    """The tasks (and agents) that task ``tid``'s ``workflow:`` brings into the plan.

    Args:
        tid: the task.
        spec: its entry (``workflow``, ``needs``, ``with``, ``budget``).
        args: its ``with``, checked as JSON and as templates of the parent.
        budget: its own ``budget:``, checked (the sub-workflow's is under it).
        base_dir: the parent file's directory (None: the current one).
        nesting: where the parent sits.
        report: the parent's problems (a problem inside is one of them).
        compile_sub: compiles the sub-workflow's document.

    Returns:
        The sub-workflow's tasks, then the task that ends it (``tid``), and the
        sub-workflow's agents; None when there is a problem (reported).
    """
    found = len(report.problems)
    extra = spec.model_fields_set - _TASK_KEYS
    if spec.priority == 0:
        extra.discard("priority")  # the Python API writes the default
    for key in sorted(extra):
        shown = "with" if key == "args" else key
        report.add(
            f"a task that runs a sub-workflow takes only needs, with and budget besides "
            f"workflow; `{shown}` does not apply to it",
            task=tid,
            field=shown,
        )
    written = spec.workflow
    assert written is not None
    label = written if isinstance(written, str) else _inline_name(written)
    if nesting.depth >= MAX_DEPTH:
        report.add(
            f"sub-workflows nest deeper than {MAX_DEPTH}: " + _chain(nesting, label),
            task=tid,
            field="workflow",
        )
        return None
    if nesting.tally.files >= MAX_SUBWORKFLOWS:
        report.add(
            f"the workflow brings in more than {MAX_SUBWORKFLOWS} sub-workflows",
            task=tid,
            field="workflow",
        )
        return None
    nesting.tally.files += 1
    if isinstance(written, dict):
        # a document written in place (the Python API's Workflow): no file to read
        doc: Any = written
        shown, here = label, base_dir if base_dir is not None else Path.cwd()
        chain = (*nesting.chain, ("", label))
    else:
        path = _locate(written, base_dir, nesting, report, tid)
        if path is None:
            return None
        real = os.path.realpath(path)
        if any(real == outer for outer, _ in nesting.chain):
            report.add(
                "the sub-workflow includes itself: " + _chain(nesting, written),
                task=tid,
                field="workflow",
            )
            return None
        shown = str(path) if os.path.isabs(written) else os.path.normpath(path)
        try:
            doc = parse_yaml(read_workflow(Path(real), shown), shown)
        except (WorkflowError, NotFoundError) as exc:
            for problem in getattr(exc, "problems", (exc,)):
                report.add(f"in the sub-workflow {problem}", task=tid, field="workflow")
            return None
        here, chain = Path(real).parent, (*nesting.chain, (real, shown))
    inner = Nesting(chain, nesting.roots, nesting.tally, nesting.depth + 1)
    sub, problems = compile_sub(doc, shown, here, inner)
    for problem in problems:
        report.add(f"in the sub-workflow {problem}", task=tid, field="workflow")
    if sub is None:
        return None
    _check_with(tid, args, sub, report)
    nesting.tally.tasks += len(sub.plan.tasks)
    if nesting.tally.tasks > MAX_SUB_TASKS:
        report.stop(
            f"sub-workflows bring more than {MAX_SUB_TASKS} tasks into the plan",
            task=tid,
            field="workflow",
        )
    if len(report.problems) > found:
        return None
    return _inline(tid, spec, args, budget, sub), dict(sub.plan.agents)


def _locate(
    written: str, base_dir: Path | None, nesting: Nesting, report: Reporter, tid: str
) -> Path | None:
    """The sub-workflow's file: a path (relative to the parent's directory), or a name
    (``lint``: ``workflows/lint.yaml`` beside the parent, else in the current
    directory); None when it may not be read."""
    base = base_dir if base_dir is not None else Path.cwd()
    if "/" in written or written.endswith(_SUFFIXES):
        path = Path(written)
        if not written.endswith(_SUFFIXES):
            report.add(
                f"a sub-workflow file ends in .yaml, .yml or .json, not {written!r}",
                task=tid,
                field="workflow",
            )
            return None
    else:
        if _NAME_RE.fullmatch(written) is None:
            report.add(
                f"a sub-workflow's name is letters, digits, '_' and '-', not {written!r}",
                task=tid,
                field="workflow",
            )
            return None
        names = [Path("workflows") / f"{written}{suffix}" for suffix in _SUFFIXES]
        places = list(dict.fromkeys([base, Path.cwd()]))
        found = next((place / n for place in places for n in names if (place / n).is_file()), None)
        if found is None:
            where = " or ".join(str(place / names[0]) for place in places)
            report.add(
                f"no sub-workflow named {written!r}: a name is a file in the workflows/ "
                f"directory beside the workflow or in the current one ({where} does not "
                "exist); a path ends in .yaml",
                task=tid,
                field="workflow",
            )
            return None
        path = found
    full = path if path.is_absolute() else base / path
    real = os.path.realpath(full)
    problem = workspace_problem(real, roots=list(nesting.roots))
    if problem is not None:
        report.add(
            f"the sub-workflow {written!r} may not be read: {problem}", task=tid, field="workflow"
        )
        return None
    if not os.path.exists(real):
        report.add(f"sub-workflow file not found: {full}", task=tid, field="workflow")
        return None
    return full


def _inline_name(doc: dict[str, Any]) -> str:
    """How messages name a sub-workflow written in place: as the Python API names one."""
    name = doc.get("name")
    return f"<workflow {name}>" if isinstance(name, str) else "<workflow>"


def _chain(nesting: Nesting, written: str) -> str:
    return " -> ".join([*(shown for _, shown in nesting.chain), written])


def _check_with(tid: str, args: Mapping[str, Any], sub: SubPlan, report: Reporter) -> None:
    """``with`` gives declared inputs only, and every input without a default."""
    for name in sorted(args.keys() - sub.declared):
        report.add(
            f"the sub-workflow {sub.plan.name!r} declares no input {name!r} "
            f"({known('declared inputs', sub.declared)})",
            task=tid,
            field=f"with.{name}",
        )
    for name in sorted(sub.required - args.keys()):
        report.add(
            f"the sub-workflow {sub.plan.name!r} needs its input {name!r} (it has no "
            "default, or is secret): give it in with",
            task=tid,
            field="with",
        )


def _inline(
    tid: str,
    spec: _Task,
    args: dict[str, Any],
    budget: dict[str, Any] | None,
    sub: SubPlan,
) -> list[TaskSpec]:
    """The sub-workflow's tasks under ``tid/``, then the task ``tid`` that ends it."""
    prefix = tid + SCOPE_SEP
    outer = tuple(dict.fromkeys(spec.needs))
    inlined: list[TaskSpec] = []
    for task in sub.plan.tasks.values():
        needs = tuple(prefix + dep for dep in task.needs) or outer
        inlined.append(
            replace(
                task,
                id=prefix + task.id,
                needs=needs,
                cases=(
                    None
                    if task.cases is None
                    else {
                        case: tuple(prefix + t for t in targets)
                        for case, targets in task.cases.items()
                    }
                ),
                barrier=_barrier(task.barrier, prefix),
            )
        )
    secret = sub.plan.secret_inputs
    defaults = {name: value for name, value in sub.plan.inputs.items() if name not in secret}
    end = TaskSpec(
        id=tid,
        needs=(*outer, *(task.id for task in inlined)),
        tool="noop",
        args=sub.outputs,
        retry=RetryPolicy(retries=0),
        budget=_budget(budget, sub.plan.budget),
        workflow=SubWorkflow(name=sub.plan.name, inputs=args, defaults=defaults),
    )
    return [*inlined, end]


def _barrier(barrier: BarrierPolicy | None, prefix: str) -> BarrierPolicy | None:
    if barrier is None:
        return None
    return replace(barrier, of=tuple(prefix + t for t in barrier.of))


def _budget(own: dict[str, Any] | None, sub: dict[str, Any] | None) -> dict[str, Any] | None:
    """The task's budget: the sub-workflow's ``budget:``, with the task's own over it."""
    if own is None:
        return sub
    return own if sub is None else {**sub, **own}


def first_tasks(tasks: list[TaskSpec], outer: tuple[str, ...]) -> list[str]:
    """The tasks of an inlined sub-workflow that start it (their needs are the task's)."""
    return [t.id for t in tasks if t.workflow is None and t.needs == outer]

"""What the templates of a task inside a sub-workflow see: its ``inputs`` and ``tasks``.

A sub-workflow (``workflow: path.yaml`` on a task) is compiled into its
parent's plan: its tasks are ``<task>/<id>`` (see
:class:`~nexus.domain.plan.SubWorkflow`). Its templates were written against
its own file, so they read ``tasks.<id>`` and ``inputs.<name>`` of the
sub-workflow, not of the run. :func:`scoped_context` gives them that view:

* ``tasks`` -- the outputs of the sub-workflow's own tasks, by their id in the
  file (a read-only view over the run's, pinned where the run's is);
* ``inputs`` -- the sub-workflow's declared inputs, with the task's ``with``
  over them, rendered when the context is built in the context of the
  workflow around it (which may be a sub-workflow too).

Everything comes from the plan and the run's state, so a resumed or replayed
run renders the same values. A ``with`` value that cannot be rendered is not
an error here: it becomes an undefined value that names the problem, so the
template that reads it fails as any failing template does (the task fails,
with the reason) and one that does not read it is not affected.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined

from nexus.domain.errors import NexusError
from nexus.domain.plan import SCOPE_SEP
from nexus.templating import render_deep

if TYPE_CHECKING:
    from nexus.domain.state import RunState

__all__ = ["ScopedOutputs", "scoped_context"]


class ScopedOutputs(Mapping[str, dict[str, Any]]):
    """The ``tasks`` of one sub-workflow: ``outputs`` of ``<scope>/<id>`` as ``<id>``.

    Tasks of sub-workflows nested deeper (``<scope>/<id>/...``) are not in it:
    the task running one (``<scope>/<id>``) stands for them, with its output.
    """

    __slots__ = ("_outputs", "_prefix")

    def __init__(self, outputs: Mapping[str, dict[str, Any]], scope: str) -> None:
        self._outputs = outputs
        self._prefix = scope + SCOPE_SEP

    def __getitem__(self, tid: str) -> dict[str, Any]:
        if not isinstance(tid, str) or SCOPE_SEP in tid:
            raise KeyError(tid)
        return self._outputs[self._prefix + tid]

    def __iter__(self) -> Iterator[str]:
        cut = len(self._prefix)
        for tid in self._outputs:
            if tid.startswith(self._prefix) and SCOPE_SEP not in tid[cut:]:
                yield tid[cut:]

    def __len__(self) -> int:
        return sum(1 for _ in self)


def scoped_context(
    state: RunState, scope: str, outputs: Mapping[str, dict[str, Any]]
) -> tuple[Mapping[str, Any], Mapping[str, dict[str, Any]]]:
    """The ``inputs`` and ``tasks`` of the sub-workflow run by task ``scope``.

    Args:
        state: the run.
        scope: the task that runs the sub-workflow (``build``, ``build/lint``).
        outputs: the run's ``tasks`` view (pinned as the attempt's is).
    """
    outer, sep, _ = scope.rpartition(SCOPE_SEP)
    if sep:
        inputs, tasks = scoped_context(state, outer, outputs)
        around: dict[str, Any] = {"inputs": inputs, "tasks": tasks}
    else:
        around = {"inputs": state.inputs, "tasks": outputs}
    task = state.tasks.get(scope)
    sub = None if task is None else task.spec.workflow
    if sub is None:
        # an id with a '/' that no sub-workflow made (a plan built in code): the
        # view around it, as for any task
        return around["inputs"], around["tasks"]
    around["run"] = {"id": state.run_id, "name": state.plan.name}
    values: dict[str, Any] = dict(sub.defaults)
    for name, value in sub.inputs.items():
        try:
            values[name] = render_deep(value, around, task=scope, field=f"with.{name}")
        except NexusError as exc:
            values[name] = StrictUndefined(hint=f"input {name!r} of sub-workflow {scope!r}: {exc}")
    return values, ScopedOutputs(outputs, scope)

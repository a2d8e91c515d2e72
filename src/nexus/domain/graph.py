"""Pure graph algorithms over task dependencies.

They live in ``domain`` (not ``planning``) because the run state machine needs
the schedule order too, and ``domain`` imports nothing of ours. All functions
take ``needs``: a mapping from node to the nodes it depends on, and are linear
in nodes plus edges.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence


def dependents_of(needs: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Invert ``needs``: node -> the nodes that depend on it (in ``needs`` order)."""
    out: dict[str, list[str]] = {node: [] for node in needs}
    for node, deps in needs.items():
        for dep in deps:
            out.setdefault(dep, []).append(node)
    return out


def find_cycle(needs: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as a closed path ``[a, b, ..., a]``, or None.

    Iterative DFS, so deep chains (10k tasks) do not hit the recursion limit.
    """
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(needs, white)
    for root in sorted(needs):
        if color[root] != white:
            continue
        path: list[str] = [root]
        iters = [iter(sorted(needs[root]))]
        color[root] = grey
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                color[path.pop()] = black
                iters.pop()
                continue
            if nxt not in color:
                continue  # unknown dependency: reported elsewhere
            if color[nxt] == grey:
                return [*path[path.index(nxt) :], nxt]
            if color[nxt] == white:
                color[nxt] = grey
                path.append(nxt)
                iters.append(iter(sorted(needs[nxt])))
    return None


def topological_order(needs: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's algorithm; ties broken by name so the order is deterministic.

    Raises:
        ValueError: the graph has a cycle.
    """
    pending = {node: len(deps) for node, deps in needs.items()}
    dependents = dependents_of(needs)
    heap = [node for node, count in pending.items() if count == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        node = heapq.heappop(heap)
        order.append(node)
        for child in dependents.get(node, ()):
            pending[child] -= 1
            if pending[child] == 0:
                heapq.heappush(heap, child)
    if len(order) != len(pending):
        raise ValueError("dependency graph has a cycle")
    return order


def longest_path_to_sink(
    needs: Mapping[str, Sequence[str]], order: Sequence[str] | None = None
) -> dict[str, int]:
    """For every node, the number of nodes on the longest path from it to a sink.

    Nodes with a larger value are on or near the critical path and are
    scheduled first.
    """
    order = topological_order(needs) if order is None else order
    dependents = dependents_of(needs)
    length: dict[str, int] = {}
    for node in reversed(order):
        below = [length[child] for child in dependents.get(node, ())]
        length[node] = 1 + (max(below) if below else 0)
    return length


def critical_path(
    needs: Mapping[str, Sequence[str]], weight: Mapping[str, float] | None = None
) -> list[str]:
    """The longest dependency chain (by node weight, default 1), source first."""
    order = topological_order(needs)
    best: dict[str, float] = {}
    prev: dict[str, str | None] = {}
    for node in order:
        own = 1.0 if weight is None else weight.get(node, 1.0)
        deps = needs[node]
        if deps:
            parent = max(sorted(deps), key=lambda d: best[d])
            best[node] = best[parent] + own
            prev[node] = parent
        else:
            best[node] = own
            prev[node] = None
    if not best:
        return []
    end: str | None = max(sorted(best), key=lambda n: best[n])
    path: list[str] = []
    while end is not None:
        path.append(end)
        end = prev[end]
    return path[::-1]

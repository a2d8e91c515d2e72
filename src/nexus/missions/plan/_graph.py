"""The dependency graph of a plan: its cycles, named, and a stable order when there are none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from nexus.missions.plan._model import WorkItem

__all__ = ["cycles", "dependency_order"]


def cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one item, in plan order.

    Each cycle starts at the component's first item in the plan and follows
    ``needs`` edges back to it.
    """
    position = {node: n for n, node in enumerate(graph)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        # iterative Tarjan: (node, next edge to look at)
        work: list[tuple[str, int]] = [(root, 0)]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edge = work[-1]
            edges = graph.get(node, ())
            if edge < len(edges):
                work[-1] = (node, edge + 1)
                nxt = edges[edge]
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    components.append(component)
    cycles: list[list[str]] = []
    for component in sorted(components, key=lambda c: min(position[n] for n in c)):
        members = set(component)
        start = min(component, key=position.__getitem__)
        # breadth-first from start along needs, inside the component, back to start
        parents: dict[str, str] = {}
        queue = [start]
        found: str | None = None
        while queue and found is None:
            node = queue.pop(0)
            for nxt in graph[node]:
                if nxt == start:
                    found = node
                    break
                if nxt in members and nxt not in parents:
                    parents[nxt] = node
                    queue.append(nxt)
        path = [found] if found is not None else []
        while path and path[-1] != start:
            path.append(parents[path[-1]])
        cycles.append(list(reversed(path)))
    return cycles


def dependency_order(items: Sequence[WorkItem]) -> tuple[WorkItem, ...]:
    """Dependency order, stable: the earliest item whose needs are all placed goes next."""
    placed: set[str] = set()
    left = list(items)
    out: list[WorkItem] = []
    while left:
        n = next(n for n, item in enumerate(left) if placed.issuperset(item.needs))
        item = left.pop(n)
        placed.add(item.id)
        out.append(item)
    return tuple(out)

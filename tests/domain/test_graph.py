"""Graph algorithms over task dependencies."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.domain.graph import (
    critical_path,
    dependents_of,
    find_cycle,
    longest_path_to_sink,
    topological_order,
)

Needs = dict[str, tuple[str, ...]]


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 25) -> Needs:
    """A random DAG: node i may only depend on nodes with a smaller index.

    Names are shuffled so that name order and dependency order disagree.
    """
    n = draw(st.integers(min_value=0, max_value=max_nodes))
    names = draw(st.permutations([f"t{i:02d}" for i in range(n)]))
    needs: Needs = {}
    for i, name in enumerate(names):
        deps = draw(st.sets(st.sampled_from(names[:i]), max_size=4)) if i else set()
        needs[name] = tuple(sorted(deps))
    return needs


@st.composite
def cyclic_graphs(draw: st.DrawFn) -> Needs:
    """A random DAG with one back edge added, so it has at least one cycle."""
    needs = draw(dags(max_nodes=20).filter(lambda g: len(g) >= 1))
    order = topological_order(needs)
    # close a cycle: pick a path a -> ... -> b in dependency order and make a need b
    lo = draw(st.integers(0, len(order) - 1))
    hi = draw(st.integers(lo, len(order) - 1))
    # make a chain lo..hi explicit so the back edge surely closes a cycle
    for i in range(lo + 1, hi + 1):
        needs[order[i]] = tuple(sorted({*needs[order[i]], order[i - 1]}))
    needs[order[lo]] = tuple(sorted({*needs[order[lo]], order[hi]}))
    return needs


def _assert_is_cycle(needs: Mapping[str, Sequence[str]], cycle: list[str]) -> None:
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1], "a cycle is reported as a closed path"
    assert len(set(cycle[:-1])) == len(cycle) - 1, "no node repeats inside the cycle"
    for a, b in itertools.pairwise(cycle):
        assert b in needs[a], f"{a} does not depend on {b}"


# -- find_cycle --------------------------------------------------------------


def test_find_cycle_simple_cases() -> None:
    assert find_cycle({}) is None
    assert find_cycle({"a": ()}) is None
    assert find_cycle({"a": ("b",), "b": ()}) is None
    self_loop = {"a": ("a",)}
    assert find_cycle(self_loop) == ["a", "a"]
    two = {"a": ("b",), "b": ("a",)}
    cycle = find_cycle(two)
    assert cycle is not None
    _assert_is_cycle(two, cycle)
    three = {"a": ("c",), "b": ("a",), "c": ("b",), "d": ("a",)}
    cycle = find_cycle(three)
    assert cycle is not None
    _assert_is_cycle(three, cycle)
    assert set(cycle) == {"a", "b", "c"}


def test_find_cycle_ignores_unknown_dependencies() -> None:
    assert find_cycle({"a": ("missing",)}) is None


def test_find_cycle_diamond_is_not_a_cycle() -> None:
    diamond = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
    assert find_cycle(diamond) is None


@settings(max_examples=100, deadline=None)
@given(dags())
def test_find_cycle_none_on_dags(needs: Needs) -> None:
    assert find_cycle(needs) is None


@settings(max_examples=100, deadline=None)
@given(cyclic_graphs())
def test_find_cycle_finds_a_closed_path(needs: Needs) -> None:
    cycle = find_cycle(needs)
    assert cycle is not None
    _assert_is_cycle(needs, cycle)
    with pytest.raises(ValueError, match="cycle"):
        topological_order(needs)


# -- topological order ----------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(dags())
def test_topological_order_respects_edges(needs: Needs) -> None:
    order = topological_order(needs)
    assert sorted(order) == sorted(needs)
    position = {node: i for i, node in enumerate(order)}
    for node, deps in needs.items():
        for dep in deps:
            assert position[dep] < position[node]
    # deterministic: independent of the mapping's insertion order
    assert topological_order(dict(reversed(list(needs.items())))) == order


def test_topological_order_breaks_ties_by_name() -> None:
    assert topological_order({"c": (), "a": (), "b": ()}) == ["a", "b", "c"]
    assert topological_order({"z": (), "y": ("z",), "a": ("y",)}) == ["z", "y", "a"]


def test_topological_order_rejects_cycles() -> None:
    with pytest.raises(ValueError, match="cycle"):
        topological_order({"a": ("b",), "b": ("a",), "c": ()})


# -- critical path ----------------------------------------------------------------


def _longest_chain(needs: Mapping[str, Sequence[str]]) -> int:
    """Brute-force longest chain length (in nodes), memoised DFS."""
    memo: dict[str, int] = {}

    def depth(node: str) -> int:
        if node not in memo:
            memo[node] = 1 + max((depth(d) for d in needs[node]), default=0)
        return memo[node]

    return max((depth(n) for n in needs), default=0)


@settings(max_examples=100, deadline=None)
@given(dags())
def test_critical_path_is_a_longest_valid_chain(needs: Needs) -> None:
    path = critical_path(needs)
    assert len(path) == _longest_chain(needs)
    for earlier, later in itertools.pairwise(path):
        assert earlier in needs[later], f"{later} does not need {earlier}"
    if path:
        assert not needs[path[0]], "the path starts at a source"
        assert not any(path[-1] in deps for deps in needs.values()), "and ends at a sink"
    # longest_path_to_sink agrees on the length
    lengths = longest_path_to_sink(needs)
    assert max(lengths.values(), default=0) == len(path)


def test_critical_path_with_weights() -> None:
    needs = {"a": (), "b": ("a",), "c": ("b",), "heavy": ("a",)}
    assert critical_path(needs) == ["a", "b", "c"]
    assert critical_path(needs, {"heavy": 10.0}) == ["a", "heavy"]
    assert critical_path({}) == []


# -- helpers -------------------------------------------------------------------


def test_dependents() -> None:
    needs = {"a": (), "b": ("a",), "c": ("a", "b"), "d": ()}
    assert dependents_of(needs) == {"a": ["b", "c"], "b": ["c"], "c": [], "d": []}


def test_ten_thousand_node_chain_has_no_recursion_error() -> None:
    n = 10_000
    needs = {f"n{i:05d}": ((f"n{i - 1:05d}",) if i else ()) for i in range(n)}
    assert find_cycle(needs) is None
    order = topological_order(needs)
    assert order == [f"n{i:05d}" for i in range(n)]
    assert critical_path(needs) == order
    assert longest_path_to_sink(needs)["n00000"] == n
    # close the chain: the cycle is the whole chain
    needs["n00000"] = ("n09999",)
    cycle = find_cycle(needs)
    assert cycle is not None
    assert len(cycle) == n + 1
    _assert_is_cycle(needs, cycle)

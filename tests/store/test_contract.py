"""The Store contract: what every adapter must do.

Every test takes a ``store_factory`` and runs once per adapter in
``conftest.BACKENDS``; a second adapter (PostgreSQL) joins by adding one line
there. No test below knows which adapter it is talking to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.errors import ConflictError
from nexus.domain.events import Draft, Event, EventType, seal
from nexus.store.base import Lease, RunRecord, Store

T = TypeVar("T")
StoreFactory = Callable[[], Store]


def using(factory: StoreFactory, fn: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        store = factory()
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(main())


# ULIDs sort by creation time; these are increasing.
RUN_A = "01J0000000000000000000000A"
RUN_B = "01J0000000000000000000000B"
RUN_C = "01J0000000000000000000000C"


def at(n: int) -> str:
    return f"2026-01-01T00:00:{n:02d}.000000Z"


def chain_of(
    run_id: str, n: int, data: Callable[[int], dict[str, Any]] | None = None
) -> list[Event]:
    """``n`` sealed events of a run: run.started then inputs."""
    events: list[Event] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        kind = EventType.RUN_STARTED if seq == 1 else EventType.EFFECT_RECORDED
        payload = data(seq) if data else {"n": seq, "task": f"t{seq}"}
        event = seal(run_id, seq, Draft(kind, at(seq), payload), prev)
        events.append(event)
        prev = event.hash
    return events


def record(run_id: str, name: str = "test") -> RunRecord:
    return RunRecord(
        run_id=run_id,
        name=name,
        plan_hash="f" * 64,
        status="running",
        created_at=at(1),
        updated_at=at(1),
        source="wf.yaml",
        workspace="/work",
        events=1,
    )


# -- runs and events ---------------------------------------------------------------


def test_create_append_load_round_trip(store_factory: StoreFactory) -> None:
    events = chain_of(RUN_A, 6)

    async def go(store: Store) -> None:
        await store.create_run(record(RUN_A), events[0])
        assert await store.load(RUN_A) == events[:1]
        first = await store.get_run(RUN_A)
        assert first == record(RUN_A)

        await store.append(RUN_A, events[1:3], None)
        await store.append(RUN_A, events[3:], "succeeded")
        await store.append(RUN_A, [], "failed")  # an empty batch changes nothing

        loaded = await store.load(RUN_A)
        assert loaded == events
        assert [e.body for e in loaded] == [e.body for e in events]
        run = await store.get_run(RUN_A)
        assert run is not None
        assert run.events == 6
        assert run.status == "succeeded"
        assert run.updated_at == events[-1].at
        assert run.created_at == at(1)
        assert (run.name, run.source, run.workspace) == ("test", "wf.yaml", "/work")

    using(store_factory, go)


def test_status_is_kept_when_append_passes_none(store_factory: StoreFactory) -> None:
    events = chain_of(RUN_A, 3)

    async def go(store: Store) -> None:
        await store.create_run(record(RUN_A), events[0])
        await store.append(RUN_A, events[1:2], "cancelled")
        await store.append(RUN_A, events[2:], None)
        run = await store.get_run(RUN_A)
        assert run is not None
        assert (run.status, run.events) == ("cancelled", 3)

    using(store_factory, go)


def test_bodies_round_trip_byte_for_byte(store_factory: StoreFactory) -> None:
    def data(seq: int) -> dict[str, Any]:
        return {
            "text": 'é ü 中文 \U0001f600 \u2028 \x00 "q" \\',
            "float": 0.1 + seq,
            "big": 2**53 - 1,
            "nested": {"\U0001f600": [None, True, False, -0.5, {}]},
            "task": "t",
        }

    events = chain_of(RUN_A, 3, data)

    async def go(store: Store) -> None:
        await store.create_run(record(RUN_A), events[0])
        await store.append(RUN_A, events[1:], None)
        loaded = await store.load(RUN_A)
        assert loaded == events
        assert [e.data for e in loaded] == [data(1), data(2), data(3)]
        assert [(r.body, r.hash, r.prev_hash) for r in store.chain(RUN_A)] == [
            (e.body, e.hash, e.prev_hash) for e in events
        ]

    using(store_factory, go)


def test_unknown_run(store_factory: StoreFactory) -> None:
    async def go(store: Store) -> None:
        assert await store.load(RUN_A) == []
        assert await store.get_run(RUN_A) is None
        assert await store.get_lease(RUN_A) is None
        assert await store.list_runs() == []
        assert list(store.chain()) == []
        assert await store.take_commands(RUN_A) == []
        lease = Lease("me", "host", 1, 1.0)
        assert await store.swap_lease(RUN_A, lease, None) is False

    using(store_factory, go)


def test_duplicate_seq_is_a_conflict_and_the_batch_is_atomic(store_factory: StoreFactory) -> None:
    events = chain_of(RUN_A, 5)
    rival = chain_of(RUN_A, 5, lambda seq: {"rival": seq})

    async def go(store: Store) -> None:
        await store.create_run(record(RUN_A), events[0])
        await store.append(RUN_A, events[1:3], "running")
        # a second writer appends seq 3 again
        with pytest.raises(ConflictError, match="seq 3 is taken"):
            await store.append(RUN_A, rival[2:3], None)
        # a batch whose second event clashes stores nothing of the batch
        with pytest.raises(ConflictError):
            await store.append(RUN_A, [events[3], rival[2]], "failed")
        assert await store.load(RUN_A) == events[:3]
        run = await store.get_run(RUN_A)
        assert run is not None
        assert (run.events, run.status) == (3, "running")
        # and the store is still usable afterwards
        await store.append(RUN_A, events[3:], None)
        assert await store.load(RUN_A) == events

    using(store_factory, go)


def test_duplicate_run_id_is_a_conflict(store_factory: StoreFactory) -> None:
    events = chain_of(RUN_A, 2)
    other = chain_of(RUN_A, 1, lambda seq: {"other": True})

    async def go(store: Store) -> None:
        await store.create_run(record(RUN_A), events[0])
        await store.append(RUN_A, events[1:], "running")
        with pytest.raises(ConflictError, match="exists already"):
            await store.create_run(record(RUN_A, name="other"), other[0])
        assert await store.load(RUN_A) == events
        run = await store.get_run(RUN_A)
        assert run is not None
        assert (run.name, run.events) == ("test", 2)

    using(store_factory, go)


def test_runs_are_kept_apart(store_factory: StoreFactory) -> None:
    a, b = chain_of(RUN_A, 3), chain_of(RUN_B, 2)

    async def go(store: Store) -> None:
        await store.create_run(record(RUN_A), a[0])
        await store.create_run(record(RUN_B), b[0])
        await store.append(RUN_B, b[1:], None)
        await store.append(RUN_A, a[1:], None)
        assert await store.load(RUN_A) == a
        assert await store.load(RUN_B) == b

    using(store_factory, go)


def test_list_runs_newest_first(store_factory: StoreFactory) -> None:
    async def go(store: Store) -> None:
        for run_id in (RUN_B, RUN_C, RUN_A):  # created out of id order
            await store.create_run(record(run_id), chain_of(run_id, 1)[0])
        assert [r.run_id for r in await store.list_runs()] == [RUN_C, RUN_B, RUN_A]
        assert [r.run_id for r in await store.list_runs(limit=2)] == [RUN_C, RUN_B]
        assert all(isinstance(r, RunRecord) for r in await store.list_runs())

    using(store_factory, go)


# -- leases ---------------------------------------------------------------------------


def test_lease_compare_and_set(store_factory: StoreFactory) -> None:
    mine = Lease(owner="me", host="h1", pid=10, heartbeat=100.0)
    theirs = Lease(owner="them", host="h2", pid=20, heartbeat=200.0)

    async def go(store: Store) -> None:
        await store.create_run(record(RUN_A), chain_of(RUN_A, 1)[0])
        assert await store.get_lease(RUN_A) is None
        # take a free lease
        assert await store.swap_lease(RUN_A, mine, None) is True
        assert await store.get_lease(RUN_A) == mine
        # nobody else takes it: not as "free", not with a wrong owner
        assert await store.swap_lease(RUN_A, theirs, None) is False
        assert await store.swap_lease(RUN_A, theirs, "someone") is False
        assert await store.get_lease(RUN_A) == mine
        # the holder renews its heartbeat
        renewed = Lease(owner="me", host="h1", pid=10, heartbeat=150.0)
        assert await store.swap_lease(RUN_A, renewed, "me") is True
        assert await store.get_lease(RUN_A) == renewed
        # a takeover names the current owner
        assert await store.swap_lease(RUN_A, theirs, "me") is True
        assert await store.get_lease(RUN_A) == theirs
        # the old owner can no longer release or renew it
        assert await store.swap_lease(RUN_A, None, "me") is False
        assert await store.swap_lease(RUN_A, mine, "me") is False
        # release
        assert await store.swap_lease(RUN_A, None, "them") is True
        assert await store.get_lease(RUN_A) is None
        assert await store.swap_lease(RUN_A, None, "them") is False

    using(store_factory, go)


def test_concurrent_lease_takers_only_one_wins(store_factory: StoreFactory) -> None:
    async def go(store: Store) -> None:
        await store.create_run(record(RUN_A), chain_of(RUN_A, 1)[0])
        takers = [Lease(owner=f"o{i}", host="h", pid=i, heartbeat=1.0) for i in range(8)]
        wins = await asyncio.gather(*(store.swap_lease(RUN_A, t, None) for t in takers))
        assert sum(wins) == 1
        winner = takers[wins.index(True)]
        assert await store.get_lease(RUN_A) == winner

    using(store_factory, go)


def test_leases_are_per_run(store_factory: StoreFactory) -> None:
    async def go(store: Store) -> None:
        await store.create_run(record(RUN_A), chain_of(RUN_A, 1)[0])
        await store.create_run(record(RUN_B), chain_of(RUN_B, 1)[0])
        assert await store.swap_lease(RUN_A, Lease("a", "h", 1, 1.0), None)
        assert await store.get_lease(RUN_B) is None
        assert await store.swap_lease(RUN_B, Lease("b", "h", 2, 1.0), None)
        assert (await store.get_lease(RUN_A)) == Lease("a", "h", 1, 1.0)

    using(store_factory, go)


# -- commands ---------------------------------------------------------------------------


def test_commands_are_taken_once_oldest_first(store_factory: StoreFactory) -> None:
    async def go(store: Store) -> None:
        await store.create_run(record(RUN_A), chain_of(RUN_A, 1)[0])
        await store.create_run(record(RUN_B), chain_of(RUN_B, 1)[0])
        await store.push_command(RUN_A, "cancel", {"reason": "first"})
        await store.push_command(RUN_B, "cancel", {"reason": "for b"})
        await store.push_command(RUN_A, "cancel", {"reason": "second", "n": [1, "é"]})

        taken = await store.take_commands(RUN_A)
        assert [(c.run_id, c.kind, c.payload) for c in taken] == [
            (RUN_A, "cancel", {"reason": "first"}),
            (RUN_A, "cancel", {"reason": "second", "n": [1, "é"]}),
        ]
        assert taken[0].id < taken[1].id
        assert await store.take_commands(RUN_A) == []

        await store.push_command(RUN_A, "cancel", {"reason": "third"})
        assert [c.payload["reason"] for c in await store.take_commands(RUN_A)] == ["third"]
        assert [c.payload["reason"] for c in await store.take_commands(RUN_B)] == ["for b"]
        assert await store.take_commands(RUN_B) == []

    using(store_factory, go)


def test_concurrent_takers_share_commands_without_duplicates(store_factory: StoreFactory) -> None:
    async def go(store: Store) -> None:
        await store.create_run(record(RUN_A), chain_of(RUN_A, 1)[0])
        for i in range(10):
            await store.push_command(RUN_A, "cancel", {"i": i})
        batches = await asyncio.gather(*(store.take_commands(RUN_A) for _ in range(5)))
        taken = sorted(c.payload["i"] for batch in batches for c in batch)
        assert taken == list(range(10))

    using(store_factory, go)


# -- chain ---------------------------------------------------------------------------------


def test_chain_yields_links_in_run_then_seq_order(store_factory: StoreFactory) -> None:
    a, b = chain_of(RUN_A, 4), chain_of(RUN_B, 3)

    async def go(store: Store) -> None:
        await store.create_run(record(RUN_B), b[0])
        await store.create_run(record(RUN_A), a[0])
        await store.append(RUN_B, b[1:], None)
        await store.append(RUN_A, a[1:3], None)
        await store.append(RUN_A, a[3:], None)
        rows = list(store.chain())
        assert [(r.run_id, r.seq) for r in rows] == [(RUN_A, s) for s in (1, 2, 3, 4)] + [
            (RUN_B, s) for s in (1, 2, 3)
        ]
        for row, event in zip(rows, [*a, *b], strict=True):
            assert (row.prev_hash, row.hash, row.body) == (event.prev_hash, event.hash, event.body)
        only_b = list(store.chain(RUN_B))
        assert [(r.run_id, r.seq) for r in only_b] == [(RUN_B, 1), (RUN_B, 2), (RUN_B, 3)]
        assert list(store.chain(RUN_C)) == []

    using(store_factory, go)


def test_close_is_idempotent(store_factory: StoreFactory) -> None:
    async def go() -> None:
        store = store_factory()
        await store.create_run(record(RUN_A), chain_of(RUN_A, 1)[0])
        await store.close()
        await store.close()

    asyncio.run(go())

    # the data is durable across a reopen
    async def reopen(store: Store) -> list[Event]:
        return await store.load(RUN_A)

    assert using(store_factory, reopen) == chain_of(RUN_A, 1)


def history(tenant: str | None) -> Callable[[int], dict[str, Any]]:
    """Events of a run: its start (naming ``tenant``), a $0.25 model call, two tool calls
    of which one was refused budget (it never ran)."""

    def data(seq: int) -> dict[str, Any]:
        if seq == 1:
            return {"n": 1} if tenant is None else {"n": 1, "tenant": tenant}
        if seq == 2:
            return {"kind": "model", "task": "t", "spend": {"usd": "0.25", "tokens": 10}}
        if seq == 3:
            return {"kind": "tool", "task": "t", "error": None}
        return {"kind": "tool", "task": "t", "error": {"kind": "budget_exceeded"}}

    return data


def test_tenant_spend_reads_the_calls_of_the_tenants_runs(store_factory: StoreFactory) -> None:
    async def go(store: Store) -> dict[str, list[tuple[str, str | None, int | None, Any]]]:
        for run_id, tenant in ((RUN_A, "acme"), (RUN_B, None), (RUN_C, "acme")):
            evs = chain_of(run_id, 4, history(tenant))
            await store.create_run(record(run_id), evs[0])
            await store.append(run_id, evs[1:], None)
        found = {}
        for tenant in ("acme", "default", "nobody"):
            rows = await store.tenant_spend(tenant)
            found[tenant] = sorted(((r.kind, r.usd, r.tokens, r.error) for r in rows), key=repr)
        return found

    found = using(store_factory, go)
    one_run = [
        ("model", "0.25", 10, None),
        ("tool", None, None, None),
        ("tool", None, None, "budget_exceeded"),
    ]
    assert found["acme"] == sorted(one_run * 2, key=repr)
    assert found["default"] == sorted(one_run, key=repr)
    assert found["nobody"] == []

"""Backup and restore of a ~1 GB store: ``nexus backup`` and ``nexus restore``, end to end.

The store is built through the real store API (``SQLiteStore`` with the
home's :class:`~nexus.store.heads.HeadSigner`): ``--runs`` runs, each a
``run.started``, then ``effect.recorded`` events whose tool responses carry
``--payload`` bytes of incompressible text, then ``run.succeeded``. Events are
sealed into the chain by :func:`nexus.domain.events.seal` and appended in
batches of 64, so every batch's head is signed and the store manifest is kept,
exactly as the engine's commits do. The store must pass
``nexus audit verify --require-signed`` before anything is timed.

Then, each once (the copies are 1 GB each; the machine is shared):

* ``nexus backup PATH`` (online backup API copy, then the copy's audit verify);
* ``nexus restore PATH`` into a fresh home (copy beside the store, verify the
  chains and signed heads against the backup's heads and public key, move into
  place, re-sign every head with the new home's key, rewrite its manifest);
* ``nexus audit verify --require-signed`` on the restored home.

Each is a subprocess with ``NEXUS_HOME`` set: interpreter start and imports
included. The generated files are deleted at the end (``--keep`` keeps them).

Usage: ``python bench/backup_restore.py [--quick] [--size-mb N] [--json PATH] [--dir DIR]``
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ulid import ULID

from _common import ROOT, Metric, parser, report
from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.events import Draft, Event, EventType, format_time, seal
from nexus.store.base import RunRecord
from nexus.store.heads import HeadSigner
from nexus.store.sqlite import SQLiteStore

CEILING_RESTORE_S = 300.0  # restore (with its verification) of 1 GB: under 5 minutes
PAYLOAD_BYTES = 16_000
EVENTS_PER_RUN = 640
BATCH = 64


def _event_data(run: int, call: int, payload: str) -> dict[str, object]:
    return {
        "key": f"r{run}/t{call}/a1/c0",
        "kind": "tool",
        "request": {"tool": "shell", "args": {"cmd": f"cat part-{call}.log"}},
        "response": {"exit_code": 0, "stdout": payload},
        "error": None,
    }


async def build(home: Path, size_bytes: int) -> tuple[int, int]:
    """A signed store of about ``size_bytes`` of event bodies; (runs, events)."""
    store = SQLiteStore.open(home / "nexus.db", signer=HeadSigner.for_home(home))
    clock = 1_780_000_000.0
    total = runs = 0
    written = 0
    try:
        while written < size_bytes:
            run_id = str(ULID())
            at = format_time_at(clock)
            first = seal(
                run_id, 1, Draft(EventType.RUN_STARTED, at, {"plan": "bench"}), GENESIS_HASH
            )
            record = RunRecord(run_id, "backup-bench", "0" * 64, "running", at, at, None, "", 1)
            await store.create_run(record, first)
            prev: Event = first
            seq = 1
            batch: list[Event] = []
            for call in range(EVENTS_PER_RUN):
                clock += 0.001
                payload = os.urandom(PAYLOAD_BYTES // 2).hex()
                draft = Draft(
                    EventType.EFFECT_RECORDED,
                    format_time_at(clock),
                    _event_data(runs, call, payload),
                )
                seq += 1
                prev = seal(run_id, seq, draft, prev.hash)
                batch.append(prev)
                written += len(prev.body)
                if len(batch) == BATCH:
                    await store.append(run_id, batch, None)
                    batch = []
            seq += 1
            batch.append(
                seal(
                    run_id,
                    seq,
                    Draft(EventType.RUN_SUCCEEDED, format_time_at(clock), {}),
                    prev.hash,
                )
            )
            await store.append(run_id, batch, "succeeded")
            total += seq
            runs += 1
    finally:
        await store.close()
    return runs, total


def format_time_at(seconds: float) -> str:
    from datetime import UTC, datetime

    return format_time(datetime.fromtimestamp(seconds, UTC))


def nexus(home: Path, *args: str) -> tuple[float, dict[str, object]]:
    """Run the CLI with ``--json``; (seconds, its JSON output)."""
    exe = Path(sys.executable).with_name("nexus")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "nexus.cli"]
    env = {**os.environ, "NEXUS_HOME": str(home), "NO_COLOR": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [*command, *args, "--json"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"nexus {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    result: dict[str, object] = json.loads(done.stdout)
    return seconds, result


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=int, default=None, help="event bodies to write (default 1000)")
    p.add_argument("--dir", type=Path, default=None, help="where to build (default: the temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    args = p.parse_args()
    started = time.perf_counter()
    size_mb = args.size_mb or (32 if args.quick else 1000)
    tmp = Path(tempfile.mkdtemp(prefix="nexus-bench-backup-", dir=args.dir))
    try:
        home, backup, fresh = tmp / "home", tmp / "backup", tmp / "restored"
        t0 = time.perf_counter()
        runs, events = asyncio.run(build(home, size_mb * 1_000_000))
        build_s = time.perf_counter() - t0
        db_bytes = (home / "nexus.db").stat().st_size
        verify_src_s, audit = nexus(home, "audit", "verify", "--require-signed")
        if not audit["ok"] or audit["events"] != events or audit["signed"] != runs:
            raise RuntimeError(f"the built store does not verify: {audit}")
        backup_s, made = nexus(home, "backup", str(backup))
        restore_s, restored = nexus(fresh, "restore", str(backup))
        if not restored["restored"] or restored["resigned"] != runs:
            raise RuntimeError(f"restore failed: {restored}")
        verify_s, again = nexus(fresh, "audit", "verify", "--require-signed")
        if not again["ok"] or again["events"] != events:
            raise RuntimeError(f"the restored store does not verify: {again}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    metrics = [
        Metric("nexus backup (copy + verify the copy)", "s", [backup_s], higher_is_better=False),
        Metric(
            "nexus restore (copy + verify + move + re-sign)",
            "s",
            [restore_s],
            higher_is_better=False,
            floor=CEILING_RESTORE_S,
        ),
        Metric("nexus audit verify --require-signed (restored)", "s", [verify_s], False),
        Metric("nexus audit verify --require-signed (source)", "s", [verify_src_s], False),
        Metric("backup throughput", "MB/s", [db_bytes / 1e6 / backup_s], True),
        Metric("restore throughput", "MB/s", [db_bytes / 1e6 / restore_s], True),
    ]
    info = {
        "database MB": round(db_bytes / 1e6, 1),
        "runs": runs,
        "events": events,
        "event body bytes": f"~{PAYLOAD_BYTES + 300}",
        "backup's own copy seconds (reported by nexus backup)": made["seconds"],
        "restore seconds (reported by nexus restore)": restored["seconds"],
        "store build seconds (not timed)": round(build_s, 1),
    }
    report("backup_restore", metrics, args, started, info)


if __name__ == "__main__":
    main()

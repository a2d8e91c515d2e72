"""Disk quotas of sandboxed calls: the per-file cap and the per-call total, as escape attempts."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from nexus.domain.errors import NexusError, PolicyDenied
from nexus.metrics import sample
from nexus.tools.base import ToolContext
from nexus.tools.builtins import FileWrite, ShellTool
from nexus.tools.profile import ExecProfile
from nexus.tools.sandbox import _quota
from nexus.tools.sandbox._quota import DiskQuota, disk_usage

MiB = 1 << 20


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


def shell(cmd: str, ws: Path, **profile: Any) -> dict[str, Any]:
    """The shell tool's result, or its error as the effect would record it."""
    tool = ShellTool(profile=ExecProfile(wall_seconds=30, **profile))
    try:
        return {"result": asyncio.run(tool({"cmd": cmd}, ToolContext("r", "t", 1, ws)))}
    except NexusError as exc:
        return {"error": exc.to_data()}


def test_many_small_files_past_the_total_are_stopped_while_running(ws: Path) -> None:
    before = sample("nexus_tool_denials_total", {"tool": "shell", "reason": "quota"})
    # 200 files of 1 MiB, each under max_file_mb, 4 s in all if let run
    out = shell(
        "for i in $(seq 1 200); do head -c 1M /dev/zero > f$i; sleep 0.02; done",
        ws,
        max_file_mb=4,
        max_write_mb=8,
    )
    error = out["error"]
    assert error["kind"] == "policy_denied"
    assert "max_write_mb of 8 MiB" in error["message"]
    assert "disk_quota" in error["details"]["limits_hit"]
    assert [d["reason"] for d in error["details"]["denials"]] == ["quota"]
    written = len(list(ws.iterdir()))
    assert 8 <= written < 40, written  # killed soon after the 8th MiB, not at the end
    assert sample("nexus_tool_denials_total", {"tool": "shell", "reason": "quota"}) == before + 1


def test_a_quick_write_past_the_total_fails_even_with_exit_0(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the watcher never wakes: the check after the call must catch it
    monkeypatch.setattr(_quota, "POLL_SECONDS", 60.0)
    out = shell("head -c 12M /dev/zero > big && echo done", ws, max_file_mb=16, max_write_mb=8)
    error = out["error"]
    assert error["kind"] == "policy_denied"
    assert error["retryable"] is False
    assert error["details"]["exit_code"] == 0
    assert "the call added 12.0 MiB to its writable paths" in error["message"]
    assert "max_write_mb of 8 MiB" in error["message"]


def test_a_file_past_max_file_mb_is_a_quota_denial(ws: Path) -> None:
    out = shell("head -c 64M /dev/zero > big", ws, max_file_mb=8)
    error = out["error"]
    assert error["kind"] == "policy_denied"
    assert "max_file_mb of 8 MiB" in error["message"]
    assert "file_size" in error["details"]["limits_hit"]
    assert (ws / "big").stat().st_size <= 8 * MiB


def test_writes_under_the_quota_pass_and_the_quota_is_on_growth(ws: Path) -> None:
    (ws / "old").write_bytes(os.urandom(20 * MiB))  # existing data does not count
    ok = shell("head -c 2M /dev/urandom > new && echo ok", ws, max_write_mb=8)
    assert ok["result"]["stdout"] == "ok\n"
    # replacing 20 MiB by 10 MiB adds nothing
    swapped = shell("rm old && head -c 10M /dev/urandom > other", ws, max_write_mb=8)
    assert "result" in swapped, swapped


def test_another_process_filling_the_disk_is_not_blamed_on_the_call(
    ws: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def fill() -> None:
        time.sleep(0.2)
        with open(elsewhere / "blob", "wb") as fh:
            for _ in range(24):
                fh.write(os.urandom(MiB))
                fh.flush()

    filler = threading.Thread(target=fill)
    filler.start()
    try:
        out = shell("sleep 1.2; echo fine", ws, max_write_mb=4)
    finally:
        filler.join()
    assert out["result"]["stdout"] == "fine\n"


def test_file_write_checks_the_total_too(ws: Path) -> None:
    tool = FileWrite(profile=ExecProfile(max_file_mb=8, max_write_mb=1))
    with pytest.raises(PolicyDenied, match="max_write_mb of 1"):
        asyncio.run(tool({"path": "x", "text": "y" * (2 * MiB)}, ToolContext("r", "t", 1, ws)))


def test_disk_usage_counts_allocated_blocks_once(tmp_path: Path) -> None:
    (tmp_path / "data").write_bytes(b"x" * MiB)
    os.link(tmp_path / "data", tmp_path / "again")  # same inode: counted once
    (tmp_path / "link").symlink_to("/usr")  # not followed
    with open(tmp_path / "sparse", "wb") as fh:
        fh.truncate(512 * MiB)  # long, but occupying nothing
    used = disk_usage([tmp_path])
    assert MiB <= used < 2 * MiB


def test_the_watcher_measures_before_it_kills(tmp_path: Path) -> None:
    quota = DiskQuota([tmp_path], limit_bytes=MiB)
    quota.start()
    calls: list[int] = []

    async def main() -> None:
        task = asyncio.create_task(quota.watch(calls.append))
        await asyncio.sleep(_quota.POLL_SECONDS * 3)
        (tmp_path / "f").write_bytes(os.urandom(3 * MiB))
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert len(calls) == 1
    assert calls[0] >= 3 * MiB

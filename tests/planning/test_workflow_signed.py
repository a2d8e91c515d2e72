"""Runs started from the Python API are signed like CLI runs (same key, same home).

Before this, ``Workflow.run`` and ``nexus.testing.sqlite_engine`` opened the
store without a signer: their runs had no signed head, so
``nexus audit verify --require-signed`` failed on every one of them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nexus
from nexus.security.signing import AUDIT_KEY_FILE, AuditKey
from nexus.store.heads import keys_dir, manifest_path, read_manifest
from nexus.testing import sqlite_engine

NEXUS = Path(sys.executable).parent / "nexus"


def _verify_require_signed(home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXUS_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run(
        [str(NEXUS), "audit", "verify", "--require-signed"],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.parent,
        timeout=60,
        check=False,
    )


def _workflow() -> nexus.Workflow:
    wf = nexus.Workflow("signed-demo", inputs={"n": 3})

    @nexus.tool
    def square(n: int) -> int:
        return n * n

    wf.task("square", tool=square, args={"n": "{{ inputs.n }}"})
    return wf


def test_workflow_run_sync_is_signed_with_the_home_key(tmp_path: Path) -> None:
    home = tmp_path / ".nexus"
    result = _workflow().run_sync(home=home)
    assert result.status == "succeeded"

    key = AuditKey.load(keys_dir(home) / AUDIT_KEY_FILE)  # created 0600 on first use
    manifest = read_manifest(manifest_path(home), key.public)
    assert manifest is not None
    assert result.run_id in manifest.heads
    done = _verify_require_signed(home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 signed head(s) hold" in done.stdout


def test_workflow_run_uses_nexus_home_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "env-home"
    monkeypatch.setenv("NEXUS_HOME", str(home))
    first = asyncio.run(_workflow().run())
    second = asyncio.run(_workflow().run())
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert (keys_dir(home) / AUDIT_KEY_FILE).is_file()
    done = _verify_require_signed(home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 signed head(s) hold" in done.stdout


def test_testing_sqlite_engine_signs(tmp_path: Path) -> None:
    home = tmp_path / ".nexus"
    wf = _workflow()
    plan = wf.compile()

    async def go() -> str:
        engine = sqlite_engine(home, tools=wf.tools())
        try:
            result = await engine.start(plan)
        finally:
            await engine.store.close()
        return result.status

    assert asyncio.run(go()) == "succeeded"
    done = _verify_require_signed(home)
    assert done.returncode == 0, done.stdout + done.stderr

"""What the CLI end-to-end tests share: running the real ``nexus`` script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli_out import Out

NEXUS = Path(sys.executable).parent / "nexus"
WORKFLOWS = Path(__file__).parent / "workflows"


def cli_env(home: Path) -> dict[str, str]:
    """The environment of a CLI call: this home, no colours."""
    env = {**os.environ, "NEXUS_HOME": str(home), "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    return env


def nexus(home: Path, *args: str | Path) -> Out:
    """Run the CLI; no invocation may ever show a Python traceback."""
    proc = subprocess.run(
        [str(NEXUS), *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(home),
        cwd=home.parent,
        timeout=60,
        check=False,
    )
    out = Out(proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in out.text, out.text
    return out


def host_pids(marker: str) -> list[int]:
    """Host pids of processes whose command line contains ``marker``.

    Sandboxed commands live in their own PID namespace, so ``$$`` inside names
    nothing on the host; tests find them by a unique argument instead.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry))
    return found

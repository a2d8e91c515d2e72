"""What a run of the real ``nexus`` script gave: its exit code and its two streams.

Shared by the end-to-end tests of every package (``tests/`` is on ``sys.path``
through its ``conftest.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Out:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def text(self) -> str:
        return self.stdout + self.stderr

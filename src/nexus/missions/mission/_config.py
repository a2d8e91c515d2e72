"""What a code mission is configured with: recorded as the run's ``mission`` input.

Everything a mission's tools need to act (the repository, the mission branch,
where the worktrees live, the checks, the attempts allowed) is in one
:class:`MissionConfig`, written into the plan's inputs when the mission starts.
A resumed mission rebuilds its tools from that record alone, so ``nexus
resume RUN`` needs nothing but the run id, and a replay reads it without
executing anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nexus.domain.errors import UserError

__all__ = [
    "ITEM_TASK_PREFIX",
    "MISSION_INPUT",
    "MISSION_WORKFLOW",
    "SPEC_INPUT",
    "MissionConfig",
    "Mode",
    "item_of_task",
    "mission_config_of",
]

#: The workflow name every code mission's plan carries.
MISSION_WORKFLOW = "code-mission"
#: The plan input holding the :class:`MissionConfig`.
MISSION_INPUT = "mission"
#: The plan input holding the SpecMap (as JSON data).
SPEC_INPUT = "spec"
#: A work item ``W`` runs as the task ``item-W``.
ITEM_TASK_PREFIX = "item-"

Mode = Literal["greenfield", "brownfield", "hardening"]

_MISSION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")


class MissionConfig(BaseModel):
    """One code mission's settings, as recorded in its plan."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=_MISSION_ID.pattern, description="the mission's slug")
    repo: str = Field(description="the repository's top level (real path)")
    branch: str = Field(description="the mission branch work items merge onto")
    base: str = Field(pattern=r"^[0-9a-f]{40,64}$", description="the commit the mission started at")
    workdir: str = Field(description="where the worktrees and the merge worktree live")
    mode: Mode = "greenfield"
    max_attempts: int = Field(default=3, ge=1, le=20, description="gate attempts per item")
    checks: tuple[dict[str, Any], ...] = Field(
        default=(), description="the checks' specs (nexus.missions.verify.CheckSpec data)"
    )
    review: bool = Field(default=True, description="a reviewer reads each accepted change")
    max_items: int = Field(default=30, ge=1, le=200)
    constraints: str = Field(default="", description="accepted constraints, as instructions")

    @property
    def repo_path(self) -> Path:
        return Path(self.repo)

    @property
    def workdir_path(self) -> Path:
        return Path(self.workdir)

    def item_branch(self, item: str) -> str:
        """The branch a work item's worktree is on (beside, not under, the mission branch)."""
        return f"{self.branch}-items/{item}"

    def worktree(self, item: str) -> Path:
        return self.workdir_path / "worktrees" / item

    def check_names(self) -> list[str]:
        return [str(c.get("name")) for c in self.checks]


def item_of_task(task: str) -> str | None:
    """The work item a task id runs (``item-W`` -> ``W``), or None."""
    if task.startswith(ITEM_TASK_PREFIX) and len(task) > len(ITEM_TASK_PREFIX):
        return task[len(ITEM_TASK_PREFIX) :]
    return None


def mission_config_of(inputs: Mapping[str, Any]) -> MissionConfig | None:
    """The mission a plan's inputs record, or None when the plan is not a mission's.

    Raises:
        UserError: the plan has a ``mission`` input that is not a mission's settings.
    """
    data = inputs.get(MISSION_INPUT)
    if not isinstance(data, dict) or SPEC_INPUT not in inputs:
        return None
    try:
        return MissionConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(
            f"the run's 'mission' input is not a code mission's settings: {where}: {first['msg']}"
        ) from None

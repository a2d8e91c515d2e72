"""After a mission's run: its summary, its evidence bundle, and its worktrees removed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nexus.domain.events import Event
from nexus.domain.plan import Plan
from nexus.missions.evidence import BundleInfo, signing_key, write_bundle
from nexus.missions.mission._config import mission_config_of
from nexus.missions.mission._evidence import MissionRecord, mission_record
from nexus.missions.mission._start import mission_state
from nexus.missions.mission._tools import with_mission_tools
from nexus.missions.mission._workflow import ROLES
from nexus.missions.roles import load_roles
from nexus.missions.spec import SpecMap
from nexus.missions.verify import CheckResult, ConstraintBook
from nexus.missions.workspace import GitError, MergeQueue, Repo, Worktrees
from nexus.tools.base import ToolRegistry

__all__ = ["MissionSummary", "export_evidence", "finish_mission", "summarize", "tools_for_plan"]


@dataclass(frozen=True, slots=True)
class MissionSummary:
    """What a finished (or stopped) mission did, for the CLI's last lines."""

    mission: str
    branch: str
    status: str
    items: int
    merged: tuple[str, ...]
    not_merged: tuple[str, ...]
    attempts: int
    checks_run: int
    model_calls: int
    tokens: int
    cost_usd: str
    met: tuple[str, ...]
    unmet: tuple[str, ...]
    evidence: str | None = None
    #: failure classes this mission made proposed constraints (ids), and where they are
    proposed: tuple[str, ...] = ()
    constraints: str | None = None

    def to_data(self) -> dict[str, Any]:
        return {
            "mission": self.mission,
            "branch": self.branch,
            "status": self.status,
            "items": self.items,
            "merged": list(self.merged),
            "not_merged": list(self.not_merged),
            "attempts": self.attempts,
            "checks_run": self.checks_run,
            "model_calls": self.model_calls,
            "tokens": self.tokens,
            "cost_usd": self.cost_usd,
            "requirements_met": list(self.met),
            "requirements_unmet": list(self.unmet),
            "evidence": self.evidence,
            "constraints_proposed": list(self.proposed),
            "constraints": self.constraints,
        }


def tools_for_plan(
    registry: ToolRegistry, plan: Plan, project: Mapping[str, Any], *, source: str
) -> ToolRegistry:
    """``registry`` plus the mission's tools when ``plan`` is a code mission's, else itself.

    A resumed mission gets the same tools it started with: they are built from
    the settings its plan records.
    """
    config = mission_config_of(plan.inputs)
    if config is None:
        return registry
    spec = SpecMap.model_validate(plan.inputs["spec"])
    roles = load_roles({"mission": project}, source=source)
    present = tuple(r for r in ROLES if r in plan.agents)
    return with_mission_tools(registry, mission_state(config, spec, roles=roles, present=present))


def summarize(record: MissionRecord, evidence: BundleInfo | None = None) -> MissionSummary:
    """The summary of a mission's record."""
    from nexus.missions.evidence import trace

    statuses = trace(record.spec, record.items)
    attempts = [a for i in record.items for a in i.attempts]
    return MissionSummary(
        mission=record.config.id,
        branch=record.config.branch,
        status=record.status,
        items=len(record.items),
        merged=tuple(record.merged),
        not_merged=tuple(i.id for i in record.items if i.verdict.outcome != "merged"),
        attempts=len(attempts),
        checks_run=sum(len(a.checks) for a in attempts),
        model_calls=record.model_calls,
        tokens=record.tokens,
        cost_usd=record.cost_usd,
        met=tuple(s.id for s in statuses if s.status == "met"),
        unmet=tuple(s.id for s in statuses if s.status == "unmet"),
        evidence=None if evidence is None else str(evidence.path),
    )


def export_evidence(
    events: Sequence[Event], directory: Path, *, home: Path, key_file: Path | None = None
) -> tuple[MissionRecord, BundleInfo]:
    """Write the signed evidence bundle of the mission recorded in ``events`` to ``directory``.

    Raises:
        UserError: the run is not a code mission, or ``directory`` is not empty.
    """
    record = mission_record(events)
    info = write_bundle(
        directory,
        record.spec,
        record.items,
        signing_key(home, key_file),
        outputs=record.outputs,
    )
    return record, info


def finish_mission(
    events: Sequence[Event],
    *,
    home: Path,
    evidence_dir: Path | None,
    keep_worktrees: bool = False,
) -> MissionSummary:
    """Close a mission whose run ended: evidence written, worktrees removed (unless kept).

    A mission still waiting (paused, or for an approval) keeps its worktrees:
    ``nexus resume`` reattaches them.
    """
    record = mission_record(events)
    if record.status == "running":  # paused, or awaiting an approval: resume goes on
        return summarize(record)
    info = None
    if evidence_dir is not None:
        _, info = export_evidence(events, evidence_dir, home=home)
    config = record.config
    try:
        repo: Repo | None = Repo.open(config.repo_path)
    except GitError:  # the repository is gone: nothing left there to learn or remove
        repo = None
    proposed: list[str] = []
    book_path = None
    if repo is not None:
        book = ConstraintBook.load(repo.path)
        for results in record.check_results:
            found = [CheckResult.from_data(r) for r in results]
            proposed.extend(c.id for c in book.observe(found, mission=config.id))
        if record.check_results:
            book.save()
            book_path = str(book.path)
        if not keep_worktrees:
            Worktrees(repo, config.workdir_path / "worktrees").remove_all()
            if repo.resolve(f"refs/heads/{config.branch}") is not None:  # no item ever opened
                MergeQueue(repo, config.branch, config.workdir_path / "merge").cleanup()
    summary = summarize(record, info)
    return replace(summary, proposed=tuple(proposed), constraints=book_path)

"""What each role of a mission is asked: its role template rendered on the mission's facts.

The role templates are data (:mod:`nexus.missions.roles`); their views gather
what they are rendered with -- the work item, the requirements it claims with
their criteria, the spec's interfaces, ranked context from the repository
index, the diff and the check results -- bounded, and with every piece of
text passed as *data*, never as template source. This module adds what only
a running mission knows: the repository's files, the index of a worktree,
the accepted constraints of earlier missions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus.missions.index import RepoIndex
from nexus.missions.plan import WorkItem
from nexus.missions.roles import (
    Role,
    architect_view,
    coder_view,
    contract_view,
    integrator_view,
    reviewer_view,
)
from nexus.missions.spec import SpecMap
from nexus.missions.verify import CheckResult

__all__ = ["CONTEXT_TOKENS", "Prompts"]

#: The tokens of ranked repository context a coder gets (brownfield and hardening).
CONTEXT_TOKENS = 3_000


def _with_constraints(text: str, constraints: str) -> str:
    if not constraints:
        return text
    return f"{text}\n\nConstraints learned from earlier missions (never again):\n{constraints}"


@dataclass(frozen=True, slots=True)
class Prompts:
    """Renders the mission's role prompts."""

    spec: SpecMap
    roles: Mapping[str, Role]
    constraints: str = ""
    #: where per-item indexes of the worktrees live; None: no repository context
    index_dir: Path | None = None

    def _context(self, item: WorkItem, worktree: Path) -> str:
        """Ranked snippets of the repository for the item, as Markdown ("" without an index)."""
        if self.index_dir is None:
            return ""
        wanted = set(item.requirements)
        texts = [r.text for r in self.spec.requirements if r.id in wanted]
        query = " ".join([item.title, item.summary, *texts])
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with RepoIndex(worktree, self.index_dir / f"{item.id}.db") as index:
            index.update()
            return index.context(query, CONTEXT_TOKENS, scope=list(item.owns)).render()

    def _render(self, role: str, view: Mapping[str, Any]) -> str:
        found = self.roles.get(role)
        if found is None:
            return ""
        return found.render_prompt(**view)

    def repository_context(self, repo: Path) -> str:
        """Ranked snippets of the repository for the whole spec ("" without an index).

        The repository's files are read, never written; the index lives in
        the mission's own directory.
        """
        if self.index_dir is None:
            return ""
        query = " ".join([self.spec.title, *(r.text for r in self.spec.requirements)])
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with RepoIndex(repo, self.index_dir / "_repository.db") as index:
            index.update()
            return index.context(query[:4000], CONTEXT_TOKENS, scope=()).render()

    def architect(
        self,
        files: Sequence[str],
        checks: Sequence[str],
        *,
        index_context: str = "",
        max_items: int = 50,
    ) -> str:
        view = architect_view(
            self.spec,
            files=files,
            checks=checks,
            index_context=index_context,
            max_items=max_items,
        )
        return _with_constraints(self._render("architect", view), self.constraints)

    def for_item(self, item: WorkItem, worktree: Path) -> dict[str, str]:
        coder = coder_view(self.spec, item, context=self._context(item, worktree))
        return {
            "coder": _with_constraints(self._render("coder", coder), self.constraints),
            "tester": self._render("tester", contract_view(self.spec, item)),
        }

    def review_schema(self) -> dict[str, Any] | None:
        """The reviewer's answer schema (None: no reviewer role)."""
        role = self.roles.get("reviewer")
        return None if role is None else role.answer_schema()

    def review(self, item: WorkItem, patch: str, results: Sequence[CheckResult]) -> str:
        checks = [
            {
                "name": r.name,
                "verdict": "skipped" if r.skipped else ("pass" if r.passed else "fail"),
                "summary": r.skipped or (r.diagnostics[0].message if r.diagnostics else ""),
            }
            for r in results
        ]
        return self._render("reviewer", reviewer_view(self.spec, item, diff=patch, checks=checks))

    def integrate(self, item: WorkItem, outcome: Mapping[str, Any]) -> str:
        conflicts = {
            str(c.get("path")): str(c.get("text") or c.get("ours") or "")
            for c in outcome.get("conflicts") or ()
            if isinstance(c, Mapping)
        }
        view = integrator_view(
            item, conflicts=conflicts, feedback=str(outcome.get("diagnostics") or "")
        )
        return self._render("integrator", view)

"""Workspaces and the merge queue: the git layer of a code mission.

>>> from nexus.missions.workspace import scope_violations
>>> scope_violations(["src/auth/token.py", "README.md"], ["src/auth/**"])
['README.md']

The user's checkout is never touched: :class:`Repo` writes refs only, each work
item gets a worktree of its own under a directory Nexus owns (:class:`Worktrees`,
reattached after a crash), :func:`changed_files` and :func:`scope_violations`
hold an item to the files it owns, :func:`commit_all` commits its work
(:func:`commit_change` commits it and answers its paths and patch too), and the
:class:`MergeQueue` lands accepted items on the mission branch one at a time,
checked on the combined result. Every git command runs hardened against the
repository it reads (``_git``): no hook, filter, driver, pager, editor or helper
the repository names ever runs. See ``docs/missions.md`` ("Workspaces and the
merge queue").
"""

from nexus.missions.workspace._changes import (
    DIFF_OPTIONS,
    Change,
    changed_files,
    commit_all,
    commit_change,
    diff,
    discard_changes,
    merge_into,
    patch_sha256,
    scope_violations,
)
from nexus.missions.workspace._git import (
    IDENTITY_EMAIL,
    IDENTITY_NAME,
    GitError,
    check_branch,
    check_item,
)
from nexus.missions.workspace._merge import (
    INTEGRATION_DIR,
    ITEM_TRAILER,
    PATCH_TRAILER,
    Conflict,
    MergeOutcome,
    MergeQueue,
    merged_items,
)
from nexus.missions.workspace._repo import Repo
from nexus.missions.workspace._resolve import SIDE_LIMIT
from nexus.missions.workspace._worktrees import Worktrees, overlapped, worktree_target

__all__ = [
    "DIFF_OPTIONS",
    "IDENTITY_EMAIL",
    "IDENTITY_NAME",
    "INTEGRATION_DIR",
    "ITEM_TRAILER",
    "PATCH_TRAILER",
    "SIDE_LIMIT",
    "Change",
    "Conflict",
    "GitError",
    "MergeOutcome",
    "MergeQueue",
    "Repo",
    "Worktrees",
    "changed_files",
    "check_branch",
    "check_item",
    "commit_all",
    "commit_change",
    "diff",
    "discard_changes",
    "merge_into",
    "merged_items",
    "overlapped",
    "patch_sha256",
    "scope_violations",
    "worktree_target",
]

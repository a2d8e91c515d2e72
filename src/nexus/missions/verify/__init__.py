"""Checking a work item's change: the checkers, the gate and failure mining.

>>> from nexus.missions.verify import CheckSpec, gate
>>> CheckSpec(name="npm-test", kind="command", command=("npm", "test")).passes
'exit_zero'

:func:`default_checks` gives the built-in checks that apply to a work tree
(scope, build, lint, types, tests, security, secrets, docs) and
:func:`user_checks` the ones ``nexus.toml`` adds; :func:`run_checks` runs
them -- commands in the process sandbox, in parallel within its limits -- and
gives one :class:`CheckResult` each; :func:`gate` accepts or rejects the
change and words the feedback for the next attempt (a :class:`Verdict`).
:class:`ConstraintBook` turns failures that recur (same :func:`failure_signature`)
into proposed constraints in the repository's ``.nexus/constraints.yaml``.
See ``docs/missions.md`` ("Checks and the gate", "Failure mining").

The package does not know workspaces or plans: it is given a directory, the
changed paths and the owned globs.
"""

from nexus.missions.verify._gate import Verdict, gate
from nexus.missions.verify._inproc import glob_match
from nexus.missions.verify._mining import (
    BOOK_PATH,
    RECUR,
    Constraint,
    ConstraintBook,
    failure_signature,
)
from nexus.missions.verify._model import (
    MAX_OUTPUT,
    CheckKind,
    CheckResult,
    CheckSpec,
    Diagnostic,
    PassRule,
)
from nexus.missions.verify._run import CHECK_PROFILE, CheckSandbox, run_checks
from nexus.missions.verify._spec import (
    default_checks,
    merge_checks,
    parse_duration,
    user_checks,
)

__all__ = [
    "BOOK_PATH",
    "CHECK_PROFILE",
    "MAX_OUTPUT",
    "RECUR",
    "CheckKind",
    "CheckResult",
    "CheckSandbox",
    "CheckSpec",
    "Constraint",
    "ConstraintBook",
    "Diagnostic",
    "PassRule",
    "Verdict",
    "default_checks",
    "failure_signature",
    "gate",
    "glob_match",
    "merge_checks",
    "parse_duration",
    "run_checks",
    "user_checks",
]

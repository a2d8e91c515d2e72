"""Mission plans: work items an architect proposes, checked by a constraint compiler.

>>> from nexus.missions.spec import parse_spec
>>> from nexus.missions.plan import plan_from_spec
>>> spec = parse_spec("# cache\\n\\n## Expiry\\n\\n- R1: Entries MUST expire.\\n", source="s.md")
>>> [(item.id, item.owns, item.tests) for item in plan_from_spec(spec).items]
[('expiry', ('expiry.py',), ('tests/test_expiry.py',))]

An architect answers in the shape :func:`plan_schema` gives;
:func:`compile_plan` checks it (``_compile``): ownership disjoint, no
dependency cycle, every MUST claimed or said to be unmet, known checks. On
rejection, :class:`PlanRejected` lists every problem and words them for the
architect's next try (:meth:`PlanRejected.feedback`). :func:`plan_from_spec`
plans without a model (``_heuristic``). Owned paths and globs are in
``_paths``. See ``docs/missions.md``.
"""

from nexus.missions.plan._compile import LIMITS, MUST_LEVELS, compile_plan
from nexus.missions.plan._heuristic import SOURCE_EXTENSIONS, plan_from_spec
from nexus.missions.plan._model import (
    ITEM_ID,
    MAX_FEEDBACK_CHARS,
    MissionPlan,
    PlanProblem,
    PlanRejected,
    Unmet,
    WorkItem,
    plan_schema,
)
from nexus.missions.plan._paths import (
    MAX_PATH_CHARS,
    PathRefused,
    glob_overlap,
    is_glob,
    matches,
    normalise_path,
)

__all__ = [
    "ITEM_ID",
    "LIMITS",
    "MAX_FEEDBACK_CHARS",
    "MAX_PATH_CHARS",
    "MUST_LEVELS",
    "SOURCE_EXTENSIONS",
    "MissionPlan",
    "PathRefused",
    "PlanProblem",
    "PlanRejected",
    "Unmet",
    "WorkItem",
    "compile_plan",
    "glob_overlap",
    "is_glob",
    "matches",
    "normalise_path",
    "plan_from_spec",
    "plan_schema",
]

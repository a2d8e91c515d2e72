"""Code missions end to end: a spec and a repository in, verified merged changes out.

:func:`prepare_mission` turns a SpecMap and a repository into a workflow the
engine runs (an architect plans work items; each runs as a state machine of
open, test, code, check, review and merge); :func:`mission_tools` are the
tools its tasks call; :func:`mission_record` reads a mission's evidence back
from its event log, and :func:`finish_mission` writes the signed bundle and
removes the worktrees. See ``docs/missions.md`` ("Running a mission").
"""

from nexus.missions.mission._config import (
    ITEM_TASK_PREFIX,
    MISSION_INPUT,
    MISSION_WORKFLOW,
    SPEC_INPUT,
    MissionConfig,
    Mode,
    item_of_task,
    mission_config_of,
)
from nexus.missions.mission._evidence import MissionRecord, mission_record
from nexus.missions.mission._finish import (
    MissionSummary,
    export_evidence,
    finish_mission,
    summarize,
    tools_for_plan,
)
from nexus.missions.mission._start import MissionSetup, mission_state, prepare_mission
from nexus.missions.mission._tools import (
    MISSION_TOOLS,
    MissionState,
    mission_tools,
    with_mission_tools,
)
from nexus.missions.mission._workflow import (
    ARCHITECT_TASK,
    ROLES,
    WORK_TASK,
    item_tasks,
    mission_workflow,
)

__all__ = [
    "ARCHITECT_TASK",
    "ITEM_TASK_PREFIX",
    "MISSION_INPUT",
    "MISSION_TOOLS",
    "MISSION_WORKFLOW",
    "ROLES",
    "SPEC_INPUT",
    "WORK_TASK",
    "MissionConfig",
    "MissionRecord",
    "MissionSetup",
    "MissionState",
    "MissionSummary",
    "Mode",
    "export_evidence",
    "finish_mission",
    "item_of_task",
    "item_tasks",
    "mission_config_of",
    "mission_record",
    "mission_state",
    "mission_tools",
    "mission_workflow",
    "prepare_mission",
    "summarize",
    "tools_for_plan",
    "with_mission_tools",
]

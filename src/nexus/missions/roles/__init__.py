"""Mission roles as data: architect, coder, tester, reviewer and integrator.

>>> from nexus.missions.roles import load_roles
>>> roles = load_roles(None, source="nexus.toml")
>>> roles["tester"].reads, roles["tester"].writes
('contract', 'tests')

Each role is a YAML file in this package (``_role`` reads them): its
capabilities, tools, what it may read and write, its answer's schema, and
its instructions and prompt as sandboxed Jinja templates over the names its
``context`` declares. ``_context`` builds those names from the spec, the
plan and the repository. A project overrides ``model``, ``function``,
``instructions`` and ``prompt`` in ``nexus.toml`` (``[mission.roles.NAME]``).
See ``docs/missions.md``.
"""

from nexus.missions.roles._context import (
    MAX_FILES,
    MAX_TEXT_CHARS,
    architect_view,
    as_data,
    coder_view,
    contract_view,
    integrator_view,
    reviewer_view,
)
from nexus.missions.roles._role import (
    OVERRIDABLE,
    READS,
    ROLE_NAMES,
    WRITES,
    Role,
    load_roles,
    packaged_roles,
)

__all__ = [
    "MAX_FILES",
    "MAX_TEXT_CHARS",
    "OVERRIDABLE",
    "READS",
    "ROLE_NAMES",
    "WRITES",
    "Role",
    "architect_view",
    "as_data",
    "coder_view",
    "contract_view",
    "integrator_view",
    "load_roles",
    "packaged_roles",
    "reviewer_view",
]

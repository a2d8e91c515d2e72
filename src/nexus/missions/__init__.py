"""Code missions: from a design spec and a repository to verified, merged changes.

The pieces a mission is built from, each usable on its own:

* :mod:`nexus.missions.spec` -- a Markdown design document read into a
  ``SpecMap`` (requirements with stable ids, acceptance criteria, interfaces,
  constraints, ambiguities);
* :mod:`nexus.missions.index` -- the repository indexed into SQLite with FTS5
  (files, symbols, tests, imports) and ranked context within a token budget;
* :mod:`nexus.missions.plan` -- work items (owned files, needs, requirements,
  checks) and the constraint compiler that accepts an architect's plan or
  says why not;
* :mod:`nexus.missions.roles` -- the architect, coder, tester, reviewer and
  integrator as data (tools, read/write policy, prompts), overridable per project;
* :mod:`nexus.missions.evidence` -- the signed evidence bundle of a mission
  (records per work item, check outputs, a traceability report) and its check.
* :mod:`nexus.missions.verify` -- the checks of a work item's change (run in
  the sandbox), the gate and its feedback, and failure mining into
  ``.nexus/constraints.yaml``.
* :mod:`nexus.missions.workspace` -- the git layer: a worktree per work item,
  the scope check, and the merge queue onto the mission branch, with git
  hardened against the repository it runs on.

The package sits between :mod:`nexus.app` and the engine in the layers
(``docs/architecture.md``): it may drive the engine, planning and the
gateway, and nothing below it imports it.
"""

"""What ``nexus inspect`` shows, read from a run's events through the typed payload views.

* **The run**: every task with its state, attempts, agent and *why* -- the
  one-line error of a failed task, the reason a task was skipped, cancelled or
  paused, the command that answers a pending approval.
* **One task** (``--task``): its error pretty-printed (kind, message, the
  details a tool reported, a hint of what to do); per attempt its duration,
  what it ran (the tool and its rendered arguments, or the agent, its route,
  model and rendered prompt), each call it made across the effect boundary
  (model calls: who answered, the fallback route, tokens, money, time) and how
  it ended; for a task awaiting approval, exactly what approving it will run;
  for a skipped task, why.
* **A conversation** (``--conversation``): an agent task's messages, tool
  calls and tool results, rebuilt from its recorded model calls.

Everything is computed from the events (``view_run``/``view_task``: plain
JSON, what ``--json`` prints) and printed from that document
(``print_run``/``print_task``), so both forms say the same.

The package is split by concern: :mod:`._view` reads the events into that
document, :mod:`._errors` words a recorded error and what to do about it,
:mod:`._print` prints the document.
"""

from nexus.cli.inspection._errors import hint_for
from nexus.cli.inspection._print import print_run, print_task
from nexus.cli.inspection._view import view_run, view_task

__all__ = ["hint_for", "print_run", "print_task", "view_run", "view_task"]

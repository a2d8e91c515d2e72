"""Function agents for the mission tests, driven by a JSON script (``MISSION_SCRIPT``).

The script maps a role to its answers: ``architect`` to a plan; ``tester``,
``coder`` and ``reviewer`` to ``{item: [answer for attempt 1, attempt 2, ...]}``.
An answer is ``{"actions": [...], "reply": "..."}``; an action is one of

* ``{"tool": NAME, "args": {...}}`` -- a tool call through the context;
* ``{"try": NAME, "args": {...}}`` -- a tool call expected to be refused: the
  refusal's message is kept in the reply;
* ``{"raw": PATH, "text": TEXT}`` -- a write straight into the item's worktree,
  around the tools (``MISSION_WORKDIR`` names where the worktrees live);
* ``{"person": PATH, "text": TEXT}`` -- a person commits ``TEXT`` to ``PATH``
  on the mission branch of the repository (``MISSION_REPO``) while the
  mission runs.

``integrator`` maps to ``{item: [answer, ...]}`` like the coder's.

The coder's attempt is read from its prompt, as a model would read it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from nexus.agents.base import AgentCall, AgentContext
from nexus.domain.errors import NexusError

_RETRY = re.compile(r"\(attempt (\d+) of \d+\)")


def _script() -> dict[str, Any]:
    found = json.loads(Path(os.environ["MISSION_SCRIPT"]).read_text(encoding="utf-8"))
    assert isinstance(found, dict)
    return found


def _worktree(item: str) -> Path:
    hits = sorted(Path(os.environ["MISSION_WORKDIR"]).glob(f"*/worktrees/{item}"))
    assert len(hits) == 1, hits
    return hits[0]


def _person_commits(path: str, text: str) -> None:
    repo = Path(os.environ["MISSION_REPO"])
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "a person",
        "GIT_AUTHOR_EMAIL": "person@example.invalid",
        "GIT_COMMITTER_NAME": "a person",
        "GIT_COMMITTER_EMAIL": "person@example.invalid",
    }

    def git(*args: str, cwd: Path = repo) -> str:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
        )
        return done.stdout

    listed = git("branch", "--list", "--format=%(refname:short)", "nexus/*").split()
    (branch,) = [name for name in listed if "-items/" not in name]  # not an item's branch
    with tempfile.TemporaryDirectory() as tmp:
        checkout = Path(tmp) / "person"
        git("worktree", "add", "-q", str(checkout), branch)
        (checkout / path).write_text(text, encoding="utf-8")
        git("commit", "-q", "-am", "a person's change", cwd=checkout)
        git("worktree", "remove", "--force", str(checkout))


async def _play(role: str, call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
    item = ctx.task.removeprefix("item-")
    answers = _script()[role][item]
    merged = call.prompt.count("Merged with the mission branch")
    found = _RETRY.search(call.prompt)
    attempt = (int(found.group(1)) + 1 if found else 1) + merged
    answer = answers[min(attempt, len(answers)) - 1]
    notes = []
    for index, action in enumerate(answer.get("actions") or ()):
        if "raw" in action:
            target = _worktree(item) / action["raw"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(action["text"], encoding="utf-8")
        elif "person" in action:
            _person_commits(action["person"], action["text"])
        elif "try" in action:
            try:
                await ctx.call_tool(action["try"], dict(action["args"]), f"{role}-{index}")
            except NexusError as exc:
                notes.append(exc.message)
            else:
                notes.append("allowed")
        else:
            await ctx.call_tool(action["tool"], dict(action["args"]), f"{role}-{index}")
    reply = " | ".join([answer.get("reply", "done"), *notes])
    out: dict[str, Any] = {"text": reply}
    if "data" in answer:
        out["data"] = answer["data"]
    return out


async def architect(call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
    plans = _script()["architect"]
    rejected = call.prompt.count("Your previous plan was rejected")
    return {"text": "plan", "data": plans[min(rejected, len(plans) - 1)]}


async def tester(call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
    return await _play("tester", call, ctx)


async def coder(call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
    return await _play("coder", call, ctx)


async def integrator(call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
    return await _play("integrator", call, ctx)


async def reviewer(call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
    item = ctx.task.removeprefix("item-")
    verdicts = _script().get("reviewer", {}).get(item) or [
        {"verdict": "accept", "notes": "ok", "findings": []}
    ]
    seen = call.prompt.count("(attempt")
    verdict = verdicts[min(seen, len(verdicts) - 1)]
    if not isinstance(verdict, dict):
        raise NexusError("bad reviewer script")
    return {"text": verdict["notes"], "data": verdict}


def agents_yaml(*roles: str) -> str:
    """An agents file playing ``roles`` with the functions above."""
    return "\n".join(
        ["agents:", *(f"  {role}: {{function: 'mission_agents:{role}'}}" for role in roles)]
    )


AGENTS_YAML = agents_yaml("architect", "tester", "coder", "reviewer")

"""The ``scripted`` provider: answers from the agent's ``scripted`` lines, offline.

The n-th call an agent receives in a run (its ``turn``) gets the n-th line;
after the last line the last one repeats. Lines are Jinja2 templates over the
task's context (``inputs``, ``tasks``, ``item``). Token usage is counted as
whitespace-separated words, so cost accounting has numbers to add up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nexus.domain.errors import UserError
from nexus.domain.plan import AgentSpec
from nexus.gateway.base import ModelRequest, ModelResponse, Usage
from nexus.planning.templates import render_text


@dataclass(frozen=True, slots=True)
class ScriptedProvider:
    agent: str
    lines: tuple[str, ...]

    async def complete(self, request: ModelRequest, context: Mapping[str, Any]) -> ModelResponse:
        if not self.lines:
            raise UserError(
                f"agent '{self.agent}' uses a scripted model but has no 'scripted' lines"
            )
        line = self.lines[min(request.turn, len(self.lines) - 1)]
        text = render_text(line, dict(context))
        prompt_words = sum(len(m.content.split()) for m in request.messages)
        return ModelResponse(
            text=text,
            model=request.model,
            usage=Usage(prompt_tokens=prompt_words, completion_tokens=len(text.split())),
        )


def scripted_factory(agent: AgentSpec) -> ScriptedProvider:
    return ScriptedProvider(agent=agent.name, lines=agent.scripted)

"""The ``scripted`` provider: answers from the agent's ``scripted`` lines, offline.

The line an answer comes from is the attempt's *position* in the agent's lines
plus the number of answers it already gave in this conversation (the assistant
messages of the request), so a tool loop walks down the lines one model call
at a time; after the last line the last one repeats. Lines are Jinja2
templates over the task's context (``inputs``, ``tasks``, ``item``).

The engine works the position out from the run's log (see
``RunState._script_start``) and hands it over in the context under
:data:`SCRIPT_POSITION`: a task's first attempt starts at the agent's next
unused line and each retry one line further; every item of a ``foreach``
starts where the first did, so all items answer alike; an interrupted attempt
does not count, so an attempt resumed after a crash replays the same lines.
Without it (a provider called directly) the request's ``turn`` is used.

A line may ask for tools: each of its lines that reads ``@call NAME {json}``
becomes a tool call (the JSON object is the arguments; ``{}`` when omitted),
and the rest of the text is the answer's text. Token usage is counted as
whitespace-separated words, so cost accounting has numbers to add up.

Example lines::

    - "@call file.read {\"path\": \"README.md\"}"
    - "The README says: {{ inputs.topic }}"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nexus.domain.errors import UserError
from nexus.domain.plan import SCRIPT_POSITION as SCRIPT_POSITION  # re-exported: its old home
from nexus.domain.plan import AgentSpec
from nexus.gateway.base import ModelRequest, ModelResponse, ToolCall, Usage
from nexus.templating import render_text

_CALL = "@call "


def _split_calls(text: str, step: int) -> tuple[str, tuple[ToolCall, ...]]:
    lines: list[str] = []
    calls: list[ToolCall] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith(_CALL):
            lines.append(line)
            continue
        name, _, arguments = stripped[len(_CALL) :].strip().partition(" ")
        calls.append(
            ToolCall(id=f"call_{step}_{len(calls)}", name=name, arguments=arguments.strip() or "{}")
        )
    return "\n".join(lines).strip() if calls else text, tuple(calls)


@dataclass(frozen=True, slots=True)
class ScriptedProvider:
    agent: str
    lines: tuple[str, ...]

    async def complete(self, request: ModelRequest, context: Mapping[str, Any]) -> ModelResponse:
        if not self.lines:
            raise UserError(
                f"agent '{self.agent}' uses a scripted model but has no 'scripted' lines"
            )
        step = sum(1 for m in request.messages if m.role == "assistant")
        values = dict(context)
        position = values.pop(SCRIPT_POSITION, None)
        start = position if isinstance(position, int) else request.turn
        line = self.lines[min(start + step, len(self.lines) - 1)]
        text, calls = _split_calls(render_text(line, values), step)
        prompt_words = sum(len(m.content.split()) for m in request.messages)
        completion_words = len(text.split()) + sum(1 + len(c.arguments.split()) for c in calls)
        return ModelResponse(
            text=text,
            model=request.model,
            usage=Usage(prompt_tokens=prompt_words, completion_tokens=completion_words),
            tool_calls=calls,
            finish_reason="tool_calls" if calls else None,
        )


def scripted_factory(agent: AgentSpec) -> ScriptedProvider:
    return ScriptedProvider(agent=agent.name, lines=agent.scripted)

"""The LLM agent: a tool-calling loop over the model gateway.

One attempt of an agent task runs this loop::

    system = role template (researcher, planner, coder, tester, reviewer,
             analyzer) + the agent's instructions
    repeat, at most ``max_steps`` model calls:
        ask the model (one recorded ``model`` effect; tokens stream out live)
        it asked for tools  -> run each through the tool registry (one
                               recorded ``tool`` effect each), hand the
                               results back, marked with their provenance
        it answered         -> with an ``output_schema``: parse and validate
                               the JSON; on failure tell the model what was
                               wrong and ask again (at most ``MAX_REPAIRS``)
                               otherwise: done

Every model and tool call goes through :meth:`AgentContext.effect`, so a
replay serves the recorded answers: it costs no tokens, runs no tool, and
takes the same path through the loop.

Tool output is untrusted data (a web page, a file, an MCP server's answer can
carry instructions aimed at the model). It reaches the model wrapped in a
``<tool-output>`` block naming the tool, its source and ``trust="untrusted"``,
and the role templates tell the model to treat such blocks as data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from nexus.agents.base import AgentCall, AgentContext
from nexus.domain.errors import EffectFailed, ErrorKind, NexusError, UserError
from nexus.domain.plan import AgentSpec
from nexus.gateway.base import (
    ChatMessage,
    ModelProvider,
    ModelRequest,
    ModelResponse,
    StreamEnd,
    StreamingProvider,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)

#: The role templates shipped in ``nexus/agents/roles``.
ROLES = ("researcher", "planner", "coder", "tester", "reviewer", "analyzer")
#: Extra model calls an agent gets to fix an answer that does not match its schema.
MAX_REPAIRS = 2


class AgentStepLimit(NexusError):
    """The agent used all its model calls without giving a final answer.

    Retryable: a task with ``retries`` tries again, told what went wrong.
    """

    kind = ErrorKind.VALIDATION

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class StructuredOutputError(NexusError):
    """The model's answer does not match the task's ``output_schema``.

    Retryable once the repairs are spent: a task with ``retries`` tries again
    with the diagnostics in its prompt.
    """

    kind = ErrorKind.VALIDATION


def _feedback_text(feedback: Mapping[str, Any] | None) -> str:
    """The previous attempt's failure, as the next attempt's prompt states it (E4)."""
    if not feedback:
        return ""
    text = (
        f"\n\nNote: attempt {feedback.get('attempt')} of this task failed with "
        f"{feedback.get('kind')}: {feedback.get('message')}"
    )
    details = feedback.get("details")
    if details:
        text += "\nDetails: " + json.dumps(details, sort_keys=True)[:2000]
    return text + "\nAvoid that failure in this attempt."


@cache
def _roles_env() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        loader=PackageLoader("nexus.agents", "roles"),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def system_prompt(
    spec: AgentSpec,
    instructions: str,
    tools: Sequence[ToolSpec] = (),
    output_schema: Mapping[str, Any] | None = None,
) -> str:
    """The system message: the role template (if the role has one), then the instructions.

    An agent whose role has no template, with no tools and no schema, gets its
    instructions alone -- exactly what a single-call agent always sent.
    """
    values = {
        "agent": spec.name,
        "tools": [{"name": t.name, "description": t.description} for t in tools],
        "output_schema": json.dumps(output_schema, sort_keys=True) if output_schema else "",
    }
    env = _roles_env()
    if spec.role in ROLES:
        preamble = env.get_template(f"{spec.role}.j2").render(values)
    elif tools or output_schema:
        preamble = env.get_template("_common.j2").render(values)
    else:
        preamble = ""
    parts = [part.strip() for part in (preamble, instructions) if part.strip()]
    return "\n\n".join(parts)


_NOT_WIRE = re.compile(r"[^A-Za-z0-9_-]")
_WIRE_MAX = 64


def wire_names(names: Sequence[str]) -> dict[str, str]:
    """Tool names as providers accept them (``^[A-Za-z0-9_-]{1,64}$``), one-to-one.

    ``file.read`` is offered as ``file_read``, ``time.get_current_time`` as
    ``time_get_current_time``; a name that would collide gets a numbered
    suffix. The model's tool calls are mapped back to the registry's names.
    """
    taken: set[str] = set()
    wire: dict[str, str] = {}
    for name in names:
        base = _NOT_WIRE.sub("_", name)[:_WIRE_MAX] or "tool"
        candidate, n = base, 2
        while candidate in taken:
            suffix = f"_{n}"
            candidate = base[: _WIRE_MAX - len(suffix)] + suffix
            n += 1
        taken.add(candidate)
        wire[name] = candidate
    return wire


_CLOSE_TAG = re.compile(r"</\s*tool-output\s*>", re.IGNORECASE)


def mark_tool_output(call: ToolCall, source: str, content: str, *, error: bool = False) -> str:
    """``content`` wrapped in a ``<tool-output>`` block that names where it came from.

    A closing tag inside the content is defused, so untrusted text cannot end
    the block early and pose as the agent's own words.
    """
    body = _CLOSE_TAG.sub("<\\/tool-output>", content)
    status = ' status="error"' if error else ""
    return (
        f'<tool-output tool="{call.name}" call="{call.id}" source="{source}" '
        f'trust="untrusted"{status}>\n{body}\n</tool-output>'
    )


_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


def parse_structured(text: str, schema: Mapping[str, Any]) -> Any:
    """The JSON value in ``text``, validated against ``schema``.

    A Markdown code fence around the JSON is tolerated (models add them).

    Raises:
        StructuredOutputError: not JSON, or not matching; the message lists
            what is wrong, in a form the model can act on.
    """
    import jsonschema

    fenced = _FENCE.match(text)
    source = fenced.group(1) if fenced else text.strip()
    try:
        value = json.loads(source)
    except ValueError as exc:
        raise StructuredOutputError(f"the answer is not JSON: {exc}", retryable=False) from None
    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if problems:
        lines = [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in problems[:10]
        ]
        raise StructuredOutputError(
            "the answer does not match the schema: " + "; ".join(lines), retryable=False
        )
    return value


@dataclass(frozen=True, slots=True)
class LLMAgent:
    """An agent backed by a model: role instructions, tools, structured output.

    ``provider`` is what the engine resolved for this attempt: one provider,
    or a fallback chain over the models routing chose.
    """

    spec: AgentSpec
    provider: ModelProvider

    async def run(self, call: AgentCall, ctx: AgentContext) -> Any:
        spec = self.spec
        schema = call.output_schema
        registry_specs = ctx.tool_specs(spec.tools) if spec.tools else ()
        wire = wire_names([t.name for t in registry_specs])
        tools = tuple(replace(t, name=wire[t.name]) for t in registry_specs)
        offered = {t.name for t in registry_specs}
        back = {w: name for name, w in wire.items()}
        messages: list[ChatMessage] = []
        system = system_prompt(spec, call.instructions, tools, schema)
        if system:
            messages.append(ChatMessage("system", system))
        messages.append(ChatMessage("user", call.prompt + _feedback_text(call.feedback)))
        usage = Usage()
        steps = tool_calls = repairs = 0
        sent = 0  # messages the previous model call had (this one records only the rest)
        while True:
            if steps >= spec.max_steps:
                raise AgentStepLimit(
                    f"agent '{spec.name}' made {steps} model calls (its max_steps) "
                    "without a final answer"
                )
            request = ModelRequest(
                model=call.model,
                messages=tuple(messages),
                turn=call.turn,
                tools=tools,
                max_tokens=spec.max_tokens,
                temperature=spec.temperature,
            )
            response = await self._ask(request, ctx, sent)
            sent = len(request.messages)
            steps += 1
            usage = usage + response.usage
            if response.tool_calls:
                messages.append(ChatMessage("assistant", response.text, response.tool_calls))
                for tool_call in response.tool_calls:
                    tool_calls += 1
                    name = back.get(tool_call.name, tool_call.name)
                    named = tool_call if name == tool_call.name else replace(tool_call, name=name)
                    content = await self._use_tool(named, offered, ctx)
                    messages.append(ChatMessage("tool", content, tool_call_id=tool_call.id))
                continue
            output: dict[str, Any] = {
                "text": response.text,
                "model": response.model,
                "usage": usage.to_dict(),
            }
            if steps > 1 or tool_calls:
                output["steps"] = steps
                output["tool_calls"] = tool_calls
            if schema is None:
                return output
            try:
                output["data"] = parse_structured(response.text, schema)
            except StructuredOutputError as exc:
                if repairs >= MAX_REPAIRS:
                    raise StructuredOutputError(
                        f"agent '{spec.name}': {exc.message} (after {repairs} repair attempts)",
                        retryable=True,
                    ) from None
                repairs += 1
                messages.append(ChatMessage("assistant", response.text))
                messages.append(
                    ChatMessage(
                        "user",
                        f"Your answer was rejected: {exc.message}. Reply again with only a "
                        "JSON value that matches the schema.",
                    )
                )
                continue
            return output

    async def _ask(self, request: ModelRequest, ctx: AgentContext, sent: int) -> ModelResponse:
        """One model call; recorded with only the messages after the first ``sent``.

        The earlier ones are the previous call's (ADR 0005): the log grows with
        the conversation, not with its square. The provider, the cache and a
        budget's estimate all see the whole request.
        """
        provider = self.provider
        context = ctx.template_context

        async def invoke() -> Any:
            if ctx.streaming and isinstance(provider, StreamingProvider):
                final: ModelResponse | None = None
                async for event in provider.stream(request, context):
                    if isinstance(event, TextDelta):
                        await ctx.delta(event.text)
                    elif isinstance(event, StreamEnd):
                        final = event.response
                if final is None:
                    raise NexusError("the model's stream ended without a response")
                return final.to_dict()
            return (await provider.complete(request, context)).to_dict()

        record = request.to_dict(since=sent)
        data = await ctx.effect("model", record, invoke, estimate=request.to_dict)
        return ModelResponse.from_dict(data)

    async def _use_tool(self, call: ToolCall, offered: set[str], ctx: AgentContext) -> str:
        """Run one tool call; its result (or why it failed) as the model will see it."""
        source = "none"
        if call.name not in offered:
            available = ", ".join(sorted(offered)) or "none"
            message = f"tool '{call.name}' is not available to you (available: {available})"
            return mark_tool_output(call, source, message, error=True)
        try:
            args = call.parsed_arguments()
        except UserError as exc:
            return mark_tool_output(call, source, exc.message, error=True)
        if not isinstance(args, dict):
            message = f"tool arguments must be a JSON object, got {type(args).__name__}"
            return mark_tool_output(call, source, message, error=True)
        try:
            result, source = await ctx.call_tool(call.name, args, call.id)
        except EffectFailed as exc:
            if exc.error.get("kind") == str(ErrorKind.BUDGET_EXCEEDED):
                raise
            message = f"{exc.error.get('kind', 'error')}: {exc.error.get('message', '')}"
            return mark_tool_output(call, "tool", message, error=True)
        text = result if isinstance(result, str) else json.dumps(result, sort_keys=True)
        return mark_tool_output(call, source, text)

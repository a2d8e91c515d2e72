"""Agents: the protocol, LLM agents (a tool-calling loop) and function agents."""

from nexus.agents.base import (
    Agent,
    AgentCall,
    AgentContext,
    FunctionAgent,
)
from nexus.agents.llm import (
    MAX_REPAIRS,
    ROLES,
    AgentStepLimit,
    LLMAgent,
    StructuredOutputError,
    mark_tool_output,
    parse_structured,
    system_prompt,
)
from nexus.agents.resolver import AgentResolver

__all__ = [
    "MAX_REPAIRS",
    "ROLES",
    "Agent",
    "AgentCall",
    "AgentContext",
    "AgentResolver",
    "AgentStepLimit",
    "FunctionAgent",
    "LLMAgent",
    "StructuredOutputError",
    "mark_tool_output",
    "parse_structured",
    "system_prompt",
]

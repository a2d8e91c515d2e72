"""Agents: the protocol, LLM agents and function agents."""

from nexus.agents.base import (
    Agent,
    AgentCall,
    AgentContext,
    AgentResolver,
    FunctionAgent,
    LLMAgent,
)

__all__ = ["Agent", "AgentCall", "AgentContext", "AgentResolver", "FunctionAgent", "LLMAgent"]

"""The test kit: a scripted model, real stores and engines, a controllable clock.

Users and Nexus's own tests share it. Everything here is the real thing but
the model: :class:`TestModel` implements the provider port and answers from a
script (text, tool calls, structured output, usage, every provider fault), and
records what it was asked; the stores are SQLite files in a temporary folder.

Example:
    >>> import asyncio
    >>> from nexus import Workflow
    >>> from nexus.testing import Call, Reply, TestModel, temp_engine
    >>> wf = Workflow("notes")
    >>> writer = wf.agent("writer", model="test:writer")
    >>> _ = wf.task("draft", agent=writer, prompt="Draft the release notes.")
    >>> model = TestModel("Faster, safer.")
    >>> async def main() -> str:
    ...     async with temp_engine(providers=model.registry()) as engine:
    ...         result = await engine.start(wf.compile())
    ...         state, _ = await engine.load_state(result.run_id)
    ...         return state.tasks["draft"].output["text"]
    >>> asyncio.run(main())
    'Faster, safer.'
    >>> model.requests[0].messages[-1].content
    'Draft the release notes.'

Pytest fixtures (``nexus_store``, ``nexus_clock``) come with
``pytest_plugins = ["nexus.testing.pytest_plugin"]`` in a ``conftest.py``.
See ``docs/testing.md``.
"""

from nexus.testing._clock import ManualClock
from nexus.testing._model import (
    HANG,
    Answer,
    AnswerFn,
    Call,
    Fault,
    Reply,
    ScriptExhausted,
    TestModel,
)
from nexus.testing._registry import model_registry
from nexus.testing._stores import EngineOptions, sqlite_engine, temp_engine, temp_store

__all__ = [
    "HANG",
    "Answer",
    "AnswerFn",
    "Call",
    "EngineOptions",
    "Fault",
    "ManualClock",
    "Reply",
    "ScriptExhausted",
    "TestModel",
    "model_registry",
    "sqlite_engine",
    "temp_engine",
    "temp_store",
]

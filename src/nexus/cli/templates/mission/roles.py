"""The roles of this project's code mission, written as Python function agents.

A function agent is ``async def role(call, ctx) -> dict``: ``call.prompt`` is
what a model would read (the work item, the spec's requirements, and after a
rejected attempt the gate's feedback); ``ctx.task`` is ``item-<id>``; the
changes are made through the mission's tools with ``ctx.call_tool(name, args,
call_id)``, each call a recorded effect, so ``nexus replay`` reproduces the
mission without running anything. The answer is ``{"text": ...}``, and for
the architect ``{"data": <plan>}`` too.

These play a fixed script for ``spec.md``; replace any of them by your own
code (a formatter, a code generator, a wrapper around another tool) or by a
model in ``agents.yaml``.
"""

from __future__ import annotations

from typing import Any

PLAN = {
    "items": [
        {
            "id": "hello",
            "title": "greet.hello",
            "summary": "Greet a person by name; refuse an empty name.",
            "owns": ["greet.py"],
            "tests": ["tests/test_greet.py"],
            "needs": [],
            "requirements": ["R1", "R2"],
            "checks": [],
        }
    ],
    "unmet": [],
}

TESTS = """import pytest

from greet import hello


def test_hello_greets_by_name() -> None:
    assert hello("Ada") == "Hello, Ada!"


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        hello(name)
"""

FIRST = '''"""Greetings."""


def hello(name: str) -> str:
    """Greet ``name``."""
    return f"Hello, {name}!"
'''

SECOND = '''"""Greetings."""


def hello(name: str) -> str:
    """Greet ``name``.

    Raises:
        ValueError: ``name`` is empty or only spaces.
    """
    if not name.strip():
        raise ValueError("a name is needed")
    return f"Hello, {name}!"
'''


async def architect(call: Any, ctx: Any) -> dict[str, Any]:
    """The plan: one work item, its file, its tests and the requirements it meets."""
    return {"text": "one work item", "data": PLAN}


async def tester(call: Any, ctx: Any) -> dict[str, Any]:
    """Tests written from the requirements, before the code exists."""
    await ctx.call_tool("mission.tests.write", {"path": "tests/test_greet.py", "text": TESTS}, "t1")
    return {"text": "tests written"}


async def coder(call: Any, ctx: Any) -> dict[str, Any]:
    """First a change that forgets R2; after the gate's feedback, the whole one."""
    retry = "The checks rejected your last change" in call.prompt
    text = SECOND if retry else FIRST
    await ctx.call_tool("mission.write", {"path": "greet.py", "text": text}, "c1")
    return {"text": "fixed from the feedback" if retry else "written"}

"""Python function tools: arguments validated from type hints, schemas derived."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from nexus.domain.errors import NexusError
from nexus.tools.base import ToolContext, tool

CTX = ToolContext("run", "task", 1, Path("."))


@tool
def scale(n: int, factor: float = 2.0, tags: list[str] | None = None) -> dict[str, Any]:
    """Multiply n by factor."""
    return {"value": n * factor, "tags": tags or []}


@tool(name="collect")
async def collect_all(**values: Any) -> dict[str, Any]:
    return values


def test_schema_comes_from_the_type_hints() -> None:
    schema = scale.input_schema
    assert schema["required"] == ["n"]
    assert schema["properties"]["n"]["type"] == "integer"
    assert schema["properties"]["factor"]["default"] == 2.0
    assert schema["additionalProperties"] is False
    assert scale.description == "Multiply n by factor."


def test_arguments_are_coerced_and_defaults_applied() -> None:
    assert asyncio.run(scale({"n": "3"}, CTX)) == {"value": 6.0, "tags": []}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "argument 'n': Field required"),
        ({"n": "x"}, "argument 'n': Input should be a valid integer"),
        ({"n": 1, "tags": "a"}, "argument 'tags'"),
        ({"n": 1, "nope": 1}, "argument 'nope': Extra inputs are not permitted"),
    ],
)
def test_bad_arguments_name_the_argument(args: dict[str, Any], message: str) -> None:
    with pytest.raises(NexusError, match=message) as info:
        asyncio.run(scale(args, CTX))
    assert info.value.retryable is False


def test_kwargs_functions_take_anything() -> None:
    assert asyncio.run(collect_all({"a": 1, "b": [2]}, CTX)) == {"a": 1, "b": [2]}
    assert collect_all.name == "collect"


def test_errors_raised_inside_the_function_are_not_mistaken_for_bad_arguments() -> None:
    @tool
    def broken(n: int) -> int:
        raise TypeError("inner bug")

    with pytest.raises(TypeError, match="inner bug"):
        asyncio.run(broken({"n": 1}, CTX))

"""Redaction and canonical JSON on an agent's model-call request: µs per call, in process.

The request is what an LLM agent sends at the 10th step of its loop (the
shape ``ModelRequest.to_dict`` gives): a ~600-character system prompt, the
user's prompt, then 9 assistant messages with one tool call each and their 9
tool results, one tool schema, ``turn`` and ``max_tokens``. A request is
recorded as an effect: copied to plain JSON (``plain_json``), then redacted
(``Redactor.redact``), then serialised when the event is sealed
(``canonical_json``, whose first step is ``_fast_path_ok``). Since ADR 0005 an
agent records only the messages new at each step, so a request this size is
what a first call with a long history, or a step with large tool results,
records. Figures:

* ``plain_json`` -- the copy to plain JSON types;
* ``Redactor.redact`` -- warm: every string of the request was redacted once
  before (the redactor remembers them, as it does when the same conversation
  comes back at every step), with two registered secrets;
* ``_fast_path_ok`` -- the check that ``json.dumps`` gives the RFC 8785 bytes;
* ``canonical_json`` -- that check plus the serialisation.

Each sample is the best of five ``timeit`` batches, in µs per call; the
table shows the best and the median sample of ``--runs`` (3).

Usage: ``python bench/redaction_canonical.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable
from typing import Any

from _common import Metric, parser, report, runs_for
from nexus.domain import canonical
from nexus.redaction import Redactor

SYSTEM = (
    "You are a careful software engineer working in a sandboxed repository. "
    "Use the tools you are given to read files, run the test suite and make "
    "small, reviewed changes. Think step by step, explain what you are about to "
    "do before each tool call, and never print credentials, tokens or keys you "
    "come across. When the task is done, answer with a short summary of what "
    "changed, which tests ran, and anything that is left for a human to check. "
    "If a command fails, read its output, fix the cause, and try again at most "
    "twice before asking for help. Keep answers under two hundred words and use "
    "plain English; quote file paths and commands in backticks."
)


def agent_request(steps: int = 10) -> dict[str, Any]:
    """The request an agent's ``steps``-th model call sends (``ModelRequest.to_dict`` shape)."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Fix the failing test in tests/test_parser.py and explain."},
    ]
    for i in range(steps - 1):
        call_id = f"call_{i:04d}_a1b2c3"
        messages.append(
            {
                "role": "assistant",
                "content": f"Step {i}: I will run the tests to see what fails now.",
                "tool_calls": [
                    {
                        "id": call_id,
                        "name": "shell",
                        "arguments": f'{{"cmd": "pytest -q tests/test_parser.py -k case_{i}"}}',
                    }
                ],
            }
        )
        messages.append(
            {
                "role": "tool",
                "content": f"F.. [100%]\nFAILED tests/test_parser.py::test_case_{i} - "
                "AssertionError: expected 3, got 2\n1 failed, 2 passed in 0.12s",
                "tool_call_id": call_id,
            }
        )
    tool = {
        "name": "shell",
        "description": "Run a shell command in the workspace and return its output.",
        "parameters": {
            "type": "object",
            "properties": {
                "cmd": {"type": "string", "description": "the command line"},
                "timeout": {"type": "number", "description": "seconds"},
            },
            "required": ["cmd"],
        },
    }
    return {
        "model": "openai:gpt-4.1-mini",
        "messages": messages,
        "turn": steps - 1,
        "tools": [tool],
        "max_tokens": 1024,
    }


def per_call_us(fn: Callable[[], Any], number: int) -> float:
    """Best of five ``timeit`` batches of ``number`` calls, in µs per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    runs = runs_for(args, 3, quick=1)
    number = 200 if args.quick else 2000
    request = agent_request()
    redactor = Redactor(["not-in-the-request-01", "another-secret-value-02"])
    plain = canonical.plain_json(request)
    redacted = redactor.redact(plain)
    if redacted != request:
        raise RuntimeError("the request holds nothing secret; redaction must not change it")
    fast_ok = canonical._fast_path_ok(redacted)
    if not fast_ok:
        raise RuntimeError("the request should take json.dumps's fast path")

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("plain_json", lambda: canonical.plain_json(request)),
        ("Redactor.redact (warm)", lambda: redactor.redact(plain)),
        ("_fast_path_ok", lambda: canonical._fast_path_ok(redacted)),
        ("canonical_json", lambda: canonical.canonical_json(redacted)),
    ]
    metrics = [
        Metric(name, "µs/call", [per_call_us(fn, number) for _ in range(runs)], False)
        for name, fn in cases
    ]
    info = {
        "messages": len(request["messages"]),
        "canonical bytes": len(canonical.canonical_bytes(redacted)),
        "calls per batch": number,
    }
    report("redaction_canonical", metrics, args, started, info)


if __name__ == "__main__":
    main()

"""Cost saved by routing and the response cache on a mixed mission, versus always the largest model.

The mission is 60 agent tasks run through the real ``Engine`` (SQLite in a
temp dir): 40 small (classify a ticket, ~150-token prompt), 15 medium
(summarise a design note, ~1,000 tokens) and 5 large (review a change set,
~4,000 tokens). 15 tasks repeat an earlier task's prompt word for word (12
small, 3 medium) and ``needs`` that task, so a cache has the answer when the
repeat runs -- the same hits on every run.

The model is the test kit's ``TestModel`` (``nexus.testing``), registered under
the real prefixes (``openai``, ``anthropic``) of a ``ProviderRegistry``, behind the production
``ResilientProvider``, so the prices of the shipped ``pricing.json`` apply to
what it reports. It answers at once; usage is proportional to the prompt: a
prompt token per four characters of each message (+4), and a quarter as many
completion tokens (at most the agent's ``max_tokens``). It reports no
provider-side prompt caching. Configurations:

* ``(a) largest model`` -- the agent's model is the large one for every task;
  tasks declare no complexity; no cache. The baseline.
* ``(b) routing`` -- the agent declares ``tiers: {small, medium, large}`` and
  each task its ``complexity``; routing picks the tier's model.
* ``(c) routing + cache`` -- (b) with a ``CachingProvider`` over a
  ``MemoryResponseCache`` around the fake (temperature unset: cacheable).
* ``(d) largest model + cache`` -- (a) with the cache: for reference, what the
  cache alone saves.

Totals come from ``cost_report(events)`` of each run's log (exact Decimal). The
figures are deterministic: every configuration runs ``--runs`` times (2 by
default) and the script fails if any figure differs between runs. The fake
cannot say whether a smaller model's answer would have been good enough:
this measures price, not quality.

Usage: ``python bench/cost_savings.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from _common import Metric, parser, report, runs_for
from nexus.budget.report import cost_report
from nexus.domain.budget import money_text
from nexus.domain.plan import AgentSpec, Plan
from nexus.engine import Engine
from nexus.gateway.base import ModelProvider, ModelRequest, ModelResponse, ProviderRegistry, Usage
from nexus.gateway.cache import CachingProvider, MemoryResponseCache
from nexus.gateway.pricing import estimate_tokens
from nexus.gateway.resilience import BreakerBoard, ResilientProvider
from nexus.planning.workflow import compile_workflow
from nexus.store.sqlite import SQLiteStore
from nexus.testing import TestModel

SMALL = "openai:gpt-4.1-nano"
MEDIUM = "openai:gpt-4.1-mini"
LARGE = "anthropic:claude-sonnet-4-5"
TIERS = {"small": SMALL, "medium": MEDIUM, "large": LARGE}
MAX_TOKENS = 4096

#: tier -> (tasks, distinct prompts, words per prompt, what the task asks)
MIX: dict[str, tuple[int, int, int, str]] = {
    "small": (40, 28, 90, "Classify support ticket {k} by urgency and owning team. Ticket:"),
    "medium": (15, 12, 600, "Summarise design note {k} in five bullets for the review. Note:"),
    "large": (5, 5, 2400, "Review change set {k}; list every issue with file and line. Diff:"),
}
_WORDS = (
    "ticket order refund latency cache build deploy test schema report invoice customer "
    "region release migration index query owner alert budget retry timeout queue worker "
    "lease commit rollback token secret policy quota tenant replica shard"
)
VOCABULARY = tuple(_WORDS.split())


def words(seed: int, count: int) -> str:
    """Deterministic filler text: ``count`` words picked by arithmetic on ``seed``."""
    n = len(VOCABULARY)
    return " ".join(VOCABULARY[(seed * 31 + j * 17 + j * j) % n] for j in range(count))


@dataclass(frozen=True, slots=True)
class Config:
    key: str
    label: str
    routing: bool
    cache: bool


CONFIGS = (
    Config("a", "(a) largest model", routing=False, cache=False),
    Config("b", "(b) routing by tier", routing=True, cache=False),
    Config("c", "(c) routing + cache", routing=True, cache=True),
    Config("d", "(d) largest model + cache", routing=False, cache=True),
)


def mission(config: Config, scale: int = 1) -> dict[str, Any]:
    """The mission as a workflow document (``complexity`` only when routing)."""
    agent: dict[str, Any] = {
        "role": "analyzer",
        "model": LARGE,
        "instructions": "Answer precisely and briefly.",
        "max_tokens": MAX_TOKENS,
    }
    if config.routing:
        agent["tiers"] = dict(TIERS)
    tasks: dict[str, Any] = {}
    seed = 0
    for tier, (count, distinct, size, ask) in MIX.items():
        count, distinct = count * scale, distinct * scale
        prompts = []
        for k in range(distinct):
            seed += 1
            prompts.append(f"{ask.format(k=k + 1)} {words(seed, size)}")
        for i in range(count):
            task: dict[str, Any] = {"agent": "analyst"}
            if i < distinct:
                task["prompt"] = prompts[i]
            else:  # a repeat of an earlier task's prompt, after that task
                original = (i - distinct) * distinct // (count - distinct)
                task["prompt"] = prompts[original]
                task["needs"] = [f"{tier}-{original:02d}"]
            if config.routing:
                task["complexity"] = tier
            tasks[f"{tier}-{i:02d}"] = task
    return {
        "version": 1,
        "name": "mixed-mission",
        "max_parallel": 8,
        "agents": {"analyst": agent},
        "tasks": tasks,
    }


def mission_answer(request: ModelRequest) -> ModelResponse:
    """An answer at once; usage proportional to the prompt (see the module docstring)."""
    prompt = sum(estimate_tokens(m.content) + 4 for m in request.messages)
    completion = min(prompt // 4, request.max_tokens or MAX_TOKENS)
    last = request.messages[-1].content.encode()
    text = f"answer {hashlib.sha256(last).hexdigest()[:12]}"
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
    return ModelResponse(text, request.model, usage, finish_reason="stop")


def registry(config: Config) -> ProviderRegistry:
    model = TestModel(mission_answer, record=False)
    provider: ModelProvider = ResilientProvider(model, breakers=BreakerBoard())
    if config.cache:
        provider = CachingProvider(provider, MemoryResponseCache(), ttl=3600)

    def factory(spec: AgentSpec) -> ModelProvider:
        return provider

    return ProviderRegistry({"openai": factory, "anthropic": factory})


@dataclass(frozen=True, slots=True)
class Outcome:
    usd: Decimal
    calls: int
    tokens: int
    hits: int
    tokens_saved: int
    usd_saved: Decimal
    by_model: tuple[tuple[str, int, str], ...]  # model, calls, usd


async def run_config(config: Config, scale: int) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        home = Path(tmp)
        store = SQLiteStore.open(home / "nexus.db")
        try:
            plan: Plan = compile_workflow(mission(config, scale))
            plan = replace(plan, workspace=str(home))
            result = await Engine(store, providers=registry(config)).start(plan)
            if result.status != "succeeded":
                raise RuntimeError(f"{config.label}: the run ended {result.status}")
            costs = cost_report(await store.load(result.run_id))
        finally:
            await store.close()
    total, cache = costs["total"], costs["cache"]
    return Outcome(
        usd=Decimal(total["usd"]),
        calls=total["calls"],
        tokens=total["tokens"],
        hits=cache["hits"],
        tokens_saved=cache["tokens_saved"],
        usd_saved=Decimal(cache["usd_saved"]),
        by_model=tuple((m, s["calls"], s["usd"]) for m, s in costs["by_model"].items()),
    )


def percent(part: Decimal, whole: Decimal) -> Decimal:
    return (part / whole * 100).quantize(Decimal("0.1")) if whole else Decimal(0)


def print_exact(outcomes: dict[str, Outcome]) -> None:
    base = outcomes["a"].usd
    header = (
        "configuration",
        "calls",
        "tokens",
        "cache hits",
        "tokens saved",
        "USD",
        "saved vs (a)",
    )
    rows = [header]
    for config in CONFIGS:
        o = outcomes.get(config.key)
        if o is None:
            continue
        saved = base - o.usd
        rows.append(
            (
                config.label,
                str(o.calls),
                f"{o.tokens:,}",
                str(o.hits),
                f"{o.tokens_saved:,}",
                f"${money_text(o.usd)}",
                "-" if config.key == "a" else f"${money_text(saved)} ({percent(saved, base)} %)",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    print("== cost savings, exact (every run gave these figures)")
    for index, row in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))
    for config in CONFIGS:
        o = outcomes.get(config.key)
        if o is None:
            continue
        spread = ", ".join(
            f"{m} {calls} calls ${money_text(Decimal(usd))}" for m, calls, usd in o.by_model
        )
        print(f"  {config.label}: {spread}")
        if o.hits:
            saved = money_text(o.usd_saved)
            print(f"    cache: {o.hits} hits saved {o.tokens_saved:,} tokens, ${saved}")
    print()


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=1, help="multiply the mission's task counts")
    args = p.parse_args()
    runs = runs_for(args, full=2, quick=1)
    started = time.perf_counter()
    outcomes: dict[str, Outcome] = {}
    for config in CONFIGS:
        results = [asyncio.run(run_config(config, args.scale)) for _ in range(runs)]
        if any(r != results[0] for r in results[1:]):
            print(f"!! {config.label}: runs differ: {results}", file=sys.stderr)
            return 1
        outcomes[config.key] = results[0]
    print_exact(outcomes)
    base = outcomes["a"].usd
    metrics: list[Metric] = []
    for config in CONFIGS:
        o = outcomes[config.key]
        metrics.append(
            Metric(
                f"{config.label}: total cost",
                "USD",
                [float(o.usd)] * runs,
                higher_is_better=False,
                extra={"usd": str(o.usd), "calls": o.calls, "tokens": o.tokens},
            )
        )
        if config.key != "a":
            metrics.append(
                Metric(
                    f"  {config.label}: saved vs (a)",
                    "%",
                    [float(percent(base - o.usd, base))] * runs,
                    higher_is_better=True,
                    extra={"usd_saved": str(base - o.usd)},
                )
            )
        if config.cache:
            metrics.append(
                Metric(
                    f"  {config.label}: cache hits",
                    "hits",
                    [float(o.hits)] * runs,
                    higher_is_better=True,
                    extra={"tokens_saved": o.tokens_saved, "usd_saved": str(o.usd_saved)},
                )
            )
    tasks = sum(count for count, *_ in MIX.values()) * args.scale
    repeats = sum(count - distinct for count, distinct, *_ in MIX.values()) * args.scale
    info = {
        "tasks": f"{tasks} ({', '.join(f'{MIX[t][0] * args.scale} {t}' for t in MIX)})",
        "repeated prompts": repeats,
        "models": f"small {SMALL}, medium {MEDIUM}, large {LARGE}",
        "prices": "src/nexus/gateway/pricing.json (the shipped table)",
    }
    report("cost savings", metrics, args, started, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())

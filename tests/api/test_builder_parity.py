"""The Python API can say everything a workflow file says, and says it the same way.

Each case writes one workflow twice, as YAML and with :class:`nexus.Workflow`,
and the two compile to the same plan: the same plan hash (what identifies a
run's plan) and the same canonical plan, workspace included.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import nexus
from nexus import (
    Aggregate,
    Approval,
    Backoff,
    Bt,
    Budget,
    Compensate,
    Extend,
    Extensions,
    Fsm,
    FsmState,
    FsmTransition,
    Input,
    Loop,
    Profile,
    Replan,
    Wait,
    Workflow,
    WorkflowError,
)
from nexus.tools.profile import ExecProfile

ROOT = Path(__file__).resolve().parents[2]

Build = Callable[[Path], Workflow]


def _release_notes(_: Path) -> Workflow:
    wf = Workflow("release-notes", inputs={"version": "1.0"}, retries=2, timeout=60)
    wf.agent(
        "writer",
        role="writer",
        model="scripted:writer",
        capabilities=["write"],
        instructions="You write short release notes.",
        scripted=["Release {{ inputs.version }}: faster, safer."],
    )
    log = wf.task("changelog", tool="shell", args={"cmd": "head -n 5 CHANGES"})
    draft = wf.task(
        "draft",
        needs=[log],
        capability="write",
        prompt="Write notes from: {{ tasks.changelog.output.stdout }}",
    )
    wf.task(
        "per_platform",
        needs=[draft],
        foreach=["linux", "macos"],
        tool="shell",
        args={"cmd": "echo {{ item }}"},
    )
    return wf


def _review(_: Path) -> Workflow:
    wf = Workflow("review", inputs={"version": "1.0"}, budget=Budget(usd=1, tool_calls=10))
    wf.agent(
        "writer",
        role="writer",
        model="scripted:writer",
        capabilities=["write"],
        scripted=["Release {{ inputs.version }}: faster start-up, safer sandbox."],
    )
    wf.agent(
        "reviewer",
        role="reviewer",
        model="scripted:reviewer",
        capabilities=["review"],
        tools=["file.list"],
        max_steps=4,
        budget=Budget(tool_calls=3),
        scripted=[
            '@call file.list {"path": "."}',
            '{"approved": true, "notes": "Release {{ inputs.version }} notes are short '
            'and accurate."}',
        ],
    )
    draft = wf.task(
        "draft", capability="write", prompt="Write the release notes for {{ inputs.version }}."
    )
    wf.task(
        "review",
        needs=[draft],
        capability="review",
        prompt="Review these notes against the files here: {{ tasks.draft.output.text }}",
        output_schema={
            "type": "object",
            "properties": {"approved": {"type": "boolean"}, "notes": {"type": "string"}},
            "required": ["approved", "notes"],
            "additionalProperties": False,
        },
    )
    return wf


APPROVALS_AND_RETRIES = """
version: 1
name: gated
inputs: {targets: [eu, us]}
defaults: {retries: 1, timeout: 30, backoff: {initial: 1, multiplier: 3, maximum: 20}}
tasks:
  build:
    tool: shell
    with: {cmd: make}
    retries: 4
    timeout: 120
    backoff: {initial: 2}
    priority: 5
  deploy:
    needs: build
    foreach: "{{ inputs.targets }}"
    tool: shell
    with: {cmd: "deploy {{ item }}"}
    approval: required
  announce:
    needs: [deploy]
    tool: noop
    approval: {timeout: 3600, on_timeout: escalate}
"""


def _approvals_and_retries(_: Path) -> Workflow:
    wf = Workflow(
        "gated",
        inputs={"targets": ["eu", "us"]},
        retries=1,
        timeout=30,
        backoff=Backoff(initial=1, multiplier=3, maximum=20),
    )
    build = wf.task(
        "build",
        tool="shell",
        args={"cmd": "make"},
        retries=4,
        timeout=120,
        backoff=Backoff(initial=2),
        priority=5,
    )
    deploy = wf.task(
        "deploy",
        needs=[build],
        foreach="{{ inputs.targets }}",
        tool="shell",
        args={"cmd": "deploy {{ item }}"},
        approval=True,
    )
    wf.task(
        "announce",
        needs=[deploy],
        tool="noop",
        approval=Approval(timeout=3600, on_timeout="escalate"),
    )
    return wf


MCP_AND_PROFILES = """
version: 1
name: tooled
mcp_servers:
  time: {command: mcp-server-time, args: [--local-timezone, UTC], env: [PATH], call_timeout: 10}
  docs: {url: "http://127.0.0.1:8000/mcp", connect_timeout: 5, lint_ignore: [long-description]}
agents:
  clerk:
    model: scripted:clerk
    capabilities: [tell]
    tools: [time.get_current_time, file.read]
    profile: {mcp_tools: ["time.*"], read_paths: [/data]}
tasks:
  now:
    tool: time.get_current_time
    with: {timezone: UTC}
    profile: {mcp_tools: [time.get_current_time]}
  fetch:
    tool: http
    with: {url: "https://api.github.com/zen"}
    profile:
      network: ["api.github.com:443"]
      cpu_seconds: 5
      memory_mb: 256
      wall_seconds: 30
      max_output_bytes: 65536
      env: [CI]
  list:
    tool: shell
    with: {cmd: ls}
    profile: {network: none, write_paths: [$WORKSPACE/out], sandbox: bwrap, max_processes: 8}
  tell:
    needs: [now]
    capability: tell
    prompt: "It is {{ tasks.now.output }}"
    profile: {mcp_tools: ["time.*"]}
"""


def _mcp_and_profiles(_: Path) -> Workflow:
    wf = Workflow("tooled")
    time = wf.mcp_server(
        "time",
        command="mcp-server-time",
        args=["--local-timezone", "UTC"],
        env=["PATH"],
        call_timeout=10,
    )
    wf.mcp_server(
        "docs", url="http://127.0.0.1:8000/mcp", connect_timeout=5, lint_ignore=["long-description"]
    )
    wf.agent(
        "clerk",
        model="scripted:clerk",
        capabilities=["tell"],
        tools=[time.tool("get_current_time"), "file.read"],
        profile=Profile(mcp_tools=[time.tool("*")], read_paths=["/data"]),
    )
    now = wf.task(
        "now",
        tool=time.tool("get_current_time"),
        args={"timezone": "UTC"},
        profile=Profile(mcp_tools=[time.tool("get_current_time")]),
    )
    wf.task(
        "fetch",
        tool="http",
        args={"url": "https://api.github.com/zen"},
        profile=Profile(
            network=["api.github.com:443"],
            cpu_seconds=5,
            memory_mb=256,
            wall_seconds=30,
            max_output_bytes=65536,
            env=["CI"],
        ),
    )
    wf.task(
        "list",
        tool="shell",
        args={"cmd": "ls"},
        profile=Profile(
            network="none", write_paths=["$WORKSPACE/out"], sandbox="bwrap", max_processes=8
        ),
    )
    wf.task(
        "tell",
        needs=[now],
        capability="tell",
        prompt="It is {{ tasks.now.output }}",
        profile=Profile(mcp_tools=["time.*"]),
    )
    return wf


ROUTING_AND_BUDGETS = """
version: 1
name: routed
budget: {usd: "5.00", tokens: 200000, tool_calls: 300, wall: 30m}
agents:
  writer:
    model: openai:gpt-4.1-mini
    capabilities: [write]
    fallbacks: ["anthropic:claude-haiku-4-5", "ollama:qwen2.5"]
    tiers: {small: "openai:gpt-4.1-nano", large: "openai:gpt-4.1"}
    max_tokens: 512
    temperature: 0.2
    max_concurrency: 2
    budget: {usd: 2}
tasks:
  draft:
    agent: writer
    prompt: Write.
    complexity: small
    max_cost: 0.01
    max_latency_ms: 2000
    budget: {usd: 0.5, tokens: 10000}
    retries: 0
"""


def _routing_and_budgets(_: Path) -> Workflow:
    wf = Workflow(
        "routed",
        budget=Budget(usd=Decimal("5.00"), tokens=200_000, tool_calls=300, wall="30m"),
    )
    writer = wf.agent(
        "writer",
        model="openai:gpt-4.1-mini",
        capabilities=["write"],
        fallbacks=["anthropic:claude-haiku-4-5", "ollama:qwen2.5"],
        tiers={"small": "openai:gpt-4.1-nano", "large": "openai:gpt-4.1"},
        max_tokens=512,
        temperature=0.2,
        max_concurrency=2,
        budget=Budget(usd=2),
    )
    wf.task(
        "draft",
        agent=writer,
        prompt="Write.",
        complexity="small",
        max_cost=Decimal("0.01"),
        max_latency_ms=2000,
        budget=Budget(usd="0.5", tokens=10_000),
        retries=0,
    )
    return wf


SECRETS_AND_WORKSPACE = """
version: 1
name: secrets
description: inputs of every kind, and a workspace
workspace: out
fail_fast: false
max_parallel: 4
max_failures: 2
max_failure_rate: 0.5
inputs:
  user: admin
  password: hunter2hunter2
  token: {secret: true}
  PGPASSWORD: {env: PGPASSWORD, description: the database's}
  sort_key: {secret: false, default: name}
  settings: {secret: false, default: {secret: true}}
  region: {secret: false, description: where it runs}
tasks:
  login:
    tool: shell
    with: {cmd: "login {{ inputs.user }} {{ inputs.password }} {{ inputs.token }}"}
  query:
    tool: shell
    with: {cmd: "psql -c 'select 1 order by {{ inputs.sort_key }}' {{ inputs.settings }}"}
    needs: [login]
"""


def _secrets_and_workspace(folder: Path) -> Workflow:
    wf = Workflow(
        "secrets",
        description="inputs of every kind, and a workspace",
        workspace=folder / "out",
        fail_fast=False,
        max_parallel=4,
        max_failures=2,
        max_failure_rate=0.5,
        inputs={
            "user": "admin",
            "password": "hunter2hunter2",
            "token": Input(secret=True),
            "PGPASSWORD": Input(env="PGPASSWORD", description="the database's"),
            "sort_key": Input(default="name", secret=False),
            "settings": Input(default={"secret": True}, secret=False),
            "region": Input(description="where it runs"),
        },
    )
    login = wf.task(
        "login",
        tool="shell",
        args={"cmd": "login {{ inputs.user }} {{ inputs.password }} {{ inputs.token }}"},
    )
    wf.task(
        "query",
        tool="shell",
        args={"cmd": "psql -c 'select 1 order by {{ inputs.sort_key }}' {{ inputs.settings }}"},
        needs=[login],
    )
    return wf


def _conditions(_: Path) -> Workflow:
    wf = Workflow("conditions", inputs={"ready": False})
    check = wf.task("check", tool="noop", args={"ok": "{{ inputs.ready }}"})
    deploy = wf.task(
        "deploy",
        tool="shell",
        args={"cmd": "echo deploying"},
        needs=[check],
        when="{{ tasks.check.output.ok }}",
    )
    wf.task("announce", tool="shell", args={"cmd": "echo deployed"}, needs=[deploy])
    wf.task("report", tool="noop", args={"ready": "{{ tasks.check.output.ok }}"}, needs=[check])
    return wf


def _switch(_: Path) -> Workflow:
    wf = Workflow("switch", inputs={"kind": "bug"})
    wf.agent(
        "classifier",
        role="classifier",
        model="scripted:classifier",
        capabilities=["classify"],
        scripted=['{"kind": "{{ inputs.kind }}"}'],
    )
    classify = wf.task(
        "classify",
        capability="classify",
        prompt=(
            "Is this report a bug, a feature request or a question? "
            "The report says: {{ inputs.kind }}"
        ),
        output_schema={
            "type": "object",
            "properties": {"kind": {"type": "string", "enum": ["bug", "feature", "question"]}},
            "required": ["kind"],
        },
    )
    route = wf.task(
        "route",
        needs=[classify],
        switch="{{ tasks.classify.output.data.kind }}",
        cases={"bug": ["fix"], "feature": ["design"], "question": ["triage"]},
    )
    wf.task("fix", needs=[route], tool="shell", args={"cmd": "echo fixing the bug"})
    wf.task("design", needs=[route], tool="shell", args={"cmd": "echo designing the feature"})
    wf.task("triage", needs=[route], tool="shell", args={"cmd": "echo answering the question"})
    wf.task("close", needs=[route], tool="noop", args={"picked": "{{ tasks.route.output.case }}"})
    return wf


def _loop(_: Path) -> Workflow:
    wf = Workflow("loop", inputs={"target": 3})
    wf.agent(
        "editor",
        role="editor",
        model="scripted:editor",
        capabilities=["edit"],
        scripted=[
            '{"draft": "Nexus runs tasks.", "done": false}',
            '{"draft": "Nexus runs tasks and resumes them.", "done": false}',
            '{"draft": "Nexus runs tasks, resumes them after a crash and replays them.", '
            '"done": true}',
        ],
    )
    count = wf.task(
        "count",
        tool="shell",
        args={"cmd": "echo {{ loop.iteration }}"},
        loop=Loop(
            until="{{ loop.output.stdout | trim | int >= inputs.target }}", max_iterations=10
        ),
    )
    polish = wf.task(
        "polish",
        capability="edit",
        prompt=(
            "{% if loop.output %}Improve this draft: {{ loop.output.data.draft }}"
            "{% else %}Write one sentence about Nexus.{% endif %}"
        ),
        output_schema={
            "type": "object",
            "properties": {"draft": {"type": "string"}, "done": {"type": "boolean"}},
            "required": ["draft", "done"],
        },
        loop=Loop(until="{{ loop.output.data.done }}", max_iterations=5, on_max="succeed"),
    )
    wf.task(
        "publish",
        needs=[count, polish],
        tool="noop",
        args={
            "text": "{{ tasks.polish.output.data.draft }}",
            "count": "{{ tasks.count.output.stdout | trim }}",
        },
    )
    return wf


def _extend(_: Path) -> Workflow:
    wf = Workflow("extend", extensions=Extensions(max_tasks=20, max_depth=1))
    answer = (
        '{"tasks": {\n'
        '  "fetch":   {"tool": "shell", "with": {"cmd": "echo 3 open issues"}},\n'
        '  "triage":  {"tool": "shell", "needs": ["fetch"],\n'
        '              "with": {"cmd": "echo triaged: {% raw %}{{ tasks.fetch.output.stdout | trim '
        '}}{% endraw %}"}},\n'
        '  "notify":  {"tool": "noop", "needs": ["triage"]}\n'
        "}}\n"
    )
    wf.agent(
        "planner",
        role="planner",
        model="scripted:planner",
        capabilities=["plan"],
        scripted=[answer],
    )
    plan = wf.task(
        "plan",
        capability="plan",
        prompt="Plan the morning triage as tasks (JSON: {tasks: {id: task}}).",
        extend=Extend(max_tasks=10),
        retries=2,
    )
    wf.task("summary", needs=[plan], tool="shell", args={"cmd": "echo planning done"})
    return wf


def _bt(_: Path) -> Workflow:
    wf = Workflow("bt", inputs={"ship": True})
    wf.agent(
        "fixer",
        role="fixer",
        model="scripted:fixer",
        capabilities=["fix"],
        scripted=["pin the flaky dependency"],
    )

    def shell(name: str, cmd: str) -> dict[str, Any]:
        return {"name": name, "action": {"tool": "shell", "with": {"cmd": cmd}}}

    build = {"retry": {"times": 1, "child": shell("build", "echo building; exit 1")}}
    patch = {
        "name": "patch",
        "action": {"capability": "fix", "prompt": "The build failed twice. Suggest a patch."},
    }
    rebuild = {
        "name": "rebuild",
        "action": {"tool": "noop", "with": {"patch": "{{ bt.outputs.patch.text }}"}},
    }
    tests = {"timeout": {"seconds": 30, "child": shell("tests", "echo 12 passed")}}
    checks = [tests, shell("lint", "echo clean"), shell("docs", "echo docs built")]
    root = {
        "sequence": [
            {"name": "wanted", "condition": "{{ inputs.ship }}"},
            {"selector": [build, {"sequence": [patch, rebuild]}]},
            {"parallel": {"success": 2, "children": checks}},
            shell("notes", "echo released"),
        ]
    }
    output = "{{ {'patch': bt.outputs.patch.text, 'notes': bt.outputs.notes.stdout | trim} }}"
    release = wf.task("release", bt=Bt(root=root, max_steps=20, output=output))
    wf.task("announce", needs=[release], tool="noop", args={"text": "{{ tasks.release.output }}"})
    return wf


def _writes(_: Path) -> Workflow:
    wf = Workflow("writes", conflicts="serialize")
    wf.task(
        "fixes",
        tool="file.write",
        args={"path": "out/NOTES.md", "text": "- fix: resume after a crash\n", "append": True},
        writes=["out/NOTES.md"],
    )
    wf.task(
        "features",
        tool="file.write",
        args={"path": "out/NOTES.md", "text": "- feature: writes\n", "append": True},
        writes=["out/NOTES.md"],
    )
    wf.task(
        "site",
        tool="file.write",
        args={"path": "out/site/index.html", "text": "<h1>Release</h1>\n"},
        writes=["out/site"],
    )
    wf.task(
        "pages",
        foreach=["install", "usage"],
        tool="file.write",
        args={"path": "out/site/{{ item }}.html", "text": "<h1>{{ item }}</h1>\n"},
        writes=["out/site/{{ item }}.html"],
    )
    migrate = wf.task(
        "migrate",
        tool="shell",
        args={"cmd": "echo migrating the users table"},
        writes=["key:db.users"],
    )
    wf.task(
        "backfill",
        needs=[migrate],
        tool="shell",
        args={"cmd": "echo backfilling the users table"},
        writes="key:db.users",
    )
    return wf


def _aggregate(_: Path) -> Workflow:
    wf = Workflow("aggregate")
    reviewers = [
        wf.agent(name, model=f"scripted:{name}", scripted=[line])
        for name, line in (
            ("alice", '{"verdict": "approve", "reason": "tests pass"}'),
            ("bob", '{"verdict": "reject", "reason": "no changelog entry"}'),
            ("carol", '{"verdict": "approve", "reason": "small and clear"}'),
        )
    ]
    review = wf.task(
        "review",
        agents=reviewers,
        prompt="Review the change as {{ item }}: approve or reject, and why.",
        output_schema={
            "type": "object",
            "properties": {
                "verdict": {"type": "string", "enum": ["approve", "reject"]},
                "reason": {"type": "string"},
            },
            "required": ["verdict", "reason"],
        },
        aggregate=Aggregate(method="majority", key="verdict", quorum=2),
    )
    mirror = wf.task(
        "mirror",
        foreach=["eu", "us", "ap"],
        tool="shell",
        args={"cmd": "test {{ item }} != eu && echo https://{{ item }}.example.org/pkg.tar.gz"},
        aggregate="first_success",
    )
    wf.task(
        "publish",
        needs=[review, mirror],
        tool="noop",
        args={
            "verdict": "{{ tasks.review.output.data.verdict }}",
            "url": "{{ tasks.mirror.output.stdout | trim }}",
        },
    )
    return wf


def _fsm(_: Path) -> Workflow:
    wf = Workflow("fsm", inputs={"target": 3})
    wf.agent(
        "writer",
        role="writer",
        model="scripted:writer",
        capabilities=["write"],
        scripted=[
            '{"draft": "Nexus runs tasks."}',
            '{"draft": "Nexus runs tasks, resumes them after a crash and replays them."}',
        ],
    )
    wf.agent(
        "critic",
        role="critic",
        model="scripted:critic",
        capabilities=["review"],
        scripted=[
            '{"verdict": "revise", "note": "say what happens after a crash"}',
            '{"verdict": "accept", "note": "good"}',
        ],
    )
    count = wf.task(
        "count",
        fsm=Fsm(
            initial="tick",
            max_steps=10,
            states={
                "tick": FsmState(
                    tool="shell",
                    args={"cmd": "echo {{ fsm.step }}"},
                    transitions=[
                        FsmTransition(
                            to="done",
                            when="{{ fsm.output.stdout | trim | int >= inputs.target }}",
                        ),
                        FsmTransition(to="tick"),
                    ],
                ),
                "done": FsmState(
                    terminal=True, output="{{ fsm.outputs.tick.stdout | trim | int }}"
                ),
            },
        ),
    )
    review = wf.task(
        "review",
        fsm=Fsm(
            initial="draft",
            max_steps=6,
            states={
                "draft": FsmState(
                    capability="write",
                    prompt=(
                        "{% if fsm.output %}Revise this draft ({{ fsm.output.data.note }}): "
                        "{{ fsm.outputs.draft.data.draft }}{% else %}Write one sentence about "
                        "Nexus.{% endif %}"
                    ),
                    output_schema={
                        "type": "object",
                        "properties": {"draft": {"type": "string"}},
                        "required": ["draft"],
                    },
                    transitions=[FsmTransition(to="critique")],
                ),
                "critique": FsmState(
                    capability="review",
                    prompt="Review this draft: {{ fsm.output.data.draft }}",
                    output_schema={
                        "type": "object",
                        "properties": {
                            "verdict": {"enum": ["accept", "revise", "reject"]},
                            "note": {"type": "string"},
                        },
                        "required": ["verdict", "note"],
                    },
                    transitions=[
                        FsmTransition(
                            to="accepted", when="{{ fsm.output.data.verdict == 'accept' }}"
                        ),
                        FsmTransition(
                            to="rejected", when="{{ fsm.output.data.verdict == 'reject' }}"
                        ),
                        FsmTransition(to="draft"),
                    ],
                ),
                "accepted": FsmState(terminal=True, output="{{ fsm.outputs.draft.data.draft }}"),
                "rejected": FsmState(
                    terminal=True,
                    fail=True,
                    reason="the critic rejected it: {{ fsm.output.data.note }}",
                ),
            },
        ),
    )
    wf.task(
        "publish",
        needs=[count, review],
        tool="noop",
        args={"text": "{{ tasks.review.output }}", "count": "{{ tasks.count.output }}"},
    )
    return wf


def _saga(_: Path) -> Workflow:
    wf = Workflow("saga", inputs={"traveller": "ana"}, on_failure="compensate")
    wf.agent(
        "concierge",
        role="concierge",
        model="scripted:concierge",
        capabilities=["write"],
        scripted=[
            "Welcome aboard flight FL-042, ana!",
            "Sorry ana: the trip is off, flight and room are cancelled.",
        ],
    )
    flight = wf.task(
        "flight",
        tool="shell",
        args={"cmd": "echo FL-042"},
        compensate=Compensate(
            tool="shell",
            args={"cmd": "echo cancelled flight {{ compensating.output.stdout | trim }}"},
        ),
    )
    hotel = wf.task(
        "hotel",
        needs=[flight],
        tool="shell",
        args={"cmd": "echo room 12"},
        compensate=Compensate(
            tool="shell",
            args={"cmd": "echo released {{ tasks.hotel.output.stdout | trim }}"},
            retries=2,
        ),
    )
    note = wf.task(
        "note",
        needs=[hotel],
        capability="write",
        prompt="Welcome {{ inputs.traveller }} aboard {{ tasks.flight.output.stdout | trim }}.",
        compensate=Compensate(
            capability="write",
            prompt=(
                "The trip failed at {{ compensating.failed }}. Replace this note with an "
                "apology: {{ compensating.output.text }}"
            ),
        ),
    )
    ticket = wf.task(
        "ticket",
        needs=[note],
        tool="shell",
        args={"cmd": "echo the ticketing service is down >&2; exit 1"},
        retries=1,
        backoff=Backoff(initial=0.1),
    )
    wf.task(
        "invoice",
        needs=[ticket],
        tool="noop",
        args={"ticket": "{{ tasks.ticket.output.stdout }}"},
        on_failure="compensate",
    )
    return wf


def _barrier(_: Path) -> Workflow:
    wf = Workflow("barrier", inputs={"security_review": False})
    eu = wf.task("mirror_eu", tool="shell", args={"cmd": "sleep 0.5; echo eu"})
    us = wf.task("mirror_us", tool="shell", args={"cmd": "echo us"})
    mirrors = "{{ tasks | list | select('in', ['mirror_eu', 'mirror_us']) | join(', ') }}"
    fetch = wf.task(
        "fetch", needs_any=[eu, us], tool="shell", args={"cmd": f"echo fetched from {mirrors}"}
    )
    reviews = [
        wf.task("review_style", needs=[fetch], tool="shell", args={"cmd": "echo style ok"}),
        wf.task("review_tests", needs=[fetch], tool="shell", args={"cmd": "echo tests ok"}),
        wf.task(
            "review_security",
            needs=[fetch],
            when="{{ inputs.security_review }}",
            tool="shell",
            args={"cmd": "echo security ok"},
        ),
    ]
    approve = wf.task(
        "approve", needs=reviews, quorum="2 of 3", tool="noop", args={"approved": True}
    )
    docs = wf.task("docs_site", tool="shell", args={"cmd": "sleep 4; echo docs built"})
    ended = "{{ tasks | list | select('in', ['approve', 'docs_site']) | join(', ') }}"
    wf.task(
        "announce",
        needs=[approve, docs],
        wait=Wait(timeout="1s", on_timeout="continue"),
        tool="shell",
        args={"cmd": f"echo announcing with {ended}"},
    )
    return wf


REPLANNING = """
version: 1
name: replanning
on_failure: compensate
cache: plans
agents:
  planner: {model: "scripted:planner", capabilities: [plan]}
tasks:
  plan:
    capability: plan
    prompt: "Plan the release as tasks."
    extend: true
    on_failure: replan
  recover:
    capability: plan
    prompt: "Plan the recovery as tasks."
    extend: {max_tasks: 5}
    on_failure: {replan: 3}
  tidy:
    needs: [plan, recover]
    tool: noop
    on_failure: fail
"""


def _replanning(_: Path) -> Workflow:
    wf = Workflow("replanning", on_failure="compensate", cache=["plans"])
    wf.agent("planner", model="scripted:planner", capabilities=["plan"])
    plan = wf.task(
        "plan",
        capability="plan",
        prompt="Plan the release as tasks.",
        extend=True,
        on_failure="replan",
    )
    recover = wf.task(
        "recover",
        capability="plan",
        prompt="Plan the recovery as tasks.",
        extend=Extend(max_tasks=5),
        on_failure=Replan(3),
    )
    wf.task("tidy", needs=[plan, recover], tool="noop", on_failure="fail")
    return wf


def _subworkflow(_: Path) -> Workflow:
    # the same sub-workflows, one as a Workflow of its own, one as a file by name
    build = Workflow("build", inputs={"version": "0.0", "changes": ""})
    build.outputs(
        artifact="{{ tasks.package.output.stdout | trim }}",
        notes="{{ tasks.notes.output.text }}",
    )
    compile_ = build.task(
        "compile", tool="shell", args={"cmd": "echo compiled {{ inputs.version }}"}
    )
    notes = build.task("notes", tool="noop", args={"text": "{{ inputs.changes | trim }}"})
    build.task(
        "package",
        needs=[compile_, notes],
        tool="shell",
        args={"cmd": "echo app-{{ inputs.version }}.tar.gz"},
    )
    wf = Workflow("subworkflow", inputs={"version": "2.0"})
    changes = wf.task(
        "changes", tool="shell", args={"cmd": "printf 'fix the parser\\nadd a cache\\n'"}
    )
    built = wf.task(
        "build",
        needs=[changes],
        workflow=build,
        args={
            "version": "{{ inputs.version }}",
            "changes": "{{ tasks.changes.output.stdout }}",
        },
        budget=Budget(tool_calls=10),
    )
    check = wf.task(
        "check",
        needs=[changes],
        workflow=ROOT / "examples" / "subworkflow" / "workflows" / "check.yaml",
        args={"text": "{{ tasks.changes.output.stdout }}"},
    )
    wf.task(
        "announce",
        needs=[built, check],
        tool="noop",
        args={
            "text": "released {{ tasks.build.output.artifact }}, "
            "{{ tasks.check.output.lines }} changes checked"
        },
    )
    return wf


CASES: dict[str, tuple[str | Path, Build]] = {
    "release-notes example": (
        ROOT / "examples" / "release-notes" / "workflow.yaml",
        _release_notes,
    ),
    "review example": (ROOT / "examples" / "review" / "workflow.yaml", _review),
    "conditions example": (ROOT / "examples" / "conditions" / "workflow.yaml", _conditions),
    "switch example": (ROOT / "examples" / "switch" / "workflow.yaml", _switch),
    "loop example": (ROOT / "examples" / "loop" / "workflow.yaml", _loop),
    "extend example": (ROOT / "examples" / "extend" / "workflow.yaml", _extend),
    "bt example": (ROOT / "examples" / "bt" / "workflow.yaml", _bt),
    "writes example": (ROOT / "examples" / "writes" / "workflow.yaml", _writes),
    "aggregate example": (ROOT / "examples" / "aggregate" / "workflow.yaml", _aggregate),
    "saga example": (ROOT / "examples" / "saga" / "workflow.yaml", _saga),
    "fsm example": (ROOT / "examples" / "fsm" / "workflow.yaml", _fsm),
    "barrier example": (ROOT / "examples" / "barrier" / "workflow.yaml", _barrier),
    "subworkflow example": (ROOT / "examples" / "subworkflow" / "workflow.yaml", _subworkflow),
    "approvals, retries, backoff, timeouts": (APPROVALS_AND_RETRIES, _approvals_and_retries),
    "MCP servers and profiles": (MCP_AND_PROFILES, _mcp_and_profiles),
    "routing and budgets": (ROUTING_AND_BUDGETS, _routing_and_budgets),
    "re-planning (on_failure)": (REPLANNING, _replanning),
    "secret inputs and workspace": (SECRETS_AND_WORKSPACE, _secrets_and_workspace),
}


def _yaml_plan(source: str | Path, folder: Path) -> nexus.Plan:
    if isinstance(source, Path):
        return nexus.load_workflow(source)
    path = folder / "workflow.yaml"
    path.write_text(source, encoding="utf-8")
    return nexus.load_workflow(path)


@pytest.mark.parametrize("case", sorted(CASES))
def test_python_and_yaml_compile_to_the_same_plan(case: str, tmp_path: Path) -> None:
    source, build = CASES[case]
    from_yaml = _yaml_plan(source, tmp_path)
    wf = build(tmp_path)
    from_python = wf.compile()
    from_dict, expected = from_python.to_dict(), from_yaml.to_dict()
    if from_python.workspace is None:  # the file's folder; the working directory's at run time
        from_dict.pop("workspace")
        expected.pop("workspace")
    assert from_dict == expected
    assert nexus.plan_hash(from_python) == nexus.plan_hash(from_yaml)
    assert from_python.secret_inputs == from_yaml.secret_inputs


def test_the_cases_cover_every_key_a_workflow_file_has() -> None:
    """A key the file model gains and no case writes makes this fail: add it to the API."""
    from nexus.planning.workflow._schema import _Agent, _Task, _Workflow

    written = "\n".join(
        text if isinstance(text, str) else text.read_text() for text, _ in CASES.values()
    )
    keys = {
        info.alias or name
        for model in (_Workflow, _Agent, _Task)
        for name, info in model.model_fields.items()
    }
    missing = {key for key in keys if f"{key}:" not in written and f"{key}: " not in written}
    assert missing == set()


def test_profile_has_every_field_an_exec_profile_has() -> None:
    assert {f.name for f in fields(Profile)} == {f.name for f in fields(ExecProfile)}


def test_function_tools_given_to_an_agent_are_registered(tmp_path: Path) -> None:
    @nexus.tool
    def population(city: str) -> int:
        return {"Oslo": 709037}[city]

    wf = Workflow("facts", workspace=tmp_path)
    wf.agent("researcher", model="scripted:r", capabilities=["facts"], tools=[population])
    wf.task("ask", capability="facts", prompt="How many people live in Oslo?")
    plan = wf.compile()
    assert plan.agents["researcher"].tools == ("population",)
    assert "population" in wf.tools()
    assert wf.function_tools() == [population]


@pytest.mark.parametrize(
    ("build", "field", "words"),
    [
        (lambda wf: wf.task("t", tool="noop", budget=Budget(usd="-1")), "budget", "usd"),
        (lambda wf: wf.task("t", tool="noop", budget=Budget(wall="soon")), "budget", "wall"),
        (
            lambda wf: wf.task("t", tool="noop", profile=Profile(cpu_seconds=0)),
            "profile",
            "cpu_seconds",
        ),
        (
            lambda wf: wf.task("t", tool="noop", profile=Profile(network=["no-port"])),
            "profile",
            "network",
        ),
        (
            lambda wf: wf.task("t", tool="noop", approval=Approval(timeout=-5)),
            "approval.timeout",
            "greater than 0",
        ),
        (
            lambda wf: wf.task("t", tool="noop", backoff=Backoff(multiplier=0.5)),
            "backoff.multiplier",
            "greater than or equal to 1",
        ),
        (
            lambda wf: wf.task("t", capability="x", prompt="go", output_schema={"type": "nope"}),
            "output_schema",
            "not a valid JSON schema",
        ),
        (
            lambda wf: wf.task("t", capability="x", prompt="go", max_cost="free"),
            "max_cost",
            "positive amount",
        ),
    ],
)
def test_bad_values_are_workflow_errors_naming_the_task_and_field(
    build: Callable[[Workflow], Any], field: str, words: str, tmp_path: Path
) -> None:
    wf = Workflow("bad", workspace=tmp_path)
    wf.agent("a", model="scripted:a", capabilities=["x"])
    build(wf)
    with pytest.raises(WorkflowError) as info:
        wf.compile()
    message = str(info.value)
    assert "task 't'" in message
    assert field in message
    assert words in message


@pytest.mark.parametrize(
    ("declare", "field"),
    [
        (
            lambda wf: wf.mcp_server("time", command="t", call_timeout=-1),
            "mcp_servers.time.call_timeout",
        ),
        (lambda wf: wf.agent("a", model="scripted:a", max_steps=0), "agents.a.max_steps"),
        (lambda wf: wf.agent("a", model="scripted:a", budget=Budget(tokens=-3)), "agents.a.budget"),
        (lambda wf: wf.agent("a", model="scripted:a", temperature=3), "agents.a.temperature"),
        (
            lambda wf: wf.agent("a", model="scripted:a", profile=Profile(sandbox="docker")),  # type: ignore[arg-type]
            "agents.a.profile",
        ),
    ],
)
def test_a_bad_mcp_server_or_agent_setting_names_its_field(
    declare: Callable[[Workflow], Any], field: str, tmp_path: Path
) -> None:
    wf = Workflow("bad", workspace=tmp_path)
    declare(wf)
    wf.task("t", tool="noop")
    with pytest.raises(WorkflowError, match=re.escape(field)):
        wf.compile()


@pytest.mark.parametrize(
    ("command", "url"), [("x", "http://127.0.0.1/mcp"), (None, None)], ids=["both", "neither"]
)
def test_an_mcp_server_needs_exactly_one_transport(
    command: str | None, url: str | None, tmp_path: Path
) -> None:
    wf = Workflow("bad", workspace=tmp_path)
    wf.mcp_server("s", command=command, url=url)
    wf.task("t", tool="noop")
    with pytest.raises(WorkflowError, match=r"mcp_servers\.s: give either 'command'"):
        wf.compile()


def test_values_of_the_wrong_type_are_refused_by_name(tmp_path: Path) -> None:
    wf = Workflow("bad", workspace=tmp_path)
    with pytest.raises(TypeError, match=r"budget must be a nexus\.Budget, not dict"):
        wf.task("t", tool="noop", budget={"usd": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"profile must be a nexus\.Profile, not ExecProfile"):
        wf.task("t", tool="noop", profile=ExecProfile())  # type: ignore[arg-type]


def test_an_approval_of_false_is_no_approval(tmp_path: Path) -> None:
    wf = Workflow("plain", workspace=tmp_path)
    wf.task("t", tool="noop", approval=False)
    assert wf.compile().tasks["t"].approval is None


def test_a_function_tool_compensation_is_registered(tmp_path: Path) -> None:
    @nexus.tool
    def refund(order: str) -> str:
        return f"refunded {order}"

    wf = Workflow("shop", workspace=tmp_path, on_failure="compensate")
    wf.task(
        "pay",
        tool="noop",
        compensate=Compensate(tool=refund, args={"order": "{{ compensating.task }}"}),
    )
    plan = wf.compile()
    compensate = plan.tasks["pay"].compensate
    assert compensate is not None
    assert (compensate.tool, compensate.args) == ("refund", {"order": "{{ compensating.task }}"})
    assert plan.tasks["pay"].on_failure == "compensate"
    assert "refund" in wf.tools()
    with pytest.raises(TypeError, match=r"compensate must be a nexus\.Compensate"):
        wf.task("oops", tool="noop", compensate={"tool": "noop"})  # type: ignore[arg-type]


def test_on_failure_replan_from_python_re_plans(tmp_path: Path) -> None:
    plan = _replanning(tmp_path).compile()
    assert [plan.tasks[t].extend.replan for t in ("plan", "recover")] == [1, 3]  # type: ignore[union-attr]
    assert plan.tasks["plan"].on_failure == "compensate", "the workflow's, once re-plans are used"
    wf = Workflow("bad", workspace=tmp_path)
    wf.task("t", tool="noop", on_failure=Replan(2))
    with pytest.raises(WorkflowError, match=r"task 't', field 'on_failure'.*extend: true"):
        wf.compile()

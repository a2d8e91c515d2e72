"""``nexus tools``: what tools exist, where they come from, what they may do; MCP pins.

The listing itself is :func:`nexus.tools.discovery.discover`; this module
only reads the configuration and prints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from nexus.cli.output import EXIT_FAILED, emit_json, err, fail, out, run_async
from nexus.cli.registry import example
from nexus.cli.wiring import project_of
from nexus.config import Settings
from nexus.domain.errors import UserError

if TYPE_CHECKING:
    from nexus.app import Project
    from nexus.config import NexusConfig
    from nexus.tools.discovery import Discovery
    from nexus.tools.mcp import McpToolStatus, ServerStatus

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ToolArg = Annotated[
    str,
    typer.Argument(
        help="SERVER.TOOL (an MCP tool), 'SERVER.read_*' (a glob of them), SERVER (with "
        "--all), mcp:SERVER (a server's command) or wasm:TOOL (a declared WASM module)",
        show_default=False,
    ),
]

tools_app = typer.Typer(
    help="List tools; approve or revoke MCP tool pins.", invoke_without_command=True
)


WorkflowOpt = Annotated[
    Path | None,
    typer.Option(
        "--workflow",
        "-w",
        help="Also list the MCP tools of this workflow's mcp_servers.",
        show_default=False,
    ),
]


@tools_app.callback()
def tools(ctx: typer.Context, workflow: WorkflowOpt = None, as_json: JsonOpt = False) -> None:
    """List the tools tasks may name: built-ins, declared WASM tools, MCP servers' tools.

    MCP servers come from nexus.toml's [mcp_servers] and, with --workflow, the
    workflow's mcp_servers; each is started and asked for its tools, whose pins
    are checked: approved, changed (disabled until re-approved) or new.
    """
    if ctx.invoked_subcommand is not None:
        return
    from nexus.planning.workflow import load_workflow
    from nexus.tools.builtins import builtin_tools
    from nexus.tools.discovery import discover

    async def go() -> Discovery:
        project = project_of(ctx)
        config = project.config
        servers = dict(config.mcp_servers)
        if workflow is not None:
            servers.update(load_workflow(workflow).mcp_servers)  # the workflow's win, as in a run
        return await discover(
            builtin_tools(config.tools),  # under [tools.<name>], as a run has them
            home=project.home,
            wasm_tools=config.wasm_tools,
            mcp_servers=servers,
        )

    found = run_async(go, as_json=as_json)
    if as_json:
        emit_json(found.to_data())
        return
    _print(found)


def _print(found: Discovery) -> None:
    table = Table(box=None, header_style="bold")
    for col in ("tool", "source", "status", "arguments", "permissions"):
        table.add_column(col)
    to_review = []
    for entry in found.tools:
        props = entry["input_schema"].get("properties", {})
        required = set(entry["input_schema"].get("required", []))
        args = ", ".join(f"{k}{'' if k in required else '?'}" for k in props) or "any"
        status = entry.get("pin_status", "")
        if status in ("new", "changed"):
            to_review.append(entry)
        table.add_row(
            escape(entry["name"]),
            escape(entry["source"]),
            escape(status),
            escape(args),
            escape(_permissions(entry)),
        )
    out.print(table)
    _print_grantable(found.tools)
    for server in found.servers:
        if server.get("command_status") in ("new", "changed"):
            out.print(
                f"[red]mcp server {escape(server['name'])}: its command is "
                f"{'not approved' if server['command_status'] == 'new' else 'changed'}[/]; "
                f"review it, then: nexus tools approve mcp:{escape(server['name'])} "
                f"--pin {server['command_pin']}"
            )
            continue
        if not server["connected"]:
            out.print(
                f"[red]mcp server {escape(server['name'])}: not connected[/] "
                f"({escape(str(server['last_error']))})"
            )
    for entry in to_review:
        target = escape(entry.get("approve", entry["name"]))
        how = f" (nexus tools show {target})" if "server" in entry else ""
        out.print(f"review{how}, then: nexus tools approve {target} --pin {entry['pin']}")


def _permissions(entry: dict[str, Any]) -> str:
    perms = entry["permissions"]
    if "network" in perms and "write_paths" in perms:  # an exec profile
        net = perms["network"] if perms["network"] == "none" else ",".join(perms["network"])
        return f"net {net}; write {','.join(perms['write_paths']) or 'nothing'}"
    if perms.get("sandbox") == "wasm":
        return (
            f"wasm: workspace only, net none; fuel {perms['fuel']:,}, "
            f"{perms['memory_mb']} MiB, {perms['wall_seconds']} s"
        )
    if "needs" in perms:  # MCP
        return "in the server's process; needs a profile grant"
    return str(perms.get("effects", ""))


def _print_grantable(tools: list[dict[str, Any]]) -> None:
    """What a task's ``profile:`` may add to each tool with an exec profile, under the table.

    Without a ``[tools.<name>]`` table in nexus.toml a grant may only narrow a
    tool's profile; the table's network and read_paths are what it may add.
    """
    wider = [(e["name"], _grantable(e)) for e in tools if "allowed" in e]
    wider = [(name, more) for name, more in wider if more]
    if not wider:
        if any("allowed" in e for e in tools):
            out.print(
                "a task's profile: may only narrow these permissions "
                "(nexus.toml's \\[tools.NAME] lets it add network and read paths)"
            )
        return
    out.print("a task's profile: may add (nexus.toml's \\[tools.NAME]):")
    width = max(len(name) for name, _ in wider)
    for name, more in wider:
        out.print(f"  {escape(name):<{width}}  {escape(more)}")


def _grantable(entry: dict[str, Any]) -> str:
    """What a grant may get an exec-profile tool beyond its own permissions ("" for nothing)."""
    allowed = entry["allowed"]
    own = entry["permissions"]
    ours = [] if own["network"] == "none" else own["network"]
    net = [] if allowed["network"] == "none" else [h for h in allowed["network"] if h not in ours]
    reads = [p for p in allowed["read_paths"] if p not in own["read_paths"]]
    parts = [f"net {','.join(net)}"] if net else []
    parts += [f"read {','.join(reads)}"] if reads else []
    return "; ".join(parts)


def _key(qualified: str) -> str:
    """The pin file's key: ``server.tool``, or a launch key ``mcp:server`` / ``wasm:tool``."""
    kind, colon, name = qualified.partition(":")
    if colon:
        if kind not in ("mcp", "wasm") or not name or "." in name:
            fail(f"'{qualified}': write mcp:SERVER or wasm:TOOL (or SERVER.TOOL for an MCP tool)")
        return qualified
    server, sep, name = qualified.partition(".")
    if not sep or not server or not name:
        fail(
            f"'{qualified}' must be written SERVER.TOOL (an MCP tool), mcp:SERVER "
            "(a server's command) or wasm:TOOL (a WASM module)"
        )
    return qualified


def _launch_record(config: NexusConfig, key: str) -> dict[str, Any] | None:
    """What the configured launch ``key`` would run now, to keep beside its approval."""
    kind, _, name = key.partition(":")
    if kind == "mcp" and name in config.mcp_servers:
        from nexus.tools.mcp import launch_record, parse_mcp_servers

        (spec,) = parse_mcp_servers({name: dict(config.mcp_servers[name])})
        return launch_record(spec) if spec.command is not None else None
    if kind == "wasm" and name in config.wasm_tools:
        from nexus.tools.wasm import wasm_record

        return wasm_record(config.wasm_tools[name].build())
    return None


# -- reviewing MCP tools: show, approve after review -----------------------------------------

ServerWorkflowOpt = Annotated[
    Path | None,
    typer.Option(
        "--workflow",
        "-w",
        help="Also the MCP servers this workflow declares (its own win on a name clash).",
        show_default=False,
    ),
]
TargetArg = Annotated[
    str,
    typer.Argument(
        help="SERVER (all its tools), SERVER.TOOL, or a glob such as 'SERVER.read_*'",
        show_default=False,
    ),
]
_WORDS = {
    "new": "new: not approved yet",
    "approved": "approved",
    "changed": "changed since it was approved: disabled until re-approved",
    "blocked-by-lint": "blocked by the descriptor linter (approval does not override it)",
}


def _servers(project: Project, workflow: Path | None) -> dict[str, Any]:
    """The MCP servers a run would know: ``nexus.toml``'s, then the workflow's (which win)."""
    from nexus.planning.workflow import load_workflow

    servers = dict(project.config.mcp_servers)
    if workflow is not None:
        servers.update(load_workflow(workflow).mcp_servers)
    return servers


async def _server_status(project: Project, server: str, workflow: Path | None) -> ServerStatus:
    """Start ``server``, list its tools with their pins and lint findings, stop it."""
    from nexus.tools.builtins import builtin_tools
    from nexus.tools.discovery import server_status

    others = [*builtin_tools().names(), *project.config.wasm_tools]
    return await server_status(
        server, _servers(project, workflow), home=project.home, other_tools=others
    )


def _split(target: str) -> tuple[str, str | None]:
    """``SERVER`` -> (server, None); ``SERVER.TOOL`` or ``SERVER.GLOB`` -> (server, tool)."""
    server, dot, tool = target.partition(".")
    if not server or (dot and not tool) or ":" in server:
        fail(
            f"'{target}': name an MCP server (SERVER), one of its tools (SERVER.TOOL) "
            "or a glob of them ('SERVER.read_*')"
        )
    return server, tool if dot else None


def _word(status: McpToolStatus) -> str:
    from nexus.tools.discovery import PIN_STATUS

    return PIN_STATUS.get(str(status.state), str(status.state))


def _print_review(console: Console, data: dict[str, Any]) -> None:
    """One tool's descriptor, readable: what it does, its arguments, hints, state, findings."""
    title = f"  ({escape(data['title'])})" if data["title"] else ""
    console.print(f"[bold]{escape(data['name'])}[/]{title}")
    state = data["pin_status"]
    said = _WORDS.get(state, state)
    if state == "changed":
        said += f" (approved pin {str(data['approved_pin'])[:12]}; changed: "
        said += f"{', '.join(data['changed']) or 'unknown fields'})"
    console.print(f"  status: {escape(said)}")
    description = data["description"] or "(no description)"
    for line in description.splitlines() or [""]:
        console.print(f"    {escape(line)}")
    rows = data["arguments"]
    if rows:
        noted = any(row["notes"] for row in rows)  # no empty column
        table = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("argument", "type", "required", "description", *(("notes",) if noted else ())):
            table.add_column(col, overflow="fold")
        for row in rows:
            cells = [row["name"], row["type"], "yes" if row["required"] else "no"]
            cells += [row["description"], *((row["notes"],) if noted else ())]
            table.add_row(*(escape(c) for c in cells))
        console.print("  arguments:")
        console.print(Padding(table, (0, 0, 0, 4)))
    else:
        console.print("  arguments: none declared")
    if data["output_fields"]:
        fields = ", ".join(data["output_fields"])
        console.print(f"  returns: structured output ({escape(fields)})")
    if data["annotations"]:
        hints = ", ".join(f"{k}: {v}" for k, v in data["annotations"].items())
        console.print(f"  hints (the server's own, not checked): {escape(hints)}")
    for finding in data["findings"]:
        where = f" at {finding['where']}" if finding["where"] else ""
        console.print(
            f"  lint {escape(finding['severity'])} {escape(finding['code'])}{escape(where)}: "
            f"{escape(finding['message'])}"
        )
    console.print(f"  pin: {data['pin']}")


def _reviews(status: ServerStatus, tool: str | None) -> list[tuple[McpToolStatus, dict[str, Any]]]:
    from nexus.tools.mcp import review_data, select_tools

    return [(t, review_data(t, _word(t))) for t in select_tools(status, tool)]


@tools_app.command(
    "show",
    epilog=example("nexus tools show time.get_current_time", "nexus tools show git --json"),
)
def show(
    ctx: typer.Context,
    target: TargetArg,
    workflow: ServerWorkflowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show MCP tools' descriptors readably: description, arguments, hints, pin state, lint.

    The server is started (its command must be approved), asked for its tools and
    stopped; nothing is called or approved.
    """
    server, tool = _split(target)

    async def go() -> list[tuple[McpToolStatus, dict[str, Any]]]:
        return _reviews(await _server_status(project_of(ctx), server, workflow), tool)

    reviewed = run_async(go, as_json=as_json)
    if as_json:
        emit_json({"server": server, "tools": [data for _, data in reviewed]})
        return
    for i, (_, data) in enumerate(reviewed):
        if i:
            out.print()
        _print_review(out, data)
    waiting = [t for t, data in reviewed if data["pin_status"] in ("new", "changed")]
    if len(waiting) == 1:
        one = waiting[0]
        out.print(f"\napprove it: nexus tools approve {escape(one.name)} --pin {one.pin}")
    elif waiting:
        out.print(
            f"\n{len(waiting)} not approved; approve them after review: "
            f"nexus tools approve {escape(server)} --all"
        )


def _interactive() -> bool:
    """Whether a person can be asked (standard input is a terminal)."""
    return sys.stdin.isatty()


def _confirm(names: list[str], yes: bool) -> None:
    """Go on only if the user said yes (``--yes``, or at the prompt on a terminal)."""
    if yes:
        return
    count = f"{len(names)} tool{'s' if len(names) > 1 else ''}"
    if not _interactive():
        fail(
            f"nothing approved: approving {count} needs a confirmation, and standard input "
            "is not a terminal to ask on; review the descriptors shown, then run again "
            "with --yes"
        )
    if not typer.confirm(f"Approve {count} ({', '.join(names)})?", default=False, err=True):
        fail("nothing approved", EXIT_FAILED)


def _approve_reviewed(
    ctx: typer.Context,
    server: str,
    tool: str | None,
    *,
    yes: bool,
    workflow: Path | None,
    as_json: bool,
) -> None:
    """Show what ``server``'s ``tool`` (a name, a glob; all if None) selects, confirm, approve."""
    from nexus.tools.pins import PinStore, ToolState

    async def look() -> tuple[Path, list[tuple[McpToolStatus, dict[str, Any]]]]:
        project = project_of(ctx)
        return project.home, _reviews(await _server_status(project, server, workflow), tool)

    home, reviewed = run_async(look, as_json=as_json)
    pending = (ToolState.PENDING_APPROVAL, ToolState.CHANGED)
    to_review = [(t, data) for t, data in reviewed if t.state in pending]
    chosen = [t for t, _ in to_review]
    already = [t.name for t, _ in reviewed if t.state is ToolState.APPROVED]
    blocked = [t.name for t, _ in reviewed if t.state is ToolState.BLOCKED_BY_LINT]
    shown = err if as_json else out
    for i, (_, data) in enumerate(to_review):
        if i:
            shown.print()
        _print_review(shown, data)
    if already:
        shown.print(f"already approved: {escape(', '.join(already))}")
    if blocked:
        shown.print(
            f"[red]blocked by the descriptor linter[/] (approval does not override it): "
            f"{escape(', '.join(blocked))}; see nexus tools show {escape(server)}"
        )
    if not chosen:
        if blocked:
            fail(f"nothing approved: {', '.join(blocked)} blocked by the linter", EXIT_FAILED)
        if as_json:
            emit_json({"server": server, "approved": [], "already_approved": already})
        else:
            out.print("nothing to approve")
        return
    _confirm([t.name for t in chosen], yes)

    async def record() -> list[dict[str, Any]]:
        pins = PinStore.at_home(home)
        for t in chosen:  # the pin shown, with the descriptor shown: a later change is explained
            pins.approve(server, t.tool, t.pin, descriptor=t.descriptor)
        return [{"tool": t.name, "pin": t.pin} for t in chosen]

    approved = run_async(record, as_json=as_json)
    if as_json:
        emit_json(
            {
                "server": server,
                "approved": approved,
                "already_approved": already,
                "blocked": blocked,
            }
        )
        return
    for entry in approved:
        out.print(f"approved {escape(entry['tool'])} at pin {entry['pin'][:12]}")


def _approve_pinned(
    ctx: typer.Context, server: str, tool: str, pin: str, *, workflow: Path | None, as_json: bool
) -> None:
    """Approve ``pin`` for ``server.tool``, checking the name against the server's tools."""
    from nexus.tools.mcp import select_tools
    from nexus.tools.pins import PinStore

    async def go() -> tuple[dict[str, Any], McpToolStatus | None]:
        project = project_of(ctx)
        pins = PinStore.at_home(project.home)
        if server not in _servers(project, workflow):
            return pins.approve(server, tool, pin).to_data(), None  # cannot be checked here
        (current,) = select_tools(await _server_status(project, server, workflow), tool)
        descriptor = current.descriptor if current.pin == pin else None
        return pins.approve(server, tool, pin, descriptor=descriptor).to_data(), current

    record, current = run_async(go, as_json=as_json)
    name = f"{server}.{tool}"
    if current is None:
        err.print(
            f"[yellow]warning:[/] no MCP server '{escape(server)}' is configured here, so "
            f"'{escape(name)}' was not checked against its tools; give --workflow FILE "
            "(the workflow that declares it) to check the name"
        )
    elif current.pin != pin:
        err.print(
            f"[yellow]warning:[/] the pin approved is not {escape(name)}'s current descriptor "
            f"(now {current.pin[:12]}): it stays disabled; review it: nexus tools show "
            f"{escape(name)}"
        )
    if as_json:
        emit_json({"tool": name, "checked": current is not None, **record})
    else:
        out.print(f"approved {escape(name)} at pin {pin[:12]}")


@tools_app.command("approve")
def approve(
    ctx: typer.Context,
    tool: ToolArg,
    pin: Annotated[
        str | None,
        typer.Option(
            "--pin",
            help="The pin you reviewed (one tool, mcp:SERVER or wasm:TOOL); without it "
            "the descriptors are shown and confirmed.",
            show_default=False,
        ),
    ] = None,
    all_tools: Annotated[
        bool, typer.Option("--all", help="Every tool of SERVER (shown first).")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Approve what is shown without asking.")
    ] = False,
    workflow: ServerWorkflowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve MCP tools after review, or a pin you reviewed (tool, server command, WASM module).

    Without --pin the selected tools (SERVER.TOOL, a glob 'SERVER.read_*', or SERVER
    --all) are shown, then approved once you confirm (--yes when there is no
    terminal). A name that is not one of the server's tools is refused. A changed
    tool, command or module stays refused until its new pin is approved.
    """
    from nexus.tools.mcp._review import is_pattern
    from nexus.tools.pins import PinStore, check_pin, launch_pin

    if pin is not None:
        try:
            check_pin(tool, pin)
        except UserError as exc:
            fail(exc.message, as_json=as_json)
    if ":" in tool:
        key = _key(tool)
        if pin is None or all_tools:
            fail(f"'{tool}': a launch is approved by its pin: nexus tools approve {tool} --pin PIN")

        async def go() -> dict[str, object]:
            project = project_of(ctx)
            record = _launch_record(project.config, key)
            if record is not None and launch_pin(record) != pin:
                record = None  # approving another pin than the current one: keep no record
            return PinStore.at_home(project.home).approve_key(key, pin, descriptor=record).to_data()

        approved = run_async(go, as_json=as_json)
        if as_json:
            emit_json(approved)
        else:
            out.print(f"approved {escape(tool)} at pin {pin[:12]}")
        return
    server, name = _split(tool)
    if all_tools and name is not None:
        fail(f"--all takes a server's name: nexus tools approve {server} --all")
    if not all_tools and name is None:
        fail(
            f"'{tool}' names a server: approve all its tools with --all, some with a glob "
            f"('{tool}.read_*'), or one: {tool}.TOOL"
        )
    if pin is not None:
        if name is None or is_pattern(name):
            fail("--pin approves one tool's descriptor: name one tool, SERVER.TOOL")
        _approve_pinned(ctx, server, name, pin, workflow=workflow, as_json=as_json)
        return
    _approve_reviewed(ctx, server, name, yes=yes, workflow=workflow, as_json=as_json)


@tools_app.command("revoke")
def revoke(tool: ToolArg, as_json: JsonOpt = False) -> None:
    """Withdraw an approval (tool, server command or WASM module): refused until approved again."""
    from nexus.tools.pins import PinStore

    key = _key(tool)

    async def go() -> bool:
        return PinStore.at_home(Settings().home).revoke_key(key)

    found = run_async(go, as_json=as_json)
    if as_json:
        emit_json({"tool": tool, "revoked": found})
    elif found:
        out.print(f"revoked {escape(tool)}")
    else:
        out.print(f"{escape(tool)} had no approval")


@tools_app.command("pins")
def list_pins(as_json: JsonOpt = False) -> None:
    """The approved MCP tool pins recorded in NEXUS_HOME."""
    from nexus.tools import pins

    async def go() -> list[dict[str, object]]:
        return pins.status(home=Settings().home)

    found = run_async(go, as_json=as_json)
    if as_json:
        emit_json(found)
        return
    if not found:
        out.print("no MCP tool is approved")
    for entry in found:
        out.print(f"{escape(str(entry['tool']))}  {str(entry['pin'])[:12]}  {entry['approved_at']}")

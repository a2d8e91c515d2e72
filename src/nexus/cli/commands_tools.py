"""``nexus tools``: what tools exist, where they come from, what they may do; MCP pins.

The listing itself is :func:`nexus.tools.discovery.discover`; this module
only reads the configuration and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from nexus.cli.output import emit_json, fail, out, run_async
from nexus.cli.wiring import project_of
from nexus.config import NexusConfig, Settings
from nexus.planning.workflow import load_workflow
from nexus.tools.builtins import builtin_tools
from nexus.tools.discovery import Discovery, discover

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ToolArg = Annotated[
    str,
    typer.Argument(
        help="SERVER.TOOL (an MCP tool), mcp:SERVER (a server's command) or wasm:TOOL "
        "(a declared WASM module)",
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

    async def go() -> Discovery:
        project = project_of(ctx)
        config = project.config
        servers = dict(config.mcp_servers)
        if workflow is not None:
            servers.update(load_workflow(workflow).mcp_servers)  # the workflow's win, as in a run
        return await discover(
            builtin_tools(),
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
        target = entry.get("approve", entry["name"])
        out.print(f"review, then: nexus tools approve {escape(target)} --pin {entry['pin']}")


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


@tools_app.command("approve")
def approve(
    ctx: typer.Context,
    tool: ToolArg,
    pin: Annotated[str, typer.Option("--pin", help="The descriptor pin you reviewed.")],
    as_json: JsonOpt = False,
) -> None:
    """Approve a pin you reviewed: an MCP tool's descriptor, a server's command, a WASM module.

    A changed tool, command or module stays refused until its new pin is approved.

    Example: nexus tools approve mcp:git --pin 3f2a… (the pin `nexus tools` shows)
    """
    from nexus.tools.pins import PinStore, launch_pin

    key = _key(tool)

    async def go() -> dict[str, object]:
        project = project_of(ctx)
        record = _launch_record(project.config, key) if ":" in key else None
        if record is not None and launch_pin(record) != pin:
            record = None  # approving another pin than the current one: keep no record
        return PinStore.at_home(project.home).approve_key(key, pin, descriptor=record).to_data()

    record = run_async(go, as_json=as_json)
    if as_json:
        emit_json(record)
    else:
        out.print(f"approved {escape(tool)} at pin {pin[:12]}")


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

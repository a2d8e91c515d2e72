"""``nexus tools``: what tools exist, where they come from, what they may do; MCP pins."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from nexus.cli.output import emit_json, fail, out, run_async
from nexus.config import Settings
from nexus.tools.builtins import builtin_tools
from nexus.tools.catalog import catalog

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ToolArg = Annotated[str, typer.Argument(help="SERVER.TOOL", show_default=False)]

tools_app = typer.Typer(
    help="List tools; approve or revoke MCP tool pins.", invoke_without_command=True
)


@tools_app.callback()
def tools(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the tools tasks may name, with source, schema and permissions."""
    if ctx.invoked_subcommand is not None:
        return
    entries = catalog(builtin_tools())
    if as_json:
        emit_json(entries)
        return
    table = Table(box=None, header_style="bold")
    for col in ("tool", "source", "arguments", "permissions"):
        table.add_column(col)
    for entry in entries:
        props = entry["input_schema"].get("properties", {})
        required = set(entry["input_schema"].get("required", []))
        args = ", ".join(f"{k}{'' if k in required else '?'}" for k in props) or "any"
        perms = entry["permissions"]
        if "network" in perms:
            net = perms["network"] if perms["network"] == "none" else ",".join(perms["network"])
            summary = f"net {net}; write {','.join(perms['write_paths']) or 'nothing'}"
        else:
            summary = str(perms.get("effects", ""))
        table.add_row(escape(entry["name"]), entry["source"], escape(args), escape(summary))
    out.print(table)


def _split(qualified: str) -> tuple[str, str]:
    server, sep, name = qualified.partition(".")
    if not sep or not server or not name:
        fail(f"'{qualified}' must be written SERVER.TOOL")
    return server, name


@tools_app.command("approve")
def approve(
    tool: ToolArg,
    pin: Annotated[str, typer.Option("--pin", help="The descriptor pin you reviewed.")],
    as_json: JsonOpt = False,
) -> None:
    """Approve an MCP tool's descriptor pin (after review); a changed tool stays disabled."""
    from nexus.tools import pins

    server, name = _split(tool)

    async def go() -> dict[str, object]:
        return pins.approve(server, name, pin, home=Settings().home).to_data()

    record = run_async(go, as_json=as_json)
    if as_json:
        emit_json(record)
    else:
        out.print(f"approved {escape(tool)} at pin {pin[:12]}")


@tools_app.command("revoke")
def revoke(tool: ToolArg, as_json: JsonOpt = False) -> None:
    """Withdraw an MCP tool's approval: it is denied until approved again."""
    from nexus.tools.pins import PinStore

    server, name = _split(tool)

    async def go() -> bool:
        return PinStore.at_home(Settings().home).revoke(server, name)

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

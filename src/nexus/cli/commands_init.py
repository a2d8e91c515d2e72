"""``nexus init`` and ``nexus new``: a project, or one file, from the templates Nexus ships.

The templates are package data (``nexus/cli/templates/``, in the wheel with
the code): a commented ``nexus.toml`` shared by every project, a workflow per
project template (``pipeline``, ``agent``, ``approval``) or a code mission's
spec, agents file and function agents (``mission``), and one file per kind
``nexus new`` writes (``workflow``, ``agent``, ``tool``). ``@NAME@`` and
``@FILE@`` in a template stand for the name given and the file's path.

Neither command overwrites a file unless told to (``--force``): it refuses,
naming every file in the way, and writes nothing. ``.gitignore`` is the one
file ``init`` changes rather than writes: it appends ``.nexus/`` (the state
directory: the event log, keys, logs) when the file does not ignore it yet,
and for a mission ``.nexus-missions/`` (where its worktrees live).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from nexus.cli.output import EXIT_USER, emit_json, fail, out
from nexus.config import find_project

__all__ = ["KINDS", "TEMPLATES", "TEMPLATE_FILES", "init", "new"]

#: The project templates and what each makes.
TEMPLATES: dict[str, str] = {
    "pipeline": "a tool pipeline: python and shell tools, a foreach, a report file",
    "agent": "an agent with file tools, offline (scripted model), and how to use a real one",
    "approval": "a workflow that waits for a person's approval before it deploys",
    "mission": "a code mission: a spec, its roles as Python functions, offline; or a model",
}
#: The files each project template writes besides nexus.toml.
TEMPLATE_FILES: dict[str, tuple[str, ...]] = {
    "pipeline": ("workflow.yaml",),
    "agent": ("workflow.yaml",),
    "approval": ("workflow.yaml",),
    "mission": ("spec.md", "agents.yaml", "roles.py"),
}
#: What ``nexus new`` writes: the template, and where the file goes (``{}`` is the name).
KINDS: dict[str, tuple[str, str]] = {
    "workflow": ("workflow.yaml", "{}.yaml"),
    "agent": ("agent.yaml", "{}.yaml"),
    "tool": ("tool.wat", "tools/{}.wat"),
}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
#: What init adds to .gitignore: the state directory.
IGNORED = ".nexus/"
#: What a mission template adds too: where the mission's worktrees live.
MISSIONS_IGNORED = ".nexus-missions/"


def _template(*parts: str) -> str:
    """A template's text, from the package's data."""
    node = resources.files("nexus.cli").joinpath("templates", *parts)
    return node.read_text(encoding="utf-8")


def _fill(text: str, name: str, file: str) -> str:
    return text.replace("@NAME@", name).replace("@FILE@", file)


@dataclass(frozen=True, slots=True)
class _Plan:
    """The files a command will write (path -> text) and where."""

    directory: Path
    files: dict[Path, str]

    def in_the_way(self) -> list[Path]:
        return [path for path in self.files if path.exists() or path.is_symlink()]

    def write(self) -> list[str]:
        written = []
        for path, text in self.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                path.unlink()  # --force replaces the link, never writes through it
            path.write_text(text, encoding="utf-8")
            written.append(str(path.relative_to(self.directory)))
        return written


def _refuse_if_taken(plan: _Plan, force: bool, command: str, as_json: bool) -> None:
    """Refuse (exit 2, nothing written) when a file is in the way, unless ``force``."""
    taken = plan.in_the_way()
    directories = [p for p in taken if p.is_dir() and not p.is_symlink()]
    if directories:
        names = ", ".join(str(p.relative_to(plan.directory)) for p in directories)
        fail(f"{command}: {names} is a directory; nothing was written", as_json=as_json)
    if taken and not force:
        names = ", ".join(str(p.relative_to(plan.directory)) for p in taken)
        fail(
            f"{command} would overwrite {names} in {plan.directory}; nothing was written "
            "(--force overwrites them)",
            EXIT_USER,
            as_json=as_json,
        )


def _project_name(directory: Path, template: str) -> str:
    """The workflow's name: the directory's, as a workflow name may be written."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", directory.name).strip("-.")
    return name or template


def _gitignore(directory: Path, entries: tuple[str, ...] = (IGNORED,)) -> str:
    """Make ``.gitignore`` ignore ``entries``: ``created``, ``added`` or ``present``."""
    path = directory / ".gitignore"
    if not path.exists():
        path.write_text("# Nexus state: runs, keys, logs\n" + "".join(f"{e}\n" for e in entries))
        return "created"
    text = path.read_text(encoding="utf-8", errors="replace")
    ignored = {line.strip().lstrip("/").rstrip("/") for line in text.splitlines()}
    missing = [e for e in entries if e.rstrip("/") not in ignored]
    if not missing:
        return "present"
    joint = "" if text == "" or text.endswith("\n") else "\n"
    with path.open("a", encoding="utf-8") as end:
        end.write(f"{joint}# Nexus state: runs, keys, logs\n" + "".join(f"{e}\n" for e in missing))
    return "added"


def _next_steps(template: str, directory: Path) -> list[str]:
    here = Path.cwd()
    steps = [] if directory == here else [f"cd {directory}"]
    if template == "mission":
        if not any((d / ".git").exists() for d in (directory, *directory.parents)):
            steps.append("git init -q && git add -A && git commit -qm start")
        steps.append("nexus mission spec.md --repo . --agents agents.yaml")
        steps.append("nexus evidence verify <the evidence folder it names>")
        steps.append("(a real model: see the comment at the top of agents.yaml)")
        return steps
    steps += ["nexus validate workflow.yaml", "nexus run workflow.yaml"]
    if template == "agent":
        steps.append("nexus inspect latest --task describe --conversation")
        steps.append("(a real model: see the comment at the top of workflow.yaml)")
    elif template == "approval":
        steps.append("nexus approve latest deploy --reason '...'   (from another terminal)")
    else:
        steps.append("nexus inspect latest --task check")
    return steps


def init(
    directory: Annotated[
        Path,
        typer.Argument(help="Where to make the project (default: here).", show_default=False),
    ] = Path(),
    template: Annotated[
        str,
        typer.Option(
            "--template", "-t", metavar="NAME", help="pipeline, agent, approval or mission."
        ),
    ] = "pipeline",
    list_them: Annotated[bool, typer.Option("--list", help="List the templates and exit.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the files the template writes.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Start a project: nexus.toml, a workflow to run, .nexus/ in .gitignore.

    It runs offline as written (no key, no network): a tool pipeline, an
    agent with tools on a scripted model, a workflow that waits for an
    approval, or a code mission whose roles are Python functions (spec.md,
    agents.yaml, roles.py). Existing files are never overwritten without
    --force; .gitignore is appended to, not replaced.
    """
    if list_them:
        if as_json:
            emit_json([{"name": n, "description": d} for n, d in TEMPLATES.items()])
        else:
            for name, description in TEMPLATES.items():
                out.print(f"{name:<10} {description}", markup=False, highlight=False)
        return
    if template not in TEMPLATES:
        fail(
            f"no template '{template}': use one of {', '.join(TEMPLATES)} (nexus init --list)",
            as_json=as_json,
        )
    folder = directory.expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        fail(f"{directory} is not a directory", as_json=as_json)
    name = _project_name(folder, template)
    files = {folder / "nexus.toml": _template("nexus.toml")}
    for file in TEMPLATE_FILES[template]:
        files[folder / file] = _fill(_template(template, file), name, file)
    plan = _Plan(folder, files)
    _refuse_if_taken(plan, force, "nexus init", as_json)
    folder.mkdir(parents=True, exist_ok=True)
    written = plan.write()
    entries = (IGNORED, MISSIONS_IGNORED) if template == "mission" else (IGNORED,)
    ignore = _gitignore(folder, entries)
    if as_json:
        emit_json(
            {
                "directory": str(folder),
                "template": template,
                "written": written,
                "gitignore": ignore,
            }
        )
        return
    shown = {"created": "created with .nexus/", "added": ".nexus/ added", "present": "unchanged"}
    out.print(
        f"[green]created[/] {template} project in {folder}: {', '.join(written)} "
        f"(.gitignore: {shown[ignore]})",
        highlight=False,
    )
    out.print("next:")
    for step in _next_steps(template, folder):
        out.print(f"  {step}", markup=False, highlight=False)


def new(
    kind: Annotated[
        str, typer.Argument(help="workflow, agent or tool.", show_default=False, metavar="KIND")
    ],
    name: Annotated[
        str,
        typer.Argument(
            help="Its name: a letter, then letters, digits, '_' or '-'.", show_default=False
        ),
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite the file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Write one file: a workflow, an agent (NAME.yaml) or a WASM tool (tools/NAME.wat).

    A workflow and an agent run offline as written. A tool is a WASI module
    that echoes its arguments, to make into what it should do; its comment
    says how to declare it in nexus.toml, approve it and call it.
    """
    if kind not in KINDS:
        fail(f"nexus new makes a {', '.join(KINDS)}; not '{kind}'", as_json=as_json)
    if not _NAME.fullmatch(name):
        fail(
            f"'{name}' cannot be a name: start with a letter, then letters, digits, '_' or '-' "
            "(at most 64)",
            as_json=as_json,
        )
    source, target = KINDS[kind]
    here = Path.cwd()
    path = here / target.format(name)
    # nexus.toml names a module relative to itself: the project's directory
    relative = os.path.relpath(path, find_project(here) or here)
    plan = _Plan(here, {path: _fill(_template("new", source), name, relative)})
    _refuse_if_taken(plan, force, "nexus new", as_json)
    (written,) = plan.write()
    if as_json:
        emit_json({"kind": kind, "name": name, "written": written})
        return
    out.print(f"[green]created[/] {kind} {name}: {written}", highlight=False)
    if kind == "tool":
        out.print("declare it in nexus.toml, then approve its launch pin:", highlight=False)
        for line in (f"[wasm_tools.{name}]", f'module = "{relative}"', "pure = true"):
            out.print(f"  {line}", markup=False, highlight=False)
        out.print("  nexus tools                        (shows its pin)", markup=False)
        out.print(f"  nexus tools approve wasm:{name} --pin PIN", markup=False)
    else:
        out.print(f"  nexus validate {written} && nexus run {written}", markup=False)

"""``nexus index PATH``: build or update a repository's index, and ask it for context.

The index is the one code missions use (:class:`nexus.missions.index.RepoIndex`,
docs/missions.md "Repository index"): one SQLite file with FTS5. By default it
lives in ``$NEXUS_HOME/index/<hash>/index.sqlite``, where ``<hash>`` is taken
from the repository's real path, so indexing one repository again (from
anywhere, through any link) updates the same index and re-reads only what
changed; ``--state DIR`` puts it in ``DIR/index.sqlite`` instead.

The command prints what the update did (added, changed, removed and skipped
files, how many it read and parsed) and what the index holds (files,
symbols, imports, tests, how symbols are read per language, skipped files
with their reasons). With ``--query`` it also prints the ranked context
within ``--budget`` tokens: each snippet's path, lines, tokens, why it was
chosen, and its text.

Exit codes: 0 done; 2 bad input (PATH or ``--state`` is not a directory, an
unusable ``--scope``, an SQLite without FTS5, a file that is not an index);
4 PATH does not exist; 1 the index could not be written (a locked or
read-only database). The index code is imported when the command runs, not
with the CLI.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from nexus.cli.output import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_USER,
    emit_json,
    err,
    exit_code_for,
    fail,
    out,
)
from nexus.config import Settings
from nexus.domain.errors import NexusError

if TYPE_CHECKING:
    from nexus.missions.index import ContextPack, IndexStats, UpdateReport

__all__ = ["DEFAULT_BUDGET", "INDEX_DIR", "default_state", "index"]

#: The folder of ``$NEXUS_HOME`` that holds one index per repository.
INDEX_DIR = "index"
#: Tokens of context ``--query`` returns when ``--budget`` is not given.
DEFAULT_BUDGET = 2000
#: Paths listed per kind (added, skipped, ...) in the summary; ``--json`` lists all.
_SHOWN = 10

PathArg = Annotated[
    Path, typer.Argument(help="The repository (any directory).", show_default=False)
]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state",
        metavar="DIR",
        help="Keep the index in DIR/index.sqlite "
        "(default: $NEXUS_HOME/index/<hash of the repository's real path>/).",
        show_default=False,
    ),
]
QueryOpt = Annotated[
    str | None,
    typer.Option(
        "--query",
        metavar="TEXT",
        help="Print the snippets that best answer TEXT, ranked, within the budget.",
        show_default=False,
    ),
]
BudgetOpt = Annotated[
    int | None,
    typer.Option(
        "--budget",
        metavar="TOKENS",
        min=0,
        help=f"Tokens of context for --query (characters / 4; default {DEFAULT_BUDGET}).",
        show_default=False,
    ),
]
ScopeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        metavar="PATH",
        help="Favour this file or directory of the repository in --query (repeatable).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def default_state(home: Path, repo: Path) -> Path:
    """Where the index of ``repo`` lives in ``home``: ``index/`` + 16 hex of its real path."""
    real = os.fsencode(os.path.realpath(repo))
    return home / INDEX_DIR / hashlib.sha256(real).hexdigest()[:16]


def index(
    path: PathArg,
    state: StateOpt = None,
    query: QueryOpt = None,
    budget: BudgetOpt = None,
    scope: ScopeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Index a repository (files, symbols, tests); with --query, print ranked context.

    The first run builds the index, later ones re-read only the files that
    changed. Prints what the update did and what the index holds: files,
    symbols, how each language is read, skipped files and why. --query TEXT
    adds the snippets that best answer it within --budget tokens, each with
    its path, lines, tokens and why it was chosen.
    """
    import sqlite3

    from nexus.missions.index import RepoIndex, index_path

    if query is None and (budget is not None or scope):
        fail("--budget and --scope apply to --query: give one", EXIT_USER, as_json=as_json)
    root = _repository(path, as_json)
    scopes = [_scope_of(root, entry, as_json) for entry in scope or ()]
    try:
        state_dir = state if state is not None else default_state(Settings().home, root)
    except NexusError as exc:
        fail(exc.message, exit_code_for(exc), as_json=as_json)
    if state_dir.exists() and not state_dir.is_dir():
        fail(f"--state {state_dir}: not a directory", EXIT_USER, as_json=as_json)
    db_path = index_path(state_dir)
    for entry in scopes:
        if not (root / entry).exists():
            err.print(
                f"[yellow]warning:[/] --scope {escape(entry)}: no such path in {escape(str(root))}"
            )
    pack = None
    try:
        with RepoIndex(root, db_path) as repo_index:
            report = repo_index.update()
            stats = repo_index.stats()
            if query is not None:
                pack = repo_index.context(query, _budget(budget), scopes)
    except NexusError as exc:
        fail(exc.message, EXIT_USER, as_json=as_json)
    except sqlite3.Error as exc:
        fail(f"{db_path}: cannot write the index: {exc}", EXIT_FAILED, as_json=as_json)
    except OSError as exc:
        fail(f"{db_path}: cannot create the index: {exc.strerror or exc}", as_json=as_json)
    if as_json:
        document: dict[str, Any] = {
            "repository": str(root),
            "index": str(db_path),
            "update": _report_json(report),
            "stats": _stats_json(stats),
        }
        if pack is not None:
            document["context"] = _pack_json(pack)
        emit_json(document)
        return
    _print_summary(root, db_path, report, stats)
    if pack is not None:
        _print_pack(pack)


def _budget(budget: int | None) -> int:
    return DEFAULT_BUDGET if budget is None else budget


def _repository(path: Path, as_json: bool) -> Path:
    """``path``'s real path; exit 4 when it does not exist, 2 when it is not a directory."""
    if not path.exists():
        fail(f"{path}: no such directory to index", EXIT_NOT_FOUND, as_json=as_json)
    if not path.is_dir():
        fail(f"{path}: not a directory; name the repository's folder", as_json=as_json)
    return Path(os.path.realpath(path))


def _scope_of(root: Path, entry: str, as_json: bool) -> str:
    """A ``--scope`` as a path relative to the repository; it may not lead out of it.

    A relative path is read from the repository's root; an absolute one must
    be inside the repository.
    """
    given = Path(entry)
    if given.is_absolute():
        real = Path(os.path.realpath(given))
        if real == root or root in real.parents:
            return real.relative_to(root).as_posix()
    else:
        relative = Path(os.path.normpath(given)).as_posix()
        if relative != ".." and not relative.startswith("../"):
            return relative
    fail(f"--scope {entry}: not inside the repository {root}", as_json=as_json)


# -- JSON ------------------------------------------------------------------------------------


def _report_json(report: UpdateReport) -> dict[str, Any]:
    return {
        "added": list(report.added),
        "changed": list(report.changed),
        "removed": list(report.removed),
        "skipped": [{"path": path, "reason": reason} for path, reason in report.skipped],
        "unchanged": report.unchanged,
        "read": report.read,
        "parsed": report.parsed,
    }


def _stats_json(stats: IndexStats) -> dict[str, Any]:
    return {
        "files": stats.files,
        "symbols": stats.symbols,
        "imports": stats.imports,
        "tests": stats.tests,
        "chunks": stats.chunks,
        "languages": {
            language: {"files": count, "extraction": stats.extraction.get(language, "")}
            for language, count in stats.languages.items()
        },
        "skipped": stats.skipped,
        "notes": stats.notes,
    }


def _pack_json(pack: ContextPack) -> dict[str, Any]:
    return {
        "query": pack.query,
        "budget_tokens": pack.budget_tokens,
        "used_tokens": pack.used_tokens,
        "considered": pack.considered,
        "terms": list(pack.terms),
        "items": [
            {
                "path": item.path,
                "start_line": item.start_line,
                "end_line": item.end_line,
                "tokens": item.tokens,
                "score": item.score,
                "reasons": list(item.reasons),
                "truncated": item.truncated,
                "text": item.text,
            }
            for item in pack.items
        ],
    }


# -- text ------------------------------------------------------------------------------------


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _listed(title: str, rows: list[str]) -> None:
    """A titled list of at most :data:`_SHOWN` rows, then how many more ``--json`` holds."""
    if not rows:
        return
    out.print(f"[bold]{title}[/] ({len(rows)})")
    for row in rows[:_SHOWN]:
        out.print(f"  {row}")
    if len(rows) > _SHOWN:
        out.print(f"  [dim]... and {len(rows) - _SHOWN} more (--json lists them all)[/]")


def _print_summary(root: Path, db_path: Path, report: UpdateReport, stats: IndexStats) -> None:
    out.print(f"[bold]{escape(str(root))}[/]  [dim](index: {escape(str(db_path))})[/]")
    out.print(
        f"update: {len(report.added)} added, {len(report.changed)} changed, "
        f"{len(report.removed)} removed, {len(report.skipped)} newly skipped, "
        f"{report.unchanged} unchanged; {_count(report.read, 'file')} read, "
        f"{report.parsed} parsed"
    )
    out.print(
        f"index: {_count(stats.files, 'file')} ({len(stats.skipped)} skipped), "
        f"{_count(stats.symbols, 'symbol')}, {_count(stats.imports, 'import')}, "
        f"{_count(stats.tests, 'test')}, {_count(stats.chunks, 'chunk')}"
    )
    if stats.languages:
        width = max(len(language) for language in stats.languages)
        out.print("[bold]languages[/]")
        for language, files in stats.languages.items():
            how = stats.extraction.get(language, "")
            out.print(f"  {language:<{width}}  {files:>6}  {escape(how)}")
    if len(report.added) < stats.files:  # on a first build every file is added: no list
        _listed("added", [escape(path) for path in report.added])
    _listed("changed", [escape(path) for path in report.changed])
    _listed("removed", [escape(path) for path in report.removed])
    skipped = [f"{escape(path)}  [dim]{escape(why)}[/]" for path, why in stats.skipped.items()]
    _listed("skipped", skipped)
    _listed(
        "notes", [f"{escape(path)}  [dim]{escape(note)}[/]" for path, note in stats.notes.items()]
    )


def _print_pack(pack: ContextPack) -> None:
    out.print(
        f"\n[bold]context[/] for {escape(repr(pack.query))}: {_count(len(pack.items), 'snippet')}, "
        f"{pack.used_tokens} of {pack.budget_tokens} tokens "
        f"({_count(pack.considered, 'chunk')} ranked)"
    )
    if not pack.items:
        if not pack.terms:
            why = "the query has no word to search for"
        elif pack.considered:
            why = f"no snippet fits in {_count(pack.budget_tokens, 'token')}"
        else:
            why = "nothing in the index matches"
        out.print(f"  [dim]{why}[/]")
        return
    for rank, item in enumerate(pack.items, 1):
        out.print(
            f"\n{rank}. [bold]{escape(item.path)}[/]:{item.start_line}-{item.end_line}"
            f"  {_count(item.tokens, 'token')}"
        )
        out.print(f"   [dim]why: {escape('; '.join(item.reasons))}[/]")
        for line in item.text.splitlines():
            out.print(f"   | {escape(line)}")

"""Shared CLI plumbing: consoles, JSON output, exit codes, error reporting."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from nexus.config import Settings
from nexus.domain.errors import (
    BudgetExceeded,
    ConflictError,
    ErrorKind,
    NexusError,
    NotFoundError,
    UserError,
)

T = TypeVar("T")

out = Console(highlight=False, soft_wrap=True, emoji=False)  # ":x:" in a model name is text
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

#: Exit codes: 0 ok; 1 the run failed or the check does not hold; 2 bad input;
#: 3 conflict (another process owns the run); 4 not found; 5 the run paused
#: (a budget ran out: raise it and resume); 6 refused by the preflight (the
#: estimate exceeds a budget: nothing ran, nothing was recorded); 70 internal error.
EXIT_FAILED, EXIT_USER, EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_INTERNAL = 1, 2, 3, 4, 70
EXIT_PAUSED, EXIT_REFUSED = 5, 6


def emit_json(value: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = EXIT_USER, *, as_json: bool = False) -> NoReturn:
    """Report an error (never a traceback) and exit."""
    if as_json:
        emit_json({"error": {"message": message, "exit_code": code}})
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)


def exit_code_for(exc: NexusError) -> int:
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, UserError):
        return EXIT_USER
    if isinstance(exc, ConflictError):
        return EXIT_CONFLICT
    if isinstance(exc, BudgetExceeded):
        # only the preflight raises one this far: a budget that runs out during a
        # run pauses it (EXIT_PAUSED), it is not raised
        return EXIT_REFUSED
    if exc.kind is ErrorKind.INTERNAL:
        return EXIT_INTERNAL
    return EXIT_FAILED


def run_async(
    fn: Callable[[], Awaitable[T]],
    *,
    as_json: bool = False,
    interrupted: Callable[[], str] | None = None,
) -> T:
    """Run a coroutine at the edge, turning every error into a clear message.

    ``interrupted`` says what Ctrl-C leaves behind (the commands that drive a
    run name it, so the hint can be copied as is).
    """
    import asyncio  # not on the start-up path: only commands that run a coroutine

    try:
        return asyncio.run(fn())  # type: ignore[arg-type]
    except typer.Exit:
        raise
    except NexusError as exc:
        fail(exc.message, exit_code_for(exc), as_json=as_json)
    except KeyboardInterrupt:
        message = "interrupted" if interrupted is None else interrupted()
        fail(message, EXIT_FAILED, as_json=as_json)
    except Exception as exc:  # the last line of defence: no tracebacks for users
        fail(
            f"internal error: {type(exc).__name__}: {exc} (please report this)",
            EXIT_INTERNAL,
            as_json=as_json,
        )


@asynccontextmanager
async def open_store(settings: Settings | None = None, *, sign: bool = True) -> Any:
    """The configured store, closed on exit.

    With ``sign`` (the default) it signs what it writes with the home's audit
    key, created on first use; audit commands that only read pass False.
    """
    # SQLAlchemy and the migrations load here, not with the CLI: `nexus --help`
    # and a listing of an empty home never open a store
    from nexus.store.heads import HeadSigner
    from nexus.store.sqlite import SQLiteStore

    settings = settings or Settings()
    signer = HeadSigner.for_home(settings.home) if sign else None
    store = SQLiteStore.open(settings.db_path, durability=settings.durability, signer=signer)
    try:
        yield store
    finally:
        await store.close()

"""Structured logs: what a run did, kept as JSON lines next to its events, and shown with ``-v``.

Where they go. Each run the ``nexus`` command drives (``run``, ``resume``,
``approve``/``reject`` when they take the run over) appends to
``$NEXUS_HOME/logs/<run_id>.jsonl``; ``nexus logs RUN`` reads it back. A file
holds at most :data:`MAX_BYTES`; past that it is renamed ``<run_id>.jsonl.1``
(replacing an older one) and a new file starts, so a run keeps at most twice
that, its newest lines always. The directory is ``0700``, the files ``0600``.

What they hold, one JSON object a line (``timestamp``, ``level``, ``logger``,
``event`` and fields):

* the run's events a reader follows -- the run starting, resuming and ending,
  each attempt, each call across the effect boundary, retries, approvals,
  budgets, failures -- as ``nexus events`` summarises them, with ``run``,
  ``seq``, ``type`` and ``task`` (logger ``nexus.run``);
* what the libraries Nexus uses log through the standard library while the run
  is driven (an HTTP request of a model SDK, its retries, an MCP server's
  messages), from ``info`` up (``debug`` with ``--log-level debug``).

Everything is redacted as events are, before it is written or shown: secret key
names, token and credential shapes and the environment's secret values
(:func:`nexus.redaction.redact`), and the run's own secret inputs
(:func:`nexus.redaction.redact_values`, which knows them while the run is driven).

On stderr, ``nexus --verbose`` (``info``) or ``--log-level LEVEL`` shows the
same records as they happen, one readable line each; without either, only
warnings and errors, as before.

Logging is configured once per process, at the CLI's edge (:func:`configure`):
it is process-wide state by nature, like the standard library's.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from nexus.cli.summaries import summary
from nexus.domain.events import Event, EventType
from nexus.domain.payloads import task_of
from nexus.domain.state import RunState
from nexus.redaction import redact, redact_values

__all__ = [
    "LEVELS",
    "MAX_BYTES",
    "RunLog",
    "configure",
    "log_files",
    "read_log",
]

#: The levels ``--log-level`` takes, least severe first.
LEVELS = ("debug", "info", "warning", "error")
#: The most one log file holds before it is rotated (one older file is kept).
MAX_BYTES = 4 * 1024 * 1024

#: Events a reader of the log does not need at ``info`` (they are kept at ``debug``).
_QUIET = frozenset({EventType.TIMER_FIRED, EventType.RUN_CONTINUED})
_ERRORS = frozenset({EventType.TASK_FAILED, EventType.RUN_FAILED})
_WARNINGS = frozenset(
    {
        EventType.RETRY_SCHEDULED,
        EventType.ATTEMPT_INTERRUPTED,
        EventType.BUDGET_WARNING,
        EventType.BUDGET_EXCEEDED,
        EventType.TASK_PAUSED,
        EventType.RUN_PAUSED,
        EventType.APPROVAL_ESCALATED,
        EventType.APPROVAL_TIMED_OUT,
        EventType.BARRIER_TIMED_OUT,
        EventType.APPROVAL_REJECTED,
        EventType.TASK_CANCELLED,
        EventType.RUN_CANCELLED,
    }
)

_run_logger = logging.getLogger("nexus.run")
#: the console handler :func:`configure` installed, if any
_console: logging.Handler | None = None


def _level(name: str) -> int:
    return int(logging.getLevelName(name.upper()))


def _redacted(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The record with every secret Nexus can recognise replaced, as events are."""
    cleaned: MutableMapping[str, Any] = redact_values(redact(dict(event_dict)))
    return cleaned


def _console_fields(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """On stderr a run's record needs no run id, number or type: its line says them."""
    if event_dict.get("logger") == _run_logger.name:
        for key in ("run", "seq", "type", "logger"):
            event_dict.pop(key, None)
    return event_dict


def _exception_line(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """On stderr an exception is one line (``error: Type: message``), never a traceback."""
    info = event_dict.pop("exc_info", None)
    if info:
        exc = info[1] if isinstance(info, tuple) else None
        if isinstance(exc, BaseException):
            event_dict["error"] = f"{type(exc).__name__}: {exc}"
    return event_dict


def _formatter(*, console: bool) -> logging.Formatter:
    """Records (ours and the libraries') rendered as JSON (files) or a readable line (stderr)."""
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    before: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        stamp,
    ]
    render: Any
    if console:
        before += [_exception_line, _console_fields]
        render = structlog.dev.ConsoleRenderer(colors=False, pad_event_to=30)
    else:
        before.append(structlog.processors.format_exc_info)
        render = structlog.processors.JSONRenderer(ensure_ascii=False, default=str)
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=before,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _redacted, render],
    )


def configure(level: str = "warning") -> None:
    """Show log records of ``level`` and up on stderr (once per process; again: changes it).

    Raises:
        ValueError: ``level`` is not one of :data:`LEVELS`.
    """
    global _console
    if level.lower() not in LEVELS:
        raise ValueError(f"'{level}' is not a level: use one of {', '.join(LEVELS)}")
    root = logging.getLogger()
    if _console is None:
        _console = _Stderr()
        _console.setFormatter(_formatter(console=True))
        root.addHandler(_console)
    _console.setLevel(_level(level))
    root.setLevel(_console.level)
    # the store's migrations say at info that they ran, on every command: not news
    logging.getLogger("alembic").setLevel(
        logging.DEBUG if _console.level <= logging.DEBUG else logging.WARNING
    )


def _file_level() -> int:
    """A run's file keeps ``info`` and up, or ``debug`` when stderr shows it."""
    shown = logging.WARNING if _console is None else _console.level
    return min(logging.INFO, shown)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to ``sys.stderr`` as it is when it writes.

    The live progress view redirects stderr to print above its table; a
    handler that kept the stream it was made with would write through it.
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        return


class _RunFile(logging.handlers.RotatingFileHandler):
    """A rotating file only its owner can read (it may hold what a run's tools printed)."""

    def _open(self) -> Any:
        descriptor = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(descriptor, "a", encoding=self.encoding, errors=self.errors)


def log_files(home: Path, run_id: str) -> list[Path]:
    """A run's log files, oldest first (the rotated one, then the current one)."""
    current = home / "logs" / f"{run_id}.jsonl"
    return [p for p in (current.with_name(current.name + ".1"), current) if p.is_file()]


class RunLog:
    """Writes one run's log while a command drives it: an observer of its events.

    The file is opened on the first events (``nexus run`` learns its run's id
    from ``run.started``) and closed on exit; while it is open, the process's
    library logs go to it too.

    Args:
        home: the state directory (``$NEXUS_HOME``).
        max_bytes: the most one file holds before it is rotated.
    """

    def __init__(self, home: Path, *, max_bytes: int = MAX_BYTES) -> None:
        self.home = home
        self.max_bytes = max_bytes
        self.path: Path | None = None
        self._handler: logging.Handler | None = None
        self._saved_level: int | None = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, run_id: str) -> None:
        if _console is None:
            configure()  # warnings keep reaching stderr once the root has a handler
        folder = self.home / "logs"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = folder / f"{run_id}.jsonl"
        handler = _RunFile(
            self.path, maxBytes=self.max_bytes, backupCount=1, encoding="utf-8", delay=True
        )
        handler.setFormatter(_formatter(console=False))
        handler.setLevel(_file_level())
        root = logging.getLogger()
        self._saved_level = root.level
        root.setLevel(min(root.level, handler.level))
        root.addHandler(handler)
        self._handler = handler

    def close(self) -> None:
        """Stop writing (the library logs go back to stderr only)."""
        handler, self._handler = self._handler, None
        if handler is None:
            return
        root = logging.getLogger()
        root.removeHandler(handler)
        if self._saved_level is not None:
            root.setLevel(self._saved_level)
        handler.close()

    def __call__(self, events: Sequence[Event], state: RunState) -> None:
        if self._handler is None and self.path is None:
            self._open(state.run_id)
        for event in events:
            self.record(event)

    def record(self, event: Event) -> None:
        """Log one event: its summary, at a level by what it means."""
        kind = event.type
        if kind in _ERRORS:
            level = logging.ERROR
        elif kind in _WARNINGS:
            level = logging.WARNING
        elif kind in _QUIET:
            level = logging.DEBUG
        else:
            level = logging.INFO
        if not _run_logger.isEnabledFor(level):
            return
        fields: dict[str, Any] = {"run": event.run_id, "seq": event.seq, "type": str(kind)}
        task = task_of(event)
        if task is not None:
            fields["task"] = task
        text = summary(event)
        _run_logger.log(level, f"{kind} {text}".rstrip(), extra=fields)


def read_log(home: Path, run_id: str) -> Iterator[dict[str, Any]]:
    """The records of a run's log, oldest first; a line that is not JSON is skipped.

    Raises:
        FileNotFoundError: the run keeps no log in ``home``.
    """
    files = log_files(home, run_id)
    if not files:
        raise FileNotFoundError(str(home / "logs" / f"{run_id}.jsonl"))
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # cut short by a crash mid-write: the rest is readable
                if isinstance(record, dict):
                    yield record

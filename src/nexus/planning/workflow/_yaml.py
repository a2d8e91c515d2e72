"""Loading a workflow file: the limits on what is read, and a strict YAML loader.

:func:`read_workflow` reads the text of a regular file of at most
:data:`MAX_WORKFLOW_BYTES` (never blocking on a FIFO, never reading past the
limit); :func:`parse_yaml` parses it with a loader that rejects duplicate
keys, keeps dates as strings, and bounds the work a hostile document can ask
for: at most :data:`MAX_YAML_NODES` nodes, and aliases that stand for at most
:data:`MAX_ALIAS_NODES` more. Every problem is a
:class:`~nexus.domain.errors.WorkflowError` naming the file (with the line and
column for YAML); a missing file is a :class:`~nexus.domain.errors.NotFoundError`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from nexus.domain.errors import NotFoundError, WorkflowError
from nexus.security.paths import read_at_most

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_WORKFLOW_BYTES",
    "MAX_YAML_NODES",
    "parse_yaml",
    "read_workflow",
]

#: The largest workflow file read (1 MiB); a larger one is refused unread.
MAX_WORKFLOW_BYTES = 1 << 20
#: The most YAML nodes aliases may add to a document (each alias counts the
#: nodes it stands for): ordinary anchors stay far below, an alias bomb does not.
MAX_ALIAS_NODES = 100_000
#: The most YAML nodes (scalars, lists, mappings) a document may have: PyYAML
#: resolves and builds each in Python (~5-15 us), so this bounds the parse time.
MAX_YAML_NODES = 250_000

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKey(yaml.MarkedYAMLError):
    """A mapping has the same key twice."""


class _StrictLoader(_SafeLoader):
    """A SafeLoader that rejects duplicate keys and reads dates as plain strings.

    Plans are JSON, so ``released: 2024-05-01`` stays the string ``"2024-05-01"``
    instead of becoming a :class:`datetime.date`.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Hashable, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            first = seen.get(key)
            if first is not None:
                raise _DuplicateKey(
                    problem=(
                        f"duplicate key {key!r} (first defined at line {first.start_mark.line + 1})"
                    ),
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node
        mapping: dict[Hashable, Any] = super().construct_mapping(node, deep=deep)
        return mapping

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        # called by the parser once per node as the document is composed: count them
        self._nodes = getattr(self, "_nodes", 0) + 1
        if self._nodes > MAX_YAML_NODES:
            raise _AliasBomb(
                problem=(
                    f"the document has more than {MAX_YAML_NODES:,} values "
                    "(scalars, lists, mappings): the limit"
                ),
                problem_mark=None,
            )
        tag: str = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return tag

    def construct_document(self, node: yaml.Node) -> Any:
        _check_aliases(node)
        return super().construct_document(node)


class _AliasBomb(yaml.MarkedYAMLError):
    """Aliases make the document too large (or make it contain itself)."""


def _check_aliases(root: yaml.Node) -> None:
    """Refuse a document whose aliases stand for more than :data:`MAX_ALIAS_NODES` nodes.

    The composer hands over a graph in which an alias is the very node it
    names, so a 700-byte "billion laughs" is ~100 nodes that stand for 10**9.
    The size each node stands for is computed once (memoised by identity), so
    this costs one visit per distinct node, whatever the aliases multiply.
    """
    size: dict[int, int] = {}
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    scalar = yaml.ScalarNode
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1
            for child in _children(node):
                total += 1 if type(child) is scalar else size[id(child)]
            size[key] = total
            if total - distinct > MAX_ALIAS_NODES:
                raise _AliasBomb(
                    problem=(
                        f"aliases expand the document past the limit of {MAX_ALIAS_NODES:,} "
                        "extra nodes (an alias bomb?)"
                    ),
                    problem_mark=node.start_mark,
                )
            continue
        if key in size:
            continue
        if key in on_path:
            raise _AliasBomb(
                problem="an alias refers to itself (the value would contain itself)",
                problem_mark=node.start_mark,
            )
        children = _children(node)
        distinct += 1 + len(children)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if type(c) is not scalar and id(c) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value  # type: ignore[no-any-return]
    return []


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_workflow(path: Path, file: str) -> str:
    """The text of a regular file of at most :data:`MAX_WORKFLOW_BYTES`.

    Opened non-blocking, so a FIFO cannot hang the open; the kind and size are
    checked on the open descriptor (no race with a rename), and at most one
    byte past the limit is ever read (the file may grow after the check).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFoundError(f"workflow file not found: {file}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise WorkflowError(f"cannot read the workflow file: {reason}", file=file) from None
    try:
        info = os.fstat(fd)
        mode = info.st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
            raise WorkflowError(
                f"cannot read the workflow file: it is {kind}, not a regular file", file=file
            )
        data = read_at_most(fd, MAX_WORKFLOW_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise WorkflowError(f"cannot read the workflow file: {reason}", file=file) from None
    finally:
        os.close(fd)
    if len(data) > MAX_WORKFLOW_BYTES:
        size = max(info.st_size, len(data))
        raise WorkflowError(
            f"the workflow file is {size / (1 << 20):.1f} MiB; the limit is "
            f"{MAX_WORKFLOW_BYTES >> 20} MiB",
            file=file,
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkflowError(
            f"cannot read the workflow file: not UTF-8 text (byte {exc.start})", file=file
        ) from None


def parse_yaml(text: str, file: str) -> Any:
    """The document ``text`` holds, parsed by the strict loader; ``file`` names it in errors."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{problem} ({exc.context})"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise WorkflowError(f"invalid YAML{where}: {problem}", file=file) from None
    except yaml.YAMLError as exc:
        raise WorkflowError(f"invalid YAML: {exc}", file=file) from None
    except RecursionError:
        raise WorkflowError("invalid YAML: nested too deeply", file=file) from None

"""The error tree drawn in ``nexus.domain.errors``'s docstring is the real one."""

from __future__ import annotations

import importlib
import pkgutil
import re

import nexus
from nexus.domain import errors
from nexus.domain.errors import NexusError

# one drawn line: the tree prefix, the class, its kind, then a description or "+ SecondBase"
LINE = re.compile(
    r"^    (?P<prefix>(?:│   |    )*(?:├── |└── ))?"
    r"(?P<name>\w+)\s+(?P<kind>\w+)(?P<rest>.*)$"
)


def drawn() -> dict[str, tuple[str | None, str, list[str]]]:
    """name -> (parent drawn above it, kind column, the ``+ Base`` names on its line)."""
    doc = errors.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    found: dict[str, tuple[str | None, str, list[str]]] = {}
    stack: list[str] = []
    for line in block.splitlines():
        match = LINE.match(line)
        assert match, f"not a tree line: {line!r}"
        depth = len(match["prefix"] or "") // 4
        del stack[depth:]
        parent = stack[-1] if stack else None
        assert match["name"] not in found, f"{match['name']} is drawn twice"
        found[match["name"]] = (parent, match["kind"], re.findall(r"\+ (\w+)", match["rest"]))
        stack.append(match["name"])
    return found


def every_error() -> set[type[NexusError]]:
    for module in pkgutil.walk_packages(nexus.__path__, "nexus."):
        if module.name.startswith("nexus.store.migrations") or module.name.endswith("__main__"):
            continue  # alembic's env.py runs only under alembic
        importlib.import_module(module.name)
    found: set[type[NexusError]] = set()
    todo: list[type[NexusError]] = [NexusError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("nexus.") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_every_error_class_is_drawn_under_its_first_base_with_its_kind() -> None:
    tree = drawn()
    classes = every_error()
    assert tree.pop("NexusError") == (None, "kind", [])
    missing = sorted(c.__name__ for c in classes if c.__name__ not in tree)
    assert not missing, f"drawn nowhere in nexus/domain/errors.py: {missing}"
    extra = sorted(set(tree) - {c.__name__ for c in classes})
    assert not extra, f"drawn but not a NexusError in the package: {extra}"
    for cls in classes:
        parent, kind, more = tree[cls.__name__]
        bases = [b.__name__ for b in cls.__bases__ if issubclass(b, NexusError)]
        assert parent == bases[0], f"{cls.__name__} is drawn under {parent}, not {bases[0]}"
        assert more == bases[1:], f"{cls.__name__}: drawn '+ {more}', bases {bases}"
        assert kind == cls.kind.value, f"{cls.__name__}: drawn {kind}, kind is {cls.kind}"

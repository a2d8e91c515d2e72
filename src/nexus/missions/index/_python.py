"""What a Python file holds, read with :mod:`ast`: symbols, imports, tests, chunks.

Symbols are the module, its classes and its functions and methods at any
depth, each with a qualified name (``Outer.method``), a signature, the first
line of its docstring and its line range. Imports are the modules a file
names, relative imports resolved against the file's own package; ``from
pkg import name`` records both ``pkg`` and ``pkg.name``, since ``name`` may be
a module. A test file (``test_*.py`` or ``*_test.py``) lists its test
functions (``test*`` at top level, and in ``Test*`` classes).

A file with a syntax error gets no symbols, a note naming the line, and is
still indexed as text.
"""

from __future__ import annotations

import ast
import posixpath
from dataclasses import dataclass, field

from nexus.missions.index._chunks import Chunk, split_lines


@dataclass(frozen=True, slots=True)
class Symbol:
    """One definition: what it is, where, and how it is called."""

    kind: str  # module | class | function | method | local (a def inside a def)
    name: str
    qualname: str
    signature: str
    doc: str
    start_line: int
    end_line: int


@dataclass(slots=True)
class Outline:
    """Everything the index keeps of one source file besides its text."""

    symbols: list[Symbol] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    tests: list[Symbol] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    note: str | None = None


def module_name(path: str) -> str:
    """The dotted module a path holds (``src/`` layouts drop ``src``; ``__init__`` its package)."""
    stem = path.rsplit(".", 1)[0]
    parts = [p for p in stem.split("/") if p]
    if parts and parts[0] in ("src", "lib") and len(parts) > 1:
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_test_path(path: str) -> bool:
    base = posixpath.basename(path)
    return base.endswith(".py") and (base.startswith("test_") or base.endswith("_test.py"))


def outline(path: str, text: str) -> Outline:
    """Parse ``text`` (the file at ``path``); never raises on bad source."""
    lines = text.splitlines()
    try:
        tree = ast.parse(text, filename=path)
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte in the source
        where = f" at line {exc.lineno}" if isinstance(exc, SyntaxError) and exc.lineno else ""
        note = f"python syntax error{where}: symbols not extracted"
        return Outline(chunks=split_lines(lines, (), ()), note=note)
    except RecursionError:
        return Outline(chunks=split_lines(lines, (), ()), note="nested too deeply to parse")
    module = module_name(path)
    found = Outline()
    found.symbols.append(
        Symbol("module", module.rsplit(".", 1)[-1] or module, module, "",
               _first_line(ast.get_docstring(tree)), 1, max(1, len(lines)))
    )  # fmt: skip
    _collect(tree.body, "", found.symbols, in_class=False)
    found.imports = _imports(tree, module, path.endswith("__init__.py"))
    if is_test_path(path):
        found.tests = [s for s in found.symbols if _is_test(s)]
    tops = [(_start(n), _end(n)) for n in tree.body if isinstance(n, _DEFS)]
    found.chunks = split_lines(lines, tops, found.symbols[1:])
    return found


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _end(node: ast.stmt) -> int:
    return node.end_lineno or node.lineno


def _start(node: ast.stmt) -> int:
    """A definition's first line, its decorators included."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _first_line(doc: str | None) -> str:
    if not doc:
        return ""
    return doc.strip().splitlines()[0].strip()[:200] if doc.strip() else ""


def _collect(body: list[ast.stmt], prefix: str, out: list[Symbol], *, in_class: bool) -> None:
    for node in body:
        if isinstance(node, ast.ClassDef):
            qual = f"{prefix}{node.name}"
            bases = ", ".join(ast.unparse(b) for b in node.bases)
            signature = f"class {node.name}({bases})" if bases else f"class {node.name}"
            doc = _first_line(ast.get_docstring(node))
            out.append(Symbol("class", node.name, qual, signature, doc, node.lineno, _end(node)))
            _collect(node.body, f"{qual}.", out, in_class=True)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            qual = f"{prefix}{node.name}"
            keyword = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
            returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
            signature = f"{keyword} {node.name}({ast.unparse(node.args)}){returns}"
            kind = "method" if in_class else "local" if prefix else "function"
            doc = _first_line(ast.get_docstring(node))
            out.append(Symbol(kind, node.name, qual, signature, doc, node.lineno, _end(node)))
            _collect(node.body, f"{qual}.", out, in_class=False)


def _imports(tree: ast.Module, module: str, is_package: bool) -> list[str]:
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                keep = len(parts) - (node.level - 1)
                if keep < 0:
                    continue  # beyond the top of the repository: nothing to link
                base = ".".join([*parts[:keep], *([base] if base else [])])
            if base:
                names.add(base)
            for alias in node.names:
                if alias.name != "*":
                    names.add(f"{base}.{alias.name}" if base else alias.name)
    return sorted(names)


def _is_test(symbol: Symbol) -> bool:
    if symbol.kind == "function":
        return symbol.name.startswith("test") and "." not in symbol.qualname
    if symbol.kind == "method":
        owner = symbol.qualname.rsplit(".", 1)[0]
        return symbol.name.startswith("test") and owner.split(".")[-1].startswith("Test")
    return False

"""Symbols of non-Python files through tree-sitter, when it is installed (extra ``[index]``).

``pip install 'nexus-missions[index]'`` brings ``tree-sitter`` and the
grammars for JavaScript, TypeScript (and TSX) and Go. Without them, or for
another language, a file is indexed at file level: its text is searchable
and returned as context, but it has no symbols; :func:`extraction` says so,
and :meth:`RepoIndex.stats` reports it per language.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from nexus.missions.index._chunks import split_lines
from nexus.missions.index._python import Outline, Symbol

#: language -> (grammar module, the function of it that returns the language)
GRAMMARS = {
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
}
#: node type -> symbol kind, over the grammars above
_KINDS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "abstract_class_declaration": "class",
    "method_definition": "method",
    "method_declaration": "method",
    "interface_declaration": "interface",
    "type_alias_declaration": "type",
    "enum_declaration": "type",
    "type_spec": "type",
}
_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function"})
_EXTRA = "pip install 'nexus-missions[index]'"


@cache
def _parser(language: str) -> Any | None:
    """A tree-sitter parser for ``language``, or None (not installed, or no grammar)."""
    grammar = GRAMMARS.get(language)
    if grammar is None:
        return None
    try:
        tree_sitter = importlib.import_module("tree_sitter")
        module = importlib.import_module(grammar[0])
    except ImportError:
        return None
    return tree_sitter.Parser(tree_sitter.Language(getattr(module, grammar[1])()))


def extraction(language: str) -> str:
    """How symbols of ``language`` are read, or why they are not."""
    if language == "python":
        return "symbols: ast"
    if language not in GRAMMARS:
        return "file level: no symbol extractor for this language"
    if _parser(language) is None:
        return f"file level: tree-sitter or its {language} grammar is not installed ({_EXTRA})"
    return "symbols: tree-sitter"


def outline(language: str, text: str) -> Outline | None:
    """Symbols and chunks of a file in ``language``; None when tree-sitter cannot read it."""
    parser = _parser(language)
    if parser is None:
        return None
    data = text.encode("utf-8")
    tree = parser.parse(data)
    symbols: list[Symbol] = []
    _walk(tree.root_node, data, "", symbols, depth=0)
    tops: list[tuple[int, int]] = []
    for node in tree.root_node.children:
        target = node
        if node.type in ("export_statement", "lexical_declaration") and node.named_children:
            target = node.named_children[0]
        if target.type in _KINDS or target.type in ("type_declaration", "variable_declarator"):
            tops.append((node.start_point[0] + 1, node.end_point[0] + 1))
    note = (
        "tree-sitter found syntax errors: symbols may be partial"
        if tree.root_node.has_error
        else None
    )
    return Outline(symbols=symbols, chunks=split_lines(text.splitlines(), tops, symbols), note=note)


def _name(node: Any, data: bytes) -> str | None:
    named = node.child_by_field_name("name")
    if named is None:
        return None
    return data[named.start_byte : named.end_byte].decode("utf-8", "replace")


def _walk(node: Any, data: bytes, prefix: str, out: list[Symbol], depth: int) -> None:
    if depth > 200:  # a pathological nesting: stop rather than exhaust the stack
        return
    for child in node.named_children:
        kind = _KINDS.get(child.type)
        if child.type == "variable_declarator":  # const f = () => ..., const g = function ...
            value = child.child_by_field_name("value")
            if value is not None and value.type in _FUNCTION_VALUES:
                kind = "function"
        name = _name(child, data) if kind else None
        if child.type == "method_declaration" and name is not None:
            receiver = child.child_by_field_name("receiver")
            owner = _receiver_type(receiver, data) if receiver is not None else ""
            qual = f"{owner}.{name}" if owner else name
        elif name is not None:
            qual = f"{prefix}{name}"
        if kind is not None and name is not None:
            first = data[child.start_byte : child.end_byte].split(b"{", 1)[0]
            signature = " ".join(first.decode("utf-8", "replace").split())[:200]
            out.append(
                Symbol(kind, name, qual, signature, "", child.start_point[0] + 1,
                       child.end_point[0] + 1)
            )  # fmt: skip
            _walk(child, data, f"{qual}.", out, depth + 1)
        else:
            _walk(child, data, prefix, out, depth + 1)


def _receiver_type(receiver: Any, data: bytes) -> str:
    """The type a Go method is declared on (``func (s *Server) Run()`` -> ``Server``)."""
    text = data[receiver.start_byte : receiver.end_byte].decode("utf-8", "replace")
    words = text.strip("()").replace("*", " ").split()
    return words[-1] if words else ""

"""Markdown into a small tree of blocks, from markdown-it-py's token stream.

The spec reader needs the block structure only -- headings, paragraphs,
lists and their items, fenced code -- with line numbers, so the inline
parse is switched off (a paragraph keeps its source text) and the tree is
built in one pass over the tokens, without recursion. markdown-it stops
reading nesting deeper than :data:`MAX_NESTING`; :attr:`Document.cut_at`
says where, so the reader can say so instead of silently losing text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from markdown_it import MarkdownIt

__all__ = ["MAX_NESTING", "Block", "Document", "parse_blocks"]

#: Token nesting markdown-it reads (twice its CommonMark preset's 20); deeper, it drops text.
MAX_NESTING = 40

BlockKind = Literal["heading", "paragraph", "fence", "list", "item", "quote"]

_CONTAINERS: dict[str, BlockKind] = {
    "bullet_list_open": "list",
    "ordered_list_open": "list",
    "list_item_open": "item",
    "blockquote_open": "quote",
}


@dataclass(slots=True)
class Block:
    """A block of the document.

    Attributes:
        kind: heading, paragraph, fence (fenced or indented code), list, item, quote.
        start: first 1-based line.
        end: last 1-based line.
        text: a heading's or paragraph's source text, a fence's code.
        level: a heading's level (1-6).
        info: a fence's language tag (first word of its info string).
        children: the blocks a list, item or quote holds.
    """

    kind: BlockKind
    start: int
    end: int
    text: str = ""
    level: int = 0
    info: str = ""
    children: list[Block] = field(default_factory=list)


@dataclass(slots=True)
class Document:
    """The top-level blocks, and the first line whose nesting was cut, if any."""

    blocks: list[Block]
    cut_at: int | None = None


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"maxNesting": MAX_NESTING})
    # the reader needs a paragraph's source text, not its inline tokens: skipping the
    # inline parse makes a large document about five times faster to read
    md.core.ruler.disable(["inline", "text_join"])
    return md


def _lines(span: list[int] | None, fallback: int) -> tuple[int, int]:
    if not span:
        return fallback, fallback
    return span[0] + 1, max(span[0] + 1, span[1])


def parse_blocks(text: str) -> Document:
    """The block tree of ``text`` (CommonMark)."""
    root: list[Block] = []
    stack: list[Block] = []
    pending: Block | None = None  # a heading or paragraph waiting for its inline text
    line = 1
    cut_at: int | None = None
    for token in _parser().parse(text):
        if token.map:
            line = token.map[0] + 1
        if token.level >= MAX_NESTING - 1 and cut_at is None:
            cut_at = line
        siblings = stack[-1].children if stack else root
        if token.type in _CONTAINERS:
            start, end = _lines(token.map, line)
            block = Block(_CONTAINERS[token.type], start, end)
            siblings.append(block)
            stack.append(block)
        elif token.nesting == -1 and token.type.replace("_close", "_open") in _CONTAINERS:
            if stack:
                stack.pop()
        elif token.type in ("heading_open", "paragraph_open"):
            start, end = _lines(token.map, line)
            kind: BlockKind = "heading" if token.type == "heading_open" else "paragraph"
            pending = Block(kind, start, end, level=int(token.tag[1:]) if kind == "heading" else 0)
            siblings.append(pending)
        elif token.type == "inline" and pending is not None:
            pending.text = token.content
            pending = None
        elif token.type in ("fence", "code_block"):
            start, end = _lines(token.map, line)
            info = token.info.split()[0] if token.info.split() else ""
            siblings.append(Block("fence", start, end, text=token.content, info=info))
    return Document(root, cut_at)

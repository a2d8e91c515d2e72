"""The deterministic reader: a structured Markdown design document into a :class:`SpecMap`.

What it recognises (``docs/missions.md`` says the same for users):

* **requirements** -- a list item or paragraph that carries an RFC 2119
  keyword (MUST, MUST NOT, SHALL, SHOULD, MAY...) or starts with an explicit id
  (``R1:``, ``REQ-3``, ``FR-2.1``, ``**NFR-1**``); under a "Requirements"
  heading every top-level list item is one, keyword or not. A heading that
  starts with an explicit id (``### R2: Expiry``) is a requirement too, its
  text the heading and the paragraph right under it;
* **acceptance criteria** -- a list introduced by an "Acceptance criteria:"
  label (inside the requirement's item, or right after it) or under an
  "Acceptance criteria" heading; they attach to the requirement they follow;
* **interfaces** -- fenced code blocks under an "Interface"/"API" heading, and
  fenced blocks with a language tag inside a requirement;
* **constraints** -- items and keyword paragraphs under performance, security,
  compatibility or "non-functional"/"constraints" headings.

Nested items under a requirement that are neither criteria nor requirements
are kept as its ``details``. The RFC 2119 conventions paragraph is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nexus.missions.spec._checks import find_ambiguities
from nexus.missions.spec._markdown import MAX_NESTING, Block, parse_blocks
from nexus.missions.spec._model import (
    Ambiguity,
    Constraint,
    Criterion,
    Interface,
    Requirement,
    SpecError,
    SpecMap,
    requirement_id,
)
from nexus.missions.spec._text import (
    SectionRole,
    constraint_kind,
    explicit_id,
    is_boilerplate,
    is_label,
    level_of,
    split_label,
)

__all__ = ["LOOKS_FOR", "parse_spec"]

#: What the reader looks for, for the message when it finds no requirement.
LOOKS_FOR = (
    "list items or paragraphs with an RFC 2119 keyword (MUST, SHOULD, MAY...), "
    "items starting with an explicit id (R1:, REQ-3), or list items under a "
    "'Requirements' heading"
)

_SYMBOL = re.compile(
    r"^\s*(?:export\s+)?(?:pub\s+)?(?:async\s+)?"
    r"(?:def|class|function|interface|type|struct|enum|fn|func|trait|message|service)"
    r"\s+([A-Za-z_]\w*)",
    re.MULTILINE,
)


@dataclass(slots=True)
class _Req:
    """A requirement while the document is read (its id is settled at the end)."""

    explicit: str | None
    text: str
    section: tuple[str, ...]
    start: int
    end: int
    criteria: list[Criterion] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    id: str = ""


@dataclass(slots=True)
class _Reader:
    file: str
    path: list[tuple[int, str]] = field(default_factory=list)
    reqs: list[_Req] = field(default_factory=list)
    constraints: list[tuple[str | None, str, Constraint]] = field(default_factory=list)
    interfaces: list[tuple[_Req | None, Interface]] = field(default_factory=list)
    notes: list[Ambiguity] = field(default_factory=list)
    explicit_lines: dict[str, int] = field(default_factory=dict)
    section_owner: _Req | None = None  # the requirement a "### R2: ..." heading opened
    owner_level: int = 0  # that heading's level: its sub-sections belong to it too
    label_pending: bool = False  # an "Acceptance criteria:" paragraph waits for its list

    # -- where we are --------------------------------------------------------------------

    @property
    def section(self) -> tuple[str, ...]:
        return tuple(text for _, text in self.path)

    def role(self) -> SectionRole:
        return SectionRole(self.section)

    def claim(self, rid: str | None, line: int) -> None:
        if rid is None:
            return
        first = self.explicit_lines.get(rid)
        if first is not None:
            raise SpecError(
                f"requirement id {rid} is used twice, on line {first} and line {line}; "
                "an explicit id must be unique",
                file=self.file,
                line=line,
            )
        self.explicit_lines[rid] = line

    # -- blocks ----------------------------------------------------------------------------

    def heading(self, block: Block) -> None:
        while self.path and self.path[-1][0] >= block.level:
            self.path.pop()
        self.path.append((block.level, block.text.strip()))
        self.label_pending = False
        if block.level <= self.owner_level:  # left the section "### R2: ..." opened
            self.section_owner, self.owner_level = None, 0
        rid, rest = explicit_id(block.text)
        if rid is not None and not self.role().constraint:
            self.claim(rid, block.start)
            self.section_owner = self.new_req(rid, rest, block.start, block.end)
            self.owner_level = block.level

    def block(self, block: Block, owner: _Req | None, *, first_in_section: bool = False) -> None:
        role = self.role()
        if block.kind == "paragraph":
            self.paragraph(block, owner, role, first_in_section=first_in_section)
        elif block.kind == "list":
            if self.label_pending:
                self.label_pending = False
                self.criteria(block, owner or self.last_req())
            elif role.criteria:
                target = owner or self.criteria_owner(block.start)
                if target is not None:
                    self.criteria(block, target)
            else:
                for item in block.children:
                    self.item(item, owner)
        elif block.kind == "fence":
            self.fence(block, owner, role)
        elif block.kind == "quote":
            for child in block.children:
                self.block(child, owner)

    def paragraph(
        self, block: Block, owner: _Req | None, role: SectionRole, *, first_in_section: bool
    ) -> None:
        text = block.text
        if is_label(text):
            self.label_pending = True
            return
        if is_boilerplate(text):
            return
        if role.criteria:
            target = owner or self.criteria_owner(block.start)
            if target is not None:
                target.criteria.append(Criterion(text=_one_line(text), line=block.start))
            return
        text, labelled = split_label(text)
        rid, rest = explicit_id(text)
        if role.constraint:
            if rid is not None or level_of(text) is not None:
                self.constraint(rid, rest, block, role)
        elif first_in_section and self.section_owner is not None and rid is None:
            # "### R2: Expiry" then its paragraph: one requirement
            req = self.section_owner
            req.text = f"{req.text}: {text.strip()}"
            req.end = block.end
        elif rid is not None or level_of(text) is not None:
            self.claim(rid, block.start)
            self.new_req(rid, rest, block.start, block.end)
        elif owner is not None:
            owner.details.append(_one_line(text))
        self.label_pending = labelled

    def item(self, item: Block, parent: _Req | None) -> None:
        children = item.children
        first = children[0] if children and children[0].kind == "paragraph" else None
        rest = children[1:] if first is not None else children
        role = self.role()
        owner: _Req | None = None
        labelled = False
        if first is not None:
            text, labelled = split_label(first.text)
            rid, body = explicit_id(text)
            if is_label(first.text):
                labelled = True
            elif role.constraint:
                self.constraint(rid, body, first, role)
            elif (
                rid is not None
                or level_of(text) is not None
                or (role.requirements and parent is None and self.section_owner is None)
            ):
                if not is_boilerplate(text):
                    self.claim(rid, first.start)
                    end = first.end - 1 if labelled else first.end  # the label is not its text
                    owner = self.new_req(rid, body, first.start, end)
            elif parent is not None:
                parent.details.append(_one_line(text))
        holder = owner or parent
        for child in rest:
            if child.kind == "paragraph" and is_label(child.text):
                labelled = True
            elif child.kind == "list" and labelled:
                labelled = False
                self.criteria(child, holder or self.last_req())
            elif child.kind == "list":
                for sub in child.children:
                    self.item(sub, holder)
            elif child.kind == "paragraph" and holder is not None:
                if level_of(child.text) is not None and owner is None:
                    self.block(child, holder)
                else:
                    holder.details.append(_one_line(child.text))
            else:
                self.block(child, holder)

    def fence(self, block: Block, owner: _Req | None, role: SectionRole) -> None:
        holder = owner or self.section_owner
        if not (role.interface or (block.info and holder is not None)):
            return
        interface = Interface(
            language=block.info,
            code=block.text,
            symbols=tuple(dict.fromkeys(_SYMBOL.findall(block.text))),
            section=self.section,
            lines=(block.start, block.end),
        )
        self.interfaces.append((holder, interface))

    def criteria_owner(self, line: int) -> _Req | None:
        """Whose criteria an "Acceptance criteria" heading lists: the one requirement
        directly in the section above it (or the one that section's heading opened)."""
        parent = self.section[:-1]
        candidates = [r for r in self.reqs if r.section == parent]
        if len(candidates) == 1:
            return candidates[0]
        self.orphan(line, len(candidates))
        return None

    def criteria(self, block: Block, target: _Req | None) -> None:
        if target is None:
            self.orphan(block.start)
            return
        todo = list(reversed(block.children))
        while todo:  # depth first, in document order, without recursion
            node = todo.pop()
            if node.kind == "paragraph" and node.text.strip():
                target.criteria.append(Criterion(text=_one_line(node.text), line=node.start))
            todo.extend(reversed(node.children))

    def constraint(self, rid: str | None, text: str, block: Block, role: SectionRole) -> None:
        assert role.constraint is not None
        self.claim(rid, block.start)
        made = Constraint(
            id=rid or "C",  # a derived id is settled with the requirements'
            kind=constraint_kind(text, role.constraint),
            text=_one_line(text),
            level=level_of(text),
            section=self.section,
            lines=(block.start, block.end),
        )
        self.constraints.append((rid, text, made))

    # -- helpers ---------------------------------------------------------------------------

    def new_req(self, rid: str | None, text: str, start: int, end: int) -> _Req:
        req = _Req(rid, text.strip(), self.section, start, end)
        self.reqs.append(req)
        return req

    def last_req(self) -> _Req | None:
        return self.reqs[-1] if self.reqs else None

    def orphan(self, line: int, candidates: int = 0) -> None:
        if candidates > 1:
            message = (
                f"acceptance criteria under '{self.section[-1]}' follow {candidates} "
                "requirements of the section above: which one do they belong to?"
            )
        else:
            message = "acceptance criteria with no requirement to attach them to"
        if any(n.kind == "orphan_criteria" and n.message == message for n in self.notes):
            return  # one note per heading, not one per paragraph under it
        self.notes.append(Ambiguity(kind="orphan_criteria", message=message, line=line))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _settle_ids(reader: _Reader) -> None:
    """Give every requirement and constraint without an explicit id one derived from its text.

    The same text twice gets ``-2``, ``-3``... after the first (and a
    ``duplicate`` ambiguity from the checks).
    """
    taken = set(reader.explicit_lines)

    def unique(base: str) -> str:
        rid, n = base, 1
        while rid in taken:
            n += 1
            rid = f"{base}-{n}"
        taken.add(rid)
        return rid

    for req in reader.reqs:
        req.id = req.explicit or unique(requirement_id(req.text))
    for i, (rid, text, made) in enumerate(reader.constraints):
        if rid is None:
            settled = made.model_copy(update={"id": unique(requirement_id(text, "C"))})
            reader.constraints[i] = (rid, text, settled)


def parse_spec(text: str, *, source: str) -> SpecMap:
    """Read a Markdown design document into a :class:`SpecMap`.

    Args:
        text: the document.
        source: its path as the user gave it; errors and the SpecMap name it.

    Returns:
        The SpecMap, with the ambiguities the reader noticed.

    Raises:
        SpecError: an explicit id is used twice (naming both lines), the
            document nests too deep to be read whole, or it holds no
            requirement (saying what the reader looks for).
    """
    doc = parse_blocks(text)
    if doc.cut_at is not None:
        raise SpecError(
            f"nests lists or quotes about {MAX_NESTING // 2} deep; Markdown is not read "
            "below that, and the requirements there would be lost: flatten the document",
            file=source,
            line=doc.cut_at,
        )
    reader = _Reader(source)
    previous: Block | None = None
    for block in doc.blocks:
        if block.kind == "heading":
            reader.heading(block)
        else:
            first = previous is not None and previous.kind == "heading"
            reader.block(block, reader.section_owner, first_in_section=first)
        previous = block
    if not reader.reqs:
        raise SpecError(f"no requirements found; the reader looks for {LOOKS_FOR}", file=source)
    _settle_ids(reader)
    requirements = tuple(
        Requirement(
            id=req.id,
            text=_one_line(req.text),
            level=level_of(req.text),
            section=req.section,
            lines=(req.start, req.end),
            criteria=tuple(req.criteria),
            details=tuple(req.details),
        )
        for req in reader.reqs
    )
    interfaces = tuple(
        iface.model_copy(update={"requirement": holder.id}) if holder is not None else iface
        for holder, iface in reader.interfaces
    )
    constraints = tuple(made for _, _, made in reader.constraints)
    notes = list(reader.notes)
    return SpecMap(
        title=_title(doc.blocks, source),
        source=source,
        requirements=requirements,
        interfaces=interfaces,
        constraints=constraints,
        ambiguities=(*notes, *find_ambiguities(requirements, constraints)),
    )


def _title(blocks: list[Block], source: str) -> str:
    headings = [b for b in blocks if b.kind == "heading" and b.text.strip()]
    for heading in headings:
        if heading.level == 1:
            return heading.text.strip()
    if headings:
        return headings[0].text.strip()
    stem = source.replace("\\", "/").rsplit("/", 1)[-1]
    return stem.rsplit(".", 1)[0] or stem

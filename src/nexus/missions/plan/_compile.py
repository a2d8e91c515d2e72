"""The constraint compiler: an architect's answer checked into a :class:`MissionPlan`.

Every rule is checked and every problem collected before anything is raised,
so one rejection tells the architect all it must fix:

* **shape**: JSON text or a mapping with ``items`` (and ``unmet``); each item
  an object with the fields of :class:`WorkItem` and no others; text and
  lists within their limits;
* **ids**: slugs (:data:`ITEM_ID`), unique;
* **paths**: :func:`normalise_path` (relative, inside the repository, not in
  ``.git`` or ``.nexus``, no control characters); ``tests`` are files, not
  globs, and an item's tests are not also in its ``owns`` (the coder may not
  rewrite the tests written against it);
* **ownership is disjoint**: no path -- an existing file, or a path an item
  names -- is matched by two items (``owns`` and ``tests`` both count), and
  no two items' globs could match one new path (:func:`glob_overlap`, exact);
  no named file of one item is a directory another item writes in, and none
  is a directory, or lies under a file, of the repository;
* **dependencies**: ``needs`` names other items of the plan, and no chain of
  them comes back to where it started (the cycle is named: ``a -> b -> a``);
* **requirements**: ids of the spec's requirements; every MUST and MUST NOT
  requirement, and every one without a level, is claimed by an item or listed
  in ``unmet`` with a reason; a SHOULD, SHOULD NOT or MAY no item claims is
  listed as unmet with the reason "not planned";
* **checks**: names from the available checks;
* **size**: at least one item, at most ``max_items``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nexus.missions.plan._graph import cycles, dependency_order
from nexus.missions.plan._model import (
    ITEM_ID,
    MissionPlan,
    PlanProblem,
    PlanRejected,
    Unmet,
    WorkItem,
)
from nexus.missions.plan._paths import (
    PathIndex,
    PathRefused,
    glob_overlap,
    is_glob,
    literal_prefix,
    normalise_path,
)
from nexus.missions.spec import SpecMap

__all__ = ["LIMITS", "MUST_LEVELS", "compile_plan"]

#: Levels a plan must address: claimed by an item, or unmet with a reason. ``None``:
#: a requirement without a keyword is taken as binding until someone says otherwise.
MUST_LEVELS = frozenset({"MUST", "MUST NOT", None})

#: The most characters or entries each part of an answer may hold.
LIMITS: Mapping[str, int] = {
    "answer": 1_000_000,  # characters of JSON text
    "title": 200,
    "summary": 4000,
    "reason": 1000,
    "owns": 50,
    "owned": 500,  # owns and tests of all items together
    "tests": 20,
    "needs": 50,
    "requirements": 200,
    "checks": 50,
    "unmet": 1000,
}
_FIELDS = ("id", "title", "summary", "owns", "tests", "needs", "requirements", "checks")
_LISTS = ("owns", "tests", "needs", "requirements", "checks")
_TOP = ("items", "unmet")
_SLUG = re.compile(ITEM_ID)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


def _show(value: object, limit: int = 60) -> str:
    """A model-written value quoted for a message: escaped, and cut when long."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def _key(key: object, limit: int = 60) -> str:
    """A model-written field name as a problem names it: cut when long."""
    text = str(key)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hint(name: str, known: Iterable[str]) -> str:
    names = sorted(set(known))
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if names and len(names) <= 12:
        return " (known: " + ", ".join(names) + ")"
    return ""


@dataclass
class _Item:
    """An item as read from the answer, before the rules between items."""

    index: int
    id: str | None
    title: str = ""
    summary: str = ""
    lists: dict[str, list[str]] = field(default_factory=dict)
    #: normalised owned entries: (pattern, field name such as ``owns[2]``)
    owned: list[tuple[str, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.id if self.id is not None else f"#{self.index + 1}"


class _Compiler:
    def __init__(self, spec: SpecMap, files: Sequence[str], checks: Sequence[str]) -> None:
        self.spec = spec
        self.files = files
        self.checks = list(dict.fromkeys(checks))
        self.problems: list[PlanProblem] = []

    def add(self, item: _Item | None, field_name: str | None, message: str) -> None:
        if item is not None and item.id is None:
            field_name = f"items[{item.index}]" + (f".{field_name}" if field_name else "")
            self.problems.append(PlanProblem(None, field_name, message))
            return
        self.problems.append(PlanProblem(None if item is None else item.id, field_name, message))

    def reject(self, field_name: str | None, message: str) -> PlanRejected:
        return PlanRejected([*self.problems, PlanProblem(None, field_name, message)])

    # -- shape -----------------------------------------------------------------------------

    def load(self, answer: Any) -> Mapping[str, Any]:
        if isinstance(answer, bytes | bytearray):
            try:
                answer = bytes(answer).decode("utf-8")
            except UnicodeDecodeError:
                raise self.reject(None, "the answer is not UTF-8 text") from None
        if isinstance(answer, str):
            if len(answer) > LIMITS["answer"]:
                raise self.reject(
                    None,
                    f"the answer is {len(answer):,} characters; the limit is {LIMITS['answer']:,}",
                )
            fenced = _FENCE.match(answer)
            try:
                answer = json.loads(fenced.group(1) if fenced else answer)
            except ValueError as exc:
                raise self.reject(None, f"the answer is not JSON: {exc}") from None
            except RecursionError:
                raise self.reject(
                    None, "the answer is not JSON a plan can be: nested too deeply"
                ) from None
        if not isinstance(answer, Mapping):
            raise self.reject(None, f"the answer is {_kind(answer)}, not an object with 'items'")
        for key in answer:
            if key not in _TOP:
                self.add(None, _key(key), "is not a field of a plan" + _hint(_key(key), _TOP))
        if "items" not in answer:
            raise self.reject("items", "is missing: a plan lists its work items")
        if not isinstance(answer["items"], list):
            raise self.reject("items", f"is {_kind(answer['items'])}, not a list of work items")
        unmet = answer.get("unmet", [])
        if not isinstance(unmet, list):
            raise self.reject("unmet", f"is {_kind(unmet)}, not a list")
        return answer

    def text(self, item: _Item, raw: Mapping[str, Any], key: str, *, required: bool) -> str:
        if key not in raw:
            if required:
                self.add(item, key, "is missing")
            return ""
        value = raw[key]
        if not isinstance(value, str):
            self.add(item, key, f"is {_kind(value)}, not text")
            return ""
        if required and not value.strip():
            self.add(item, key, "is empty")
        if len(value) > LIMITS[key]:
            self.add(item, key, f"is {len(value):,} characters; the limit is {LIMITS[key]:,}")
        if _CONTROL.search(value if key == "summary" else value.replace("\t", " ")) or (
            key != "summary" and "\n" in value
        ):
            self.add(
                item,
                key,
                "holds control characters" + ("" if key == "summary" else " or line breaks"),
            )
        return value

    def strings(self, item: _Item, raw: Mapping[str, Any], key: str) -> list[str]:
        value = raw.get(key, [])
        if not isinstance(value, list):
            self.add(item, key, f"is {_kind(value)}, not a list of text")
            return []
        if len(value) > LIMITS[key]:
            self.add(item, key, f"has {len(value)} entries; the limit is {LIMITS[key]}")
            value = value[: LIMITS[key]]
        out: list[str] = []
        for n, entry in enumerate(value):
            if not isinstance(entry, str):
                self.add(item, f"{key}[{n}]", f"is {_kind(entry)}, not text")
            else:
                out.append(entry)
        return out

    def item(self, index: int, raw: Any) -> _Item | None:
        if not isinstance(raw, Mapping):
            self.add(None, f"items[{index}]", f"is {_kind(raw)}, not a work item object")
            return None
        raw_id = raw.get("id")
        ok = isinstance(raw_id, str) and _SLUG.match(raw_id) is not None
        item = _Item(index=index, id=raw_id if ok else None)
        if raw_id is None:
            self.add(item, "id", "is missing")
        elif not ok:
            self.add(item, "id", f"{_show(raw_id)} is not a slug ({ITEM_ID}): {_slug_hint(raw_id)}")
        for key in raw:
            if key not in _FIELDS:
                name = _key(key)
                self.add(item, name, "is not a field of a work item" + _hint(name, _FIELDS))
        item.title = self.text(item, raw, "title", required=True)
        item.summary = self.text(item, raw, "summary", required=False)
        for key in _LISTS:
            item.lists[key] = list(dict.fromkeys(self.strings(item, raw, key)))
        return item

    # -- rules -----------------------------------------------------------------------------

    def paths(self, item: _Item) -> None:
        if not item.lists["owns"] and not item.lists["tests"]:
            self.add(item, "owns", "is empty: a work item owns the files it may change")
        for key in ("owns", "tests"):
            clean: list[str] = []
            for n, raw in enumerate(item.lists[key]):
                try:
                    path = normalise_path(raw)
                except PathRefused as exc:
                    self.add(item, f"{key}[{n}]", f"{_show(raw)} {exc}")
                    continue
                if key == "tests" and is_glob(path):
                    self.add(item, f"{key}[{n}]", f"{_show(raw)} is a glob: name each test file")
                    continue
                if path not in clean:
                    clean.append(path)
                    item.owned.append((path, f"{key}[{n}]"))
            item.lists[key] = clean
        owns = [(p, f) for p, f in item.owned if f.startswith("owns")]
        for test, where in [(p, f) for p, f in item.owned if f.startswith("tests")]:
            for pattern, own_field in owns:
                if glob_overlap(pattern, test) is not None:
                    self.add(
                        item,
                        where,
                        f"{test!r} is also in {own_field} ({pattern!r}): the coder may not "
                        "change the tests written against its item; own the test file in "
                        "'tests' only",
                    )
                    break

    def ids(self, items: Sequence[_Item]) -> None:
        seen: dict[str, _Item] = {}
        for item in items:
            if item.id is None:
                continue
            if item.id in seen:
                self.add(
                    item, "id", f"is also the id of items[{seen[item.id].index}]: ids are unique"
                )
            else:
                seen[item.id] = item

    def needs(self, items: Sequence[_Item]) -> dict[str, list[str]]:
        known = {item.id for item in items if item.id is not None}
        graph: dict[str, list[str]] = {}
        for item in items:
            valid: list[str] = []
            for n, need in enumerate(item.lists["needs"]):
                if need == item.id:
                    self.add(item, f"needs[{n}]", "an item cannot need itself")
                elif need not in known:
                    self.add(
                        item,
                        f"needs[{n}]",
                        f"{_show(need)} is no item of the plan" + _hint(need, known),
                    )
                else:
                    valid.append(need)
            item.lists["needs"] = valid
            if item.id is not None and item.id not in graph:
                graph[item.id] = valid
        for cycle in cycles(graph):
            message = "dependencies cycle: " + " -> ".join([*cycle, cycle[0]])
            message += "; an item can only need items that do not need it back"
            self.problems.append(PlanProblem(cycle[0], "needs", message))
        return graph

    def requirements(self, items: Sequence[_Item], unmet_raw: Sequence[Any]) -> list[Unmet]:
        known = {req.id: req for req in self.spec.requirements}
        constraints = {c.id for c in self.spec.constraints}
        claimed: dict[str, str] = {}
        for item in items:
            for n, rid in enumerate(item.lists["requirements"]):
                if rid in known:
                    claimed.setdefault(rid, item.name)
                elif rid in constraints:
                    self.add(
                        item,
                        f"requirements[{n}]",
                        f"{rid!r} is a constraint, not a requirement: constraints hold for every "
                        "item through its checks; list requirement ids here",
                    )
                else:
                    self.add(
                        item,
                        f"requirements[{n}]",
                        f"{_show(rid)} is no requirement of the spec" + _hint(rid, known),
                    )
            item.lists["requirements"] = [r for r in item.lists["requirements"] if r in known]
        unmet: dict[str, Unmet] = {}
        if len(unmet_raw) > LIMITS["unmet"]:
            self.add(None, "unmet", f"has {len(unmet_raw)} entries; the limit is {LIMITS['unmet']}")
        for n, entry in enumerate(unmet_raw[: LIMITS["unmet"]]):
            where = f"unmet[{n}]"
            if not isinstance(entry, Mapping) or set(entry) != {"requirement", "reason"}:
                self.add(None, where, "is not an object with exactly 'requirement' and 'reason'")
                continue
            rid, reason = entry["requirement"], entry["reason"]
            if not isinstance(rid, str) or rid not in known:
                hint = _hint(rid, known) if isinstance(rid, str) else ""
                self.add(
                    None,
                    f"{where}.requirement",
                    f"{_show(rid)} is no requirement of the spec{hint}",
                )
                continue
            if not isinstance(reason, str) or not reason.strip():
                self.add(None, f"{where}.reason", "is empty: say why the requirement is left unmet")
                continue
            if len(reason) > LIMITS["reason"] or _CONTROL.search(reason):
                self.add(
                    None,
                    f"{where}.reason",
                    f"is over {LIMITS['reason']} characters or holds control characters",
                )
                continue
            if rid in claimed:
                self.add(
                    None,
                    f"{where}.requirement",
                    f"{rid!r} is claimed by item {claimed[rid]!r} and listed as unmet: choose one",
                )
            elif rid in unmet:
                self.add(None, f"{where}.requirement", f"{rid!r} is listed as unmet twice")
            else:
                unmet[rid] = Unmet(requirement=rid, reason=" ".join(reason.split()))
        for req in self.spec.requirements:
            if req.id in claimed or req.id in unmet:
                continue
            if req.level in MUST_LEVELS:
                level = req.level or "no level"
                self.add(
                    None,
                    "unmet",
                    f"requirement {req.id!r} ({level}: {_show(req.text, 80)}) is claimed by "
                    "no item and not listed in 'unmet': plan it, or say why it is left unmet",
                )
            else:
                unmet[req.id] = Unmet(requirement=req.id, reason="not planned")
        order = {req.id: n for n, req in enumerate(self.spec.requirements)}
        return sorted(unmet.values(), key=lambda u: order[u.requirement])

    def check_names(self, item: _Item) -> None:
        for n, name in enumerate(item.lists["checks"]):
            if name not in self.checks:
                self.add(
                    item,
                    f"checks[{n}]",
                    f"{_show(name)} is no available check" + _hint(name, self.checks),
                )
        item.lists["checks"] = [c for c in item.lists["checks"] if c in self.checks]

    def ownership(self, items: Sequence[_Item]) -> None:
        total = sum(len(item.owned) for item in items)
        if total > LIMITS["owned"]:
            self.add(None, "items", f"own {total} paths in all; the limit is {LIMITS['owned']}")
            return
        literals = {path for item in items for path, _ in item.owned if not is_glob(path)}
        index = PathIndex([*self.files, *literals])
        # path -> (item index, entry) of each item owning it, the item's first entry that does
        owners: dict[str, list[tuple[int, str]]] = {}
        for n, item in enumerate(items):
            for pattern, where in item.owned:
                for path in index.matching(pattern):
                    hits = owners.setdefault(path, [])
                    if not hits or hits[-1][0] != n:
                        hits.append((n, where))
        # (first item, its entry, later item, its entry) -> the paths both own
        clashes: dict[tuple[int, str, int, str], list[str]] = {}
        for path in sorted(owners):
            (first, first_where), *rest = owners[path]
            for later, later_where in rest:
                clashes.setdefault((first, first_where, later, later_where), []).append(path)
        entries = {(n, w): p for n, item in enumerate(items) for p, w in item.owned}
        for (first, first_where, later, later_where), paths in clashes.items():
            more = f" (and {len(paths) - 1} more files)" if len(paths) > 1 else ""
            pattern = entries[(later, later_where)]
            matched = "" if pattern == paths[0] else f", matched by {pattern!r},"
            what = f"{paths[0]!r}{more}{matched} is"
            first_pattern = entries[(first, first_where)]
            self._clash(
                items[first], first_where, first_pattern, items[later], later_where, what, pattern
            )
        reported = {(a, b) for a, _, b, _ in clashes}
        globs = [[(p, w) for p, w in item.owned if is_glob(p)] for item in items]
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                if (a, b) not in reported:
                    self._new_path_clash(items[a], globs[a], items[b], globs[b])
        self._directory_clashes(items)

    def _directory_clashes(self, items: Sequence[_Item]) -> None:
        """A path one item owns (or the repository has) as a file is no other's directory.

        ``a`` owning ``calc/util`` and ``b`` owning ``calc/util/x.py`` share no
        file, yet their merges can never combine: one makes a file where the
        other needs a directory.
        """
        tracked = set(self.files)
        # directory -> (item index, its entry, the path it owns under the directory)
        under: dict[str, list[tuple[int, str, str]]] = {}
        for n, item in enumerate(items):
            for pattern, where in item.owned:
                parts = literal_prefix(pattern).split("/")[:-1]
                for depth in range(1, len(parts) + 1):
                    under.setdefault("/".join(parts[:depth]), []).append((n, where, pattern))
        for directory in sorted(under):
            n, where, pattern = under[directory][0]
            if directory in tracked:
                self.add(
                    items[n],
                    where,
                    f"{pattern!r} would need {directory!r} to be a directory, but the "
                    "repository has a file there",
                )
        folders = {"/".join(p.split("/")[:d]) for p in tracked for d in range(1, p.count("/") + 1)}
        for item in items:
            for pattern, where in item.owned:
                if pattern in folders:
                    self.add(
                        item,
                        where,
                        f"{pattern!r} is a directory of the repository, not a file: own the "
                        f"files in it ({pattern + '/**'!r})",
                    )
        seen: set[tuple[int, int]] = set()
        for n, item in enumerate(items):
            # a glob ('calc/*') may make such a file but need not: only a named file clashes
            for pattern, where in item.owned:
                if is_glob(pattern):
                    continue
                for other, other_where, inside in under.get(pattern, ()):
                    if other == n or (n, other) in seen:
                        continue
                    seen.add((n, other))
                    self.add(
                        items[other],
                        other_where,
                        f"{inside!r} lies in {pattern!r}, which item {item.name!r} owns "
                        f"as a file ({where}): one may not make a file where the other "
                        "needs a directory; rename one of them",
                    )

    def _new_path_clash(
        self,
        first: _Item,
        first_globs: Sequence[tuple[str, str]],
        later: _Item,
        later_globs: Sequence[tuple[str, str]],
    ) -> None:
        """Report the first pair of the two items' globs that could match one new path."""
        for first_pattern, first_where in first_globs:
            for later_pattern, later_where in later_globs:
                witness = glob_overlap(first_pattern, later_pattern)
                if witness is not None:
                    what = f"a new file such as {witness!r}, matched by {later_pattern!r}, would be"
                    self._clash(
                        first, first_where, first_pattern, later, later_where, what, later_pattern
                    )
                    return

    def _clash(
        self,
        first: _Item,
        first_where: str,
        first_pattern: str,
        later: _Item,
        later_where: str,
        what: str,
        later_pattern: str,
    ) -> None:
        """``what`` (a path and a verb) is owned by ``later`` here and by ``first`` too."""
        self.add(
            later,
            later_where,
            f"{what} owned by item {first.name!r} too ({first_where} {first_pattern!r}): "
            "two work items may not own one file; give it to one of them, and have the "
            "other need it",
        )


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list"}.get(
        type(value), "an object" if isinstance(value, Mapping) else f"a {type(value).__name__}"
    )


def _slug_hint(raw: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
    if slug and not slug[0].isalpha():
        slug = "w-" + slug
    slug = slug[:40].rstrip("-")
    if slug and _SLUG.match(slug):
        return f"lowercase letters, digits and '-', starting with a letter (did you mean {slug!r}?)"
    return "lowercase letters, digits and '-', starting with a letter"


def compile_plan(
    answer: Any,
    *,
    spec: SpecMap,
    files: Sequence[str],
    checks: Sequence[str],
    max_items: int = 50,
    require_tests: bool = False,
) -> MissionPlan:
    """Check an architect's answer against every rule; the plan it describes, in dependency order.

    Args:
        answer: JSON text (a Markdown fence around it is tolerated) or the
            parsed mapping, in the shape :func:`plan_schema` gives.
        spec: the mission's SpecMap: requirement ids, and which are MUSTs.
        files: the repository's files (repository-relative, ``/``-separated):
            a glob that matches one of them is checked against every item.
        checks: the checks an item's envelope may name.
        max_items: the most work items a plan may have.
        require_tests: every item names the test files that prove it (a hardening
            mission: each fix comes with the test that shows it).

    Returns:
        The plan: paths normalised, duplicates dropped, items ordered so each
        comes after what it needs, and ``unmet`` with every SHOULD or MAY no
        item claims.

    Raises:
        PlanRejected: every problem found, each naming its item and field.

    Example:
        >>> from nexus.missions.spec import parse_spec
        >>> spec = parse_spec("# S\\n\\n- R1: It MUST work.\\n", source="s.md")
        >>> plan = compile_plan(
        ...     {"items": [{"id": "core", "title": "Core", "owns": ["core.py"],
        ...                 "requirements": ["R1"], "checks": ["tests"]}]},
        ...     spec=spec, files=[], checks=["tests"])
        >>> plan.order()
        (('core',),)
    """
    compiler = _Compiler(spec, files, checks)
    data = compiler.load(answer)
    raw_items: list[Any] = data["items"]
    if not raw_items:
        compiler.add(None, "items", "is empty: a plan has at least one work item")
    if len(raw_items) > max_items:
        compiler.add(None, "items", f"has {len(raw_items)} work items; the limit is {max_items}")
        raw_items = raw_items[:max_items]
    items = [item for n, raw in enumerate(raw_items) if (item := compiler.item(n, raw)) is not None]
    compiler.ids(items)
    for item in items:
        compiler.paths(item)
        compiler.check_names(item)
        if require_tests and not item.lists["tests"]:
            compiler.add(
                item,
                "tests",
                "is empty: in a hardening mission every work item names the test files "
                "that prove its fix",
            )
    compiler.needs(items)
    unmet = compiler.requirements(items, data.get("unmet", []))
    compiler.ownership(items)
    if compiler.problems:
        raise PlanRejected(compiler.problems)
    plan_items = [
        WorkItem(
            id=item.id or "",
            title=item.title.strip(),
            summary=item.summary.strip(),
            **{key: tuple(item.lists[key]) for key in _LISTS},
        )
        for item in items
    ]
    return MissionPlan(items=dependency_order(plan_items), unmet=tuple(unmet))

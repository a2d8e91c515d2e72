"""A plan without a model: one work item per requirement section.

:func:`plan_from_spec` is the fallback when no architect is configured, and
what tests plan with. Its rules are simple and written down, so its plans are
predictable:

1. **Items.** Requirements are grouped by the headings they sit under
   (``Requirement.section``), in the order the groups first appear; each group
   is one work item claiming all of its requirements. Past ``max_items``
   groups, the rest join the last item.
2. **Names.** An item is named after its innermost heading that is not a
   generic one ("Requirements", "Functional requirements", "Overview", ...);
   of a heading with a colon, the part before it (``durations: a small
   library`` gives ``durations``); otherwise its first three words. The id is
   that name as a slug (unique: ``-2``, ``-3``...); the title is the name.
3. **Files.** An item owns the files its requirements name (``src/app.py``,
   `` `cache.py` ``: a word with a known source extension, in the text, the
   criteria, the details or an interface of the group). A name that is not a
   file of the repository but the end of exactly one (``cache.py`` for
   ``src/pkg/cache.py``) means that file. A test file named (``test_*``,
   ``*_test.*``, under ``tests/``) goes to ``tests``. A file an earlier item
   already owns is not owned again: the item ``needs`` that earlier item.
   When a group names no file, it owns a new module named after it --
   ``src/<pkg>/<name>.py`` when the repository has one package under
   ``src/``, ``<pkg>/<name>.py`` when it has one top-level package, else
   ``<name>.py`` -- and its tests are ``tests/test_<name>.py``.
4. **Checks.** Every item must pass every check given.

The plan goes through :func:`compile_plan` like any architect's answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from nexus.missions.plan._compile import compile_plan
from nexus.missions.plan._model import MissionPlan
from nexus.missions.plan._paths import PathRefused, normalise_path
from nexus.missions.spec import Requirement, SpecMap

__all__ = ["SOURCE_EXTENSIONS", "plan_from_spec"]

#: Extensions of the file names a requirement's text can make an item own.
SOURCE_EXTENSIONS = (
    "py", "pyi", "js", "mjs", "cjs", "jsx", "ts", "tsx", "go", "rs", "java", "kt", "rb",
    "c", "h", "cc", "cpp", "hpp", "cs", "php", "swift", "scala", "sh", "sql",
    "toml", "yaml", "yml", "json", "cfg", "ini",
)  # fmt: skip
_PATH = re.compile(
    r"(?<![\w./-])((?:[\w.-]+/)*[\w-][\w.-]*\.(?:" + "|".join(SOURCE_EXTENSIONS) + r"))(?![\w/])"
)
_GENERIC = re.compile(
    r"^(?:(?:functional|non-functional|other|core|general|main)\s+)?"
    r"(?:requirements?|overview|specification|spec|features?|behaviou?r|scope)$",
    re.IGNORECASE,
)
_TEST_FILE = re.compile(r"(?:^|/)(?:tests?/|test_[^/]*$|[^/]*_test\.\w+$)")


def _name(section: Sequence[str]) -> str:
    for heading in reversed(section):
        text = re.sub(r"^\s*\[?[A-Za-z]+-?\d+(?:\.\d+)*\]?\s*[:.)-]\s*", "", heading).strip()
        if not text or _GENERIC.match(text):
            continue
        head = text.split(":", 1)[0] if ":" in text else " ".join(text.split()[:3])
        if re.search(r"[a-z0-9]", head.lower()):
            return head
    return "requirements"


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = "item-" + slug if slug else "item"
    return slug[:limit].rstrip("-")


def _package(files: Sequence[str]) -> str:
    """Where new modules go: the one package under ``src/``, the one top-level one, or the root."""
    for pattern in (r"^src/([A-Za-z_]\w*)/__init__\.py$", r"^([A-Za-z_]\w*)/__init__\.py$"):
        packages = {m.group(1) for f in files if (m := re.match(pattern, f))}
        packages.discard("tests")
        if len(packages) == 1:
            (name,) = packages
            return f"src/{name}" if pattern.startswith("^src") else name
    return ""


def _named_paths(texts: Sequence[str], files: Sequence[str]) -> list[str]:
    known = set(files)
    found: list[str] = []
    for text in texts:
        for raw in _PATH.findall(text):
            try:
                path = normalise_path(raw)
            except PathRefused:
                continue
            if path not in known:
                ends = [f for f in files if f.endswith("/" + path)]
                path = ends[0] if len(ends) == 1 else path
            if path not in found:
                found.append(path)
    return found


def _texts(spec: SpecMap, group: Sequence[Requirement]) -> list[str]:
    ids = {req.id for req in group}
    texts: list[str] = []
    for req in group:
        texts += [req.text, *req.details, *(c.text for c in req.criteria)]
    texts += [i.code for i in spec.interfaces if i.requirement in ids]
    return texts


def plan_from_spec(
    spec: SpecMap,
    *,
    files: Sequence[str] = (),
    checks: Sequence[str] = (),
    max_items: int = 50,
) -> MissionPlan:
    """A plan with one work item per requirement section, by the rules in this module's doc.

    Args:
        spec: the mission's SpecMap.
        files: the repository's files (repository-relative, ``/``-separated).
        checks: the checks every item must pass.
        max_items: the most work items; later sections join the last one.

    Raises:
        PlanRejected: the rules give a plan :func:`compile_plan` refuses (a
            file the text names that no item may own is left out instead).
    """
    groups: dict[tuple[str, ...], list[Requirement]] = {}
    for req in spec.requirements:
        groups.setdefault(req.section, []).append(req)
    merged = list(groups.values())
    if len(merged) > max_items > 0:
        merged = [*merged[: max_items - 1], [r for g in merged[max_items - 1 :] for r in g]]
    package = _package(files)
    owner: dict[str, str] = {}  # path -> id of the item that owns it
    taken: set[str] = set()
    items: list[dict[str, Any]] = []
    for group in merged:
        name = _name(group[0].section if group[0].section else (spec.title,))
        item_id = base = _slug(name)
        n = 2
        while item_id in taken:
            suffix = f"-{n}"
            item_id, n = base[: 40 - len(suffix)].rstrip("-") + suffix, n + 1
        taken.add(item_id)
        owns: list[str] = []
        tests: list[str] = []
        needs: list[str] = []
        for path in _named_paths(_texts(spec, group), files):
            if path in owner:
                if owner[path] not in needs:
                    needs.append(owner[path])
                continue
            (tests if _TEST_FILE.search(path) else owns).append(path)
            owner[path] = item_id
        if not owns:
            module = item_id.replace("-", "_")
            stem = module
            for k in range(2, 1000):
                new = f"{package}/{stem}.py" if package else f"{stem}.py"
                test = f"tests/test_{stem}.py"
                if new not in owner and test not in owner and new not in files:
                    break
                stem = f"{module}_{k}"
            owns.append(new)
            owner[new] = item_id
            if not tests and test not in owner:
                tests.append(test)
                owner[test] = item_id
        items.append(
            {
                "id": item_id,
                "title": name.strip(),
                "summary": "Meet " + ", ".join(req.id for req in group) + ".",
                "owns": owns,
                "tests": tests,
                "needs": needs,
                "requirements": [req.id for req in group],
                "checks": list(dict.fromkeys(checks)),
            }
        )
    return compile_plan(
        {"items": items, "unmet": []}, spec=spec, files=files, checks=checks, max_items=max_items
    )

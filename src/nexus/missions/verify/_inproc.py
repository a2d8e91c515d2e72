"""The checks Nexus runs itself: scope, the secret scan and the docs check.

They read the work tree from the host, where the checked code cannot reach
but the files it wrote can mislead: every file is opened beneath the work
tree's descriptor with no symbolic link followed anywhere
(:mod:`nexus.security.paths`), read up to a cap, and skipped when binary.
A changed path that is absolute or climbs out of the work tree is a scope
failure and is never opened.
"""

from __future__ import annotations

import ast
import hashlib
import math
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from nexus.missions.verify._model import Diagnostic
from nexus.security.paths import open_beneath, open_root, read_at_most, split_beneath

__all__ = [
    "MAX_SCAN_BYTES",
    "MAX_SECRETS",
    "ApiSymbol",
    "FileReader",
    "check_api",
    "check_docs",
    "check_scope",
    "glob_match",
    "public_api",
    "scan_secrets",
]

#: Bytes of one file the secret scan and the docs check read.
MAX_SCAN_BYTES = 2 << 20
#: Bytes of one Python file the api check reads (the build check compiles as many).
MAX_API_BYTES = 8 << 20
#: Secrets the scan reports before it stops (one is enough to fail the check).
MAX_SECRETS = 100
_SNIFF = 8192


# -- reading the work tree -------------------------------------------------------------


class FileReader:
    """Reads files beneath a work tree, never through a link, never past a cap."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)

    def read(self, rel: str, limit: int = MAX_SCAN_BYTES) -> bytes | None:
        """The file's bytes; None when it is gone, a link, not a regular file, or binary.

        A file larger than ``limit`` gives its first ``limit`` bytes.
        """
        parts = split_beneath(rel)
        if not parts:
            return None
        try:
            dirfd = open_root(self.root)
        except OSError:
            return None
        try:
            fd = open_beneath(dirfd, parts, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:  # gone, a link on the way (ELOOP/EXDEV), not a directory...
            return None
        finally:
            os.close(dirfd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = read_at_most(fd, limit)
        except OSError:
            return None
        finally:
            os.close(fd)
        return None if b"\0" in data[:_SNIFF] else data


# -- scope -----------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("/"):
        pattern += "**"
    segments = [s for s in pattern.split("/") if s not in ("", ".")]
    regex = ""
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            if not last:
                regex += "(?:[^/]+/)*"
            elif i == 0:
                regex += "[^/]+(?:/[^/]+)*"
            else:
                regex = regex[:-1] + "(?:/[^/]+)*"
            continue
        for char in segment:
            regex += "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)
        regex += "" if last else "/"
    return re.compile(regex, re.DOTALL)


def glob_match(pattern: str, path: str) -> bool:
    """Whether ``path`` (relative, ``/``-separated) matches ``pattern``.

    The globs of a plan's ``owns`` (``nexus.missions.plan``): ``*`` and ``?``
    stay within one path component; ``**`` as a whole component is any
    number of components (``src/**`` is everything under ``src``;
    ``**/test_*.py`` a test file at any depth, the top included); ``[``,
    ``]``, ``{`` and ``}`` are ordinary characters (``pages/[id].tsx`` is
    that file); case counts. A pattern ending in ``/`` means everything under it.

    Example:
        >>> glob_match("src/**/*.py", "src/a/b.py"), glob_match("src/*.py", "src/a/b.py")
        (True, False)
    """
    return _glob_regex(pattern).fullmatch(path) is not None


def check_scope(check: str, changed: Sequence[str], owns: Sequence[str]) -> list[Diagnostic]:
    """A diagnostic per changed path that no ``owns`` glob covers, or that leaves the tree.

    An empty ``owns`` owns nothing: every change is out of scope.
    """
    out = []
    for path in changed:
        parts = split_beneath(path)
        if not parts:
            out.append(
                Diagnostic(check, path[:300], None, "outside",
                           "the path is absolute, empty or climbs out of the work tree")
            )  # fmt: skip
            continue
        norm = "/".join(parts)
        if not any(glob_match(p, norm) for p in owns):
            owned = ", ".join(owns[:10]) if owns else "nothing"
            out.append(
                Diagnostic(check, norm, None, "not-owned",
                           f"changed a file the work item does not own (it owns: {owned})")
            )  # fmt: skip
    return out


# -- secrets ---------------------------------------------------------------------------

_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("aws-access-key-id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})\b"),
        ("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
        ("stripe-key", r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}\b"),
        ("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}"),
        ("openai-or-anthropic-key", r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{32,}"),
        ("huggingface-token", r"\bhf_[A-Za-z0-9]{30,}\b"),
        ("private-key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    )
)
# no leading name pattern and bounded gaps: each place a key word occurs costs a bounded
# amount of work, so a crafted file cannot make the scan quadratic
_ASSIGNED = re.compile(
    r"(?i)(?:secret|token|passw(?:or)?d|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|credential|auth)[\w.-]{0,40}[\"']?\s{0,8}[:=]{1,2}\s{0,8}[bru]?[\"']([^\"'\s]{16,200})[\"']"
)
# JSON Web Tokens are found by splitting dotted runs, not by a regex that would rescan
# a long run from every 'eyJ' in it
_DOTTED = re.compile(r"[A-Za-z0-9_.-]{40,}")
_PLACEHOLDER = re.compile(r"(?i)example|changeme|dummy|placeholder|your[_-]|x{6,}|\*{4,}|<|\{")


def entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character."""
    if not text:
        return 0.0
    counts: dict[str, int] = {}
    for c in text:
        counts[c] = counts.get(c, 0) + 1
    n = len(text)
    return -sum(k / n * math.log2(k / n) for k in counts.values())


def _random_looking(value: str) -> bool:
    classes = sum(
        (any(c.islower() for c in value), any(c.isupper() for c in value),
         any(c.isdigit() for c in value))
    )  # fmt: skip
    return classes >= 2 and entropy(value) >= 3.5 and not _PLACEHOLDER.search(value)


def _jwts(line: str) -> list[str]:
    """``header.payload.signature`` runs whose first two parts are base64url JSON objects."""
    found: list[str] = []
    if "eyJ" not in line:
        return found
    for run in _DOTTED.finditer(line):
        parts = run.group(0).split(".")
        for i in range(len(parts) - 2):
            a, b, c = parts[i : i + 3]
            if (
                a.startswith("eyJ")
                and b.startswith("eyJ")
                and min(len(a), len(b), len(c) + 3) >= 13
            ):
                found.append(".".join((a, b, c)))
                break
    return found


def scan_secrets(
    check: str, reader: FileReader, changed: Sequence[str]
) -> tuple[list[Diagnostic], list[str]]:
    """Secrets in the changed files: well-known key formats, random-looking assigned values.

    It stops after :data:`MAX_SECRETS` finds.

    Returns:
        The diagnostics -- file, line, the kind of secret and a fingerprint
        (the first 12 hex digits of its SHA-256), never the value -- and the
        values found, for the caller to redact from every output.
    """
    out: list[Diagnostic] = []
    found: list[str] = []
    for path in changed:
        data = reader.read(path)
        if data is None:
            continue
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            hits = [(name, m.group(0)) for name, rx in _FORMATS for m in rx.finditer(line)]
            hits += [("jwt", token) for token in _jwts(line)]
            hits += [
                ("high-entropy-assignment", m.group(1))
                for m in _ASSIGNED.finditer(line)
                if _random_looking(m.group(1)) and not any(m.group(1) in v for _, v in hits)
            ]
            for name, value in hits:
                if len(out) >= MAX_SECRETS:
                    return out, found
                digest = hashlib.sha256(value.encode()).hexdigest()[:12]
                found.append(value)
                out.append(
                    Diagnostic(check, path, number, name,
                               f"a {name.replace('-', ' ')} is written in the file "
                               f"(fingerprint {digest}): load it from the environment or a "
                               "secret store instead, and rotate it")
                )  # fmt: skip
    return out, found


# -- docs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiSymbol:
    """One public function, class or method of a module, as the docs check sees it."""

    name: str
    signature: str
    line: int
    documented: bool


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
    if isinstance(node, ast.ClassDef):
        bases = ", ".join(ast.unparse(b) for b in [*node.bases, *node.keywords])
        init = next(
            (n for n in node.body
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "__init__"),
            None,
        )  # fmt: skip
        return f"class({bases})" + (_signature(init) if init is not None else "")
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    prefix = "async " if isinstance(node, ast.AsyncFunctionDef) else ""
    return f"{prefix}({ast.unparse(node.args)}){returns}"


def _exported(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        names_all = isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        )
        if names_all and isinstance(node, ast.Assign):
            if not isinstance(node.value, (ast.List, ast.Tuple)):
                return None  # computed: every public name counts
            return {
                e.value
                for e in node.value.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            }
    return None


def public_api(source: bytes) -> dict[str, ApiSymbol] | None:
    """The public functions, classes and methods of a module; None when it does not parse.

    Public: a top-level name without a leading underscore (and in ``__all__``
    when the module lists one), and the methods of such a class without one.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    exported = _exported(tree)
    out: dict[str, ApiSymbol] = {}
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    try:
        for node in tree.body:
            if not isinstance(node, kinds) or node.name.startswith("_"):
                continue
            if exported is not None and node.name not in exported:
                continue
            doc = ast.get_docstring(node) is not None
            out[node.name] = ApiSymbol(node.name, _signature(node), node.lineno, doc)
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                        not item.name.startswith("_")
                    ):
                        name = f"{node.name}.{item.name}"
                        documented = ast.get_docstring(item) is not None
                        out[name] = ApiSymbol(name, _signature(item), item.lineno, documented)
    except RecursionError:
        return None
    return out


def _public_module(path: str) -> bool:
    parts = path.split("/")
    base = parts[-1]
    if not base.endswith(".py") or base in ("conftest.py", "setup.py", "__main__.py"):
        return False
    if base.startswith("test_") or base.endswith("_test.py"):
        return False
    if any(p in ("tests", "test", "docs", "examples", "scripts", "bench") for p in parts[:-1]):
        return False
    return not any(p.startswith("_") and p != "__init__.py" for p in parts)


def _is_docs(path: str) -> bool:
    base = path.rsplit("/", 1)[-1].lower()
    return path.startswith("docs/") or "/docs/" in path or base.startswith("readme")


def check_docs(
    check: str,
    reader: FileReader,
    changed: Sequence[str],
    base: dict[str, bytes | None] | None,
) -> list[Diagnostic]:
    """Public API that changed without a docstring, or without a change to the docs.

    A symbol counts as changed when it is new or its signature differs from
    ``base`` (the files' content before the change; ``None`` for a file that
    did not exist). Without ``base`` only docstrings are checked, of every
    public symbol of the changed files, and the docs-change rule is not applied.
    """
    out: list[Diagnostic] = []
    touched: list[str] = []
    docs_changed = any(_is_docs(p) for p in changed)
    for path in changed:
        if not _public_module(path):
            continue
        data = reader.read(path)
        now = public_api(data) if data is not None else None
        if not now:
            continue
        before: dict[str, ApiSymbol] = {}
        if base is not None and (old := base.get(path)) is not None:
            before = public_api(old) or {}
        for name, symbol in now.items():
            if base is not None and name in before and before[name].signature == symbol.signature:
                continue  # unchanged: an old undocumented symbol is not this change's doing
            if base is not None:
                touched.append(f"{path}:{name}")
            if not symbol.documented:
                out.append(
                    Diagnostic(check, path, symbol.line, "missing-docstring",
                               f"public {name} has no docstring: say what it does, its "
                               "arguments, what it returns and raises")
                )  # fmt: skip
    if touched and not docs_changed:
        shown = ", ".join(touched[:10]) + (" ..." if len(touched) > 10 else "")
        out.append(
            Diagnostic(check, None, None, "docs-not-updated",
                       f"the public API changed ({shown}) but nothing under docs/ nor a "
                       "README changed: document the new or changed API")
        )  # fmt: skip
    return out


# -- api (hardening) -------------------------------------------------------------------


def check_api(
    check: str,
    reader: FileReader,
    changed: Sequence[str],
    base: dict[str, bytes | None],
) -> list[Diagnostic]:
    """Public API that a change added, removed or re-signed: a hardening mission adds no
    feature and breaks no caller.

    Public as for the docs check (:func:`public_api`); ``base`` holds the
    changed Python files' content before the change (``None``: the file is
    new). A fix may add private helpers (``_name``) and change bodies freely.
    A file that does not parse is left to the ``build`` check; one larger than
    :data:`MAX_API_BYTES` is refused (what it defines could not be read whole).
    """
    out: list[Diagnostic] = []
    for path in changed:
        if not _public_module(path):
            continue
        data = reader.read(path, limit=MAX_API_BYTES + 1)
        if data is not None and len(data) > MAX_API_BYTES:
            out.append(
                Diagnostic(check, path, None, "too-large",
                           f"is larger than {MAX_API_BYTES >> 20} MiB: its public API cannot "
                           "be compared")
            )  # fmt: skip
            continue
        now = public_api(data) if data is not None else {}
        old = base.get(path)
        before = public_api(old) if old is not None else {}
        if now is None or before is None:
            continue
        for name, symbol in now.items():
            if name not in before:
                out.append(
                    Diagnostic(check, path, symbol.line, "api-added",
                               f"public {name} is new: a hardening mission adds no API; "
                               "make it private (a leading underscore) or leave it out")
                )  # fmt: skip
            elif before[name].signature != symbol.signature:
                out.append(
                    Diagnostic(check, path, symbol.line, "api-changed",
                               f"public {name} changed its signature from "
                               f"{before[name].signature} to {symbol.signature}: callers "
                               "would break; keep the signature")
                )  # fmt: skip
        for name in sorted(set(before) - set(now)):
            out.append(
                Diagnostic(check, path, before[name].line, "api-removed",
                           f"public {name} was removed: callers would break; keep it")
            )  # fmt: skip
    return out

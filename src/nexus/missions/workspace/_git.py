"""Running git on an untrusted repository so that nothing in it runs.

Every git command of the package goes through :func:`run_git`. A repository's
``.git/config`` (and what it includes), its ``.gitattributes`` and its hooks
are untrusted: they could name a hook, an fsmonitor, a clean/smudge filter, a
merge driver, a textconv or external diff, a pager, an editor, a credential
helper or a signing program, and git would run it -- as root, here. So:

* the environment is rebuilt from nothing: no ``GIT_DIR``/``GIT_*`` of the
  caller leaks in, system and global config are off (``GIT_CONFIG_NOSYSTEM``,
  ``GIT_CONFIG_GLOBAL=/dev/null``), ``LC_ALL=C``, a fixed identity, no
  terminal prompt, no protocol allowed, pathspecs literal;
* :data:`FIXED_CONFIG` is passed as command-line configuration
  (``GIT_CONFIG_COUNT``), which outranks every file git reads and is
  inherited by the git processes git itself starts;
* drivers are configured *by name* (``filter.<name>.clean``), and the name
  comes from attributes a repository controls, so :func:`driver_overrides`
  reads every config file git could read for the repository -- following
  ``include.path`` and every ``includeIf`` as if its condition held -- and
  overrides each driver it names: filters become empty (git then runs none),
  a merge driver becomes ``git merge-file`` (git's own text merge).

Names that reach a command line (branches, work items, trailer keys) are
validated first (:func:`check_branch`, :func:`check_item`), revisions are
given after ``--end-of-options`` and paths after ``--``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nexus.domain.errors import UserError

#: the identity of every commit the package makes
IDENTITY_NAME = "Nexus"
IDENTITY_EMAIL = "nexus@localhost"

#: how long one git command may take, in seconds
GIT_TIMEOUT = 600.0

#: configuration passed on every command; it outranks the repository's files
FIXED_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", "/dev/null"),  # no hook can be found under a non-directory
    ("core.fsmonitor", "false"),
    ("core.untrackedCache", "false"),
    ("core.pager", "cat"),
    ("core.editor", "true"),
    ("sequence.editor", "true"),
    ("core.askPass", ""),
    ("core.sshCommand", "false"),
    ("core.gitProxy", ""),
    ("core.quotePath", "true"),
    ("core.commentChar", "#"),
    ("credential.helper", ""),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("log.showSignature", "false"),
    ("gpg.program", "false"),
    ("gpg.openpgp.program", "false"),
    ("gpg.x509.program", "false"),
    ("gpg.ssh.program", "false"),
    ("protocol.allow", "never"),
    ("submodule.recurse", "false"),
    ("diff.ignoreSubmodules", "dirty"),
    ("status.submoduleSummary", "false"),
    ("gc.auto", "0"),
    ("gc.autoDetach", "false"),
    ("maintenance.auto", "false"),
    ("advice.detachedHead", "false"),
    ("merge.renormalize", "false"),
    ("merge.renames", "true"),
    ("merge.conflictStyle", "merge"),
    ("diff.renames", "true"),
    ("diff.noprefix", "false"),
    ("diff.mnemonicPrefix", "false"),
    ("diff.suppressBlankEmpty", "false"),
    ("trailer.separators", ":"),
    ("safe.bareRepository", "explicit"),
)

#: the variables of the rebuilt environment, before the configuration pairs
_BASE_ENV: dict[str, str] = {
    "HOME": "/nonexistent",
    "LC_ALL": "C",
    "LANG": "C",
    "TZ": "UTC",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_SEQUENCE_EDITOR": "true",
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_LITERAL_PATHSPECS": "1",
    "GIT_ALLOW_PROTOCOL": "",
    "GIT_PROTOCOL_FROM_USER": "0",
    "GIT_AUTHOR_NAME": IDENTITY_NAME,
    "GIT_AUTHOR_EMAIL": IDENTITY_EMAIL,
    "GIT_COMMITTER_NAME": IDENTITY_NAME,
    "GIT_COMMITTER_EMAIL": IDENTITY_EMAIL,
}

#: keys of a named driver and the value that disarms each
_FILTER_KEYS = (("clean", ""), ("smudge", ""), ("process", ""), ("required", "false"))
_DIFF_KEYS = (("command", ""), ("textconv", ""), ("cachetextconv", "false"))

_INCLUDE_DEPTH = 10  # git's own limit on nested includes
_INCLUDE_FILES = 200
_MESSAGE_CHARS = 2000


class GitError(UserError):
    """A git command failed, or a repository, branch or name is unusable.

    Attributes:
        repo: the repository or work tree it was about.
        command: the git command line (without the configuration), or ``()``.
        git_message: what git wrote on stderr, trimmed, or ``""``.
    """

    def __init__(
        self,
        message: str,
        *,
        repo: Path | str,
        command: Sequence[str] = (),
        git_message: str = "",
    ) -> None:
        super().__init__(message)
        self.repo = str(repo)
        self.command = tuple(command)
        self.git_message = git_message


# -- names -----------------------------------------------------------------------------

_ITEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_TRAILER_KEY = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}")


def check_item(item: str) -> str:
    """``item`` if it is a usable work-item name (it names a directory and a trailer).

    Raises:
        GitError: it is empty, too long, starts with ``-`` or ``.``, holds ``..``, a
            slash, a control character or anything but letters, digits, ``_ . -``.
    """
    if not isinstance(item, str) or not _ITEM.fullmatch(item) or ".." in item:
        raise GitError(
            f"work item name {item!r} is not allowed: use 1-100 letters, digits, '_', "
            "'.' or '-', starting with a letter or digit, without '..'",
            repo="",
        )
    if item.endswith((".", ".lock")):
        raise GitError(
            f"work item name {item!r} is not allowed: it may not end with '.' or '.lock'",
            repo="",
        )
    return item


def check_branch(name: str) -> str:
    """``name`` if it is a branch name this package will pass to git.

    Stricter than ``git check-ref-format``: slash-separated segments of letters,
    digits and ``_ . + -``, none starting with ``.`` or ``-``, none ending with
    ``.lock`` or ``.``; no ``..``, ``@{``, spaces or control characters; at most
    200 characters; not ``HEAD``.

    Raises:
        GitError: the name is not allowed (the message says why).
    """
    problem = _branch_problem(name)
    if problem:
        raise GitError(f"branch name {name!r} is not allowed: {problem}", repo="")
    return name


def _branch_problem(name: str) -> str | None:
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > 200:
        return "it is longer than 200 characters"
    if name == "HEAD" or name.startswith("refs/"):
        return "give a branch name (not HEAD or a full ref)"
    if ".." in name or "@{" in name:
        return "it contains '..' or '@{'"
    for segment in name.split("/"):
        if not _SEGMENT.fullmatch(segment):
            return (
                "each '/'-separated part must be letters, digits, '_', '.', '+' or '-', "
                "not start with '.' or '-', and not be empty"
            )
        if segment.endswith((".lock", ".")):
            return "a part ends with '.lock' or '.'"
    return None


def check_revision(rev: str, *, repo: Path | str) -> str:
    """``rev`` if it may be passed to git as a revision (after ``--end-of-options``).

    Raises:
        GitError: it is empty, starts with ``-``, or holds whitespace or control characters.
    """
    if (
        not isinstance(rev, str)
        or not rev
        or rev.startswith("-")
        or len(rev) > 300
        or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in rev)
    ):
        raise GitError(f"{rev!r} is not a revision Nexus passes to git", repo=repo)
    return rev


def check_trailers(trailers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The trailers as ``(key, value)`` pairs, checked.

    Raises:
        GitError: a key is not ``Letters-And-Digits`` or a value holds a newline or
            another control character (either would forge or break the trailer block).
    """
    pairs: list[tuple[str, str]] = []
    for key, value in trailers.items():
        if not isinstance(key, str) or not _TRAILER_KEY.fullmatch(key):
            raise GitError(f"trailer key {key!r} is not allowed (letters, digits, '-')", repo="")
        if (
            not isinstance(value, str)
            or not value.strip()
            or len(value) > 500
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)
        ):
            raise GitError(
                f"trailer {key}: the value must be 1-500 characters on one line", repo=""
            )
        pairs.append((key, value.strip()))
    return pairs


def commit_message(message: str, trailers: Sequence[tuple[str, str]]) -> str:
    """``message`` with the trailers as its last paragraph (what ``%(trailers)`` reads).

    Raises:
        GitError: the message is empty or holds a NUL byte.
    """
    if not isinstance(message, str) or not message.strip() or "\0" in message:
        raise GitError("a commit message must be non-empty text without NUL bytes", repo="")
    text = message.strip()
    if trailers:
        text += "\n\n" + "\n".join(f"{key}: {value}" for key, value in trailers)
    return text + "\n"


# -- running git ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Where a command runs: an explicit git directory and, maybe, a work tree.

    Git is always told both (``--git-dir``, ``--work-tree``): it never discovers a
    repository from a ``.git`` a work tree holds, which the work tree's writer controls.
    """

    git_dir: Path
    common_dir: Path
    work_tree: Path | None
    label: Path  # what error messages call it
    safe_directories: tuple[str, ...] = ()


def git_executable() -> str:
    """The absolute path of ``git``.

    Raises:
        GitError: git is not installed.
    """
    found = shutil.which("git")
    if found is None:
        raise GitError("git is not installed (code missions need git 2.38 or later)", repo="")
    return os.path.realpath(found)


def run_git(
    target: Target | None,
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    ok: Iterable[int] = (0,),
    env: Mapping[str, str] | None = None,
    extra_config: Sequence[tuple[str, str]] = (),
) -> subprocess.CompletedProcess[bytes]:
    """Run one git command hardened as the module docstring says.

    Args:
        target: the repository (``None`` only for commands that need none).
        args: the command and its arguments, after the global options.
        cwd: the directory to run in (default: the work tree, else the git directory).
        stdin: bytes to feed, or nothing (stdin is then ``/dev/null``).
        ok: exit codes that are not a failure.
        env: extra variables (e.g. ``GIT_INDEX_FILE``).
        extra_config: more configuration pairs (``safe.directory`` for discovery).

    Returns:
        The finished process, stdout and stderr captured as bytes.

    Raises:
        GitError: git could not run, timed out, or exited with a code not in ``ok``.
    """
    command = [git_executable(), "--no-pager"]
    pairs = list(FIXED_CONFIG) + list(extra_config)
    if target is not None:
        command.append(f"--git-dir={target.git_dir}")
        if target.work_tree is not None:
            command.append(f"--work-tree={target.work_tree}")
        pairs += [("safe.directory", d) for d in target.safe_directories]
        pairs += driver_overrides(target)
    command += list(args)
    full_env = build_env(pairs)
    if env:
        full_env.update(env)
    if cwd is None and target is not None:
        cwd = target.work_tree or target.git_dir
    label = target.label if target is not None else (cwd or Path("."))
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=full_env,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(
            f"git {_shown(args)} in {label} took longer than {GIT_TIMEOUT:g} s",
            repo=label,
            command=args,
        ) from exc
    except OSError as exc:
        raise GitError(
            f"git {_shown(args)} in {label} could not start: {exc}", repo=label, command=args
        ) from exc
    if done.returncode not in set(ok):
        said = done.stderr.decode("utf-8", "replace").strip()[-_MESSAGE_CHARS:]
        raise GitError(
            f"git {_shown(args)} failed in {label} (exit {done.returncode}): "
            f"{said or 'no message'}",
            repo=label,
            command=args,
            git_message=said,
        )
    return done


def build_env(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The environment of a git command: :data:`_BASE_ENV`, ``PATH`` and ``pairs``."""
    env = dict(_BASE_ENV)
    env["PATH"] = os.environ.get("PATH") or os.defpath
    env["GIT_CONFIG_COUNT"] = str(len(pairs))
    for index, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def _shown(args: Sequence[str]) -> str:
    words = [a for a in args[:3] if not a.startswith("-")][:2]
    return " ".join(words) or "command"


# -- named drivers ---------------------------------------------------------------------

_Cached = tuple[tuple[Path, ...], tuple[object, ...], list[tuple[str, str]]]
#: (common dir, git dir) -> the files read, their signatures, the overrides made
_driver_cache: dict[tuple[str, str], _Cached] = {}


def driver_overrides(target: Target) -> list[tuple[str, str]]:
    """Configuration that disarms every filter, diff and merge driver a repository names.

    The files are read again whenever any of them (or a new candidate) changes: size,
    times or inode.
    """
    key = (str(target.common_dir), str(target.git_dir))
    candidates = _candidate_files(target.common_dir, target.git_dir)
    cached = _driver_cache.get(key)
    if cached is not None:
        files = tuple(sorted(set(cached[0]) | set(candidates)))
        if files == cached[0] and tuple(_signature(f) for f in files) == cached[1]:
            return cached[2]
    seen: dict[Path, object] = {}  # each file's signature, taken before it is read
    names: dict[str, set[str]] = {"filter": set(), "diff": set(), "merge": set()}
    for path in candidates:
        _scan(path, names, seen, 0, target)
    merge_command = (
        f"{shlex.quote(git_executable())} merge-file --marker-size=%L -L ours -L base "
        "-L theirs %A %O %B"
    )
    pairs: list[tuple[str, str]] = []
    for name in sorted(names["filter"]):
        pairs += [(f"filter.{name}.{k}", v) for k, v in _FILTER_KEYS]
    for name in sorted(names["diff"]):
        pairs += [(f"diff.{name}.{k}", v) for k, v in _DIFF_KEYS]
    for name in sorted(names["merge"]):
        pairs += [(f"merge.{name}.driver", merge_command), (f"merge.{name}.recursive", "text")]
    files = tuple(sorted(set(seen) | set(candidates)))
    signature = tuple(seen[f] if f in seen else _signature(f) for f in files)
    _driver_cache[key] = (files, signature, pairs)
    return pairs


def _candidate_files(common_dir: Path, git_dir: Path) -> list[Path]:
    """The config files git may read for a repository (existing or not), sorted."""
    found = {common_dir / "config", common_dir / "config.worktree", git_dir / "config.worktree"}
    worktrees = common_dir / "worktrees"
    try:
        for entry in sorted(os.listdir(worktrees)):
            found.add(worktrees / entry / "config.worktree")
    except OSError:
        pass
    return sorted(found)


def _signature(path: Path) -> object:
    try:
        info = os.stat(path)
    except OSError:
        return (str(path), None)
    return (str(path), info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns)


def _scan(
    path: Path, names: dict[str, set[str]], seen: dict[Path, object], depth: int, target: Target
) -> None:
    """Collect the driver names of one config file and of the files it includes."""
    if depth > _INCLUDE_DEPTH or path in seen:
        return  # git stops at the same depth (and fails), and a file is read once
    if len(seen) >= _INCLUDE_FILES:
        raise GitError(
            f"the git config of {target.label} includes more than {_INCLUDE_FILES} files",
            repo=target.label,
        )
    signature = seen[path] = _signature(path)
    try:
        info = os.stat(path)
    except OSError:
        return
    if not stat.S_ISREG(info.st_mode):
        return
    cached = _file_cache.get(path)
    if cached is None or cached[0] != signature:
        cached = (signature, *_read_config(path, target))
        if len(_file_cache) >= _FILE_CACHE_SIZE:
            _file_cache.clear()
        _file_cache[path] = cached
    _, found, included = cached
    for section, section_names in found:
        names[section].update(section_names)
    for other in included:
        _scan(other, names, seen, depth + 1, target)


#: a config file read -> its signature taken before reading, the driver names it
#: holds by section, the files it includes (in order): a file unchanged since is not
#: read again, whichever repository or worktree reaches it
_FileScan = tuple[object, tuple[tuple[str, frozenset[str]], ...], tuple[Path, ...]]
_file_cache: dict[Path, _FileScan] = {}
_FILE_CACHE_SIZE = 1024


def _read_config(
    path: Path, target: Target
) -> tuple[tuple[tuple[str, frozenset[str]], ...], tuple[Path, ...]]:
    """The driver names (by section) and the included files of one config file."""
    done = run_git(
        None,
        ["config", "--file", str(path), "--no-includes", "--list", "-z"],
        cwd=path.parent,
        ok=(0, 1, 128),
    )
    if done.returncode != 0:
        # a config file git cannot parse makes every git command fail: say so now
        said = done.stderr.decode("utf-8", "replace").strip()[-_MESSAGE_CHARS:]
        raise GitError(
            f"the git config file {path} of {target.label} cannot be read: {said}",
            repo=target.label,
            command=("config", "--list"),
            git_message=said,
        )
    names: dict[str, set[str]] = {"filter": set(), "diff": set(), "merge": set()}
    included: list[Path] = []
    for record in done.stdout.split(b"\0"):
        if not record:
            continue
        raw_key, _, raw_value = record.partition(b"\n")
        key = raw_key.decode("utf-8", "surrogateescape")
        section, _, rest = key.partition(".")
        section = section.lower()
        if section in names and "." in rest:
            names[section].add(rest.rsplit(".", 1)[0])
        elif (section == "include" and rest.lower() == "path") or (
            section == "includeif" and rest.lower().endswith(".path")
        ):
            other = _include_path(raw_value.decode("utf-8", "surrogateescape"), path)
            if other is not None:
                included.append(other)
    return tuple((k, frozenset(v)) for k, v in names.items()), tuple(included)


def _include_path(value: str, source: Path) -> Path | None:
    """Where an ``include.path`` value points, as git resolves it (``None``: nowhere)."""
    if not value or value.startswith(("~", "%(prefix)")):
        return None  # HOME is /nonexistent; the runtime prefix holds no repository's file
    candidate = Path(value)
    if not candidate.is_absolute():
        candidate = source.parent / candidate
    return Path(os.path.abspath(candidate))

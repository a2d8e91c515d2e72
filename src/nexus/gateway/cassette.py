"""Cassettes: real model exchanges stored in a YAML file, served offline.

``nexus run FILE --record cassette.yaml`` wraps each provider in a
:class:`RecordingProvider`, which appends every exchange to a
:class:`Cassette`; agents whose model is ``cassette:<cassette path>`` are then
answered by a :class:`CassetteProvider` from that file, with no network. This
is how demos and tests use real transcripts.

``replay:<cassette path>`` is the same provider under its former name, still
accepted (:data:`CASSETTE_PREFIXES`): "replay" means re-executing a run's log
(``nexus replay``). A model string is recorded as the workflow wrote it, so
runs made with ``replay:`` keep their bytes and replay as they were.

The file format (YAML, read and written with PyYAML's safe loader and dumper)::

    version: 1
    interactions:
    - request: {model: openai:gpt-4.1-mini, messages: [...], turn: 0}
      response: {text: ..., model: openai:gpt-4.1-mini, usage: {...}}

``request`` and ``response`` are exactly :meth:`ModelRequest.to_dict` and
:meth:`ModelResponse.to_dict`, so a served response is the recorded one,
byte for byte in canonical JSON. Requests hold messages and tool schemas,
never credentials: API keys live in the SDK clients, not in requests. Secret
values the process knows (``*_API_KEY`` variables, and the secret inputs of
the run making the call: :func:`nexus.redaction.redact_values`) are replaced
by ``[redacted]`` in what is recorded, and a request is matched with
them replaced too.

**Matching.** A request is matched on its canonical JSON with
``model`` removed: the recording named the real model, the answered agent
names ``cassette:...``. The first *unused* interaction with the same request
answers; once every match has been used, the first match answers again (an
agent asking the same question twice gets the same answer rather than an
error). No match is a :class:`~nexus.domain.errors.NotFoundError` naming the
cassette, its size, and the request's last user message.

**Cost.** A response served from a cassette keeps the recorded ``model`` and
``usage``, so cost accounting of such a run shows what the real calls cost
(that is what a demo wants to show); nothing is spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nexus.domain.canonical import digest, plain_json
from nexus.domain.errors import NotFoundError, UserError
from nexus.domain.plan import AgentSpec
from nexus.gateway.base import (
    ModelProvider,
    ModelRequest,
    ModelResponse,
    StreamEnd,
    StreamEvent,
    StreamingProvider,
    TextDelta,
    close_if_closable,
    split_model,
)
from nexus.redaction import redact_values

__all__ = [
    "CASSETTE_PREFIXES",
    "CASSETTE_VERSION",
    "Cassette",
    "CassetteProvider",
    "CassetteProviders",
    "Interaction",
    "RecordingProvider",
    "ReplayProvider",
    "ReplayProviders",
    "cassette_factory",
    "match_key",
    "replay_factory",
]

CASSETTE_VERSION = 1
#: The model prefixes served from a cassette: ``cassette``, and ``replay``, its
#: former name, kept so workflows and recorded runs that use it still work.
CASSETTE_PREFIXES = ("cassette", "replay")
_SNIPPET = 80


@dataclass(frozen=True, slots=True)
class Interaction:
    """One recorded exchange: the request and response dicts."""

    request: Mapping[str, Any]
    response: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"request": dict(self.request), "response": dict(self.response)}


def match_key(request: Mapping[str, Any]) -> str:
    """The digest a request is matched on: the canonical request without ``model``."""
    return digest({name: value for name, value in request.items() if name != "model"})


# -- the file -----------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """The safe dumper, writing multi-line strings as literal blocks, without anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


#: Line breaks YAML folds or normalises inside plain, single-quoted and block
#: scalars; only a double-quoted scalar (which escapes them) keeps them exact.
_FRAGILE = frozenset("\r\x85\u2028\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style: str | None = None
    if not _FRAGILE.isdisjoint(value):
        style = '"'
    elif "\n" in value:
        style = "|"  # the emitter falls back to quotes when a block cannot hold it
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _fail(path: Path, where: str, problem: str) -> UserError:
    return UserError(f"cassette {path}: {where}: {problem}")


def _check_interaction(path: Path, index: int, entry: object) -> Interaction:
    where = f"interactions[{index}]"
    if not isinstance(entry, dict):
        raise _fail(path, where, "must be a mapping with 'request' and 'response'")
    for part in ("request", "response"):
        if part not in entry:
            raise _fail(path, where, f"missing field '{part}'")
        if not isinstance(entry[part], dict):
            raise _fail(path, f"{where}.{part}", "must be a mapping")
    request, response = entry["request"], entry["response"]
    if not isinstance(request.get("model"), str):
        raise _fail(path, f"{where}.request.model", "missing or not a string")
    messages = request.get("messages")
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages
    ):
        raise _fail(path, f"{where}.request.messages", "must be a list of {role, content}")
    for name in ("text", "model"):
        if not isinstance(response.get(name), str):
            raise _fail(path, f"{where}.response.{name}", "missing or not a string")
    try:
        request = plain_json(request)
    except ValueError as exc:
        raise _fail(path, f"{where}.request", f"not JSON ({exc})") from None
    try:
        ModelResponse.from_dict(response)
        response = plain_json(response)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise _fail(path, f"{where}.response", f"not a model response ({exc})") from None
    return Interaction(request=request, response=response)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong, and where (line and column from 1)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = "" if mark is None else f" (line {mark.line + 1}, column {mark.column + 1})"
        return f"{exc.problem}{where}"
    return " ".join(str(exc).split())


class Cassette:
    """Recorded interactions, in order; :meth:`load` and :meth:`save` a YAML file.

    Args:
        interactions: the exchanges, oldest first.
        path: the file it was loaded from (and :meth:`save` writes by default).
    """

    def __init__(self, interactions: Iterable[Interaction] = (), *, path: Path | None = None):
        self.interactions: list[Interaction] = list(interactions)
        self.path = path
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "<unsaved>"
        return f"Cassette({where!r}, {len(self)} interactions)"

    def __len__(self) -> int:
        return len(self.interactions)

    def record(self, request: ModelRequest, response: ModelResponse) -> Interaction:
        """Append one exchange."""
        redact = redact_values
        interaction = Interaction(
            request=redact(plain_json(request.to_dict())),
            response=redact(plain_json(response.to_dict())),
        )
        with self._lock:
            self.interactions.append(interaction)
        return interaction

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            interactions = [i.to_dict() for i in self.interactions]
        return {"version": CASSETTE_VERSION, "interactions": interactions}

    @classmethod
    def load(cls, path: Path) -> Cassette:
        """Read a cassette file.

        Raises:
            NotFoundError: no file at ``path``.
            UserError: the file is not YAML, has another version, or an entry is
                malformed (the message names the file and the entry's index and field).
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFoundError(f"cassette {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cassette {path}: cannot read: {exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(f"cassette {path} is not valid YAML: {_yaml_problem(exc)}") from None
        if not isinstance(data, dict):
            raise UserError(
                f"cassette {path}: expected a mapping with 'version' and 'interactions'"
            )
        version = data.get("version")
        if version != CASSETTE_VERSION:
            raise _fail(path, "version", f"{version!r} is not supported (expected 1)")
        entries = data.get("interactions")
        if not isinstance(entries, list):
            raise _fail(path, "interactions", "missing or not a list")
        interactions = [_check_interaction(path, i, entry) for i, entry in enumerate(entries)]
        return cls(interactions, path=path)

    def save(self, path: Path | None = None) -> Path:
        """Write the cassette atomically (a temporary file, then ``os.replace``).

        Args:
            path: where to write (default: :attr:`path`); it becomes :attr:`path`.

        Returns:
            The path written.
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("this cassette has no path: pass one to save()")
        text = yaml.dump(
            self.to_dict(),
            Dumper=_Dumper,
            sort_keys=False,
            allow_unicode=True,
            width=100,
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self.path = target
        return target


# -- recording ----------------------------------------------------------------------------


class RecordingProvider:
    """Passes calls to ``inner`` and records each finished exchange in ``cassette``.

    A streamed call is recorded once, with its final response, when the
    :class:`~nexus.gateway.base.StreamEnd` arrives; a call that fails records
    nothing. With ``autosave`` the cassette is saved (atomically) after every
    exchange, so an interrupted run keeps what it recorded.
    """

    def __init__(self, inner: ModelProvider, cassette: Cassette, *, autosave: bool = False) -> None:
        if autosave and cassette.path is None:
            raise ValueError("autosave needs a cassette with a path")
        self.inner = inner
        self.cassette = cassette
        self.autosave = autosave

    def __repr__(self) -> str:
        return f"RecordingProvider({self.inner!r}, {self.cassette!r})"

    async def aclose(self) -> None:
        """Close the inner provider, if it holds connections."""
        await close_if_closable(self.inner)

    async def _record(self, request: ModelRequest, response: ModelResponse) -> None:
        self.cassette.record(request, response)
        if self.autosave:
            await asyncio.to_thread(self.cassette.save)

    async def complete(self, request: ModelRequest, context: Mapping[str, Any]) -> ModelResponse:
        response = await self.inner.complete(request, context)
        await self._record(request, response)
        return response

    async def stream(
        self, request: ModelRequest, context: Mapping[str, Any]
    ) -> AsyncIterator[StreamEvent]:
        if not isinstance(self.inner, StreamingProvider):
            response = await self.inner.complete(request, context)
            await self._record(request, response)
            yield StreamEnd(response)
            return
        events = self.inner.stream(request, context)
        try:
            async for event in events:
                if isinstance(event, StreamEnd):
                    await self._record(request, event.response)
                yield event
        finally:
            await close_if_closable(events)


# -- answering from a cassette --------------------------------------------------------------


def _last_user_message(request: ModelRequest, redact: Callable[[str], str]) -> str:
    for message in reversed(request.messages):
        if message.role == "user":
            # redacted whole, before it is cut: a cut secret would not be recognised
            text = " ".join(redact(message.content).split())
            return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."
    return "(no user message)"


def _pieces(text: str, parts: int = 4) -> list[str]:
    """``text`` cut on whitespace into at most ``parts`` pieces that join back to it."""
    words = re.split(r"(?<=\s)(?=\S)", text)
    size = -(-len(words) // parts)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


class CassetteProvider:
    """Answers from a cassette, offline; see the module docstring for matching.

    Args:
        cassette: the recorded interactions.
        name: how errors name the cassette (default: its path).
    """

    def __init__(self, cassette: Cassette, name: str | None = None) -> None:
        self.cassette = cassette
        self.name = name or str(cassette.path or "<unsaved cassette>")
        self._by_key: dict[str, list[int]] = {}
        for index, interaction in enumerate(cassette.interactions):
            self._by_key.setdefault(match_key(interaction.request), []).append(index)
        self._used: set[int] = set()

    def __repr__(self) -> str:
        return f"CassetteProvider({self.name!r}, {len(self.cassette)} interactions)"

    def _answer(self, request: ModelRequest) -> ModelResponse:
        asked = plain_json(request.to_dict())
        key = match_key(redact_values(asked))
        # cassettes recorded before secrets were redacted in them hold them whole
        matches = self._by_key.get(key) or self._by_key.get(match_key(asked))
        if not matches:
            raise NotFoundError(
                f"cassette {self.name}: none of its {len(self.cassette)} recorded interactions "
                f"matches this request (request {key[:12]}, last user message: "
                f"{_last_user_message(request, redact_values)!r}); record it again "
                "with `nexus run --record`"
            )
        index = next((i for i in matches if i not in self._used), matches[0])
        self._used.add(index)
        return ModelResponse.from_dict(self.cassette.interactions[index].response)

    async def complete(self, request: ModelRequest, context: Mapping[str, Any]) -> ModelResponse:
        """The recorded response to ``request``.

        Raises:
            NotFoundError: nothing recorded matches it.
        """
        return self._answer(request)

    async def stream(
        self, request: ModelRequest, context: Mapping[str, Any]
    ) -> AsyncIterator[StreamEvent]:
        """The recorded response, its text cut on whitespace into a few deltas."""
        response = self._answer(request)
        if response.text:
            for piece in _pieces(response.text):
                yield TextDelta(piece)
        yield StreamEnd(response)


class CassetteProviders:
    """The ``cassette`` provider factory: one :class:`CassetteProvider` per cassette file.

    ``cassette:<path>`` (or ``replay:<path>``) resolves ``path`` against
    ``base_dir`` (an absolute path is used as is). Each file is loaded once, and
    every agent naming it, by either prefix, shares one provider, so "first
    unused interaction" follows the whole run's order.
    :meth:`check` loads an agent's cassettes ahead of time: the engine calls it
    before a run starts, so a missing or broken file is a ``UserError`` then.
    """

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir)
        self._providers: dict[Path, CassetteProvider] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CassetteProviders({str(self.base_dir)!r}, loaded={len(self._providers)})"

    def resolve(self, model: str) -> Path:
        """The cassette file ``cassette:<path>`` names."""
        prefix, name = split_model(model)
        if prefix not in CASSETTE_PREFIXES:
            raise UserError(f"model '{model}' is not a cassette model (cassette:<cassette path>)")
        return (self.base_dir / Path(name).expanduser()).resolve()

    def _provider(self, model: str) -> CassetteProvider:
        path = self.resolve(model)
        with self._lock:
            provider = self._providers.get(path)
            if provider is None:
                provider = CassetteProvider(Cassette.load(path), name=str(path))
                self._providers[path] = provider
        return provider

    def __call__(self, agent: AgentSpec) -> CassetteProvider:
        """The provider for ``agent`` (whose model is ``cassette:<path>``).

        Raises:
            NotFoundError: the cassette does not exist.
            UserError: the model is not ``cassette:...`` or the cassette is malformed.
        """
        try:
            return self._provider(agent.model)
        except UserError as exc:
            raise type(exc)(f"agent '{agent.name}': {exc.message}") from None

    def check(self, agent: AgentSpec) -> None:
        """Load every cassette ``agent`` may be answered from: its model, fallbacks and tiers.

        The engine calls this before it starts a run, so a missing or broken
        cassette stops the run there rather than failing each task at its first
        model call. What is loaded stays loaded for the run.

        Raises:
            UserError: a cassette is missing or malformed; the message names the
                agent, the model and the file.
        """
        models = (agent.model, *agent.fallbacks, *agent.tiers.values())
        for model in dict.fromkeys(m for m in models if _served_here(m)):
            try:
                self._provider(model)
            except UserError as exc:  # a missing file too: it is the workflow's mistake
                raise UserError(f"agent '{agent.name}': model '{model}': {exc.message}") from None


def _served_here(model: str) -> bool:
    prefix, sep, _ = str(model).partition(":")
    return bool(sep) and prefix in CASSETTE_PREFIXES


def cassette_factory(base_dir: Path) -> CassetteProviders:
    """The :data:`~nexus.gateway.base.ProviderFactory` for ``cassette:<path>`` models.

    Register it under every prefix of :data:`CASSETTE_PREFIXES` (one instance:
    a file named by both is loaded once); :func:`nexus.gateway.factory.offline_providers`
    does.

    Example:
        >>> from nexus.gateway.base import ProviderRegistry
        >>> registry = ProviderRegistry({"cassette": cassette_factory(Path("examples"))})
        >>> registry.prefixes()
        ('cassette',)
    """
    return CassetteProviders(base_dir)


#: The former names, from when the ``cassette`` provider was called ``replay``.
ReplayProvider = CassetteProvider
ReplayProviders = CassetteProviders
replay_factory = cassette_factory

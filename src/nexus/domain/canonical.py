"""Canonical JSON (RFC 8785, JCS) and the SHA-256 digests built on it.

The event chain, plan hashes and effect keys all hash canonical JSON. RFC 8785
serialises with keys sorted by UTF-16 code units, no insignificant whitespace,
minimal string escaping and ECMAScript number formatting.

For the values Nexus writes almost always -- strings, integers, booleans, null,
lists and objects whose keys sort the same by code point and by UTF-16 code
unit -- the C-accelerated :func:`json.dumps` with sorted keys and compact
separators produces exactly the JCS bytes. Floats (ECMAScript formatting) and
keys outside the Basic Multilingual Plane (UTF-16 ordering differs from code
point ordering there) take the reference implementation, ``rfc8785``. A
property test checks the fast path against ``rfc8785`` on arbitrary JSON.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

#: ``prev_hash`` of the first event of every run.
GENESIS_HASH = "0" * 64

_MAX_SAFE_INT = 2**53 - 1
_INF = float("inf")
_MINUS_INF = float("-inf")
# No check for circular references: only values :func:`_fast_path_ok` walked
# to the end reach it, and a value holding itself never gets to the end.
_dumps = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False, check_circular=False
).encode


def _scalar_ok(item: Any) -> bool | None:
    """True/False for a scalar; None when ``item`` is a container."""
    if isinstance(item, str) or item is None or isinstance(item, bool):
        return True
    if isinstance(item, int):
        return -_MAX_SAFE_INT <= item <= _MAX_SAFE_INT
    if isinstance(item, float):
        # Within [1e-4, 1e16) Python's repr and ECMAScript's Number#toString
        # both print the shortest round-trip digits positionally; they differ
        # only on integral values ("2.0" vs "2"), which take the slow path.
        return 1e-4 <= abs(item) < 1e16 and not item.is_integer()
    if isinstance(item, dict | list | tuple):
        return None
    return False


def _key_ok(key: Any) -> bool:
    return isinstance(key, str) and (key.isascii() or all(ord(ch) <= 0xFFFF for ch in key))


def _fast_path_ok(value: Any) -> bool:
    """True when ``json.dumps`` gives the JCS bytes for ``value``.

    Exact built-in types are tested first (``type(x) is str``), which is
    several times faster than ``isinstance`` chains on the hot path of sealing
    events; anything else goes through :func:`_scalar_ok`. The walk recurses,
    which costs no more than a loop over a stack: a value that holds itself
    raises ``RecursionError`` (as one nested too deeply does in ``json.dumps``)
    instead of being walked for ever.
    """
    kind = type(value)
    if kind is dict:
        return _fast_dict_ok(value)
    if kind is list or kind is tuple:
        return _fast_list_ok(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_SAFE_INT <= value <= _MAX_SAFE_INT)
    verdict = _scalar_ok(value)
    if verdict is None:  # a dict/list subclass: walk it like its base
        return _fast_dict_ok(dict(value)) if isinstance(value, dict) else _fast_list_ok(value)
    return verdict


def _fast_dict_ok(value: dict[Any, Any]) -> bool:
    for key, sub in value.items():
        if type(key) is not str or not (key.isascii() or _key_ok(key)):
            return False
        kind = type(sub)
        if kind is str or kind is bool or sub is None:
            continue
        if kind is dict:
            if not _fast_dict_ok(sub):
                return False
        elif kind is list:
            if not _fast_list_ok(sub):
                return False
        elif not _fast_path_ok(sub):
            return False
    return True


def _fast_list_ok(value: Any) -> bool:
    for sub in value:
        kind = type(sub)
        if kind is str:
            continue
        if kind is dict:
            if not _fast_dict_ok(sub):
                return False
        elif kind is list:
            if not _fast_list_ok(sub):
                return False
        elif not _fast_path_ok(sub):
            return False
    return True


def canonical_json(value: Any) -> str:
    """Serialise ``value`` as RFC 8785 canonical JSON text.

    Raises:
        ValueError: the value is not representable in JSON (NaN, a set, ...).
    """
    if _fast_path_ok(value):
        return _dumps(value)
    try:
        encoded: bytes = rfc8785.dumps(value)
    except Exception as exc:  # rfc8785 raises its own error types and TypeError
        raise ValueError(f"value is not canonical JSON: {exc}") from exc
    return encoded.decode("utf-8")


def plain_json(value: Any) -> Any:
    """A deep copy of ``value`` made of plain JSON types only (tuples become lists).

    Cheaper than a serialise-and-parse round trip, and it rejects what the
    canonical form cannot hold: non-string keys, NaN and infinities, integers
    beyond +/-(2**53 - 1), and any other type.

    Raises:
        ValueError: the value is not JSON; the message says what and where.
    """
    try:
        try:
            return _copy(value)
        except _NotJson:
            pass
        # Walk again, spelling out where we are, for the message: the path
        # to every node costs more than the copy itself.
        return _plain(value, "$")
    except RecursionError:
        raise ValueError("nested too deeply") from None


class _NotJson(Exception):
    """:func:`_copy` met something that is not JSON; :func:`_plain` says what and where."""


# The copy, without paths: exact built-in types first, containers walked
# without a call per string, and the same rules as :func:`_plain`.


def _copy(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is dict:
        return _copy_dict(value)
    if kind is list or kind is tuple:
        return _copy_list(value)
    if kind is int:
        if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            return value
        raise _NotJson
    if kind is float:
        if value != value or value in (_INF, _MINUS_INF):
            raise _NotJson
        return value
    if isinstance(value, str):  # a str subclass such as StrEnum
        return str.__str__(value)
    if isinstance(value, bool | int | float):
        return _copy(int(value) if isinstance(value, int) else float(value))
    if isinstance(value, dict):
        return _copy_dict(dict(value))
    if isinstance(value, list | tuple):
        return _copy_list(value)
    raise _NotJson


def _copy_dict(value: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in value.items():
        if type(key) is not str:
            if not isinstance(key, str):
                raise _NotJson
            key = str.__str__(key)
        kind = type(sub)
        if kind is str or kind is bool or sub is None:
            out[key] = sub
        elif kind is dict:
            out[key] = _copy_dict(sub)
        elif kind is list:
            out[key] = _copy_list(sub)
        else:
            out[key] = _copy(sub)
    return out


def _copy_list(value: list[Any] | tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    append = out.append
    for sub in value:
        kind = type(sub)
        if kind is str or kind is bool or sub is None:
            append(sub)
        elif kind is dict:
            append(_copy_dict(sub))
        else:
            append(_copy(sub))
    return out


def _plain(value: Any, where: str) -> Any:
    """:func:`_copy` that knows where it is: it raises the error messages."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is dict:
        out = {}
        for key, sub in value.items():
            if type(key) is not str:
                if not isinstance(key, str):
                    raise ValueError(f"{where}: key {key!r} is not a string")
                key = str.__str__(key)
            out[key] = _plain(sub, f"{where}.{key}")
        return out
    if kind is list or kind is tuple:
        return [_plain(sub, f"{where}[{i}]") for i, sub in enumerate(value)]
    if kind is int:
        if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            return value
        raise ValueError(f"{where}: integer {value} is beyond +/-(2**53 - 1)")
    if kind is float:
        if value != value or value in (_INF, _MINUS_INF):
            raise ValueError(f"{where}: {value} is not a JSON number")
        return value
    if isinstance(value, str):  # a str subclass such as StrEnum
        return str.__str__(value)
    if isinstance(value, bool | int | float):
        return _plain(int(value) if isinstance(value, int) else float(value), where)
    if isinstance(value, dict):
        return _plain(dict(value), where)
    if isinstance(value, list | tuple):
        return _plain(list(value), where)
    raise ValueError(f"{where}: {type(value).__name__} is not JSON")


def canonical_bytes(value: Any) -> bytes:
    """Canonical JSON as UTF-8 bytes."""
    return canonical_json(value).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    """Hex SHA-256 of the canonical JSON of ``value``."""
    return sha256_hex(canonical_bytes(value))


def chain_hash(prev_hash: str, body: str) -> str:
    """``sha256(prev_hash || body)``: the link of the audit chain."""
    return hashlib.sha256(prev_hash.encode("ascii") + body.encode("utf-8")).hexdigest()

"""Canonical JSON (RFC 8785) and the hash chain built on it."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import OrderedDict
from collections.abc import Callable
from enum import IntEnum, StrEnum
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nexus.domain.canonical import (
    GENESIS_HASH,
    canonical_bytes,
    canonical_json,
    chain_hash,
    digest,
    plain_json,
)
from nexus.domain.events import Draft, EventType, event_body, seal

SAFE = 2**53 - 1

# text that includes astral (non-BMP) characters; surrogates are not valid UTF-8
_text = st.text(
    alphabet=st.characters(exclude_categories=("Cs",)),
    max_size=12,
)
_astral_text = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF, exclude_categories=("Cs",)),
        st.characters(min_codepoint=0xE000, max_codepoint=0xFFFF, exclude_categories=("Cs",)),
        st.characters(max_codepoint=0x7F),
    ),
    max_size=6,
)
_keys = st.one_of(_text, _astral_text)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-SAFE, max_value=SAFE),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
    _astral_text,
)

json_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(_keys, children, max_size=5),
    ),
    max_leaves=30,
)


@settings(max_examples=600, deadline=None)
@given(json_values)
@example({"\U0001f600": 1, "\uffff": 2, "a": 3})  # UTF-16 order differs from code point order
@example({"\ue000": 1, "\U00010000": 2})
@example([0.1, 1e-7, 1e21, 2.0, -0.0, 1e16, 9007199254740991, -9007199254740991])
@example('control \x00\x1f\x7f \u2028 " \\ \b\f\n\r\t')
def test_canonical_json_matches_rfc8785(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value).decode("utf-8")


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, st.integers(-SAFE, SAFE), max_size=8))
def test_canonical_json_is_independent_of_insertion_order(value: dict[str, int]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert canonical_json(value) == canonical_json(reordered)


def test_canonical_json_rejects_values_outside_json() -> None:
    for bad in (math.nan, math.inf, -math.inf, {1, 2}, 2**53, -(2**53), object(), {1: "x"}):
        with pytest.raises(ValueError, match="not canonical JSON"):
            canonical_json(bad)


def test_canonical_json_shape() -> None:
    assert canonical_json({"b": [1, 2.5, None], "a": True}) == '{"a":true,"b":[1,2.5,null]}'
    assert canonical_json(2.0) == "2"
    assert canonical_json(1e21) == "1e+21"
    assert canonical_json("é\U0001f600") == '"é\U0001f600"'  # no \u escapes
    assert canonical_bytes({"k": "é"}) == '{"k":"é"}'.encode()
    assert canonical_json((1, 2)) == "[1,2]"


def test_digest_is_sha256_of_canonical_bytes() -> None:
    value = {"z": 1, "a": [1.5, "x"]}
    assert digest(value) == hashlib.sha256(canonical_bytes(value)).hexdigest()
    assert digest(value) == digest({"a": [1.5, "x"], "z": 1})
    assert digest(value) != digest({"z": 2, "a": [1.5, "x"]})


def test_chain_hash_links_prev_and_body() -> None:
    body = '{"a":"é"}'
    expected = hashlib.sha256(GENESIS_HASH.encode() + body.encode("utf-8")).hexdigest()
    assert chain_hash(GENESIS_HASH, body) == expected
    assert GENESIS_HASH == "0" * 64
    assert chain_hash(GENESIS_HASH, body) != chain_hash("1" * 64, body)
    assert chain_hash(GENESIS_HASH, body) != chain_hash(GENESIS_HASH, body + " ")


def test_seal_builds_canonical_body_and_chains() -> None:
    at = "2026-01-01T00:00:00.000000Z"
    first = seal("R1", 1, Draft(EventType.RUN_STARTED, at, {"b": 1, "a": "x"}), GENESIS_HASH)
    assert first.body == canonical_json(
        {"run_id": "R1", "seq": 1, "type": "run.started", "at": at, "data": {"a": "x", "b": 1}}
    )
    assert first.body == event_body("R1", 1, "run.started", at, {"a": "x", "b": 1})
    assert first.prev_hash == GENESIS_HASH
    assert first.hash == chain_hash(GENESIS_HASH, first.body)
    doc = json.loads(first.body)
    assert doc["data"] == {"a": "x", "b": 1}

    second = seal("R1", 2, Draft(EventType.RUN_RESUMED, at, {}), first.hash)
    assert second.prev_hash == first.hash
    assert second.hash == chain_hash(first.hash, second.body)
    # same content under another run or position hashes differently
    other = seal("R2", 2, Draft(EventType.RUN_RESUMED, at, {}), first.hash)
    assert other.hash != second.hash
    assert second.to_dict()["type"] == "run.resumed"


def test_seal_rejects_non_json_data() -> None:
    with pytest.raises(ValueError, match="not canonical JSON"):
        seal("R1", 1, Draft(EventType.RUN_STARTED, "t", {"x": math.nan}), GENESIS_HASH)


def test_canonical_json_refuses_a_value_that_holds_itself() -> None:
    # it used to loop for ever; json.dumps would not get there either
    looped: dict[str, Any] = {"a": [1]}
    looped["a"].append(looped)
    with pytest.raises(RecursionError):
        canonical_json(looped)


def test_canonical_json_of_subclasses_matches_rfc8785() -> None:
    value: Any = OrderedDict(b=[_Colour.RED, (_Level.LOW, 0.5)], a=OrderedDict(x=None))
    assert canonical_json(value) == rfc8785.dumps(value).decode("utf-8")


# -- plain_json ----------------------------------------------------------------------------


class _Colour(StrEnum):
    RED = "red"


class _Level(IntEnum):
    LOW = 1
    HIGH = 2**60


def _reference_plain_json(value: Any) -> Any:
    """``plain_json`` as it was first written: one walk that builds every node's path."""
    try:
        return _reference_plain(value, "$")
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _reference_plain(value: Any, where: str) -> Any:
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
            out[key] = _reference_plain(sub, f"{where}.{key}")
        return out
    if kind is list or kind is tuple:
        return [_reference_plain(sub, f"{where}[{i}]") for i, sub in enumerate(value)]
    if kind is int:
        if -SAFE <= value <= SAFE:
            return value
        raise ValueError(f"{where}: integer {value} is beyond +/-(2**53 - 1)")
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{where}: {value} is not a JSON number")
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool | int | float):
        return _reference_plain(int(value) if isinstance(value, int) else float(value), where)
    if isinstance(value, dict):
        return _reference_plain(dict(value), where)
    if isinstance(value, list | tuple):
        return _reference_plain(list(value), where)
    raise ValueError(f"{where}: {type(value).__name__} is not JSON")


def _typed(value: Any) -> Any:
    """``value`` with every node's exact type beside it, to compare copies strictly."""
    if isinstance(value, dict):
        return (type(value), [(type(k), k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value), [_typed(v) for v in value])
    return (type(value), value)


_odd_scalars = st.one_of(
    st.sampled_from(
        [math.nan, math.inf, -math.inf, 2**53, -(2**53), _Colour.RED, _Level.LOW, _Level.HIGH]
    ),
    st.sampled_from([b"bytes", frozenset({1}), object(), 1j]),
)
_odd_keys = st.one_of(_keys, st.sampled_from([1, None, (1, 2), _Colour.RED, 2.5]))
_maybe_json = st.recursive(
    st.one_of(_scalars, _odd_scalars),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(_keys, children, max_size=4),
        st.dictionaries(_odd_keys, children, max_size=3),
        st.dictionaries(_keys, children, max_size=3).map(OrderedDict),
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(json_values, _maybe_json))
def test_plain_json_matches_the_reference_copy_and_its_messages(value: Any) -> None:
    def outcome(copy: Callable[[Any], Any]) -> tuple[str, Any]:
        try:
            return "copy", _typed(copy(value))
        except ValueError as exc:
            return "error", str(exc)

    assert outcome(plain_json) == outcome(_reference_plain_json)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": [1, {"b": math.nan}]}, "$.a[1].b: nan is not a JSON number"),
        ([0, (1, -math.inf)], "$[1][1]: -inf is not a JSON number"),
        ({"n": 2**53}, "$.n: integer 9007199254740992 is beyond +/-(2**53 - 1)"),
        ({"k": {3: "x"}}, "$.k: key 3 is not a string"),
        ({"s": {1, 2}}, "$.s: set is not JSON"),
        ({"e": _Level.HIGH}, f"$.e: integer {2**60} is beyond +/-(2**53 - 1)"),
    ],
)
def test_plain_json_says_what_and_where(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$") as raised:
        plain_json(value)
    assert raised.value.__context__ is None  # no trace of the first, silent walk


def test_plain_json_copies_into_plain_types() -> None:
    value = OrderedDict(c=_Colour.RED, t=(1, (2,)), e=_Level.LOW, d={_Colour.RED: [1.5]})
    copy = plain_json(value)
    assert copy == {"c": "red", "t": [1, [2]], "e": 1, "d": {"red": [1.5]}}
    assert _typed(copy) == _typed({"c": "red", "t": [1, [2]], "e": 1, "d": {"red": [1.5]}})
    nested: Any = "x"
    for _ in range(5000):
        nested = [nested]
    with pytest.raises(ValueError, match="nested too deeply"):
        plain_json(nested)

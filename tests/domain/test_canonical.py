"""Canonical JSON (RFC 8785) and the hash chain built on it."""

from __future__ import annotations

import hashlib
import json
import math
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

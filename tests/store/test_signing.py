"""Unit tests of the signed audit log's parts: the key, head signatures, the Merkle root,
published heads documents and the store manifest (below the CLI).

The Merkle root is checked against a reference written straight from RFC 9162
section 2.1.1 (recursive over the data, not over leaf hashes as the code is)
and against a second, bottom-up construction.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.errors import NotFoundError, UserError
from nexus.domain.events import Draft, Event, EventType, seal
from nexus.security.signing import (
    AUDIT_KEY_FILE,
    AuditKey,
    PublicKey,
    head_leaf,
    head_message,
    merkle_root,
)
from nexus.store.audit import AuditReport, verify_store
from nexus.store.base import RunRecord
from nexus.store.heads import (
    HEADS_FORMAT,
    HeadsDocument,
    HeadSigner,
    SignedHead,
    heads_root,
    keys_dir,
    manifest_path,
    read_manifest,
)
from nexus.store.sqlite import SQLiteStore

AT = "2026-12-06T00:00:00.000000Z"
HEX = "ab" * 32


# -- the key ---------------------------------------------------------------------------


def test_key_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "home" / "keys" / AUDIT_KEY_FILE
    key = AuditKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert AuditKey.load_or_create(path).public == key.public  # read back, not replaced
    assert len(bytes.fromhex(key.sign(b"x"))) == 64  # an Ed25519 signature, hex
    assert "PRIVATE" not in repr(key)


def test_an_existing_open_keys_folder_is_closed(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    AuditKey.load_or_create(folder / AUDIT_KEY_FILE)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606, 0o700])
def test_a_key_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys" / AUDIT_KEY_FILE
    AuditKey.load_or_create(path)
    os.chmod(path, mode)
    if not mode & 0o077:  # 0700 is owner-only: still accepted
        AuditKey.load(path)
        return
    with pytest.raises(UserError) as caught:
        AuditKey.load(path)
    assert str(path) in caught.value.message
    assert f"{mode:04o}" in caught.value.message
    assert "chmod 600" in caught.value.message
    with pytest.raises(UserError):  # nor is it used (or replaced) for a home
        HeadSigner.for_home(tmp_path)


def test_a_symlinked_key_is_refused(tmp_path: Path) -> None:
    # a task that could plant a link would make Nexus sign with a key it chose
    planted = tmp_path / "planted.pem"
    AuditKey.load_or_create(planted)
    path = tmp_path / "keys" / AUDIT_KEY_FILE
    path.parent.mkdir(mode=0o700)
    path.symlink_to(planted)
    with pytest.raises(UserError, match="cannot read the audit key"):
        AuditKey.load_or_create(path)


@pytest.mark.parametrize("content", [b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\nAA==\n"])
def test_a_key_file_that_is_not_an_ed25519_key_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / AUDIT_KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(UserError, match="not an Ed25519 private key"):
        AuditKey.load_or_create(path)
    assert path.read_bytes() == content  # never overwritten


def test_no_key_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=str(tmp_path)):
        AuditKey.load(tmp_path / AUDIT_KEY_FILE)


def test_threads_creating_the_key_at_once_share_one(tmp_path: Path) -> None:
    path = tmp_path / "keys" / AUDIT_KEY_FILE
    found: list[PublicKey | BaseException] = []
    barrier = threading.Barrier(8, timeout=60)

    def create() -> None:
        barrier.wait()
        try:
            found.append(AuditKey.load_or_create(path).public)
        except BaseException as exc:
            found.append(exc)

    workers = [threading.Thread(target=create) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert all(isinstance(k, PublicKey) for k in found), found
    assert len(set(found)) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == [AUDIT_KEY_FILE]


# -- signatures --------------------------------------------------------------------------


def test_sign_and_verify_round_trip() -> None:
    signer = HeadSigner(AuditKey.generate(), manifest=Path("unused"))
    head = signer.sign("store-1", "run-1", 7, HEX)
    key = signer.key.public
    assert head.valid(key, "store-1")
    assert head.key_id == key.key_id
    assert PublicKey.from_text(key.text()) == key
    assert key.verify(head.signature, head_message("store-1", "run-1", 7, HEX))


_FIELDS = st.sampled_from(["run_id", "seq", "hash", "signature", "store", "key"])


@settings(max_examples=60, deadline=None)
@given(field=_FIELDS, seq=st.integers(1, 10**9), run=st.text(min_size=1, max_size=30))
def test_a_tampered_head_or_signature_is_rejected(field: str, seq: int, run: str) -> None:
    key = AuditKey.generate()
    signer = HeadSigner(key, manifest=Path("unused"))
    head = signer.sign("store-1", run, seq, HEX)
    assert head.valid(key.public, "store-1")
    store, public = "store-1", key.public
    if field == "run_id":
        head = SignedHead(run + "x", head.seq, head.hash, head.key_id, head.signature)
    elif field == "seq":
        head = SignedHead(head.run_id, seq + 1, head.hash, head.key_id, head.signature)
    elif field == "hash":
        head = SignedHead(head.run_id, head.seq, "cd" * 32, head.key_id, head.signature)
    elif field == "signature":
        flipped = bytes.fromhex(head.signature)
        flipped = bytes([flipped[0] ^ 1]) + flipped[1:]
        head = SignedHead(head.run_id, head.seq, head.hash, head.key_id, flipped.hex())
    elif field == "store":
        store = "store-2"  # the same heads copied into another store
    else:
        public = AuditKey.generate().public  # forged with another key
    assert not head.valid(public, store)


def test_the_message_cannot_be_shifted_between_fields() -> None:
    # run "a" seq 12 and run "a:1" seq 2 must not sign the same bytes
    assert head_message("s", "a", 12, HEX) != head_message("s", "a\x001", 2, HEX)
    assert head_message("s", "r", 1, HEX).startswith(b"nexus-audit-head/1\x00")


@pytest.mark.parametrize("text", ["", "!!!", "AAAA", "QUJD" * 20, "é"])
def test_public_key_text_is_checked(text: str) -> None:
    with pytest.raises(UserError, match="not a base64 Ed25519 key"):
        PublicKey.from_text(text)


def test_bad_hex_signature_does_not_verify() -> None:
    key = AuditKey.generate().public
    assert not key.verify("zz", b"m")
    assert not key.verify("", b"m")


# -- the Merkle root ---------------------------------------------------------------------


def _mth(data: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.1, as written: MTH({}), MTH({d0}), MTH(D[n]) with k < n <= 2k."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(data[:k]) + _mth(data[k:])).digest()


def _bottom_up(data: Sequence[bytes]) -> bytes:
    """The same tree built level by level, a lone last node carried up unchanged."""
    if not data:
        return hashlib.sha256(b"").digest()
    level = [hashlib.sha256(b"\x00" + d).digest() for d in data]
    while len(level) > 1:
        nxt = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


_SIZES = sorted({0, 1, 2, 3} | {n for k in range(2, 8) for n in (2**k - 1, 2**k, 2**k + 1)})


@pytest.mark.parametrize("n", _SIZES)
def test_merkle_root_is_rfc9162_mth(n: int) -> None:
    data = [f"leaf-{i}".encode() for i in range(n)]
    assert merkle_root(data) == _mth(data).hex() == _bottom_up(data).hex()


def test_merkle_root_known_values() -> None:
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle_root([]) == empty
    # the RFC 6962/9162 leaf hash of "L123456" (a widely used published test vector)
    leaf = "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    assert merkle_root([b"L123456"]) == leaf


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=70))
def test_merkle_root_equals_the_reference(data: list[bytes]) -> None:
    assert merkle_root(data) == _mth(data).hex() == _bottom_up(data).hex()


_HEADS = st.dictionaries(
    st.text("0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=1, max_size=8),
    st.tuples(st.integers(1, 10**6), st.binary(min_size=32, max_size=32)),
    max_size=40,
)


def _heads(d: dict[str, tuple[int, bytes]]) -> list[SignedHead]:
    return [SignedHead(r, s, h.hex(), "k", "sig") for r, (s, h) in d.items()]


@settings(max_examples=120, deadline=None)
@given(heads=_HEADS, data=st.data())
def test_the_root_changes_with_any_head(heads: dict[str, tuple[int, bytes]], data: Any) -> None:
    root = heads_root(_heads(heads))
    # order of the input does not matter (heads are taken in run-id order)
    assert heads_root(reversed(_heads(heads))) == root
    new_run = data.draw(
        st.text("0123456789abc", min_size=1, max_size=9).filter(lambda r: r not in heads)
    )
    assert heads_root([*_heads(heads), SignedHead(new_run, 1, HEX, "k", "s")]) != root
    if not heads:
        return
    victim = data.draw(st.sampled_from(sorted(heads)))
    seq, digest = heads[victim]
    removed = {r: v for r, v in heads.items() if r != victim}
    assert heads_root(_heads(removed)) != root
    longer = {**heads, victim: (seq + 1, digest)}
    assert heads_root(_heads(longer)) != root
    flipped = bytes([digest[0] ^ 0x80]) + digest[1:]
    assert heads_root(_heads({**heads, victim: (seq, flipped)})) != root
    # the signature is not part of the leaf: re-signing keeps the root
    resigned = [SignedHead(h.run_id, h.seq, h.hash, "k2", "other") for h in _heads(heads)]
    assert heads_root(resigned) == root


def test_head_leaf_is_run_seq_hash() -> None:
    assert head_leaf("R1", 3, HEX) == f"R1:3:{HEX}".encode()


# -- published heads documents -----------------------------------------------------------


def _doc(**changes: Any) -> dict[str, Any]:
    key = AuditKey.generate().public
    doc: dict[str, Any] = {
        "format": HEADS_FORMAT,
        "store_id": "s1",
        "public_key": key.text(),
        "heads": [{"run_id": "R1", "seq": 3, "hash": HEX, "key_id": "k", "signature": "00"}],
    }
    doc.update(changes)
    return doc


def test_a_heads_document_round_trips(tmp_path: Path) -> None:
    signer = HeadSigner(AuditKey.generate(), manifest=tmp_path / "m.json")
    heads = {"R1": signer.sign("s1", "R1", 3, HEX), "R0": signer.sign("s1", "R0", 9, "cd" * 32)}
    doc = HeadsDocument("s1", heads, signer.key.public)
    path = tmp_path / "heads.json"
    path.write_text(json.dumps(doc.to_dict()), encoding="utf-8")
    back = HeadsDocument.read(path)
    assert back.heads == heads
    assert back.public_key == signer.key.public
    assert back.root == doc.root == heads_root(heads.values())
    assert doc.to_dict()["runs"] == 2


_BAD_DOCS: list[tuple[Any, str]] = [
    ([], "not a Nexus heads document"),
    ({"format": "other/1"}, "not a Nexus heads document"),
    (_doc(store_id=""), "field 'store_id'"),
    (_doc(store_id=7), "field 'store_id'"),
    (_doc(public_key="abc"), "field 'public_key'"),
    (_doc(heads={"R1": 1}), "field 'heads' must be a list"),
    (_doc(heads=["R1"]), "heads[0] must be an object"),
    (_doc(heads=[{"seq": 1, "hash": HEX}]), "heads[0].run_id"),
    (_doc(heads=[{"run_id": "R", "seq": 0, "hash": HEX}]), "heads[0].seq"),
    (_doc(heads=[{"run_id": "R", "seq": "3", "hash": HEX}]), "heads[0].seq"),
    (_doc(heads=[{"run_id": "R", "seq": True, "hash": HEX}]), "heads[0].seq"),
    (_doc(heads=[{"run_id": "R", "seq": 1, "hash": "abc"}]), "heads[0].hash"),
    (
        _doc(heads=[{"run_id": "R", "seq": 1, "hash": HEX}, {"run_id": "Q", "seq": 1}]),
        "heads[1].hash",
    ),
]


@pytest.mark.parametrize(("data", "says"), _BAD_DOCS)
def test_a_bad_heads_document_names_the_file_and_field(
    tmp_path: Path, data: Any, says: str
) -> None:
    path = tmp_path / "published.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(UserError) as caught:
        HeadsDocument.read(path)
    assert str(path) in caught.value.message
    assert says in caught.value.message


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "no such file"), (b"{not json", "not JSON (line 1"), (b"\xff\xfe", "cannot read")],
)
def test_an_unreadable_heads_file_names_the_file(
    tmp_path: Path, content: bytes | None, says: str
) -> None:
    path = tmp_path / "published.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        HeadsDocument.read(path)
    assert caught.value.message.startswith(str(path))
    assert says in caught.value.message


# -- the store manifest and the store ----------------------------------------------------


def _events(run_id: str, n: int) -> list[Event]:
    out = [seal(run_id, 1, Draft(EventType.RUN_STARTED, AT, {}), GENESIS_HASH)]
    for seq in range(2, n + 1):
        kind = EventType.RUN_SUCCEEDED if seq == n else EventType.TIMER_FIRED
        out.append(seal(run_id, seq, Draft(kind, AT, {"i": seq}), out[-1].hash))
    return out


async def _write_run(store: SQLiteStore, run_id: str, n: int = 6) -> None:
    chain = _events(run_id, n)
    record = RunRecord(run_id, "t", "0" * 64, "running", AT, AT, None, "", 1)
    await store.create_run(record, chain[0])
    await store.append(run_id, chain[1:3], None)
    await store.append(run_id, chain[3:], "succeeded")


def _populate(home: Path, runs: Sequence[str]) -> None:
    async def go() -> None:
        store = SQLiteStore.open(home / "nexus.db", signer=HeadSigner.for_home(home))
        try:
            for run in runs:
                await _write_run(store, run)
        finally:
            await store.close()

    asyncio.run(go())


def _verify(home: Path) -> AuditReport:
    """What ``nexus audit verify`` checks, at the store level: manifest included."""
    key = AuditKey.load(keys_dir(home) / AUDIT_KEY_FILE).public
    manifest = read_manifest(manifest_path(home), key)
    assert manifest is not None
    store = SQLiteStore.open(home / "nexus.db")
    try:
        with store.audit_snapshot() as snap:
            return verify_store(snap, key, anchors=[manifest], require_signed=True)
    finally:
        asyncio.run(store.close())


def _reasons(report: AuditReport) -> str:
    return "\n".join(f"{p['run_id']} {p['seq']}: {p['reason']}" for p in report.problems)


def test_the_manifest_records_every_run_signed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _populate(home, ["RUN-A", "RUN-B"])
    key = AuditKey.load(keys_dir(home) / AUDIT_KEY_FILE).public
    manifest = read_manifest(manifest_path(home), key)
    assert manifest is not None
    assert {r: h.seq for r, h in manifest.heads.items()} == {"RUN-A": 6, "RUN-B": 6}
    assert all(h.valid(key, manifest.store_id) for h in manifest.heads.values())
    report = _verify(home)
    assert report.ok, _reasons(report)
    assert report.signed == 2


def test_a_swapped_database_is_caught_by_the_manifest(tmp_path: Path) -> None:
    home, other = tmp_path / "home", tmp_path / "other"
    _populate(home, ["RUN-A", "RUN-B"])
    # another valid store, signed with the same key (the attacker ran Nexus on it)
    other.mkdir()
    keys_dir(other).mkdir(mode=0o700)
    os.link(keys_dir(home) / AUDIT_KEY_FILE, keys_dir(other) / AUDIT_KEY_FILE)
    _populate(other, ["RUN-A"])
    os.replace(other / "nexus.db", home / "nexus.db")
    report = _verify(home)
    assert not report.ok
    text = _reasons(report)
    assert "swapped for another database or emptied" in text
    assert "names run RUN-B, which is not in the store" in text


def test_writing_to_a_swapped_database_does_not_bless_it(tmp_path: Path) -> None:
    home, other = tmp_path / "home", tmp_path / "other"
    _populate(home, ["RUN-A"])
    other.mkdir()
    _populate(other, [])
    os.replace(other / "nexus.db", home / "nexus.db")
    _populate(home, ["RUN-Z"])  # a new run through Nexus on the swapped database
    report = _verify(home)
    assert "swapped for another database or emptied" in _reasons(report)


def test_an_emptied_database_is_caught_by_the_manifest(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _populate(home, ["RUN-A", "RUN-B"])
    db = home / "nexus.db"
    for side in (db.with_name("nexus.db-wal"), db.with_name("nexus.db-shm")):
        side.unlink(missing_ok=True)
    db.write_bytes(b"")  # SQLite takes an empty file for a new database
    report = _verify(home)
    text = _reasons(report)
    assert not report.ok
    assert "swapped for another database or emptied" in text
    assert "RUN-A" in text
    assert "RUN-B" in text


def test_an_edited_manifest_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _populate(home, ["RUN-A", "RUN-B"])
    path = manifest_path(home)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["heads"] = [h for h in data["heads"] if h["run_id"] != "RUN-B"]  # hide a run
    path.write_text(json.dumps(data), encoding="utf-8")
    key = AuditKey.load(keys_dir(home) / AUDIT_KEY_FILE).public
    with pytest.raises(UserError, match="not signed by this home's audit key"):
        read_manifest(path, key)
    with pytest.raises(UserError, match="not signed by this home's audit key"):
        read_manifest(path, AuditKey.generate().public)


# -- every problem of a run is reported --------------------------------------------------


def _sql(home: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(home / "nexus.db")
    try:
        with conn:
            for sql, args in statements:
                conn.execute(sql, args)
    finally:
        conn.close()


def _problems(report: AuditReport, run_id: str) -> list[tuple[int | None, str]]:
    return [(p["seq"], p["reason"]) for p in report.problems if p["run_id"] == run_id]


def test_a_cut_tail_is_also_reported_against_the_signed_head(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _populate(home, ["RUN-A", "RUN-B"])
    _sql(home, ("DELETE FROM events WHERE run_id = 'RUN-B' AND seq > 4", ()))
    report = _verify(home)
    found = _problems(report, "RUN-B")
    assert report.first_bad is not None
    assert report.first_bad["reason"].startswith("the log ends at seq 4 but 6 events")
    # the projection's count can be forged with the log; the signed head cannot
    assert any("signed head is at seq 6: the tail was cut" in r for _, r in found), found
    assert any("store manifest records 6 events" in r for _, r in found), found
    assert {seq for seq, _ in found} == {5}
    assert _problems(report, "RUN-A") == []


def test_every_edited_event_of_a_run_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _populate(home, ["RUN-A"])
    edits = [
        (
            "UPDATE events SET body = replace(body, '\"i\":' || seq, '\"i\":99') "
            "WHERE run_id = 'RUN-A' AND seq IN (2, 4)",
            (),
        )
    ]
    _sql(home, *edits)
    found = _problems(_verify(home), "RUN-A")
    assert [seq for seq, _ in found] == [2, 4], found
    assert all("altered" in reason for _, reason in found)


def test_one_broken_link_is_reported_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _populate(home, ["RUN-A"])
    _sql(home, ("UPDATE events SET hash = ? WHERE run_id = 'RUN-A' AND seq = 3", ("f" * 64,)))
    assert _problems(_verify(home), "RUN-A") == [
        (3, "hash does not match the event's content (the event was altered)")
    ]
    home2 = tmp_path / "home2"
    _populate(home2, ["RUN-A"])
    _sql(home2, ("DELETE FROM events WHERE run_id = 'RUN-A' AND seq = 3", ()))
    assert _problems(_verify(home2), "RUN-A") == [
        (3, "expected seq 3, found 4 (an event is missing)")
    ]


def test_a_broken_chain_and_a_cut_tail_are_both_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _populate(home, ["RUN-A"])
    _sql(
        home,
        ("DELETE FROM events WHERE run_id = 'RUN-A' AND seq IN (2, 6)", ()),
        ("UPDATE runs SET events = 5 WHERE run_id = 'RUN-A'", ()),  # the forger's projection
    )
    found = _problems(_verify(home), "RUN-A")
    seqs = [seq for seq, _ in found]
    assert seqs[0] == 2
    assert "missing" in found[0][1]
    assert any("the tail was cut" in r for _, r in found), found

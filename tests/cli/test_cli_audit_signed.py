"""Attacks on the audit log and the store, through the real ``nexus`` CLI.

Each test tampers with the database the way a task that could write it would
(plain SQL, recomputing every hash it touches) and checks that
``nexus audit verify`` fails naming the run. Before signed heads and the store
manifest, every one of these verified as "chain intact" (exit 0).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cli_support import WORKFLOWS, nexus

WF = WORKFLOWS / "chain.yaml"


def _home(tmp_path: Path, name: str = "home") -> Path:
    home = tmp_path / name / ".nexus"
    home.parent.mkdir()
    return home


def _run_twice(home: Path) -> list[str]:
    for _ in range(2):
        assert nexus(home, "run", WF).code == 0
    with sqlite3.connect(home / "nexus.db") as conn:
        return [r for (r,) in conn.execute("SELECT run_id FROM runs ORDER BY run_id")]


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, str]:
    home = _home(tmp_path)
    runs = _run_twice(home)
    assert nexus(home, "audit", "verify").code == 0
    return home, runs[-1]


def _rehash_from(conn: sqlite3.Connection, run_id: str, seq: int) -> None:
    """Recompute the chain of ``run_id`` from ``seq`` on, as a forger would."""
    prev = conn.execute(
        "SELECT hash FROM events WHERE run_id = ? AND seq = ?", (run_id, seq - 1)
    ).fetchone()[0]
    for s, body in conn.execute(
        "SELECT seq, body FROM events WHERE run_id = ? AND seq >= ? ORDER BY seq", (run_id, seq)
    ).fetchall():
        new = hashlib.sha256((prev + body).encode()).hexdigest()
        conn.execute(
            "UPDATE events SET prev_hash = ?, hash = ? WHERE run_id = ? AND seq = ?",
            (prev, new, run_id, s),
        )
        prev = new


def _fails_naming(home: Path, run_id: str | None, *words: str) -> str:
    result = nexus(home, "audit", "verify")
    assert result.code == 1, result.text
    assert "TAMPERED" in result.stderr
    if run_id is not None:
        assert run_id in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    return result.stderr


def test_edited_payload_with_recomputed_hashes_fails(home: tuple[Path, str]) -> None:
    home_dir, victim = home
    with sqlite3.connect(home_dir / "nexus.db") as conn:
        body = conn.execute(
            "SELECT body FROM events WHERE run_id = ? AND seq = 3", (victim,)
        ).fetchone()[0]
        forged = body.replace('"attempt":1', '"attempt":7', 1)
        assert forged != body
        conn.execute("UPDATE events SET body = ? WHERE run_id = ? AND seq = 3", (forged, victim))
        _rehash_from(conn, victim, 3)
    _fails_naming(home_dir, victim, "recomputed")


def test_forged_event_appended_with_a_correct_hash_fails(home: tuple[Path, str]) -> None:
    home_dir, victim = home
    with sqlite3.connect(home_dir / "nexus.db") as conn:
        seq, hash_, body = conn.execute(
            "SELECT seq, hash, body FROM events WHERE run_id = ? ORDER BY seq DESC LIMIT 1",
            (victim,),
        ).fetchone()
        doc = json.loads(body)
        doc.update(seq=seq + 1, type="run.succeeded", data={"forged": True})
        new_body = json.dumps(doc, separators=(",", ":"), sort_keys=True)
        new_hash = hashlib.sha256((hash_ + new_body).encode()).hexdigest()
        conn.execute(
            "INSERT INTO events (run_id, seq, type, at, task, prev_hash, hash, body) "
            "VALUES (?, ?, 'run.succeeded', ?, NULL, ?, ?, ?)",
            (victim, seq + 1, doc["at"], hash_, new_hash, new_body),
        )
        # the forger also keeps the projection in step
        conn.execute("UPDATE runs SET events = ? WHERE run_id = ?", (seq + 1, victim))
    _fails_naming(home_dir, victim, "without the audit key")


def test_deleted_tail_fails(home: tuple[Path, str]) -> None:
    home_dir, victim = home
    with sqlite3.connect(home_dir / "nexus.db") as conn:
        (last,) = conn.execute("SELECT events FROM runs WHERE run_id = ?", (victim,)).fetchone()
        conn.execute("DELETE FROM events WHERE run_id = ? AND seq >= ?", (victim, last - 1))
        conn.execute("UPDATE runs SET events = ? WHERE run_id = ?", (last - 2, victim))
    _fails_naming(home_dir, victim, f"the store has {last - 2}")


def test_swapped_database_fails(tmp_path: Path, home: tuple[Path, str]) -> None:
    home_dir, _ = home
    other = _home(tmp_path, "other")
    _run_twice(other)
    assert nexus(other, "audit", "verify").code == 0  # a valid store of its own
    for suffix in ("", "-wal", "-shm"):
        (home_dir / f"nexus.db{suffix}").unlink(missing_ok=True)
    shutil.copy(other / "nexus.db", home_dir / "nexus.db")
    _fails_naming(home_dir, None, "swapped")


def test_emptied_database_fails(home: tuple[Path, str]) -> None:
    home_dir, victim = home
    for suffix in ("-wal", "-shm"):
        (home_dir / f"nexus.db{suffix}").unlink(missing_ok=True)
    (home_dir / "nexus.db").write_bytes(b"")
    stderr = _fails_naming(home_dir, None, "emptied")
    assert victim in stderr  # each run the manifest promised is named


def test_verify_against_published_heads(tmp_path: Path, home: tuple[Path, str]) -> None:
    home_dir, victim = home
    published = nexus(home_dir, "audit", "head", "--json")
    assert published.code == 0
    doc = published.json()
    assert doc["runs"] == 2
    assert len(doc["root"]) == 64
    assert doc["public_key"]
    heads = tmp_path / "heads.json"
    heads.write_text(published.stdout)
    assert nexus(home_dir, "audit", "verify", "--against", heads).code == 0
    # a run the published heads name is gone (projection, heads and events alike)
    with sqlite3.connect(home_dir / "nexus.db") as conn:
        for table in ("events", "runs", "audit_heads"):
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (victim,))
    (home_dir / "keys" / "store-manifest.json").unlink()  # only the published copy is left
    result = nexus(home_dir, "audit", "verify", "--against", heads)
    assert result.code == 1
    assert f"names run {victim}, which is not in the store" in result.stderr


def test_bad_heads_file_is_a_clear_error(tmp_path: Path, home: tuple[Path, str]) -> None:
    home_dir, _ = home
    bad = tmp_path / "heads.json"
    bad.write_text('{"format": "nexus-audit-heads/1", "store_id": "x", "heads": [{"seq": 1}]}')
    result = nexus(home_dir, "audit", "verify", "--against", bad)
    assert result.code == 2
    assert "heads[0].run_id" in result.stderr
    assert str(bad) in result.stderr


def test_old_unsigned_runs_warn_then_sign(home: tuple[Path, str]) -> None:
    home_dir, _victim = home
    with sqlite3.connect(home_dir / "nexus.db") as conn:
        conn.execute("DELETE FROM audit_heads")  # as recorded before signing existed
    (home_dir / "keys" / "store-manifest.json").unlink()
    result = nexus(home_dir, "audit", "verify")
    assert result.code == 0
    assert "no signed head" in result.stderr
    assert nexus(home_dir, "audit", "verify", "--require-signed").code == 1
    assert nexus(home_dir, "audit", "sign").code == 0
    assert nexus(home_dir, "audit", "verify", "--require-signed").code == 0


def test_key_file_is_private(home: tuple[Path, str]) -> None:
    home_dir, _ = home
    key = home_dir / "keys" / "audit.ed25519"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (home_dir / "keys").stat().st_mode & 0o777 == 0o700
    key.chmod(0o644)
    result = nexus(home_dir, "runs")
    assert result.code == 2
    assert "chmod 600" in result.stderr


def test_backup_and_restore(tmp_path: Path, home: tuple[Path, str]) -> None:
    home_dir, victim = home
    dest = tmp_path / "bk"
    made = nexus(home_dir, "backup", dest, "--json")
    assert made.code == 0, made.text
    assert (dest / "nexus.db").is_file()
    assert not (dest / "keys").exists()
    # refuse to overwrite the live store
    refused = nexus(home_dir, "restore", dest)
    assert refused.code == 3
    assert "--force" in refused.stderr
    assert nexus(home_dir, "run", WF).code == 0  # newer than the backup
    done = nexus(home_dir, "restore", dest, "--force")
    assert done.code == 0, done.text
    assert nexus(home_dir, "audit", "verify", "--require-signed").code == 0
    assert list(home_dir.glob("nexus.db.replaced-*"))
    # a tampered backup is not restored
    with sqlite3.connect(dest / "nexus.db") as conn:
        conn.execute("DELETE FROM events WHERE run_id = ? AND seq > 5", (victim,))
        conn.execute("UPDATE runs SET events = 5 WHERE run_id = ?", (victim,))
    bad = nexus(home_dir, "restore", dest, "--force")
    assert bad.code == 1
    assert victim in bad.stderr


def test_backup_with_keys_restores_into_a_new_home(tmp_path: Path, home: tuple[Path, str]) -> None:
    home_dir, _ = home
    dest = tmp_path / "bk"
    assert nexus(home_dir, "backup", dest, "--with-keys").code == 0
    assert (dest / "keys" / "audit.ed25519").stat().st_mode & 0o777 == 0o600
    fresh = _home(tmp_path, "fresh")
    assert nexus(fresh, "restore", dest).code == 0
    assert nexus(fresh, "audit", "verify", "--require-signed").code == 0


# -- unusable databases: exit 2 naming the file, never 70 --------------------------


def _db_of(tmp_path: Path) -> tuple[Path, Path]:
    home = _home(tmp_path)
    home.mkdir()
    return home, home / "nexus.db"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"this is not a database at all\n" * 10, "not a SQLite database"),
        (b"SQLite format 3\x00" + b"\x10\x00" + b"\x00" * 10, "truncated"),
    ],
)
def test_garbage_database_is_a_clear_error(tmp_path: Path, content: bytes, words: str) -> None:
    home, db = _db_of(tmp_path)
    db.write_bytes(content)
    result = nexus(home, "runs")
    assert result.code == 2, result.text
    assert str(db) in result.stderr
    assert words in result.stderr


def test_truncated_database_is_a_clear_error(tmp_path: Path) -> None:
    home = _home(tmp_path)
    _run_twice(home)
    db = home / "nexus.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = db.read_bytes()
    for suffix in ("-wal", "-shm"):
        (home / f"nexus.db{suffix}").unlink(missing_ok=True)
    db.write_bytes(data[: len(data) // 2])
    result = nexus(home, "audit", "verify")
    assert result.code == 2, result.text
    assert "truncated" in result.stderr
    assert str(db) in result.stderr


def test_future_revision_is_a_clear_error(tmp_path: Path) -> None:
    home = _home(tmp_path)
    _run_twice(home)
    with sqlite3.connect(home / "nexus.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    result = nexus(home, "status", "x")
    assert result.code == 2, result.text
    assert "9999" in result.stderr
    assert "newer Nexus" in result.stderr


def test_another_programs_database_is_a_clear_error(tmp_path: Path) -> None:
    home, db = _db_of(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    result = nexus(home, "runs")
    assert result.code == 2, result.text
    assert "not a Nexus store" in result.stderr
    assert "moz_places" in result.stderr


def test_read_only_database_is_a_clear_error(tmp_path: Path) -> None:
    home = _home(tmp_path)
    _run_twice(home)
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("needs bubblewrap for a read-only mount (root ignores file modes)")
    from cli_support import NEXUS, cli_env

    # a new store on a read-only mount: creating and migrating it must fail clearly
    empty = tmp_path / "ro"
    empty.mkdir()
    proc = subprocess.run(
        [bwrap, "--dev-bind", "/", "/", "--ro-bind", str(empty), str(empty),
         str(NEXUS), "run", str(WF)],
        capture_output=True, text=True, env=cli_env(empty / ".nexus"), timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(empty) in proc.stderr

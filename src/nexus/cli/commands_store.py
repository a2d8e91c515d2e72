"""``nexus backup`` and ``nexus restore``: a consistent online copy of the store, and back.

A backup is a folder::

    PATH/nexus.db        the database, copied with SQLite's online backup API
                         (consistent while runs are writing)
    PATH/backup.json     when, from where, and the signed heads at that moment
                         (a heads document, as `nexus audit head --json` prints)
    PATH/keys/           only with --with-keys: the audit key and store manifest
    PATH/mcp-pins.json   only with --with-keys: approved MCP tool pins

Keys and pins are secrets (whoever holds the key can sign a forged log), so
they are copied only when asked. ``nexus restore PATH`` copies the database
to a temporary file beside the store, verifies its chains and signed heads
(against the backup's heads and key), and only then moves it into place; the
store it replaces is kept beside it as ``nexus.db.replaced-<time>``. Heads
signed by another key (a backup from another home, restored without its key)
are re-signed with this home's key once they verified; the store manifest is
rewritten from the restored database.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from nexus.cli.commands_audit import check_store, home_public_key, print_report
from nexus.cli.output import EXIT_FAILED, emit_json, err, out, run_async
from nexus.config import Settings
from nexus.domain.errors import ConflictError, UserError

if TYPE_CHECKING:
    from nexus.security.signing import AuditKey
    from nexus.store.heads import HeadsDocument

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
BACKUP_FORMAT = "nexus-backup/1"
_PINS = "mcp-pins.json"


def _copy_db(source: Path, target: Path) -> None:
    """An online, consistent copy of a SQLite database (the backup API).

    The copy is one backup step, so one read transaction: in WAL mode writers
    go on meanwhile and the copy is the snapshot the step began with. Copying
    in several steps instead restarts from the first page whenever another
    connection commits between steps, so a run writing steadily kept a backup
    of more than one step's pages from ever finishing.
    """
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=-1)
        finally:
            dst.close()
    except sqlite3.DatabaseError as exc:
        raise UserError(f"cannot copy the database {source} to {target}: {exc}") from exc
    finally:
        src.close()


def _copy_secret(source: Path, target: Path) -> None:
    if source.is_dir():
        target.mkdir(mode=0o700, exist_ok=True)
        for item in sorted(source.iterdir()):
            if item.is_file() and not item.name.endswith((".lock", ".tmp")):
                _copy_secret(item, target / item.name)
    elif source.is_file():
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(source.read_bytes())


def backup(
    path: Annotated[
        Path | None,
        typer.Argument(help="A new folder for the backup (default: ./nexus-backup-<time>)."),
    ] = None,
    with_keys: Annotated[
        bool,
        typer.Option("--with-keys", help="Also copy the audit key and MCP pins (secrets)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy the store while runs may be writing; verify the copy's audit chain."""
    from nexus.store.heads import HeadsDocument, keys_dir
    from nexus.store.sqlite import SQLiteStore

    settings = Settings()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path if path is not None else Path(f"nexus-backup-{stamp}")

    async def go() -> dict[str, Any]:
        db = settings.db_path
        if not db.is_file():
            raise UserError(f"there is no store to back up at {db} (NEXUS_HOME={settings.home})")
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise UserError(f"{target} exists and is not an empty folder; choose a new path")
        started = time.perf_counter()
        SQLiteStore.open(db).engine.dispose()  # refuse an unusable store before copying
        try:
            target.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create {target}: {exc.strerror}") from None
        await asyncio.to_thread(_copy_db, db, target / "nexus.db")
        copied = time.perf_counter() - started
        store = SQLiteStore.open(target / "nexus.db")
        try:
            key = home_public_key(settings.home)
            report = await asyncio.to_thread(
                check_store, store, settings.home, key=key, manifest=False
            )
            with store.audit_snapshot() as snap:
                heads = HeadsDocument(snap.store_id or "", snap.signed, key)
        finally:
            await store.close()
        if with_keys:
            _copy_secret(keys_dir(settings.home), target / "keys")
            _copy_secret(settings.home / _PINS, target / _PINS)
        meta = {
            **heads.to_dict(),
            "backup": BACKUP_FORMAT,
            "created": stamp,
            "source": str(db.resolve()),
            "with_keys": with_keys,
        }
        (target / "backup.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        return {
            "path": str(target),
            "bytes": (target / "nexus.db").stat().st_size,
            "seconds": round(copied, 3),
            "with_keys": with_keys,
            "audit": report.to_dict(),
        }

    result = run_async(go, as_json=as_json)
    audit = result["audit"]
    if as_json:
        emit_json(result)
    else:
        out.print(
            f"backed up {audit['events']} events in {audit['runs']} run(s) "
            f"({result['bytes']:,} bytes, {result['seconds']} s) to {escape(result['path'])}"
            + (" with keys and pins" if with_keys else "")
        )
        if not audit["ok"]:
            err.print("[bold red]warning:[/] the copied log does not verify; see below")
            for bad in audit["problems"]:
                err.print(f"  run {bad['run_id']} seq {bad['seq']}: {escape(bad['reason'])}")
    if not audit["ok"]:
        raise typer.Exit(EXIT_FAILED)


def _backup_parts(path: Path) -> tuple[Path, HeadsDocument | None, AuditKey | None]:
    """The database, heads and key of a backup folder (or a bare database file)."""
    from nexus.security.signing import AUDIT_KEY_FILE, AuditKey
    from nexus.store.heads import HeadsDocument

    if path.is_file():
        return path, None, None
    db = path / "nexus.db"
    if not db.is_file():
        raise UserError(f"{path} is not a Nexus backup (no nexus.db in it)")
    meta = path / "backup.json"
    heads = HeadsDocument.read(meta) if meta.is_file() else None
    key_file = path / "keys" / AUDIT_KEY_FILE
    key = AuditKey.load(key_file) if key_file.is_file() else None
    return db, heads, key


def restore(
    path: Annotated[Path, typer.Argument(help="A backup folder (or a nexus.db file).")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing store (kept aside).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Bring a backup back as the store, after verifying its audit chain and signed heads."""
    from nexus.security.signing import AUDIT_KEY_FILE
    from nexus.store.audit import verify_store
    from nexus.store.heads import HeadSigner, keys_dir
    from nexus.store.sqlite import SQLiteStore

    settings = Settings()

    async def go() -> dict[str, Any]:
        db = settings.db_path
        if not path.exists():
            raise UserError(f"{path}: no such backup")
        source, heads, backup_key = _backup_parts(path)
        live = db.is_file() and db.stat().st_size > 0
        if live and not force:
            raise ConflictError(
                f"a store exists at {db}; stop its runs and pass --force to replace it "
                "(it is kept beside it as nexus.db.replaced-<time>)"
            )
        started = time.perf_counter()
        db.parent.mkdir(parents=True, exist_ok=True)
        staged = db.with_name(f".{db.name}.restoring")
        staged.unlink(missing_ok=True)
        await asyncio.to_thread(_copy_db, source, staged)
        home_key = home_public_key(settings.home)
        key = backup_key.public if backup_key is not None else None
        key = key or (heads.public_key if heads is not None else None) or home_key
        store = SQLiteStore.open(staged)
        try:
            report = await asyncio.to_thread(
                check_store,
                store,
                settings.home,
                key=key,
                manifest=False,
                against=None,
            )
            if heads is not None:  # the backup's own record of its heads
                with store.audit_snapshot() as snap:
                    again = verify_store(snap, key, anchors=[heads])
                report.problems.extend(p for p in again.problems if p not in report.problems)
                report.ok = report.ok and again.ok
                report.first_bad = report.first_bad or again.first_bad
        finally:
            await store.close()
        if key is None and report.warnings and any("no public key" in w for w in report.warnings):
            report.bad(
                None,
                None,
                "the backup's heads are signed but no key to check them is at hand (restore "
                "into the home that made it, or back up with --with-keys)",
            )
        if not report.ok:
            staged.unlink(missing_ok=True)
            return {"restored": False, "audit": report}
        if backup_key is not None and not (keys_dir(settings.home) / AUDIT_KEY_FILE).exists():
            _copy_secret(path / "keys", keys_dir(settings.home))
        pins = path / _PINS
        if pins.is_file() and not (settings.home / _PINS).exists():
            _copy_secret(pins, settings.home / _PINS)
        kept = None
        if db.exists():
            kept = db.with_name(f"{db.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}")
            os.replace(db, kept)
            for suffix in ("-wal", "-shm"):
                side = db.with_name(db.name + suffix)
                if side.exists():
                    shutil.move(side, kept.with_name(kept.name + suffix))
        os.replace(staged, db)
        signer = HeadSigner.for_home(settings.home)
        store = SQLiteStore.open(db, signer=signer)
        try:
            with store.audit_snapshot() as snap:
                resign = [r for r, h in snap.signed.items() if h.key_id != signer.key.public.key_id]
                unsigned = sorted(set(snap.projections) - set(snap.signed))
            await asyncio.to_thread(store.sign_heads, signer, resign, reset=True)
        finally:
            await store.close()
        return {
            "restored": True,
            "audit": report,
            "seconds": round(time.perf_counter() - started, 3),
            "replaced": None if kept is None else str(kept),
            "resigned": len(resign),
            "unsigned": unsigned,
        }

    result = run_async(go, as_json=as_json)
    report = result.pop("audit")
    if as_json:
        emit_json({**result, "audit": report.to_dict()})
    else:
        print_report(report)
        if result["restored"]:
            out.print(
                f"restored {report.events} events in {report.runs} run(s) to "
                f"{escape(str(settings.db_path))} in {result['seconds']} s"
                + (
                    f"; the previous store is kept as {result['replaced']}"
                    if result["replaced"]
                    else ""
                )
                + (
                    f"; re-signed {result['resigned']} head(s) with this home's key"
                    if result["resigned"]
                    else ""
                )
            )
        else:
            err.print("[bold red]not restored:[/] the backup's log does not verify (see above)")
    if not result["restored"]:
        raise typer.Exit(EXIT_FAILED)

"""``nexus audit``: verify the log against its signed heads, print heads to anchor, sign old runs.

Exit codes: 0 the store holds (warnings, such as unsigned runs, go to stderr);
1 it does not; 2 bad input (an unreadable heads file, an unusable database).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from nexus.cli.output import EXIT_FAILED, emit_json, err, open_store, out, run_async
from nexus.cli.runref import resolve_run_arg
from nexus.config import Settings
from nexus.domain.errors import NotFoundError, UserError

if TYPE_CHECKING:
    from nexus.security.signing import PublicKey
    from nexus.store.audit import AuditReport
    from nexus.store.sqlite import SQLiteStore

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

audit_app = typer.Typer(
    help="Check the tamper-evident event log and its signed heads.", no_args_is_help=True
)


def home_public_key(home: Path) -> PublicKey | None:
    """The public half of the home's audit key, without creating one."""
    from nexus.security.signing import AUDIT_KEY_FILE, AuditKey
    from nexus.store.heads import keys_dir

    try:
        return AuditKey.load(keys_dir(home) / AUDIT_KEY_FILE).public
    except NotFoundError:
        return None


def check_store(
    store: SQLiteStore,
    home: Path,
    *,
    run_id: str | None = None,
    against: list[Path] | None = None,
    require_signed: bool = False,
    key: PublicKey | None = None,
    manifest: bool = True,
) -> AuditReport:
    """Everything ``nexus audit verify`` checks, as one report (blocking)."""
    from nexus.store.audit import verify_store
    from nexus.store.heads import HeadsDocument, manifest_path, read_manifest

    published = [HeadsDocument.read(p) for p in against or []]
    if key is None:
        key = home_public_key(home)
    if key is None:  # no key here: a published document may carry one
        key = next((d.public_key for d in published if d.public_key is not None), None)
    anchors = list(published)
    trouble = None
    if manifest:
        try:
            kept = read_manifest(manifest_path(home), key)
        except UserError as exc:
            kept, trouble = None, exc.message
        if kept is not None:
            anchors.insert(0, kept)
    with store.audit_snapshot(run_id) as snap:
        if run_id is not None and run_id not in snap.projections:
            raise NotFoundError(f"no run with id {run_id}")
        report = verify_store(
            snap, key, anchors=anchors, require_signed=require_signed, whole_store=run_id is None
        )
        if manifest and trouble is None and not anchors[:1] and snap.signed:
            report.warnings.append(
                f"no store manifest at {manifest_path(home)}: an emptied or swapped database "
                "cannot be told from this one (`nexus audit sign` writes it)"
            )
    if trouble is not None:
        report.bad(None, None, trouble)
    return report


def print_report(report: AuditReport) -> None:
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    if report.ok:
        signed = f"; {report.signed} signed head(s) hold" if report.signed else ""
        out.print(
            f"[green]ok[/]  {report.events} events in {report.runs} run(s); chain intact{signed}"
        )
        return
    for bad in report.problems:
        where = "store" if bad["run_id"] is None else f"run {bad['run_id']}"
        if bad["seq"] is not None:
            where += f" seq {bad['seq']}"
        err.print(f"[bold red]TAMPERED[/]  {escape(where)}: {escape(bad['reason'])}")


@audit_app.command("verify")
def audit_verify(
    run_id: Annotated[str | None, typer.Argument(help="One run (default: all).")] = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against",
            help="Also check against heads published earlier (`nexus audit head --json`).",
        ),
    ] = None,
    require_signed: Annotated[
        bool, typer.Option("--require-signed", help="Fail on runs without a signed head.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Verify the chain, the projection, the signed heads and the store manifest.

    Names the first tampered event of each run. Exit 1 if anything does not hold.
    """
    if run_id is not None:
        run_id = resolve_run_arg(run_id, as_json=as_json)
    settings = Settings()

    async def go() -> AuditReport:
        async with open_store(settings, sign=False) as store:
            return await asyncio.to_thread(
                check_store,
                store,
                settings.home,
                run_id=run_id,
                against=against,
                require_signed=require_signed,
            )

    report = run_async(go, as_json=as_json)
    if as_json:
        emit_json(report.to_dict())
    else:
        print_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


@audit_app.command("head")
def audit_head(as_json: JsonOpt = False) -> None:
    """Print every run's signed head, the Merkle root over them and the public key.

    Publish the output (or just its root) somewhere the store's writers cannot
    reach; `nexus audit verify --against FILE` checks the store against it later.
    """
    from nexus.store.heads import HeadsDocument

    settings = Settings()

    async def go() -> dict[str, Any]:
        async with open_store(settings, sign=False) as store:

            def read() -> dict[str, Any]:
                with store.audit_snapshot() as snap:
                    doc = HeadsDocument(
                        snap.store_id or "", snap.signed, home_public_key(settings.home)
                    )
                    unsigned = sorted(set(snap.projections) - set(snap.signed))
                return {**doc.to_dict(), "unsigned": unsigned}

            return await asyncio.to_thread(read)

    doc = run_async(go, as_json=as_json)
    if as_json:
        emit_json(doc)
        return
    out.print(f"store    {doc['store_id']}")
    out.print(f"key id   {doc['key_id']}  (Ed25519, public key {doc['public_key']})")
    for head in doc["heads"]:
        out.print(f"{head['run_id']}  seq {head['seq']:>6}  {head['hash']}")
    out.print(f"root     {doc['root']}  ({doc['runs']} signed head(s), RFC 9162 Merkle tree)")
    if doc["unsigned"]:
        err.print(
            f"[yellow]warning:[/] {len(doc['unsigned'])} run(s) have no signed head; "
            "`nexus audit sign` signs them"
        )


@audit_app.command("sign")
def audit_sign(
    reset_manifest: Annotated[
        bool,
        typer.Option(
            "--reset-manifest",
            help="Rewrite the store manifest from this database, accepting runs it lacks "
            "(after a deliberate new or emptied store).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Sign the heads of runs recorded before signing (their chains must hold).

    Runs with a signed head are never re-signed: a head that does not hold is
    tampering to report, not to bless.
    """
    from nexus.store.heads import HeadSigner

    settings = Settings()

    async def go() -> dict[str, Any]:
        signer = HeadSigner.for_home(settings.home)
        async with open_store(settings, sign=False) as store:

            def work() -> dict[str, Any]:
                report = check_store(
                    store, settings.home, key=signer.key.public, manifest=not reset_manifest
                )
                broken = {p["run_id"] for p in report.problems}
                if None in broken:
                    raise UserError(
                        "the store does not match its manifest; see `nexus audit verify` "
                        "(--reset-manifest accepts this database as the store)"
                    )
                todo = [r for r in report.unsigned if r not in broken]
                heads = store.sign_heads(signer, todo, reset=reset_manifest)
                return {
                    "signed": [h.run_id for h in heads],
                    "refused": sorted(r for r in broken if isinstance(r, str)),
                    "key_id": signer.key.public.key_id,
                    "manifest": str(signer.manifest),
                }

            return await asyncio.to_thread(work)

    result = run_async(go, as_json=as_json)
    if as_json:
        emit_json(result)
    else:
        out.print(
            f"signed {len(result['signed'])} run head(s) with key {result['key_id']}; "
            f"manifest {escape(result['manifest'])}"
        )
        for run in result["refused"]:
            err.print(f"[bold red]not signed[/]  run {run}: its log does not hold (audit verify)")
    if result["refused"]:
        raise typer.Exit(EXIT_FAILED)

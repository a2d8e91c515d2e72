"""``nexus evidence verify DIR``: check a mission's signed evidence bundle.

Exit codes: 0 the bundle holds (every requirement met, or listed as unmet
with its reason); 1 it does not (a file changed, added or missing, a bad
signature, a claim that does not follow from the evidence), each problem
naming its file; 2 bad input (no such directory, an unreadable key). The
checking code (:mod:`nexus.missions.evidence`) is imported when the command
runs, not with the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from nexus.cli.output import EXIT_FAILED, EXIT_USER, emit_json, err, fail, out
from nexus.domain.errors import UserError

if TYPE_CHECKING:
    from nexus.missions.evidence import VerifyReport
    from nexus.security.signing import PublicKey

__all__ = ["evidence_app", "read_public_key"]

evidence_app = typer.Typer(
    help="Check the signed evidence bundles of code missions.", no_args_is_help=True
)

DirArg = Annotated[
    Path, typer.Argument(help="The evidence bundle (a directory).", show_default=False)
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="A file holding the signer's public key: base64 as `nexus audit head` prints it, "
        "or PEM. Without it the key the bundle carries is used (intact, but not who signed).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def read_public_key(path: Path) -> PublicKey:
    """The Ed25519 public key in ``path``: base64 of the raw 32 bytes, or a PEM public key.

    Raises:
        UserError: the file is missing, unreadable, or holds no Ed25519 public key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from nexus.security.signing import PublicKey

    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise UserError(f"{path}: no such key file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the key: {exc}") from None
    if not text.startswith("-----BEGIN"):
        try:
            return PublicKey.from_text(text)
        except UserError as exc:
            raise UserError(f"{path}: {exc.message}") from None
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise UserError(f"{path}: not an Ed25519 public key (PEM)")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PublicKey(raw)


@evidence_app.command("verify")
def evidence_verify(directory: DirArg, key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Verify a bundle: signature, every file's hash, no file added or missing, requirements.

    Every requirement of the spec must be met by merged work whose checks
    passed, or listed as unmet with the reason. Each problem names its file.
    Exit 1 if anything does not hold.
    """
    from nexus.missions.evidence import verify_bundle

    try:
        public = read_public_key(key) if key is not None else None
        report = verify_bundle(directory, public)
    except UserError as exc:
        fail(exc.message, EXIT_USER, as_json=as_json)
    if as_json:
        emit_json(report.to_dict())
    else:
        _print(report)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


def _print(report: VerifyReport) -> None:
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    for problem in report.problems:
        err.print(f"[bold red]FAILED[/]  {escape(str(problem))}")
    if not report.ok:
        err.print(f"{len(report.problems)} problem(s) in {escape(str(report.path))}")
        return
    out.print(
        f"[green]ok[/]  {escape(str(report.path))}: signed by key {report.key_id} "
        f"({report.key_source} key), {report.files} files hold; "
        f"{len(report.met)} requirement(s) met, {len(report.unmet)} unmet"
    )
    for rid, why in report.unmet:
        out.print(f"  unmet  {escape(rid)}: {escape(why)}")

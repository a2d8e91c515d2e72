"""The human-readable report of an evidence bundle: Markdown and one self-contained HTML page.

Both are functions of the :class:`EvidenceDocument` alone (no clock, no key),
so the same evidence always gives the same bytes and ``verify_bundle`` can
render them again to check that a report says what the evidence says.

Every string that came from a spec, a model or a checker is escaped: in
Markdown, the punctuation that would open markup or a table cell is
backslash-escaped and line breaks become spaces; in HTML, everything goes
through :func:`html.escape`, the page has no script, loads nothing (inline
CSS; a Content-Security-Policy of ``default-src 'none'``) and links only to
the check output files inside the bundle.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from decimal import Decimal

from nexus.missions.evidence._model import (
    CheckRun,
    EvidenceDocument,
    RequirementStatus,
    WorkItemEvidence,
)

__all__ = ["Totals", "render_html", "render_markdown", "totals"]


@dataclass(frozen=True, slots=True)
class Totals:
    """What the mission's work items add up to."""

    items: int
    merged: int
    attempts: int
    checks: int
    model_calls: int
    tool_calls: int
    tokens: int
    cost_usd: Decimal
    met: int
    unmet: int


def totals(doc: EvidenceDocument) -> Totals:
    """The sums the reports show at the top."""
    attempts = [a for item in doc.items for a in item.attempts]
    return Totals(
        items=len(doc.items),
        merged=sum(item.verdict.outcome == "merged" for item in doc.items),
        attempts=len(attempts),
        checks=sum(len(a.checks) for a in attempts),
        model_calls=sum(a.model_calls for a in attempts),
        tool_calls=sum(a.tool_calls for a in attempts),
        tokens=sum(a.tokens for a in attempts),
        cost_usd=sum((Decimal(a.cost_usd) for a in attempts), Decimal(0)),
        met=sum(r.status == "met" for r in doc.requirements),
        unmet=sum(r.status == "unmet" for r in doc.requirements),
    )


def _rows(doc: EvidenceDocument) -> list[tuple[RequirementStatus, WorkItemEvidence | None]]:
    """The traceability matrix: one row per requirement and claiming item (or none)."""
    by_id = {item.id: item for item in doc.items}
    rows: list[tuple[RequirementStatus, WorkItemEvidence | None]] = []
    for req in doc.requirements:
        if not req.items:
            rows.append((req, None))
        rows.extend((req, by_id[i]) for i in req.items if i in by_id)
    return rows


def _last_checks(item: WorkItemEvidence | None) -> tuple[CheckRun, ...]:
    if item is None or not item.attempts:
        return ()
    return item.attempts[-1].checks


# -- Markdown ------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#!~&])")


def _md(text: str) -> str:
    """``text`` as literal Markdown on one line: no markup, no raw HTML, no cell break."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _code(text: str) -> str:
    """``text`` inside a code span: literal already, but a backtick or a pipe would end it."""
    return "`" + " ".join(text.split()).replace("`", "'").replace("|", "\\|") + "`"


def _md_checks(checks: tuple[CheckRun, ...]) -> str:
    return (
        ", ".join(
            f"[{_md(c.name)}: {c.verdict}{'' if c.required else ', advisory'}]({c.output_file})"
            for c in checks
        )
        or "-"
    )


def render_markdown(doc: EvidenceDocument) -> str:
    """The report as Markdown (GitHub-flavoured tables)."""
    t = totals(doc)
    lines = [
        f"# Evidence: {_md(doc.spec.title)}",
        "",
        f"Spec: {_code(doc.spec.source)}. Requirements: {t.met} met, {t.unmet} unmet. "
        f"Work items: {t.items} ({t.merged} merged), {t.attempts} attempts, {t.checks} checks, "
        f"{t.model_calls} model calls, {t.tool_calls} tool calls, {t.tokens} tokens, "
        f"cost ${t.cost_usd}.",
        "",
        "## Traceability",
        "",
        "| Requirement | Level | Status | Work item | Verdict | Commit | Checks (last attempt) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for req, item in _rows(doc):
        lines.append(
            "| "
            + " | ".join(
                (
                    f"{_md(req.id)}: {_md(req.text)}",
                    req.level or "-",
                    req.status,
                    _md(item.id) if item else "-",
                    item.verdict.outcome if item else "-",
                    _code(item.commit) if item and item.commit else "-",
                    _md_checks(_last_checks(item)),
                )
            )
            + " |"
        )
    unmet = [r for r in doc.requirements if r.status == "unmet"]
    if unmet:
        lines += ["", "## Unmet requirements", ""]
        lines += [f"- {_md(r.id)}: {_md(r.reason)}" for r in unmet]
    lines += ["", "## Work items"]
    for item in doc.items:
        lines += ["", f"### {_md(item.id)}" + (f": {_md(item.title)}" if item.title else "")]
        lines += [
            "",
            f"- Requirements: {', '.join(_md(r) for r in item.requirements) or '-'}",
            f"- Verdict: {item.verdict.outcome}"
            + (f" ({_md(item.verdict.reason)})" if item.verdict.reason else ""),
            f"- Commit: {_code(item.commit)}" if item.commit else "- Commit: -",
            f"- Patch sha256: `{item.patch_sha256}`" if item.patch_sha256 else "- Patch: -",
        ]
        if item.attempts:
            lines += [
                "",
                "| Attempt | Checks | Model calls | Tool calls | Tokens | Cost (USD) |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            for a in item.attempts:
                lines.append(
                    f"| {a.number} | {_md_checks(a.checks)} | {a.model_calls} | {a.tool_calls} "
                    f"| {a.tokens} | {_md(a.cost_usd)} |"
                )
            notes = [
                f"- attempt {a.number}, {_md(c.name)} ({c.verdict}, {c.duration_ms} ms, "
                f"sha256 `{c.output_sha256[:16]}`): {_md(c.summary)}"
                for a in item.attempts
                for c in a.checks
                if c.summary
            ]
            if notes:
                lines += ["", *notes]
    return "\n".join(lines) + "\n"


# -- HTML ----------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;
color:#1d2330}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #d0d5dd}
table{border-collapse:collapse;width:100%;margin:.6rem 0}
th,td{border:1px solid #d0d5dd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f2f4f7}code{font-size:.9em}
.met,.pass,.merged{color:#116329;font-weight:600}
.unmet,.fail,.error,.rejected{color:#b42318;font-weight:600}
.skipped{color:#6b7280}.muted{color:#6b7280}
""".strip()

_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _h_checks(checks: tuple[CheckRun, ...]) -> str:
    if not checks:
        return '<span class="muted">-</span>'
    return ", ".join(
        f'<a href="{_h(c.output_file)}">{_h(c.name)}</a>: '
        f'<span class="{c.verdict}">{c.verdict}</span>'
        for c in checks
    )


def _td(*cells: str) -> str:
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _th(*cells: str) -> str:
    return "<tr>" + "".join(f"<th>{_h(c)}</th>" for c in cells) + "</tr>"


def render_html(doc: EvidenceDocument) -> str:
    """The report as one HTML page: inline CSS, no script, nothing loaded from anywhere."""
    t = totals(doc)
    title = f"Evidence: {doc.spec.title}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_h(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_h(title)}</h1>",
        f"<p>Spec <code>{_h(doc.spec.source)}</code>. Requirements: "
        f'<span class="met">{t.met} met</span>, <span class="unmet">{t.unmet} unmet</span>. '
        f"Work items: {t.items} ({t.merged} merged), {t.attempts} attempts, {t.checks} checks, "
        f"{t.model_calls} model calls, {t.tool_calls} tool calls, {t.tokens} tokens, "
        f"cost ${_h(str(t.cost_usd))}.</p>",
        "<h2>Traceability</h2><table>",
        _th("Requirement", "Level", "Status", "Work item", "Verdict", "Commit", "Checks"),
    ]
    for req, item in _rows(doc):
        parts.append(
            _td(
                f"<b>{_h(req.id)}</b> {_h(req.text)}",
                _h(req.level or "-"),
                f'<span class="{req.status}">{req.status}</span>',
                f'<a href="#item-{_h(item.id)}">{_h(item.id)}</a>' if item else "-",
                f'<span class="{item.verdict.outcome}">{item.verdict.outcome}</span>'
                if item
                else "-",
                f"<code>{_h(item.commit)}</code>" if item and item.commit else "-",
                _h_checks(_last_checks(item)),
            )
        )
    parts.append("</table>")
    unmet = [r for r in doc.requirements if r.status == "unmet"]
    if unmet:
        parts.append("<h2>Unmet requirements</h2><ul>")
        parts += [f"<li><b>{_h(r.id)}</b>: {_h(r.reason)}</li>" for r in unmet]
        parts.append("</ul>")
    parts.append("<h2>Work items</h2>")
    for item in doc.items:
        heading = _h(item.id) + (f": {_h(item.title)}" if item.title else "")
        verdict = f'<span class="{item.verdict.outcome}">{item.verdict.outcome}</span>'
        if item.verdict.reason:
            verdict += f" ({_h(item.verdict.reason)})"
        parts += [
            f'<h3 id="item-{_h(item.id)}">{heading}</h3><ul>',
            f"<li>Requirements: {_h(', '.join(item.requirements) or '-')}</li>",
            f"<li>Verdict: {verdict}</li>",
            f"<li>Commit: <code>{_h(item.commit or '-')}</code></li>",
            f"<li>Patch sha256: <code>{_h(item.patch_sha256 or '-')}</code></li></ul>",
        ]
        if not item.attempts:
            continue
        parts.append("<table>")
        parts.append(_th("Attempt", "Checks", "Model calls", "Tool calls", "Tokens", "Cost (USD)"))
        for a in item.attempts:
            parts.append(
                _td(
                    str(a.number),
                    _h_checks(a.checks),
                    str(a.model_calls),
                    str(a.tool_calls),
                    str(a.tokens),
                    _h(a.cost_usd),
                )
            )
        parts.append("</table>")
        notes = [
            f"<li>attempt {a.number}, {_h(c.name)} "
            f'(<span class="{c.verdict}">{c.verdict}</span>, {c.duration_ms} ms, '
            f"sha256 <code>{c.output_sha256[:16]}</code>): {_h(c.summary)}</li>"
            for a in item.attempts
            for c in a.checks
            if c.summary
        ]
        if notes:
            parts += ["<ul>", *notes, "</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

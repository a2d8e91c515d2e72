"""A recorded error as ``nexus inspect`` words it: its lines and a hint of what to do."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nexus.domain.payloads import ABSENT, ErrorRecord

__all__ = ["error_lines", "hint_for"]

#: the longest tool output tail shown under an error
_TAIL_CHARS = 600


_HINTS = {
    "transient": "a retry may succeed: give the task `retries:` (it had {retries}), "
    "or run it again",
    "timeout": "the attempt ran past its time: raise the task's `timeout:` "
    "(or the profile's wall_seconds)",
    "rate_limited": "the provider limited the calls: retry later, or lower `max_parallel`",
    "validation": "the input or the answer did not fit: check the workflow "
    "(`nexus validate FILE`), the template or the output_schema named above",
    "auth": "the provider refused the credentials: set its key "
    "(docs/gateway.md, Keys and settings)",
    "policy_denied": "a deny-by-default policy refused it (profile, residency, a pin, "
    "an approval): the message names which grant is missing",
    "budget_exceeded": "a budget ran out: `nexus cost {run}` shows the spend, "
    "`nexus resume {run} --budget ...` raises it",
    "not_found": "something the task names does not exist: check the name in the message",
    "conflict": "the state changed under it: run it again",
    "internal": "a bug in Nexus: please report it with `nexus export {run}`",
}


def hint_for(error: Mapping[str, Any], run_id: str, retries: int) -> str | None:
    """What the user can do about a recorded error, by its kind (None for unknown kinds)."""
    kind = str(error.get("kind", ""))
    if error.get("retried_by") == "gateway":
        return (
            "the gateway already retried this call (and its fallbacks); "
            "the task does not retry it again"
        )
    details = error.get("details")
    if kind == "timeout" and isinstance(details, Mapping) and "quorum" in details:
        return (
            "its barrier's wait ran out before its needs were met: raise `wait.timeout`, "
            "or let it go on with what succeeded (`on_timeout: continue`)"
        )
    hint = _HINTS.get(kind)
    return None if hint is None else hint.format(run=run_id, retries=retries)


def error_lines(error: Mapping[str, Any]) -> list[str]:
    """An error record as lines of text: kind and message, then what the tool reported."""
    record = ErrorRecord.of(dict(error))
    lines = [f"{record.kind}: {record.message}"]
    details = record.details
    if isinstance(details, dict):
        code = details.get("exit_code")
        if code is not None:
            lines.append(f"exit code {code}")
        for stream in ("stderr", "stdout"):
            text = details.get(stream)
            if isinstance(text, str) and text.strip():
                tail = text.strip()[-_TAIL_CHARS:]
                lines.append(f"{stream}: {tail}")
        for what in ("denials", "limits_hit"):
            if details.get(what):
                lines.append(f"{what.replace('_', ' ')}: {json.dumps(details[what])}")
    elif details is not ABSENT and details not in (None, "", [], {}):
        lines.append(f"details: {json.dumps(details, ensure_ascii=False, default=str)}")
    extra = record.extra or {}
    said = [f"{k} {v}" for k, v in extra.items() if isinstance(v, str | int | float | bool)]
    if said:
        lines.append(", ".join(said))
    return lines

"""What a call returns or raises, translated at the SDK boundary.

:func:`map_mcp_error` maps every error the SDK raises onto the Nexus error tree
(a test checks that every JSON-RPC code is in :data:`MCP_ERRORS`);
:func:`result_json` turns a ``CallToolResult`` into plain JSON marked untrusted,
its text capped and binary content reduced to type, size and SHA-256.
"""

from __future__ import annotations

import hashlib
from typing import Any

import anyio
from mcp import types
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from nexus.domain.canonical import plain_json
from nexus.domain.errors import (
    EffectTimeout,
    InfrastructureError,
    NexusError,
    NotFoundError,
    PolicyDenied,
    UserError,
)
from nexus.tools.base import ToolFailed

__all__ = ["MCP_ERRORS", "map_mcp_error", "result_json"]

_MAX_TEXT = 1 << 20

#: JSON-RPC error code -> (Nexus error, retryable, what it means)
MCP_ERRORS: dict[int, tuple[type[NexusError], bool, str]] = {
    types.CONNECTION_CLOSED: (InfrastructureError, True, "connection closed"),
    types.REQUEST_TIMEOUT: (EffectTimeout, True, "request timed out"),
    types.PARSE_ERROR: (ToolFailed, True, "the server could not parse the request"),
    types.INVALID_REQUEST: (ToolFailed, False, "invalid request"),
    types.METHOD_NOT_FOUND: (NotFoundError, False, "method not found"),
    types.INVALID_PARAMS: (UserError, False, "invalid arguments"),
    types.INTERNAL_ERROR: (ToolFailed, True, "server error"),
    types.HEADER_MISMATCH: (ToolFailed, False, "header mismatch"),
    types.MISSING_REQUIRED_CLIENT_CAPABILITY: (ToolFailed, False, "missing client capability"),
    types.UNSUPPORTED_PROTOCOL_VERSION: (ToolFailed, False, "unsupported protocol version"),
    types.URL_ELICITATION_REQUIRED: (PolicyDenied, False, "URL elicitation required"),
}


def _error(
    cls: type[NexusError], message: str, *, retryable: bool, details: dict[str, Any]
) -> NexusError:
    if cls is ToolFailed:
        failed = ToolFailed(message, details=details)
        failed.retryable = retryable
        return failed
    return cls(message, retryable=retryable)


def map_mcp_error(server: str, tool: str, exc: BaseException) -> NexusError:
    """Translate an error from the SDK into the Nexus error tree.

    ``MCPError`` codes map by :data:`MCP_ERRORS`; a result the SDK rejects
    (invalid structured content, a shape we did not opt into) is a
    non-retryable :class:`ToolFailed`; a broken stream or OS error is a
    transient :class:`InfrastructureError`.
    """
    where = f"MCP tool '{server}.{tool}'"
    if isinstance(exc, MCPError):
        cls, retryable, what = MCP_ERRORS.get(exc.code, (ToolFailed, False, "error"))
        details = {"code": exc.code, "data": _jsonable(exc.data)}
        return _error(cls, f"{where}: {what}: {exc.message}", retryable=retryable, details=details)
    if isinstance(exc, ValidationError | RuntimeError):
        return _error(ToolFailed, f"{where}: unusable result: {exc}", retryable=False, details={})
    if isinstance(exc, OSError | anyio.BrokenResourceError | anyio.ClosedResourceError):
        return InfrastructureError(f"{where}: transport failed: {exc!r}")
    return _error(ToolFailed, f"{where}: {type(exc).__name__}: {exc}", retryable=False, details={})


def _jsonable(value: Any) -> Any:
    try:
        return plain_json(value)
    except ValueError:
        return repr(value)


def _binary(kind: str, data: str, mime: str | None) -> dict[str, Any]:
    raw = data.encode("ascii", errors="replace")
    return {
        "type": kind,
        "mime_type": mime,
        "base64_chars": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def _block(block: types.ContentBlock, budget: list[int]) -> dict[str, Any]:
    def text(value: str) -> dict[str, Any]:
        room = max(0, budget[0])
        budget[0] -= len(value)
        if len(value) > room:
            return {"text": value[:room], "truncated": True}
        return {"text": value}

    if isinstance(block, types.TextContent):
        return {"type": "text", **text(block.text)}
    if isinstance(block, types.ImageContent | types.AudioContent):
        return _binary(block.type, block.data, block.mime_type)
    if isinstance(block, types.ResourceLink):
        return {"type": "resource_link", "uri": str(block.uri), "name": block.name}
    resource = block.resource
    if isinstance(resource, types.TextResourceContents):
        return {"type": "resource", "uri": str(resource.uri), **text(resource.text)}
    return {"uri": str(resource.uri), **_binary("resource", resource.blob, resource.mime_type)}


def result_json(server: str, result: types.CallToolResult) -> dict[str, Any]:
    budget = [_MAX_TEXT]
    return {
        "content": [_block(b, budget) for b in result.content],
        "structured": _jsonable(result.structured_content),
        "is_error": bool(result.is_error),
        "provenance": {"source": f"mcp:{server}", "trusted": False},
    }

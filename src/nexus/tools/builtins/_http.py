"""``http``: one HTTP request to an allowed host -- deny by default.

The destination must be in the exec profile's ``network`` allow-list as
``host:port`` (the port defaults to the scheme's). The tool's own profile
allows none; ``nexus.toml``'s ``[tools.http] network`` lists what a
workflow's ``profile:`` may grant it (its ``allowed`` profile), and a refusal
says which of the two is missing. Redirects are never
followed (a redirect to another host would dodge the allow-list): a redirect
whose target is not in the allow-list is refused with ``policy_denied``
naming that host; one to an allowed destination comes back as it is (status
and ``location``), for the agent to request explicitly. The response body
is capped at ``max_output_bytes``. Connection failures map onto
``transient``, a read timeout onto ``timeout``, a refused destination onto
``policy_denied``.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from nexus.domain.errors import (
    EffectTimeout,
    InfrastructureError,
    PolicyDenied,
    UserError,
)
from nexus.metrics import count_denial
from nexus.tools.base import ToolContext
from nexus.tools.profile import ExecProfile, effective_profile

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def destination(url: str) -> tuple[str, int]:
    """``(host, port)`` of an http(s) URL.

    Raises:
        NexusError: not an absolute http(s) URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise UserError(f"tool 'http': {url!r} is not an absolute http(s) URL", retryable=False)
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise UserError(f"tool 'http': bad port in {url!r}", retryable=False) from None
    return parts.hostname.lower(), port


def _listing(profile: ExecProfile) -> str:
    return "none" if profile.network == "none" else ", ".join(profile.network) or "none"


def allowed(profile: ExecProfile, host: str, port: int) -> bool:
    """True when ``host:port`` is in the profile's network allow-list."""
    if profile.network == "none":
        return False
    wanted = {f"{host}:{port}", f"[{host}]:{port}"}
    return any(entry.lower() in wanted for entry in profile.network)


@dataclass(frozen=True, slots=True)
class HttpTool:
    """``http``: ``{url, method?, headers?, json?, body?, timeout?}``.

    Returns ``{status, headers, text, truncated}`` (and ``json`` when the
    response is JSON).
    """

    name: str = "http"
    pure: bool = False
    profile: ExecProfile = field(default_factory=ExecProfile)
    #: the most a workflow's grant may get (``nexus.toml``'s ``[tools.http]``)
    allowed: ExecProfile | None = None
    transport: httpx.AsyncBaseTransport | None = None  # tests inject one

    def _check_redirect(
        self, profile: ExecProfile, method: str, url: str, response: httpx.Response
    ) -> None:
        """Refuse a redirect whose target is off the allow-list (it is never followed).

        A redirect to an allowed destination is returned as it is (status and
        ``location`` header): the agent may ask for that URL, checked like any other.
        """
        location = response.headers.get("location", "")
        try:
            target = str(response.request.url.join(location))
            host, port = destination(target)
        except (httpx.InvalidURL, UserError):
            count_denial(self.name, "egress")
            raise PolicyDenied(
                f"tool 'http': {method} {url} redirected ({response.status_code}) to "
                f"{location!r}, which is not an http(s) URL; redirects are not followed"
            ) from None
        if not allowed(profile, host, port):
            count_denial(self.name, "egress")
            raise PolicyDenied(
                f"tool 'http': {method} {url} redirected ({response.status_code}) to "
                f"{host}:{port}, which is not in the network allow-list "
                f"({_listing(profile)}); the redirect was not followed"
            )

    def _how(self, host: str, port: int) -> str:
        """What would let a refused destination through: a grant, or nexus.toml too."""
        wanted = f"{host}:{port}"
        grant = f"profile: {{network: ['{wanted}']}}"
        if allowed(self.allowed or self.profile, host, port):
            return f"; nexus.toml allows it: grant it with {grant}"
        return (
            f'; allow it in nexus.toml ([tools.{self.name}] network = ["{wanted}"]) '
            f"and grant it with {grant}"
        )

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        profile = effective_profile(self.profile, ctx, self.allowed)
        url = args.get("url")
        if not isinstance(url, str):
            raise UserError("tool 'http': 'url' must be a string", retryable=False)
        method = str(args.get("method", "GET")).upper()
        if method not in _METHODS:
            raise UserError(f"tool 'http': method {method!r} is not supported", retryable=False)
        host, port = destination(url)
        if not allowed(profile, host, port):
            count_denial(self.name, "egress")
            raise PolicyDenied(
                f"tool 'http': {host}:{port} is not in the network allow-list "
                f"({_listing(profile)}){self._how(host, port)}"
            )
        timeout = min(float(args.get("timeout", 30.0)), profile.wall_seconds)
        limit = profile.max_output_bytes
        try:
            async with (
                httpx.AsyncClient(
                    transport=self.transport, timeout=timeout, follow_redirects=False
                ) as client,
                client.stream(
                    method,
                    url,
                    headers=args.get("headers") or None,
                    json=args.get("json"),
                    content=args.get("body"),
                ) as response,
            ):
                if response.has_redirect_location:
                    self._check_redirect(profile, method, url, response)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        break
        except httpx.TimeoutException as exc:
            raise EffectTimeout(f"tool 'http': {method} {url} timed out") from exc
        except httpx.TransportError as exc:
            raise InfrastructureError(f"tool 'http': {method} {url} failed: {exc}") from exc
        body = b"".join(chunks)
        text = body[:limit].decode(response.encoding or "utf-8", errors="replace")
        result: dict[str, Any] = {
            "status": response.status_code,
            "headers": dict(response.headers),
            "text": text,
            "truncated": size > limit,
        }
        if "json" in response.headers.get("content-type", "") and size <= limit:
            with contextlib.suppress(ValueError):
                result["json"] = json.loads(body)
        return result

"""What leaves the process: the HTTP client the SDK adapters hand to ``openai`` and ``anthropic``.

Residency is checked before a client is built (:class:`~nexus.gateway.sdk.SDKProviders`),
but a check of the configured base URL alone is not enough: the SDKs' default
clients follow redirects, so an allowed endpoint answering ``307 Location:
http://elsewhere/...`` made them re-send the whole request -- prompt included
-- to a host nobody allowed. The client built here closes that door twice:

* **No redirect is followed.** A redirect answer becomes an error before
  anything is sent on: ``policy_denied`` when strict residency does not allow
  the target's host (the message names it), otherwise ``validation`` with
  ``reason="redirect"`` (the endpoint is misconfigured: the message says where
  it points, so the user can set ``base_url`` to it). Even an allowed target is
  refused: a model API has no reason to redirect, 301/302 would turn the POST
  into a GET without its body, and headers such as Anthropic's ``x-api-key`` or
  a gateway's custom headers would travel to the new origin (httpx strips only
  ``Authorization``).
* **Every request is checked.** With strict residency, a request event hook
  checks the host of each request the client sends -- whatever built its URL
  -- before a connection is opened.

Both hooks raise Nexus errors. The ``openai`` SDK lets them through; the
``anthropic`` SDK wraps them in ``APIConnectionError``, and
:func:`~nexus.gateway.errors.map_provider_error` unwraps them, so either way
the call fails with the error raised here, recorded like every other denial.

Clients injected into an adapter (``client=``) are used as given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx2

from nexus.domain.errors import PolicyDenied
from nexus.gateway.errors import ProviderRejected

if TYPE_CHECKING:
    from nexus.gateway.routing import Residency

__all__ = ["guarded_client", "shown_url"]


def shown_url(url: httpx2.URL) -> str:
    """``url`` as it may appear in a message: no user info, query or fragment."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{host}{port}{url.path}"


def guarded_client(
    factory: Callable[..., httpx2.AsyncClient],
    *,
    label: str,
    residency: Residency | None = None,
) -> httpx2.AsyncClient:
    """An SDK HTTP client that follows no redirect and checks each request's host.

    Args:
        factory: the SDK's own client class (``openai.DefaultAsyncHttpxClient``),
            so its connection limits and defaults are kept.
        label: the endpoint's label (``openai``, ``openai_compatible:lab``) for messages.
        residency: where requests may go; only a strict one adds the per-request check.

    Returns:
        The client to pass as the SDK's ``http_client``.
    """

    async def refuse_redirects(response: httpx2.Response) -> None:
        if not response.has_redirect_location:
            return
        status = response.status_code
        origin = shown_url(response.request.url)
        location = response.headers.get("location", "")
        try:
            target = response.request.url.join(location)
        except Exception:  # an unparsable Location: say so rather than fail obscurely
            raise ProviderRejected(
                f"{label}: {origin} answered {status} with an invalid redirect "
                f"location; model endpoints' redirects are not followed",
                provider=label,
                status=status,
                reason="redirect",
            ) from None
        where = shown_url(target)
        denial = residency.host_denial(str(target)) if residency is not None else None
        if denial is not None:
            raise PolicyDenied(
                f"residency: {label}: {origin} answered {status}, redirecting to {where}: "
                f"{denial}; the redirect was not followed"
            )
        raise ProviderRejected(
            f"{label}: {origin} answered {status}, redirecting to {where}; model endpoints' "
            "redirects are not followed: set base_url to the address the API really lives at",
            provider=label,
            status=status,
            reason="redirect",
        )

    hooks: dict[str, list[Callable[[Any], Any]]] = {"response": [refuse_redirects]}
    if residency is not None and residency.strict:
        policy = residency

        async def check_host(request: httpx2.Request) -> None:
            denial = policy.host_denial(str(request.url))
            if denial is not None:
                raise PolicyDenied(
                    f"residency: {label}: request to {shown_url(request.url)} refused: {denial}"
                )

        hooks["request"] = [check_host]
    return factory(follow_redirects=False, event_hooks=hooks)

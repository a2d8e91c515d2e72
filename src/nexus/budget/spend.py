"""What a call costs: the spend reserved before it and recorded after it.

Every recorded ``model`` effect carries a ``spend`` record --
``{"usd": "0.00056", "tokens": 1100}`` plus ``"unpriced": true`` when the
pricing table has no price for the model -- computed once, live, from the
response's usage and the deployment's prices. Replay reads it from the log
instead of recomputing it, so a later price change never rewrites history.

Before a call, the budget ledger reserves an estimate: the prompt's tokens
(:func:`message_tokens` of each message, plus the tools offered) plus the
request's ``max_tokens`` (or :data:`RESERVED_COMPLETION` when it sets none:
:func:`completion_allowance`), priced on the request's model. A call that
lands on a pricier fallback model, or writes more than the estimate, is still
recorded at its real cost; the next reservation sees it.

**One rule for a call's tokens.** The preflight estimate of a plan
(:mod:`nexus.budget.estimate`) and routing's cost estimate count a call with
the same two functions and the same allowance, so a run whose estimate fits
its budget is not refused its first call for want of the tokens the estimate
left out. (What the estimate cannot know before the run -- templates rendered,
role templates and tool descriptions -- a call still counts when it reserves.)
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from nexus.domain.errors import NotFoundError
from nexus.gateway.base import Usage
from nexus.gateway.pricing import PricingTable, cost_of, estimate_tokens

if TYPE_CHECKING:
    from nexus.domain.budget import Spend

#: Completion tokens counted for a model call that sets no ``max_tokens``: what the
#: call reserves, what the preflight estimate assumes and what routing prices.
RESERVED_COMPLETION = 1024
#: Tokens a chat message costs beyond its text (role and separators).
MESSAGE_OVERHEAD_TOKENS = 4


def message_tokens(text: str) -> int:
    """The tokens one chat message is counted at: its characters / 4, rounded up, plus 4."""
    return estimate_tokens(text) + MESSAGE_OVERHEAD_TOKENS


def completion_allowance(max_tokens: int | None) -> int:
    """The completion tokens a call is counted at: ``max_tokens``, else the allowance."""
    return max_tokens or RESERVED_COMPLETION


def money(value: Decimal) -> str:
    """A Decimal as plain positional text (never ``4E-7``), exact."""
    text = format(value, "f")
    return text if "." not in text else text.rstrip("0").rstrip(".") or "0"


def _price(usage: Usage, model: str, pricing: PricingTable | None) -> Decimal | None:
    try:
        return cost_of(usage, model, pricing)
    except NotFoundError:
        return None


def model_spend(response: Any, pricing: PricingTable | None) -> dict[str, Any]:
    """The spend record of a model call, from its recorded response."""
    usage = Usage.from_dict(response.get("usage", {}))
    cost = _price(usage, str(response.get("model", "")), pricing)
    record: dict[str, Any] = {
        "usd": money(cost if cost is not None else Decimal(0)),
        "tokens": usage.total_tokens,
    }
    if cost is None:
        record["unpriced"] = True
    return record


def estimate_request_usage(request: dict[str, Any]) -> Usage:
    """Tokens a model request will use at most, roughly (see the module docstring)."""
    prompt = sum(message_tokens(str(m.get("content", ""))) for m in request["messages"])
    prompt += sum(estimate_tokens(json.dumps(t, sort_keys=True)) for t in request.get("tools", ()))
    completion = completion_allowance(request.get("max_tokens"))
    return Usage(prompt_tokens=prompt, completion_tokens=completion, estimated=True)


def reservation_for(kind: str, request: dict[str, Any], pricing: PricingTable | None) -> Spend:
    """The spend to reserve before a ``model`` or ``tool`` effect runs."""
    from nexus.domain.budget import Spend

    if kind == "tool":
        return Spend(tool_calls=1)
    usage = estimate_request_usage(request)
    cost = _price(usage, str(request["model"]), pricing)
    return Spend(usd=cost if cost is not None else Decimal(0), tokens=usage.total_tokens)

"""Durations as users write them: ``600``, ``"90"``, ``"250ms"``, ``"10m"``, ``"1h30m"``.

One parser, :func:`parse_seconds`, reads every duration a workflow file or
``nexus.toml`` holds (a budget's ``wall``, a WASM tool's ``wall_seconds`` in a
workflow). It raises :class:`ValueError` with a message that does not name the
field: the caller knows the field and puts it in front (pydantic does it for
``nexus.toml``; :meth:`nexus.domain.budget.Limits.from_dict` does it for workflows).

The grammar: a number of seconds (an ``int``, ``float`` or ``Decimal``, or text
that Python's ``float()`` reads), or one or more ``<number><unit>`` parts with
units ``ms``, ``s``, ``m``, ``h``, ``d`` that add up (``"1h30m"``). Spaces and
case are ignored. The result must be finite and greater than zero.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

__all__ = ["BAD_DURATION", "NOT_POSITIVE", "parse_seconds"]

#: The message for a value that is not a duration at all.
BAD_DURATION = "must be a number of seconds or a duration like '90s', '10m', '1h30m', '2d'"
#: The message for a duration that is zero, negative or infinite.
NOT_POSITIVE = "must be a positive duration"

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WITH_UNITS = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _text_seconds(text: str) -> float:
    compact = text.strip().replace(" ", "").lower()
    if _WITH_UNITS.fullmatch(compact):
        return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(compact))
    try:
        return float(compact)
    except ValueError:
        raise ValueError(BAD_DURATION) from None


def parse_seconds(value: object) -> float:
    """Seconds in a duration: a number, or text with or without units.

    Example:
        >>> parse_seconds("1h30m"), parse_seconds(45), parse_seconds(" 250 ms ")
        (5400.0, 45.0, 0.25)

    Raises:
        ValueError: :data:`BAD_DURATION` when ``value`` is not a duration (a
            boolean, ``None``, ``"ten minutes"``, ``"10x"``); :data:`NOT_POSITIVE`
            when it is zero, negative, infinite or NaN.
    """
    seconds: float
    if isinstance(value, bool):
        raise ValueError(BAD_DURATION)
    if isinstance(value, int | float | Decimal):
        try:
            seconds = float(value)
        except OverflowError:  # an integer past float's range
            seconds = math.inf
        except ValueError:  # a signalling Decimal NaN
            raise ValueError(NOT_POSITIVE) from None
    elif isinstance(value, str):
        seconds = _text_seconds(value)
    else:
        raise ValueError(BAD_DURATION)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(NOT_POSITIVE)
    return seconds

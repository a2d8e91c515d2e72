"""Package exports loaded on first use (PEP 562), so importing a package stays cheap.

A package lists where each public name lives and lets this module answer
attribute lookups::

    _EXPORTS = {"Engine": "nexus.engine.facade"}
    __getattr__, __dir__ = on_first_use(__name__, _EXPORTS, globals())

The first lookup of a name imports its module and stores the value in the
package's namespace, so later lookups are plain attribute reads. Type checkers
see the names through the package's ``if TYPE_CHECKING:`` imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["on_first_use"]


def on_first_use(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose ``exports`` map name -> module."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__

"""The engine: run controller, decider, router, effect boundary, retries.

The names below are loaded on first use (PEP 562): a module of the engine that
needs little -- :mod:`nexus.engine.control`, which ``nexus stop --all`` runs,
or :mod:`nexus.engine.leases` -- does not pay for the controller, the workers
and the tools they load.
"""

import typing as _typing

from nexus.domain._lazy import on_first_use as _on_first_use

if _typing.TYPE_CHECKING:
    from nexus.engine.controller import RunController as RunController
    from nexus.engine.dispatch import Dispatcher as Dispatcher
    from nexus.engine.dispatch import InProcessDispatcher as InProcessDispatcher
    from nexus.engine.effects import Clock as Clock
    from nexus.engine.effects import EffectFailed as EffectFailed
    from nexus.engine.effects import LiveEffects as LiveEffects
    from nexus.engine.effects import ReplayEffects as ReplayEffects
    from nexus.engine.effects import SystemClock as SystemClock
    from nexus.engine.facade import Engine as Engine
    from nexus.engine.facade import ReplayReport as ReplayReport
    from nexus.engine.facade import RunResult as RunResult
    from nexus.engine.worker import Assignment as Assignment
    from nexus.engine.worker import Worker as Worker

#: Where each public name lives; :func:`__getattr__` imports it on first use.
_EXPORTS: dict[str, str] = {
    "Assignment": "nexus.engine.worker",
    "Clock": "nexus.engine.effects",
    "Dispatcher": "nexus.engine.dispatch",
    "EffectFailed": "nexus.engine.effects",
    "Engine": "nexus.engine.facade",
    "InProcessDispatcher": "nexus.engine.dispatch",
    "LiveEffects": "nexus.engine.effects",
    "ReplayEffects": "nexus.engine.effects",
    "ReplayReport": "nexus.engine.facade",
    "RunController": "nexus.engine.controller",
    "RunResult": "nexus.engine.facade",
    "SystemClock": "nexus.engine.effects",
    "Worker": "nexus.engine.worker",
}


__getattr__, __dir__ = _on_first_use(__name__, _EXPORTS, globals())


__all__ = [
    "Assignment",
    "Clock",
    "Dispatcher",
    "EffectFailed",
    "Engine",
    "InProcessDispatcher",
    "LiveEffects",
    "ReplayEffects",
    "ReplayReport",
    "RunController",
    "RunResult",
    "SystemClock",
    "Worker",
]

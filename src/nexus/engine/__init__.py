"""The engine: run controller, decider, router, effect boundary, retries."""

from nexus.engine.controller import RunController, Services
from nexus.engine.effects import Clock, EffectFailed, LiveEffects, ReplayEffects, SystemClock
from nexus.engine.runtime import Engine, ReplayReport, RunResult

__all__ = [
    "Clock",
    "EffectFailed",
    "Engine",
    "LiveEffects",
    "ReplayEffects",
    "ReplayReport",
    "RunController",
    "RunResult",
    "Services",
    "SystemClock",
]

"""The engine: run controller, decider, router, effect boundary, retries."""

from nexus.engine.controller import RunController
from nexus.engine.dispatch import Dispatcher, InProcessDispatcher
from nexus.engine.effects import Clock, EffectFailed, LiveEffects, ReplayEffects, SystemClock
from nexus.engine.facade import Engine, ReplayReport, RunResult
from nexus.engine.worker import Assignment, Worker

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

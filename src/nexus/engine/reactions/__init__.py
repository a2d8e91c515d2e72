"""The decider's reactions for the constructs with logic of their own.

Behaviour trees, state machines, sagas, barriers and aggregation each get a
class here, built by the :class:`~nexus.engine.decider.Decider` with itself as
their :class:`Decisions`; the decider keeps the dispatch (which input, which
reaction) and the rest of the run's decisions.
"""

from nexus.engine.reactions._aggregate import AggregateReactions
from nexus.engine.reactions._barrier import BarrierReactions
from nexus.engine.reactions._base import Decisions, compensating, template_context
from nexus.engine.reactions._bt import BtReactions
from nexus.engine.reactions._fsm import FsmReactions
from nexus.engine.reactions._saga import SagaReactions

__all__ = [
    "AggregateReactions",
    "BarrierReactions",
    "BtReactions",
    "Decisions",
    "FsmReactions",
    "SagaReactions",
    "compensating",
    "template_context",
]

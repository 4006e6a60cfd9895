"""The foreign-trade department's content for the engine, beside its diagrams (bpmn/) and
forms (forms/): which elements of those diagrams mark the milestones its measures read
(``milestones``). The engine never imports this package by name; it loads what
``TRADEFLOW_MILESTONES`` names (this package's by default: engine/reporting/facts.py),
so another department's content replaces it without a change to the engine.
"""

from trade.milestones import MILESTONES

__all__ = ["MILESTONES"]

"""The request's context: the engine this app drives, and who is calling."""

from __future__ import annotations

from typing import cast

from flask import current_app, g

from engine.people import Actor
from engine.tradeflow import Tradeflow


def flow() -> Tradeflow:
    """The engine of this app (``create_app``'s ``TRADEFLOW``)."""
    return cast(Tradeflow, current_app.extensions["tradeflow"])


def actor() -> Actor:
    """Who is calling: set by api/auth.py before the view runs."""
    return cast(Actor, g.actor)

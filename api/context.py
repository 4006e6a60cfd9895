"""The request's context: the engine this app drives, and who is calling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from flask import current_app, g, request
from marshmallow import Schema

from engine.people import Actor
from engine.runtime import repeats
from engine.tradeflow import Tradeflow


def flow() -> Tradeflow:
    """The engine of this app (``create_app``'s ``TRADEFLOW``)."""
    return cast(Tradeflow, current_app.extensions["tradeflow"])


def actor() -> Actor:
    """Who is calling: set by api/auth.py before the view runs."""
    return cast(Actor, g.actor)


def once(status: int, schema: type[Schema]) -> Callable[[tuple[Any, ...]], repeats.Once | None]:
    """The request under the caller's ``Idempotency-Key``, if it sent one: the engine
    gives what it asks; ``schema`` makes the answer a repeat gets, as this one is sent
    (made only for a request with a key: a schema costs as much as a small command)."""
    key = request.headers.get(repeats.HEADER)
    if key is None:
        return _unkeyed
    sender, answer = actor().name, schema().dump
    return lambda asked: repeats.once(sender, key, asked, status=status, answer=answer)


def _unkeyed(asked: tuple[Any, ...]) -> None:
    return None

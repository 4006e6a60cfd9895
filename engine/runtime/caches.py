"""In-process caches that keep the unit of work off the slow paths.

* Definitions never change once stored, so each is read and its spec restored once.
* Decision tables: the newest version of a decision is looked up (one indexed read) each
  time a business rule task bound to ``latest`` runs; its table is parsed once per
  version (engine/execution/decisions.py).
* Live workflows: the deserialised workflow of an instance is kept after a command
  commits, tagged with the instance's revision. The next command on that instance
  uses it if the row's revision still matches (no other process or thread saved since);
  otherwise it deserialises from the row. A command that fails never puts its
  workflow back. This is Temporal's "sticky" workflow cache, for the same reason:
  deserialising is the largest cost of a command.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from SpiffWorkflow.bpmn import BpmnWorkflow
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.execution import SpecPair, StateSerializer, decisions, stored_parts
from engine.modeling import (
    FORM_INPUTS,
    decision_versions,
    escalation_roles,
    message_variables,
    messages_taken_early,
    names_listed,
)
from engine.storage import Definition, DefinitionTask, InstanceRow, InstanceStatus

K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """Least recently used first out, past ``size`` items or ``max_weight`` in all."""

    def __init__(self, size: int, max_weight: int | None = None) -> None:
        self._size = size
        self._max_weight = max_weight
        self._items: OrderedDict[K, V] = OrderedDict()
        self._weights: dict[K, int] = {}
        self.weight = 0  # of the items held
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def pop(self, key: K) -> V | None:
        with self._lock:
            self.weight -= self._weights.pop(key, 0)
            return self._items.pop(key, None)

    def put(self, key: K, value: V, weight: int = 1) -> None:
        with self._lock:
            self.weight -= self._weights.pop(key, 0)
            self._items.pop(key, None)
            if self._max_weight is not None and weight > self._max_weight:
                return  # bigger than the whole cache: not kept
            self._items[key] = value
            self._weights[key] = weight
            self.weight += weight
            while len(self._items) > self._size or (
                self._max_weight is not None and self.weight > self._max_weight
            ):
                oldest, _ = self._items.popitem(last=False)
                self.weight -= self._weights.pop(oldest, 0)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._weights.clear()
            self.weight = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def capacity(self) -> int:
        return self._size


@dataclass(frozen=True)
class TaskRule:
    """A user task's routing and rules, as extracted at deploy."""

    process_id: str
    element_id: str
    roles: tuple[str, ...]
    form_key: str | None
    separate_from: tuple[str, ...]
    priority: int
    sla: str | None
    escalate_to: tuple[str, ...] = ()  # roles whose queues an overdue task joins
    # the variables its form starts from (formInputs); every other field starts empty
    form_inputs: tuple[str, ...] = ()
    # attribute -> expression, evaluated when the task is created (queues/routing.py)
    assignment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DefinitionInfo:
    id: int
    key: str
    version: int
    name: str | None
    messages: frozenset[str]
    specs: SpecPair
    rules: dict[tuple[str, str], TaskRule] = field(default_factory=dict)
    business_timers: frozenset[str] = frozenset()
    # per message name, the variables its catch events declare they take (modeling/events.py)
    message_variables: dict[str, frozenset[str]] = field(default_factory=dict)
    # the message names a catch takes even when kept since before the instance started
    takes_earlier: frozenset[str] = frozenset()

    def rule(self, process_id: str, element_id: str) -> TaskRule | None:
        """By process and element; embedded subprocesses run under their own spec name,
        so fall back to the element id, which is unique within a diagram."""
        return self.rules.get((process_id, element_id)) or self.rule_for_element(element_id)

    def rule_for_element(self, element_id: str) -> TaskRule | None:
        return next((r for r in self.rules.values() if r.element_id == element_id), None)


class DefinitionCache:
    def __init__(self, serializer: StateSerializer, size: int = 256) -> None:
        self._serializer = serializer
        self._items: _Lru[int, DefinitionInfo] = _Lru(size)

    def get(self, session: Session, definition_id: int) -> DefinitionInfo:
        info = self._items.get(definition_id)
        if info is None:
            info = self._load(session, definition_id)
            self._items.put(definition_id, info)
        return info

    def _load(self, session: Session, definition_id: int) -> DefinitionInfo:
        row = session.get_one(Definition, definition_id)
        tasks = session.scalars(
            select(DefinitionTask).where(DefinitionTask.definition_id == definition_id)
        )
        rules = {
            (t.process_id, t.element_id): TaskRule(
                t.process_id,
                t.element_id,
                tuple(t.roles),
                t.form_key,
                tuple(t.separate_from),
                t.priority,
                t.sla,
                escalation_roles(t.properties),
                names_listed(t.properties.get(FORM_INPUTS)),
                dict(t.assignment or {}),
            )
            for t in tasks
        }
        specs = self._serializer.spec_from_json(row.spec_json)
        return DefinitionInfo(
            id=row.id,
            key=row.key,
            version=row.version,
            name=row.name,
            messages=frozenset(row.messages),
            business_timers=frozenset(row.business_timers),
            specs=specs,
            rules=rules,
            message_variables=message_variables((specs[0], *specs[1].values())),
            takes_earlier=messages_taken_early((specs[0], *specs[1].values())),
        )


LIVE_CACHE_MB = "TRADEFLOW_LIVE_CACHE_MB"  # the live cache's bound, in saved state


def live_cache_bytes() -> int:
    """The live cache's bound from the environment (``TRADEFLOW_LIVE_CACHE_MB``, 64)."""
    raw = os.environ.get(LIVE_CACHE_MB, "64")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{LIVE_CACHE_MB} is a number of megabytes, not '{raw}'") from None
    if not 0 <= value <= 1_000_000:
        raise ValueError(f"{LIVE_CACHE_MB} is between 0 and 1000000, not {raw}")
    return int(value * 1024 * 1024)


class LiveWorkflows:
    """Deserialised workflows by instance id, valid for one revision of the row; at most
    ``size`` of them and ``max_bytes`` of their saved state in all (a workflow in memory
    takes a few times its saved state: the bound is on what can be measured cheaply).
    One whose state alone is past the bound is not kept."""

    def __init__(self, size: int = 1024, max_bytes: int | None = None) -> None:
        self.max_bytes = live_cache_bytes() if max_bytes is None else max_bytes
        self._items: _Lru[int, tuple[int, BpmnWorkflow]] = _Lru(size, self.max_bytes)

    def take(self, instance_id: int, revision: int) -> BpmnWorkflow | None:
        """Remove and return the cached workflow if it is of this revision."""
        found = self._items.pop(instance_id)
        if found is not None and found[0] == revision:
            return found[1]
        return None

    def keep(self, instance: InstanceRow, workflow: BpmnWorkflow) -> None:
        """Keep a committed workflow for the next command, if there can be one."""
        if instance.status == InstanceStatus.RUNNING:
            weight = len(instance.state) + sum(stored_parts(workflow).values())
            self._items.put(instance.id, (instance.revision, workflow), weight)

    def drop(self, instance_id: int) -> None:
        """Forget the instance's workflow (it ended, or its command was rolled back)."""
        self._items.pop(instance_id)

    def holds(self, instance_id: int, revision: int) -> bool:
        found = self._items.get(instance_id)
        return found is not None and found[0] == revision

    @property
    def size(self) -> int:
        return self._items.capacity

    @property
    def held(self) -> tuple[int, int]:
        """How many workflows are kept, and their saved state's size in bytes."""
        return len(self._items), self._items.weight

    def clear(self) -> None:
        self._items.clear()


class DecisionTables:
    """The parsed tables of decision versions, by (resource, decision id)."""

    def __init__(self, size: int = 128) -> None:
        self._engines: _Lru[tuple[int, str], Any] = _Lru(size)

    def source(self, session: Session) -> decisions.Source:
        """What the command on ``session`` asks for the newest table of a decision."""

        def newest(decision_id: str) -> Any:
            resource_id = decision_versions.newest(session, decision_id)
            if resource_id is None:
                return None
            engine = self._engines.get((resource_id, decision_id))
            if engine is None:
                engine = decision_versions.engine(session, resource_id, decision_id)
                self._engines.put((resource_id, decision_id), engine)
            return engine

        return newest

    def clear(self) -> None:
        self._engines.clear()

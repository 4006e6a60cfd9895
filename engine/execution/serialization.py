"""Workflow state as JSON, with the spec stored by reference.

SpiffWorkflow embeds the whole process spec in every serialized workflow; about half
the bytes and most of the cost of a load-save cycle. We store each definition's spec
once (``definition.spec_json``), keep parsed specs in a per-process cache keyed by
definition id, and serialize only the task tree and data of an instance.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnSubWorkflowConverter,
    BpmnWorkflowConverter,
    TaskConverter,
    WorkflowConverter,
)
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.defaults import NoneTask
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG as CAMUNDA_CONFIG
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from engine.execution.decisions import DecisionTask, DecisionTaskConverter
from engine.execution.expressions import SafeScriptEngine
from engine.execution.pass_through import PassThroughTask

SpecPair = tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]]


class _FrozenTasks:
    """A workflow converter whose task mapping takes a finished task's kept dict straight,
    without the registry's dispatch or a new text of its id (a fifth of a save)."""

    registry: Any

    def mapping_to_dict(self, mapping: dict[Any, Any], **kwargs: Any) -> dict[str, Any]:
        convert = self.registry.convert
        out: dict[str, Any] = {}
        for key, value in mapping.items():
            frozen = getattr(value, _FROZEN, None)
            if frozen is not None and not kwargs and frozen[0] == _frozen_key(value):
                out[frozen[2]] = frozen[1]
            else:
                out[str(key)] = convert(value, **kwargs)
        return out


class _SubWorkflowConverter(_FrozenTasks, BpmnSubWorkflowConverter):  # type: ignore[misc]
    """A called process's workflow, its finished tasks as the top workflow's."""


class _ReferencedWorkflowConverter(_FrozenTasks, BpmnWorkflowConverter):  # type: ignore[misc]
    """Serializes a workflow without its spec; restores it onto a given spec."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct: dict[str, Any] = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(
        self, dct: dict[str, Any], spec: BpmnProcessSpec, subprocess_specs: dict[str, Any]
    ) -> BpmnWorkflow:
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


_FINISHED = TaskState.COMPLETED | TaskState.CANCELLED
_FROZEN = "_tradeflow_frozen"


def _frozen_key(task: Task) -> tuple[int, float, int]:
    return (task.state, task.last_state_change, len(task._children))


def thaw(task: Task) -> None:
    """Forget a finished task's kept dict and JSON: something its key doesn't cover
    changed (its parent, its children, its internal data), so the next save makes them
    anew."""
    if hasattr(task, _FROZEN):
        delattr(task, _FROZEN)


_SEPARATORS = (",", ":")
# what orjson would write that the standard library refuses, it is made to refuse too
_ORJSON = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def _dumps(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"))`` as json.loads reads it back: orjson
    writes it in a small fraction of the time (docs/performance.md). Where the
    two would not give the same data, the standard library writes it: a key that is not a
    string, an integer past 64 bits, a string with a lone surrogate (orjson refuses them),
    and a NaN or infinity, which orjson writes as null (json keeps them)."""
    try:
        out = orjson.dumps(value, option=_ORJSON)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value, separators=_SEPARATORS)
    return _as_text(value, out)


def _as_text(value: Any, out: bytes) -> str:
    """orjson's ``out`` for ``value``, unless ``value`` holds a NaN or infinity (written
    null by orjson): then the standard library's. The walk that looks is the costly part,
    so it runs only where a null was written."""
    if b"null" in out and not _finite(value):
        return json.dumps(value, separators=_SEPARATORS)
    return out.decode()


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere in ``value``."""
    pending = [value]
    while pending:  # no recursion: data may nest deep
        item = pending.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, dict):
            pending += item.values()
        elif isinstance(item, list | tuple):
            pending += item
    return True


PART_MIN = 4096  # a variable's JSON from this many characters on is saved as a part
PARTS = "tradeflow_parts"  # a task dict's {"data"|"updates": {variable: part key}}


def part_key(text: str) -> str:
    """A part's key: its content's hash, so an unchanged value is the same part."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _split(dct: dict[str, Any], parts: dict[str, str] | None) -> tuple[str, dict[str, str]]:
    """A task dict's JSON, with ``parts``: its large variables (``PART_MIN``), in its
    data or in its data's delta (Spiff keeps a task's changes to its parent's data
    there), apart, the JSON referring to them by key under ``PARTS``: (the JSON, the
    parts it refers to). A task whose whole JSON is shorter than a part is written
    whole, as ever (most are)."""
    if parts is None:
        return _dumps(dct), {}
    try:  # its size first; the walk for NaN over the whole dict only if it stays whole
        encoded = orjson.dumps(dct, option=_ORJSON)
        raw: bytes | None = encoded
        whole, size = "", len(encoded)
    except TypeError:  # what only the standard library writes
        raw, whole = None, json.dumps(dct, separators=_SEPARATORS)
        size = len(whole)

    def as_whole() -> str:
        return whole if raw is None else _as_text(dct, raw)

    if size < PART_MIN:
        return as_whole(), {}
    own: dict[str, str] = {}
    refs: dict[str, dict[str, str]] = {}
    out: dict[str, Any] = {}
    for field, value in dct.items():
        if field == "data" and _named(value):
            out[field] = _apart(value, "data", own, refs)
        elif field == "delta" and isinstance(value, dict) and _named(value.get("updates")):
            delta = {k: orjson.Fragment(_dumps(v)) for k, v in value.items() if k != "updates"}
            out[field] = {"updates": _apart(value["updates"], "updates", own, refs), **delta}
        else:
            out[field] = orjson.Fragment(_dumps(value))
    if not refs:
        return as_whole(), {}
    out[PARTS] = refs
    try:  # each value a fragment _dumps made (with its fallbacks): orjson only joins them
        return orjson.dumps(out).decode(), own
    except TypeError:  # a key orjson refuses (a lone surrogate): whole, as _dumps wrote it
        return _dumps(dct), {}


def _named(container: Any) -> bool:
    """A dict of variables by name (JSON keys as they are)."""
    return isinstance(container, dict) and all(type(k) is str for k in container)


def _apart(
    container: dict[str, Any], where: str, own: dict[str, str], refs: dict[str, dict[str, str]]
) -> dict[str, orjson.Fragment]:
    """A container of variables as fragments, its large ones null, put in ``own`` under
    their keys and named in ``refs[where]``."""
    out = {}
    for name, value in container.items():
        text = _dumps(value)
        if len(text) >= PART_MIN:
            key = part_key(text)
            own[key] = text
            refs.setdefault(where, {})[name] = key
            text = "null"
        out[name] = orjson.Fragment(text)
    return out


class _FrozenDict(dict[str, Any]):
    """A finished task's dict, which also keeps its JSON text (and its parts) once
    encoded."""

    __slots__ = ("parts", "split", "text")

    def __init__(self, source: dict[str, Any]) -> None:
        super().__init__(source)
        self.text: str | None = None
        self.split = False  # whether ``text`` was made with its parts apart
        self.parts: dict[str, str] = {}

    def encode(self, parts: dict[str, str] | None) -> str:
        if self.text is None or self.split != (parts is not None):
            self.text, self.parts = _split(self, parts)
            self.split = parts is not None
        if parts is not None:
            parts.update(self.parts)
        return self.text


class _FrozenTaskConverter(TaskConverter):  # type: ignore[misc]
    """A completed or cancelled task never changes again: its dict and its JSON are
    made once and kept on the task (on load, from the JSON just read), keyed by state,
    last change and child count, so any change makes them anew. A long-running instance
    then pays per save for its open tasks, not for its whole history. A save takes the
    kept dict itself (_FrozenTasks); this converter makes the others, and keeps them."""

    def to_dict(self, task: Task) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(task)
        if task.state & _FINISHED:
            dct = _FrozenDict(dct)
            setattr(task, _FROZEN, (_frozen_key(task), dct, dct["id"]))
        return dct

    def from_dict(self, dct: dict[str, Any], workflow: Any) -> Task:
        task: Task = super().from_dict(dct, workflow)
        if task.state & _FINISHED:
            frozen = _FrozenDict(dct)
            # the registry took it off to restore the task; saving puts it back
            frozen["typename"] = self.registry.typenames[self.target_class]
            setattr(task, _FROZEN, (_frozen_key(task), frozen, dct["id"]))
        return task


def _encode_task(dct: dict[str, Any], parts: dict[str, str] | None) -> str:
    if isinstance(dct, _FrozenDict):
        return dct.encode(parts)
    text, own = _split(dct, parts)
    if parts is not None:
        parts.update(own)
    return text


def _encode_workflow(dct: dict[str, Any], parts: dict[str, str] | None) -> str:
    """json.dumps of a serialized workflow, reusing the kept JSON of finished tasks; with
    ``parts``, the tasks' large variables go there (``_split``)."""
    rest = {k: v for k, v in dct.items() if k not in ("tasks", "subprocesses")}
    head = json.dumps(rest, separators=_SEPARATORS)
    if parts is not None and len(head) >= PART_MIN and _named(rest.get("data")):
        # a workflow's own data (a finished subprocess's, the process's at its end)
        own: dict[str, str] = {}
        refs: dict[str, dict[str, str]] = {}
        data = _apart(rest["data"], "data", own, refs)
        if refs:
            fragments = {k: orjson.Fragment(json.dumps(v, separators=_SEPARATORS))
                         for k, v in rest.items() if k != "data"}  # fmt: skip
            try:
                head = orjson.dumps({**fragments, "data": data, PARTS: refs}).decode()
                parts.update(own)
            except TypeError:
                pass
    out = [head[:-1], "," if rest else ""]
    tasks = ",".join(f'"{key}":{_encode_task(task, parts)}' for key, task in dct["tasks"].items())
    out.append(f'"tasks":{{{tasks}}}')
    if "subprocesses" in dct:
        subs = ",".join(
            f"{json.dumps(key)}:{_encode_workflow(sub, parts)}"
            for key, sub in dct["subprocesses"].items()
        )
        out.append(f',"subprocesses":{{{subs}}}')
    return "".join(out) + "}"


def join_parts(dct: dict[str, Any], parts: Mapping[str, str]) -> None:
    """Put the parts a saved workflow refers to back into its tasks' data and deltas,
    and its own data."""
    _join_task(dct, parts)  # a workflow's own data, where it refers to parts
    for task in dct["tasks"].values():
        _join_task(task, parts)
    for sub in dct.get("subprocesses", {}).values():
        join_parts(sub, parts)


class PartMissing(ValueError):
    """A saved state refers to a part its instance has no longer: read with the parts of
    a later save (PostgreSQL's reads without a lock: Runtime.restore reads again)."""


def _join_task(dct: dict[str, Any], parts: Mapping[str, str]) -> None:
    refs = dct.pop(PARTS, None)
    for where, names in (refs or {}).items():
        container = dct["data"] if where == "data" else dct["delta"]["updates"]
        for name, key in names.items():
            if key not in parts:
                raise PartMissing(f"the saved state lacks its part {key} ({name})")
            container[name] = json.loads(parts[key])


def _registry() -> Any:
    config = dict(CAMUNDA_CONFIG)
    config[PassThroughTask] = config[NoneTask]
    config[DecisionTask] = DecisionTaskConverter
    registry = BpmnWorkflowSerializer.configure(config)
    # Form data often carries money and dates; keep their types across saves.
    registry.register(Decimal, lambda v: {"value": str(v)}, lambda v: Decimal(v["value"]))
    registry.register(
        date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"])
    )
    return registry


class StateSerializer:
    """Converts specs (once, at deploy) and workflow states (every command)."""

    VERSION = "1.5"  # SpiffWorkflow's serialization format this state is written in

    def __init__(self) -> None:
        self.apart = True  # large variables saved apart; off: whole states (bench/step_curve.py)
        self._full = BpmnWorkflowSerializer(_registry())
        self._ref = BpmnWorkflowSerializer(_registry())
        _ReferencedWorkflowConverter(BpmnWorkflow, self._ref.registry)
        _SubWorkflowConverter(BpmnSubWorkflow, self._ref.registry)
        _FrozenTaskConverter(Task, self._ref.registry)

    def spec_to_json(self, spec: BpmnProcessSpec, subprocess_specs: dict[str, Any]) -> str:
        registry = self._full.registry
        return json.dumps(
            {
                "spec": registry.convert(spec),
                "subprocess_specs": {k: registry.convert(v) for k, v in subprocess_specs.items()},
            },
            sort_keys=True,
        )

    def spec_from_json(self, text: str) -> SpecPair:
        dct = json.loads(text)
        registry = self._full.registry
        subs = {k: registry.restore(v) for k, v in dct["subprocess_specs"].items()}
        return registry.restore(dct["spec"]), subs

    def dumps(self, workflow: BpmnWorkflow, parts: dict[str, str] | None = None) -> str:
        """The workflow's state as JSON; with ``parts``, its tasks' large variables are
        put there (part key -> JSON) and the state refers to them, so a save need
        write only the parts it did not write before."""
        dct = self._ref.to_dict(workflow)
        dct["serializer_version"] = self.VERSION
        return _encode_workflow(dct, parts if self.apart else None)

    def loads(
        self, text: str, specs: SpecPair, parts: Mapping[str, str] | None = None
    ) -> BpmnWorkflow:
        """A workflow from its state and the parts the state refers to (``has_parts``)."""
        dct = json.loads(text)
        if parts is not None:
            join_parts(dct, parts)
        self._ref.migrate(dct)
        workflow = self._ref.from_dict(dct, spec=specs[0], subprocess_specs=specs[1])
        workflow.script_engine = SAFE_ENGINE  # deserialising drops the engine: always attach
        if parts:
            mark_stored(workflow, parts)
        return workflow


def has_parts(text: str) -> bool:
    """Whether a saved state may refer to parts. A user's strings can't make it true
    (their quotes are escaped); a user's dict with that key can, which costs a read of
    the instance's parts and nothing else (only a task's own key is taken as refs)."""
    return f'"{PARTS}":' in text


_STORED = "_tradeflow_stored_parts"


def stored_parts(workflow: BpmnWorkflow) -> Mapping[str, int]:
    """The parts stored for this workflow as it was loaded or last saved: key -> size."""
    found: Mapping[str, int] = getattr(workflow, _STORED, {})
    return found


def mark_stored(workflow: BpmnWorkflow, parts: Mapping[str, str]) -> None:
    setattr(workflow, _STORED, {key: len(body) for key, body in parts.items()})


SAFE_ENGINE = SafeScriptEngine()

"""Compacting a workflow's task tree, so an instance can loop for years.

SpiffWorkflow keeps every task an instance ever ran: each round of a loop adds its
tasks below the last round's, so the tree only grows deeper. Its task iterator stops
descending at depth 1000 (``TaskIterator(max_depth=1000)``) and the engine steps find
READY tasks through it, so past that depth the next task is never run: the instance
stops without an error (the shipped customer_development after 248 weekly follow-ups).
And every command pays for the whole history: the state is read, written and scanned
whole.

As a command settles, the finished tasks nothing will read again are dropped, and each
remaining task hangs from its nearest remaining ancestor. What stays (``_keep``):

* the root, and every unfinished task (MAYBE to STARTED, and ERROR);
* the parent of each of them: Spiff reads a task's parent for its data, a join's
  inputs (``task.parent.state``, ``task.parent.task_spec``), a multi-instance's
  children (``child.parent``), and resets;
* for a join of a boundary event or of several start events (a join with a
  ``split_task``), that split and all its children: the join finds the split with
  ``find_ancestor`` and reads its main task and events from ``split.children``;
* the parent of every remaining task of a parallel or inclusive join (their checks
  read the parents of the join's tasks);
* of the paths that ended while others went on (each leaves a cancelled task of the
  process's end join), the latest, its end event's data folded with the earlier ones'
  in the order they ended: when the process ends, Spiff merges the data of every such
  path into its result, so a variable set only on a side path (a non-interrupting
  boundary event's, say) is still there.

Each remaining task keeps its children's order (the kept tasks are visited in the old
tree's order), so the engine steps run READY tasks in the same order. Subprocesses and
call activities are compacted the same way, each in its own tree, and dropped with the
task that ran them. What the instance page needs of the dropped history, the elements
that were completed, is kept as a set in the root's internal data (``DONE``).

Since each command drops what the last one finished, the tree holds the live part of
the instance plus one command's worth of tasks: the state's size and each command's
cost stay bounded by that, not by the rounds run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.control import _EndJoin
from SpiffWorkflow.bpmn.specs.mixins.unstructured_join import UnstructuredJoin
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from engine.execution.serialization import thaw

DONE = "tradeflow_done"  # root internal_data: elements completed by tasks compacted away
SPIFF_MAX_DEPTH = 1000  # TaskIterator's default max_depth: deeper tasks are never visited

_KEEP = TaskState.NOT_FINISHED_MASK | TaskState.ERROR


@dataclass
class Compaction:
    """What one compaction did."""

    dropped: int = 0  # tasks removed, subprocesses' tasks included
    subprocesses: int = 0  # subprocesses and called processes removed
    depth: int = 0  # the deepest remaining task below its tree's root


def compact(workflow: BpmnWorkflow) -> Compaction:
    """Drop the finished tasks no remaining task needs, in the workflow and each of its
    subprocesses; record the elements they completed on the root."""
    result = Compaction()
    done: set[str] = set()
    _compact_tree(workflow, workflow, done, result)
    present = set(workflow.tasks)  # the task ids left in the trees compacted so far
    # a subprocess's tree hangs from a task of its parent's tree: parents first
    for key, sub in sorted(workflow.subprocesses.items(), key=lambda kv: kv[1].depth):
        if sub.parent_task_id not in present:
            result.subprocesses += 1
            result.dropped += len(sub.tasks)
            done.update(_completed_elements(sub.tasks.values()))
            _forget(workflow, sub.tasks.keys())
            del workflow.subprocesses[key]
            continue
        _compact_tree(sub, workflow, done, result)
        present.update(sub.tasks)
    root = workflow.task_tree
    recorded = root.internal_data.get(DONE, [])
    if not done.issubset(recorded):
        root.internal_data[DONE] = sorted(done.union(recorded))
        thaw(root)
    return result


def elements(workflow: BpmnWorkflow) -> tuple[set[str], set[str]]:
    """The diagram elements an instance has completed, and those active now (READY,
    WAITING or STARTED), its subprocesses' included: what the tree holds plus what
    compaction recorded."""
    done = set(workflow.task_tree.internal_data.get(DONE, []))
    active: set[str] = set()
    live = TaskState.READY | TaskState.WAITING | TaskState.STARTED
    for process in (workflow, *workflow.subprocesses.values()):
        for task in process.tasks.values():
            element = getattr(task.task_spec, "bpmn_id", None)
            if not element:
                continue
            if task.state == TaskState.COMPLETED:
                done.add(element)
            elif task.state & live:
                active.add(element)
    return done, active


def _compact_tree(process: Any, top: BpmnWorkflow, done: set[str], result: Compaction) -> None:
    # tasks are kept in sets by identity: a UUID's hash is Python code, a task's isn't
    tasks: dict[UUID, Task] = process.tasks
    keep = _keep(tasks, process.task_tree)
    _fold_ended_paths(tasks, keep)
    if len(keep) == len(tasks) and len(tasks) < SPIFF_MAX_DEPTH:
        return  # nothing to drop, and too few tasks to be too deep
    result.depth = max(result.depth, _relink(tasks, process.task_tree, keep))
    dropped = [task for task in tasks.values() if task not in keep]
    if not dropped:
        return
    done.update(_completed_elements(dropped))
    result.dropped += len(dropped)
    for task in dropped:
        del tasks[task.id]
    _forget(top, (task.id for task in dropped))
    if process.last_task is not None and process.last_task.id not in tasks:
        process.last_task = None  # as a reload would find it


def _keep(tasks: dict[UUID, Task], root: Task) -> set[Task]:
    keep = {root}
    for task in tasks.values():
        if not task.state & _KEEP:
            continue
        keep.add(task)
        parent = tasks.get(task._parent) if task._parent is not None else None
        if parent is not None:
            keep.add(parent)
        split = getattr(task.task_spec, "split_task", None)
        if split:
            found = _ancestor(tasks, task, split)
            if found is not None:
                keep.add(found)
                keep.update(tasks[child] for child in found._children)
    for task in list(keep):
        if isinstance(task.task_spec, UnstructuredJoin) and task._parent is not None:
            keep.add(tasks[task._parent])
    return keep


def _fold_ended_paths(tasks: dict[UUID, Task], keep: set[Task]) -> None:
    """Keep the latest path that ended, its data merged with the earlier ones', in the
    order the end join's ``_run_hook`` merges them (oldest first)."""
    ended = sorted(
        (
            task
            for task in tasks.values()
            if task.state == TaskState.CANCELLED
            and isinstance(task.task_spec, _EndJoin)
            and task._parent in tasks
        ),
        key=lambda task: task.last_state_change,
    )
    if not ended:
        return
    latest = ended[-1]
    end_event = tasks[latest._parent]
    keep.update((latest, end_event))
    if len(ended) == 1:
        return
    merged: dict[str, Any] = {}
    for task in ended:
        DeepMerge.merge(merged, tasks[task._parent].data)
    if merged != end_event.data:
        end_event.data = merged
        thaw(end_event)
        thaw(latest)  # its data is saved as changes to its parent's


def _ancestor(tasks: dict[UUID, Task], task: Task, spec_name: str) -> Task | None:
    """``task.find_ancestor(spec_name)`` without its recursion (a tree can be deep)."""
    parent = tasks.get(task._parent) if task._parent is not None else None
    while parent is not None:
        if parent.task_spec.name == spec_name:
            return parent
        parent = tasks.get(parent._parent) if parent._parent is not None else None
    return None


def _relink(tasks: dict[UUID, Task], root: Task, keep: set[Task]) -> int:
    """Hang each kept task from its nearest kept ancestor, children in the old tree's
    order (a walk in pre-order, without recursion); the kept tree's depth."""
    children: dict[Task, list[UUID]] = {task: [] for task in keep}
    deepest = 0
    # (a task, its nearest kept ancestor, that ancestor's depth in the kept tree)
    stack = [(tasks[child], root, 0) for child in reversed(root._children)]
    while stack:
        task, above, level = stack.pop()
        if task in keep:
            children[above].append(task.id)
            if task._parent != above.id:
                task._parent = above.id
                thaw(task)
            above, level = task, level + 1
            deepest = max(deepest, level)
        stack.extend((tasks[child], above, level) for child in reversed(task._children))
    for task, kept in children.items():
        if task._children != kept:
            task._children = kept
            thaw(task)
    return deepest


def _completed_elements(tasks: Iterable[Task]) -> set[str]:
    return {
        task.task_spec.bpmn_id
        for task in tasks
        if task.state == TaskState.COMPLETED and getattr(task.task_spec, "bpmn_id", None)
    }


def _forget(top: BpmnWorkflow, keys: Iterable[UUID]) -> None:
    """Dropped tasks no longer wait for events (finished ones don't; this is a guard)."""
    waiting = top.event_manager.tasks
    if waiting:
        for key in keys:
            waiting.pop(key, None)

"""One pass over a workflow's task tree, instead of one get_tasks() walk per question.

A command asks the same things several times (which user tasks are ready, what waits
for a timer or a message, did anything fail, what are the variables); SpiffWorkflow's
iterator walks the whole tree for each. Reading the tasks dicts once is several times
cheaper, and it sees every task however deep (the iterator stops at depth 1000; the
tasks it left READY show here as ``stalled``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

_LIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR
_FRONTIER = TaskState.READY | TaskState.WAITING | TaskState.STARTED


@dataclass
class Frontier:
    ready_manual: list[Task] = field(default_factory=list)
    waiting: list[Task] = field(default_factory=list)
    errors: list[Task] = field(default_factory=list)
    top: list[Task] = field(default_factory=list)  # live tasks of the top-level process
    # READY tasks the engine runs itself, left READY after it ran: it never reached them
    stalled: list[Task] = field(default_factory=list)


def scan(workflow: BpmnWorkflow) -> Frontier:
    found = Frontier()
    for process in (workflow, *workflow.subprocesses.values()):
        for task in process.tasks.values():
            state = task.state
            if not state & _LIVE:
                continue
            if state == TaskState.READY:
                (found.ready_manual if task.task_spec.manual else found.stalled).append(task)
            elif state == TaskState.WAITING:
                found.waiting.append(task)
            elif state == TaskState.ERROR:
                found.errors.append(task)
            if process is workflow and state & _FRONTIER:
                found.top.append(task)
    return found


def variables(workflow: BpmnWorkflow, frontier: Frontier | None = None) -> dict[str, Any]:
    """The instance's variables: the data at the top-level process's frontier."""
    if workflow.completed:
        return dict(workflow.data)
    merged: dict[str, Any] = {}
    for task in (frontier or scan(workflow)).top:
        merged.update(task.data)
    return merged

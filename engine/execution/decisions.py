"""Business rule tasks that take their decision as Camunda 7 binds it.

``camunda:decisionRefBinding="latest"`` (Camunda's default) means the newest deployed
version of the decision when the task runs: a table edited and deployed changes the next
decisions of every process, without a new process version. SpiffWorkflow bakes the table
into the process's spec at deploy; ``DecisionTask`` keeps that copy (what ``deployment``
binding means, and what runs where no runtime is around, as in a benchmark) and, bound to
``latest``, asks the running command's **decision source** for the newest table instead.
The runtime supplies the source for each command (engine/runtime/caches.py), as it
supplies the budget (limits.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask
from SpiffWorkflow.dmn.engine.DMNEngine import DMNEngine
from SpiffWorkflow.dmn.serializer.task_spec import BaseBusinessRuleTaskConverter
from SpiffWorkflow.dmn.specs.business_rule_task_mixin import BusinessRuleTaskMixin
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.deep_merge import DeepMerge

LATEST = "latest"
DEPLOYMENT = "deployment"

# decision id -> the engine of its newest deployed table, or None if none is deployed
Source = Callable[[str], DMNEngine | None]
_source: ContextVar[Source | None] = ContextVar("tradeflow_decisions", default=None)


@contextmanager
def source(found: Source | None) -> Iterator[None]:
    """Run the block with ``found`` answering the ``latest`` decision tasks' lookups."""
    token = _source.set(found)
    try:
        yield
    finally:
        _source.reset(token)


class DecisionTask(BusinessRuleTask):  # type: ignore[misc]  # SpiffWorkflow ships no types
    def __init__(
        self,
        wf_spec: Any,
        name: str,
        dmnEngine: DMNEngine,  # SpiffWorkflow's keyword
        decision_ref: str = "",
        binding: str = LATEST,
        **kwargs: Any,
    ) -> None:
        super().__init__(wf_spec, name, dmnEngine, **kwargs)
        self.decision_ref = decision_ref
        self.binding = binding

    def engine(self) -> DMNEngine:
        look_up = _source.get()
        if self.binding != LATEST or not self.decision_ref or look_up is None:
            return self.dmnEngine
        return look_up(self.decision_ref) or self.dmnEngine

    def _run_hook(self, my_task: Any) -> bool:
        # as BusinessRuleTaskMixin's, with the engine of this run (the spec is shared
        # between threads: it can't be swapped on the spec)
        engine = self.engine()  # outside: the database failing is no error of the diagram
        try:
            my_task.data = DeepMerge.merge(my_task.data, engine.result(my_task))
            super(BusinessRuleTaskMixin, self)._run_hook(my_task)
        except SpiffWorkflowException as we:
            we.add_note(f"Business Rule Task '{my_task.task_spec.bpmn_name}'.")
            raise
        except Exception as e:
            error = WorkflowTaskException(str(e), task=my_task)
            error.add_note(f"Business Rule Task '{my_task.task_spec.bpmn_name}'.")
            raise error from e
        return True


class DecisionTaskConverter(BaseBusinessRuleTaskConverter):  # type: ignore[misc]
    def to_dict(self, spec: DecisionTask) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(spec)
        dct["decision_ref"] = spec.decision_ref
        dct["binding"] = spec.binding
        return dct

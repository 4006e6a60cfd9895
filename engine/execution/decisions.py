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

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.serializer.helpers.spec import TaskSpecConverter
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask
from SpiffWorkflow.dmn.specs.business_rule_task_mixin import BusinessRuleTaskMixin
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine.execution import decision_tables
from engine.execution.decision_tables import DecisionFailed, Graph, Result

LATEST = "latest"
DEPLOYMENT = "deployment"
# camunda:mapDecisionResult: how the results become the result variable's value
MAPPINGS = ("resultList", "singleResult", "singleEntry", "collectEntries")

# decision id -> its newest deployed version, or None if none is deployed
Source = Callable[[str], Graph | None]
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
        dmnEngine: Graph,  # SpiffWorkflow's keyword: the decision as deployed with the process
        decision_ref: str = "",
        binding: str = LATEST,
        result_variable: str | None = None,
        map_result: str = "resultList",
        **kwargs: Any,
    ) -> None:
        super().__init__(wf_spec, name, dmnEngine, **kwargs)
        self.decision_ref = decision_ref
        self.binding = binding
        self.result_variable = result_variable
        self.map_result = map_result

    def decision(self) -> Graph:
        look_up = _source.get()
        deployed: Graph = self.dmnEngine
        if self.binding != LATEST or not self.decision_ref or look_up is None:
            return deployed
        return look_up(self.decision_ref) or deployed

    def _run_hook(self, my_task: Any) -> bool:
        # the spec is shared between threads: the decision of this run can't be kept on it
        found = self.decision()  # outside: the database failing is no error of the diagram
        engine = my_task.workflow.script_engine

        def run(expression: str, names: Mapping[str, Any]) -> Any:
            return engine.evaluate(my_task, expression, external_context=names)

        try:
            results = decision_tables.evaluate(found, run)
            my_task.data.update(self._variables(found, results))
            super(BusinessRuleTaskMixin, self)._run_hook(my_task)
        except SpiffWorkflowException as we:
            we.add_note(f"Business Rule Task '{my_task.task_spec.bpmn_name}'.")
            raise
        except Exception as e:
            error = WorkflowTaskException(str(e), task=my_task)
            error.add_note(f"Business Rule Task '{my_task.task_spec.bpmn_name}'.")
            raise error from e
        return True

    def _variables(self, found: Graph, results: Result) -> dict[str, Any]:
        """The variables the results set: Camunda's ``resultVariable`` mapped as
        ``mapDecisionResult`` says; without one, each output under its own name (a list of
        values where the decision answers a list)."""
        if self.result_variable is None:
            return decision_tables.as_names(found.decisions[found.decision], results)
        where = f"mapDecisionResult {self.map_result}"
        if self.map_result == "resultList":
            return {self.result_variable: results}
        if self.map_result == "collectEntries":
            if any(len(r) != 1 for r in results):
                raise DecisionFailed(f"{where} needs results of exactly one output")
            return {self.result_variable: [next(iter(r.values())) for r in results]}
        if len(results) > 1:
            raise DecisionFailed(f"{where}: {len(results)} results, where it takes one at most")
        if self.map_result == "singleResult":
            return {self.result_variable: results[0] if results else None}
        if results and len(results[0]) != 1:
            raise DecisionFailed(f"{where} needs a result of exactly one output")
        return {self.result_variable: next(iter(results[0].values())) if results else None}


class DecisionTaskConverter(TaskSpecConverter):  # type: ignore[misc]
    def to_dict(self, spec: DecisionTask) -> dict[str, Any]:
        dct: dict[str, Any] = self.get_default_attributes(spec)
        dct["decision"] = decision_tables.to_dict(spec.dmnEngine)
        dct["decision_ref"] = spec.decision_ref
        dct["binding"] = spec.binding
        dct["result_variable"] = spec.result_variable
        dct["map_result"] = spec.map_result
        return dct

    def from_dict(self, dct: dict[str, Any]) -> DecisionTask:
        if "decision_table" in dct:  # stored before decisions were read here
            dct["dmnEngine"] = decision_tables.from_spiff(dct.pop("decision_table"))
        else:
            dct["dmnEngine"] = decision_tables.from_dict(dct.pop("decision"))
        task: DecisionTask = self.task_spec_from_dict(dct)
        return task

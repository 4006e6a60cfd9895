"""A task without a type (``bpmn:task``): Camunda 7 passes the token straight through it.

SpiffWorkflow reads one as a manual task, waiting for someone to complete it; with no
queue, nobody can. This spec runs it as the engine's own step. Its saved name is its class
name, registered beside SpiffWorkflow's own (serialization.py).
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.defaults import NoneTask


class PassThroughTask(NoneTask):  # type: ignore[misc]  # SpiffWorkflow ships no types
    def __init__(self, wf_spec: Any, bpmn_id: str, **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.manual = False

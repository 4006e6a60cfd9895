"""Modeling: what a process owner deploys, and how it is read. Parsing uploads safely and
the way Camunda Modeler means them (``diagrams``, ``parser``; JUEL translated by
``juel``), what an element waits for (``events``), checking a submission against its form
(``forms_check``), lint, its expression checks and the refusal of diagrams that would run
on for ever (``lint``, ``expression_checks``, ``runaway``), the table of Camunda 7
constructs, each run or refused (``constructs``), and deploying definitions, decisions
and forms in versions (``definitions``; decisions' versions in ``decision_versions``). It imports
``engine.storage``, ``engine.audit``, ``engine.people`` (role ids), ``engine.execution``
(the evaluator and limits), ``engine.reporting`` (which elements mark a milestone) and
``engine.timers`` (start timers). The runtime stands on it.
"""

from engine.modeling import constructs, decision_versions, definitions
from engine.modeling.diagrams import FORM_INPUTS, escalation_roles, names_listed, role_id
from engine.modeling.events import (
    EARLIER_MESSAGES,
    definitions_of,
    message_variables,
    messages_of,
    messages_taken_early,
    waits_for_timer,
)
from engine.modeling.forms_check import (
    INT_RANGE,
    check_names,
    check_submission,
    form_fields,
    nested_messages,
    number_problems,
)
from engine.modeling.parser import INITIATOR

__all__ = [
    "EARLIER_MESSAGES",
    "FORM_INPUTS",
    "INITIATOR",
    "INT_RANGE",
    "check_names",
    "check_submission",
    "constructs",
    "decision_versions",
    "definitions",
    "definitions_of",
    "escalation_roles",
    "form_fields",
    "message_variables",
    "messages_of",
    "messages_taken_early",
    "names_listed",
    "nested_messages",
    "number_problems",
    "role_id",
    "waits_for_timer",
]

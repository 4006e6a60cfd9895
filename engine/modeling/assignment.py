"""A user task's assignment as Camunda 7 writes it: ``camunda:assignee``,
``candidateUsers``, ``candidateGroups``, ``priority`` and ``dueDate``, each a literal or
a ``${…}`` expression (JUEL, translated by engine/modeling/juel.py).

Read once at deploy into the expressions the safe evaluator runs when the task is created
(engine/queues/routing.py): a literal becomes a quoted string, so that ``assignee="demo"``
and ``assignee="${initiator}"`` run alike. Literal candidate groups and a literal priority
stay what they were, fixed at deploy (the task's roles and priority); only their
expression forms are kept here.
"""

from __future__ import annotations

from lxml import etree

from engine.errors import ExpressionRefused
from engine.execution import check_expression
from engine.modeling import juel

__all__ = ["ATTRIBUTES", "expressions"]

ATTRIBUTES = ("assignee", "candidateUsers", "candidateGroups", "priority", "dueDate")
_CAMUNDA = "http://camunda.org/schema/1.0/bpmn"


def _is_expression(text: str) -> bool:
    return text.startswith(("${", "#{")) and text.endswith("}")


def expressions(node: etree._Element) -> tuple[dict[str, str], list[str]]:
    """The task's assignment as {attribute: expression}, and why any part is refused."""
    found: dict[str, str] = {}
    problems: list[str] = []
    for attribute in ATTRIBUTES:
        raw = (node.get(f"{{{_CAMUNDA}}}{attribute}") or "").strip()
        if not raw:
            continue
        if not _is_expression(raw):
            if "${" in raw or "#{" in raw:
                problems.append(
                    f"camunda:{attribute} '{raw}' mixes text and an expression: write all of "
                    "it inside one ${…}"
                )
                continue
            if attribute in ("candidateGroups", "priority"):
                continue  # fixed at deploy: the task's roles, its priority
            found[attribute] = repr(raw)
            continue
        try:
            python = juel.translate(raw[2:-1])
            check_expression(python)
        except (juel.JuelRefused, ExpressionRefused, SyntaxError) as exc:
            problems.append(f"camunda:{attribute} '{raw}' refused: {exc}")
            continue
        found[attribute] = python
    return found, problems

"""Deploy-time checks of every expression a diagram or decision table holds: where each
stands (the walks), and why one is refused (``problem``): what the safe evaluator would
not run, JUEL outside ``${…}``, FEEL the cells don't read yet, timer literals that are no
ISO 8601 or repeat faster than the minimum interval. lint.py reports them by element.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from lxml import etree
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from engine.errors import ExpressionRefused
from engine.execution import check_expression, check_script, cycle_too_fast
from engine.modeling import diagrams, runaway
from engine.modeling.diagrams import BPMN_NS, NS


def bpmn_expressions(root: etree._Element) -> Iterator[tuple[str, str, str]]:
    for flow in root.iter(f"{{{BPMN_NS}}}sequenceFlow"):
        for cond in flow.xpath("./bpmn:conditionExpression", namespaces=NS):
            yield flow.get("id", ""), "condition", cond.text or ""
    for cond in root.iter(f"{{{BPMN_NS}}}conditionalEventDefinition"):
        for node in cond.xpath("./bpmn:condition", namespaces=NS):
            yield _owner(cond, 1), "condition", node.text or ""
    for tag in ("timeDuration", "timeDate", "timeCycle"):
        for node in root.iter(f"{{{BPMN_NS}}}{tag}"):
            yield _owner(node, 2), f"timer {tag}", node.text or ""
    for script_task in root.iter(f"{{{BPMN_NS}}}scriptTask"):
        for script in script_task.xpath("./bpmn:script", namespaces=NS):
            yield script_task.get("id", ""), "script", script.text or ""
    for tag in ("completionCondition", "loopCardinality"):
        for node in root.iter(f"{{{BPMN_NS}}}{tag}"):
            yield _owner(node, 2), "multi-instance", node.text or ""
    for node in root.iter(f"{{{BPMN_NS}}}loopCondition"):
        yield _owner(node, 2), "loop condition", node.text or ""
    for tag in ("messagePath", "formalExpression"):
        for node in root.iter(f"{{{BPMN_NS}}}{tag}"):
            parent = node.getparent()
            if (
                parent is not None
                and etree.QName(parent).localname == "correlationPropertyRetrievalExpression"
            ):
                yield _owner(node, 2), "correlation", node.text or ""


def _owner(node: etree._Element, levels: int) -> str:
    """The id of the element ``levels`` up: the event that owns a timer value, say."""
    owner: etree._Element | None = node
    for _ in range(levels):
        owner = owner.getparent() if owner is not None else None
    return owner.get("id", "") if owner is not None else ""


def problem(kind: str, text: str, min_interval: float) -> str | None:
    """Why an expression of ``kind`` (as the walks above name them) is refused, or None."""
    text = text.strip()
    if diagrams.is_juel(text) and (
        kind in ("condition", "multi-instance") or kind.startswith("timer")
    ):
        return None  # JUEL that could not be translated: reading the file said why
    try:
        if kind == "script":
            check_script(text)
        elif kind.startswith("timer") and text:
            check_expression(text)
            _check_timer_literal(kind.removeprefix("timer "), text, min_interval)
        elif text:
            check_expression(text)
        elif kind in ("condition", "loop condition") or kind.startswith("timer"):
            raise ExpressionRefused("empty expression")
        juel = _juel_names(text) if kind != "script" else []
        if juel:
            raise ExpressionRefused(
                f"{', '.join(juel)} is JUEL: wrap the expression in ${{…}} to write JUEL, "
                "or write it Python-style (True, False, None)"
            )
    except (ExpressionRefused, SyntaxError) as exc:
        reason = _reason(exc)
        if "syntax" in reason and _JUEL_OPERATORS.search(text):
            reason += (
                " (JUEL's &&, ||, !, eq, ne, lt, gt, le, ge and empty are read inside ${…}; "
                "outside it write and, or, not, ==, !=, <, >, <=, >=)"
            )
        return f"{kind} '{_short(text)}' refused: {reason}"
    return None


_JUEL_LITERALS = ("true", "false", "null")
_JUEL_OPERATORS = re.compile(r"&&|\|\||!(?!=)|\b(eq|ne|lt|gt|le|ge|empty)\b")


def _juel_names(text: str) -> list[str]:
    """JUEL's literals written as names (Python reads ``true`` as a variable)."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return []
    found = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in _JUEL_LITERALS}
    return sorted(found)


def _check_timer_literal(tag: str, text: str, min_interval: float) -> None:
    """A quoted ISO 8601 value must parse now, not fail when the timer is reached; a
    cycle must not repeat more often than the minimum interval."""
    value = runaway.timer_literal(text)
    if value is None:  # an expression over variables ('"P" + str(days) + "D"'): checked when run
        return
    try:
        if tag == "timeCycle":
            _, _, every = TimerEventDefinition.parse_iso_recurring_interval(value)
        else:
            TimerEventDefinition.parse_time_or_duration(value)
    except Exception as exc:  # Spiff raises bare ValueError/AttributeError/Exception here
        raise ExpressionRefused(f"'{value}' is not an ISO 8601 {tag[4:].lower()}") from exc
    if tag == "timeCycle" and every.total_seconds() < min_interval:
        raise ExpressionRefused(cycle_too_fast(every.total_seconds(), min_interval))


def _reason(exc: Exception) -> str:
    return exc.msg if isinstance(exc, SyntaxError) else str(exc)


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = ["bpmn_expressions", "problem"]

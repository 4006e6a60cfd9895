"""Decisions as a DMN file has them, read into what the engine evaluates
(engine/execution/decisions.py).

Every decision of a file is read: decision tables (each hit policy, COLLECT's
aggregations, PRIORITY and OUTPUT ORDER by the outputs' listed values) and
literal-expression decisions, each with the decisions it requires (a DRD). Cells and
expressions are FEEL (engine/modeling/feel.py), translated here, once; a cell FEEL's
grammar doesn't read is read as before, Python-style (``1 < ? < 5``, ``in ["A", "B"]``,
``>= 1000``), and one neither reads is refused naming its rule. The result is plain data,
kept in a process's stored spec when its binding is ``deployment``.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from lxml import etree

from engine.errors import ExpressionRefused
from engine.execution import check_expression, decision_tables
from engine.modeling import diagrams, feel, juel

__all__ = ["AGGREGATIONS", "HIT_POLICIES", "graph", "read"]

HIT_POLICIES = ("UNIQUE", "FIRST", "PRIORITY", "ANY", "COLLECT", "RULE ORDER", "OUTPUT ORDER")
AGGREGATIONS = ("SUM", "MIN", "MAX", "COUNT")
_ORDERED = ("PRIORITY", "OUTPUT ORDER")
_FEEL_LITERALS = frozenset({"null", "true", "false"})
_REFUSALS = (feel.FeelRefused, juel.JuelRefused, ExpressionRefused, SyntaxError, RecursionError)


class _Reading:
    def __init__(self, language: str, legacy: bool) -> None:
        self.problems: list[tuple[str, str]] = []
        self.language = language  # the file's expressionLanguage, if it names one
        self.legacy = legacy  # deployed before: Python-style first, UNIQUE as FIRST

    def refuse(self, element: etree._Element, message: str) -> None:
        self.problems.append((element.get("id", ""), message))

    # -- expressions --------------------------------------------------------------------
    def _language(self, holder: etree._Element | None) -> str:
        said = holder.get("expressionLanguage") if holder is not None else None
        return (said or self.language).strip().lower()

    def expression(self, owner: etree._Element, holder: etree._Element | None, what: str) -> str:
        """``holder``'s text (an inputExpression, outputEntry, literalExpression)."""
        text = _text(_child(holder, "text") if holder is not None else None)
        language = "" if self.legacy else self._language(holder)
        if self.legacy and not text and what == "output cell":
            return '""'  # SpiffWorkflow's empty output
        try:
            python = self._legacy_expression(text) or _expression(text, language.lower())
            check_expression(python)
        except _REFUSALS as exc:
            self.refuse(owner, f"{what} '{_short(text)}' refused: {_reason(exc)}")
            return "None"
        return python

    def cell(self, rule: etree._Element, entry: etree._Element) -> str | None:
        text = _text(_child(entry, "text"))
        if text in ("", "-"):
            return None  # any value, in whatever language
        language = self._language(entry)
        if self.legacy:
            language = ""  # SpiffWorkflow read every cell alike, whatever it said
        try:
            python = self._legacy_cell(text) or _cell(text, language)
            if python is not None:
                check_expression(python)
        except _REFUSALS as exc:
            self.refuse(rule, f"input cell '{_short(text)}' refused: {_reason(exc)}")
            return None
        return python

    def _legacy_expression(self, text: str) -> str | None:
        """A legacy table's expression as it was read: Python-style, if it is that."""
        if not self.legacy or not text.strip():
            return None
        try:
            check_expression(text.strip())
        except (ExpressionRefused, SyntaxError, RecursionError):
            return None
        return text.strip()

    def _legacy_cell(self, text: str) -> str | None:
        if not self.legacy:
            return None
        try:
            python = decision_tables.python_cell(text)
            if python is not None:
                check_expression(python)
        except (ExpressionRefused, SyntaxError, RecursionError):
            return None
        return python

    # -- decisions ----------------------------------------------------------------------
    def decision(self, node: etree._Element) -> decision_tables.Decision:
        decision_id = node.get("id", "")
        requires = tuple(
            (href or "").lstrip("#")
            for href in node.xpath(
                "./*[local-name()='informationRequirement']"
                "/*[local-name()='requiredDecision']/@href"
            )
        )
        table = _child(node, "decisionTable")
        literal = _child(node, "literalExpression")
        if table is not None:
            return decision_tables.Decision(
                decision_id, node.get("name", ""), requires, table=self.table(table)
            )
        if literal is not None:
            variable = _child(node, "variable")
            name = variable.get("name") if variable is not None else None
            if name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                self.refuse(node, f"the variable '{name[:80]}' must be a name of letters, "
                                  "digits and _")  # fmt: skip
            expression = self.expression(node, literal, "literal expression")
            return decision_tables.Decision(
                decision_id, node.get("name", ""), requires,
                literal=(name or decision_id, expression),
            )  # fmt: skip
        return decision_tables.Decision(
            decision_id, node.get("name", ""), requires
        )  # constructs.py refuses it

    def table(self, node: etree._Element) -> decision_tables.Table:
        policy = (node.get("hitPolicy") or "UNIQUE").upper()
        if self.legacy and policy == "UNIQUE":
            policy = "FIRST"  # SpiffWorkflow's reading, which it was deployed under
        aggregation = node.get("aggregation")
        if policy not in HIT_POLICIES:
            self.refuse(node, f"hit policy '{policy}' is not one of {', '.join(HIT_POLICIES)}")
        if aggregation is not None and (policy != "COLLECT" or aggregation not in AGGREGATIONS):
            self.refuse(node, f"aggregation '{aggregation}' goes with COLLECT and is one of "
                              f"{', '.join(AGGREGATIONS)}")  # fmt: skip
        inputs = tuple(
            self.expression(i, _child(i, "inputExpression"), "input expression")
            for i in diagrams.children(node, "input")
        )
        outputs = tuple(self.output(o, policy) for o in diagrams.children(node, "output"))
        if aggregation and len(outputs) != 1:
            self.refuse(node, f"COLLECT {aggregation} needs exactly one output")
        rules = tuple(self.rule(r, n, len(inputs), len(outputs))
                      for n, r in enumerate(diagrams.children(node, "rule"), 1))  # fmt: skip
        return decision_tables.Table(policy, aggregation, inputs, outputs, rules)

    def output(self, node: etree._Element, policy: str) -> decision_tables.Output:
        name = node.get("name") or ""
        if self.legacy:  # SpiffWorkflow took the label where a name was missing
            name = name or node.get("label") or node.get("id") or ""
        elif not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            self.refuse(node, "an output needs a name, the variable its value goes to "
                              "(letters, digits and _)")  # fmt: skip
        listed = _child(node, "outputValues", "text")
        priorities: tuple[Any, ...] = ()
        if listed is not None and _text(listed):
            try:
                priorities = tuple(ast.literal_eval(feel.expression(f"[{_text(listed)}]")))
            except (feel.FeelRefused, ValueError, SyntaxError):
                self.refuse(node, f"output values '{_short(_text(listed))}' must be a list "
                                  'of literals ("high","medium","low")')  # fmt: skip
        if policy in _ORDERED and not priorities:
            self.refuse(node, f"hit policy {policy} orders by the output's values: list them, "
                              'highest priority first ("high","medium","low")')  # fmt: skip
        return decision_tables.Output(name, priorities)

    def rule(
        self, node: etree._Element, row: int, inputs: int, outputs: int
    ) -> decision_tables.Rule:
        entries = diagrams.children(node, "inputEntry")
        answers = diagrams.children(node, "outputEntry")
        if len(entries) != inputs or len(answers) != outputs:
            self.refuse(node, f"rule {row} has {len(entries)} input and {len(answers)} output "
                              f"cells; the table has {inputs} and {outputs}")  # fmt: skip
        return decision_tables.Rule(
            row, node.get("id", ""),
            tuple(self.cell(node, e) for e in entries),
            tuple(self.expression(node, a, "output cell") for a in answers),
        )  # fmt: skip


def read(
    root: etree._Element, *, legacy: bool = False
) -> tuple[dict[str, decision_tables.Decision], list[tuple[str, str]]]:
    """Every decision of a DMN document by id, and the problems (element id, message)
    that refuse it. ``legacy``: a decision deployed before decisions were read here (a
    Python-style reading first, and UNIQUE answering the first match, as then)."""
    reading = _Reading(root.get("expressionLanguage") or "", legacy)
    found: dict[str, decision_tables.Decision] = {}
    nodes = diagrams.decisions(root)
    for node in nodes:
        decision = reading.decision(node)
        if decision.id in found:
            reading.refuse(node, f"two decisions have the id '{decision.id}'")
        found[decision.id] = decision
    for decision in found.values():
        for required in decision.requires:
            if required not in found:
                reading.problems.append((decision.id, f"requires decision '{required}', "
                                         "which is not in this file"))  # fmt: skip
    for decision in found.values():
        if _cycle(found, decision.id):
            reading.problems.append((decision.id, "its required decisions lead back to it"))
    return found, reading.problems


def graph(
    decisions: dict[str, decision_tables.Decision], decision_id: str
) -> decision_tables.Graph | None:
    """The decision and what it requires, or None if the file has no such decision."""
    if decision_id not in decisions:
        return None
    wanted, stack = {}, [decision_id]
    while stack:
        current = stack.pop()
        if current in wanted or current not in decisions:
            continue
        wanted[current] = decisions[current]
        stack.extend(decisions[current].requires)
    return decision_tables.Graph(decision_id, wanted)


# -- cells ------------------------------------------------------------------------------
def _expression(text: str, language: str) -> str:
    if _is_feel(language):
        if text.strip().startswith(("${", "#{")) and text.strip().endswith("}"):
            raise ExpressionRefused(
                f"${{…}} is JUEL, and this expression is FEEL: write FEEL "
                f'({text.strip()[2:-1].strip()}), or say expressionLanguage="juel"'
            )
        try:
            return feel.expression(text)
        except feel.FeelRefused as exc:
            if not exc.grammar:
                raise
            check_expression(text)  # Python-style, as before FEEL was read
            return text.strip()
    if language == "juel":
        inside = text.strip()
        if inside.startswith(("${", "#{")) and inside.endswith("}"):
            inside = inside[2:-1]
        return juel.translate(inside)
    if language == "python":
        return text.strip()
    raise ExpressionRefused(f"expression language '{language}' doesn't run here; write FEEL")


def _cell(text: str, language: str) -> str | None:
    if not _is_feel(language) and language != "python":
        raise ExpressionRefused(f"expression language '{language}' doesn't run here; write FEEL")
    try:
        return feel.unary_tests(text) if language != "python" else decision_tables.python_cell(text)
    except feel.FeelRefused as exc:
        if not exc.grammar:
            raise
        try:
            python = decision_tables.python_cell(text)
        except SyntaxError:
            raise exc from None
        try:
            tree = ast.parse(text, mode="eval") if "?" not in text else None
        except SyntaxError:  # an operator with no left side: '>= 1000', 'in [...]'
            tree = None
        if tree is not None and isinstance(tree.body, ast.Tuple):
            raise exc  # FEEL's list of tests, one of them Python-style: one or the other
        if _FEEL_LITERALS & {n.id for n in ast.walk(ast.parse(python or "0", mode="eval"))
                             if isinstance(n, ast.Name)}:  # fmt: skip
            raise exc  # FEEL's null, true or false in a Python-style cell: never defined
        return python


# -- small things ------------------------------------------------------------------------
def _is_feel(language: str) -> bool:
    """No language named, or one of FEEL's names (DMN's URIs name it per version)."""
    return language in ("", "feel") or (
        language.startswith(("http://www.omg.org/spec/", "https://www.omg.org/spec/"))
        and "feel" in language
    )


def _child(node: etree._Element, *path: str) -> etree._Element | None:
    current: etree._Element | None = node
    for name in path:
        if current is None:
            return None
        found = diagrams.children(current, name)
        current = found[0] if found else None
    return current


def _text(node: etree._Element | None) -> str:
    return (node.text or "").strip() if node is not None else ""


def _cycle(decisions: dict[str, decision_tables.Decision], start: str) -> bool:
    seen: set[str] = set()
    stack = list(decisions[start].requires)
    while stack:
        current = stack.pop()
        if current == start:
            return True
        if current in seen or current not in decisions:
            continue
        seen.add(current)
        stack.extend(decisions[current].requires)
    return False


def _reason(exc: Exception) -> str:
    return exc.msg if isinstance(exc, SyntaxError) else str(exc)


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."

"""Decisions as the engine evaluates them: decision tables under every DMN hit policy,
literal expressions, and the decisions a decision requires (a DRD).

engine/modeling/dmn.py reads a .dmn file into these plain values, its cells already
translated into the safe evaluator's expressions (engine/modeling/feel.py); here they are
evaluated against a task's data, each expression through the workflow's script engine,
within the command's budget. A decision answers a list of results, each a mapping of
output names to values, as Camunda's ``DmnDecisionResult``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "INPUT",
    "Decision",
    "DecisionFailed",
    "Graph",
    "Output",
    "Result",
    "Rule",
    "Table",
    "as_names",
    "evaluate",
    "from_dict",
    "from_spiff",
    "many",
    "python_cell",
    "to_dict",
]  # fmt: skip

INPUT = "cellinput"  # the name a translated input cell tests


class DecisionFailed(ValueError):
    """The decision can't answer as its hit policy requires (two UNIQUE rules match...)."""


@dataclass(frozen=True)
class Rule:
    row: int
    id: str
    tests: tuple[str | None, ...]  # per input: a condition on INPUT, or None for any
    outputs: tuple[str, ...]  # per output: an expression


@dataclass(frozen=True)
class Output:
    name: str
    priorities: tuple[Any, ...] = ()  # its listed values, highest priority first


@dataclass(frozen=True)
class Table:
    hit_policy: str
    aggregation: str | None
    inputs: tuple[str, ...]  # expressions
    outputs: tuple[Output, ...]
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Decision:
    id: str
    name: str
    requires: tuple[str, ...] = ()
    table: Table | None = None
    literal: tuple[str, str] | None = None  # (variable name, expression)


@dataclass(frozen=True)
class Graph:
    """A decision and every decision it requires, directly or further on."""

    decision: str
    decisions: dict[str, Decision] = field(default_factory=dict)


def to_dict(found: Graph) -> dict[str, Any]:
    return asdict(found)


def from_dict(data: dict[str, Any]) -> Graph:
    def table(t: dict[str, Any] | None) -> Table | None:
        if t is None:
            return None
        return Table(
            t["hit_policy"], t["aggregation"], tuple(t["inputs"]),
            tuple(Output(o["name"], tuple(o["priorities"])) for o in t["outputs"]),
            tuple(Rule(r["row"], r["id"], tuple(r["tests"]), tuple(r["outputs"]))
                  for r in t["rules"]),
        )  # fmt: skip

    decisions: dict[str, Decision] = {}
    for key, d in data["decisions"].items():
        literal = (d["literal"][0], d["literal"][1]) if d["literal"] else None
        decisions[key] = Decision(d["id"], d["name"], tuple(d["requires"]), table(d["table"]),
                                  literal)  # fmt: skip
    return Graph(data["decision"], decisions)


def from_spiff(table: dict[str, Any]) -> Graph:
    """A table as SpiffWorkflow's serializer stored it (process versions deployed before
    decisions were read here): its cells are Python-style, and its UNIQUE meant FIRST."""
    policy = table.get("hit_policy", "UNIQUE")
    outputs = tuple(Output(o.get("name") or o.get("label") or o["id"]) for o in table["outputs"])
    rules = tuple(
        Rule(
            r.get("row_number", n), r["id"],
            tuple(python_cell(e["lhs"][0]) if e["lhs"] and e["lhs"][0] else None
                  for e in r["input_entries"]),
            tuple(e["text"] or "None" for e in r["output_entries"]),
        )
        for n, r in enumerate(table["rules"], 1)
    )  # fmt: skip
    inputs = tuple(i["expression"] or "None" for i in table["inputs"])
    found = Table("FIRST" if policy == "UNIQUE" else policy, None, inputs, outputs, rules)
    return Graph(table["id"], {table["id"]: Decision(table["id"], table["name"], table=found)})


def python_cell(text: str) -> str | None:
    """A Python-style cell as SpiffWorkflow's DMN engine read it: ``?`` is the input,
    an operator with no left side tests the input, anything else is compared with it."""
    text = text.strip()
    if text in ("", "-"):
        return None
    marked = re.sub(r"\?(?=(?:[^'\"]|['\"][^'\"]*['\"])*$)", INPUT, text)
    if marked != text:
        ast.parse(marked, mode="eval")
        return marked
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        ast.parse(f"{INPUT} {text}", mode="eval")
        return f"{INPUT} {text}"
    return f"({INPUT}) == ({text})"


Result = list[dict[str, Any]]
Evaluate = Any  # (expression, names) -> value: the script engine, bound to the task


def evaluate(found: Graph, run: Evaluate) -> Result:
    """The results of ``found``'s decision; ``run(expression, names)`` evaluates an
    expression over the task's data with ``names`` on top."""
    answers: dict[str, Result] = {}

    def decide(decision_id: str) -> Result:
        if decision_id in answers:
            return answers[decision_id]
        decision = found.decisions[decision_id]
        names: dict[str, Any] = {}
        for required in decision.requires:
            names.update(as_names(found.decisions[required], decide(required)))
        if decision.literal is not None:
            variable, expression = decision.literal
            answer = [{variable: run(expression, names)}]
        elif decision.table is not None:
            answer = _table(decision, decision.table, names, run)
        else:
            raise DecisionFailed(f"decision '{decision_id}' has nothing to evaluate")
        answers[decision_id] = answer
        return answer

    return decide(found.decision)


def many(decision: Decision) -> bool:
    """Whether the decision answers a list of results (RULE ORDER, OUTPUT ORDER, COLLECT
    without an aggregation), however many rules matched this time."""
    table = decision.table
    if table is None:
        return False
    return table.hit_policy in ("RULE ORDER", "OUTPUT ORDER") or (
        table.hit_policy == "COLLECT" and not table.aggregation
    )


def as_names(decision: Decision, results: Result) -> dict[str, Any]:
    """A decision's results as the names a dependant decision (or, without a result
    variable, the process) reads: each output's value; the list of each output's values
    where the decision answers a list, an empty one where no rule matched."""
    if not many(decision):
        return dict(results[0]) if results else {}
    outputs = [o.name for o in decision.table.outputs] if decision.table else []
    return {name: [r.get(name) for r in results] for name in outputs}


def _table(decision: Decision, table: Table, names: dict[str, Any], run: Evaluate) -> Result:
    values = [run(expression, names) for expression in table.inputs]
    matched: list[Rule] = []
    for rule in table.rules:
        if all(
            test is None or bool(run(test, {**names, INPUT: value}))
            for test, value in zip(rule.tests, values, strict=False)
        ):
            matched.append(rule)
            if table.hit_policy == "FIRST":
                break
    results = [
        {o.name: run(e, names) for o, e in zip(table.outputs, rule.outputs, strict=False)}
        for rule in matched
    ]
    policy = table.hit_policy
    where = f"decision '{decision.id}'"
    if policy == "UNIQUE" and len(matched) > 1:
        rows = ", ".join(str(r.row) for r in matched)
        raise DecisionFailed(f"{where}: rules {rows} all match, and hit policy UNIQUE allows one")
    if policy == "ANY" and any(r != results[0] for r in results[1:]):
        rows = ", ".join(str(r.row) for r in matched)
        raise DecisionFailed(
            f"{where}: rules {rows} match with different outputs, and hit policy ANY "
            "requires them to agree"
        )
    if policy in ("PRIORITY", "OUTPUT ORDER"):
        results.sort(key=lambda result: _priority(table.outputs, result))
    if policy in ("UNIQUE", "ANY", "PRIORITY", "FIRST"):
        return results[:1]
    if policy == "COLLECT" and table.aggregation:
        return _aggregate(table.aggregation, table.outputs[0].name, results, where)
    return results  # RULE ORDER, OUTPUT ORDER, COLLECT


def _priority(outputs: tuple[Output, ...], result: Mapping[str, Any]) -> tuple[int, ...]:
    """Where each output's value stands in its listed values: the lower, the higher."""
    ranks = []
    for output in outputs:
        value = result.get(output.name)
        listed = [
            i for i, v in enumerate(output.priorities) if v == value and type(v) is type(value)
        ]
        ranks.append(listed[0] if listed else len(output.priorities))
    return tuple(ranks)


def _aggregate(how: str, name: str, results: Result, where: str) -> Result:
    values = [r[name] for r in results if r.get(name) is not None]
    if how == "COUNT":
        return [{name: len(values)}]
    if not values:
        return []
    if how == "SUM" and not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise DecisionFailed(f"{where}: COLLECT SUM adds numbers; an output was not one")
    try:
        total = sum(values) if how == "SUM" else (min(values) if how == "MIN" else max(values))
    except TypeError as exc:
        raise DecisionFailed(f"{where}: COLLECT {how} can't compare its outputs ({exc})") from exc
    return [{name: total}]

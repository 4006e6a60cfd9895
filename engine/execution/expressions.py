"""Restricted evaluation of everything a diagram asks the engine to compute.

SpiffWorkflow's stock engine runs ``eval``/``exec`` with builtins, so a condition such as
``__import__('os').system(...)`` would run on the server. Gateway conditions, timers, DMN
cells, correlation keys and script tasks all go through here instead: a static AST whitelist
(usable by deploy-time lint) followed by a size-bounded simpleeval evaluator.

Each evaluation also spends from the budget of the command it runs in (engine/execution/limits.py):
what it builds counts towards the command's total, and it looks at the command's clock
every ``CLOCK_EVERY`` nodes, so that one long script cannot outlast the command's time.
"""

from __future__ import annotations

import ast
import functools
import itertools
import textwrap
import threading
from collections import ChainMap
from collections.abc import Mapping, MutableMapping
from functools import lru_cache
from typing import Any, NoReturn

import simpleeval
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import (
    BasePythonScriptEngineEnvironment,
    PythonScriptEngine,
)
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine.errors import BudgetExceeded, ExpressionRefused
from engine.execution import limits, translated
from engine.execution.limits import CLOCK_EVERY, Budget

MAX_EXPRESSION_LENGTH = 2000
MAX_SCRIPT_LENGTH = 20_000
MAX_DEPTH = 100  # AST nesting; simpleeval recurses per node and must stay under the recursion limit
MAX_POWER = 4_000_000  # largest exponent
MAX_INT_BITS = 100_000  # largest int ``a ** b`` may produce: past it, seconds of CPU each
MAX_STRING_LENGTH = 100_000
MAX_COLLECTION_SIZE = 10_000  # items in one built collection; simpleeval caps comprehensions alike
MAX_BUILT = 1_000_000  # total deep size of the values one expression or script may build
MAX_ROUND_DIGITS = 100  # round(5, -10**7) computes 10**10**7 (a long burn of CPU)


def _size(value: object, limit: int) -> int:
    """Deep size of ``value`` (items, characters, ~digits); stops counting past ``limit``.

    Counts shared references every time, since that is what ``str()`` or ``==`` would walk.
    """
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        total += 1
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3
        elif isinstance(item, (list, tuple, set, frozenset, dict)):
            items = itertools.chain.from_iterable(item.items()) if isinstance(item, dict) else item
            stack.extend(itertools.islice(items, limit - total + 1))
    return total


def _str(value: object = "") -> str:
    if _size(value, MAX_STRING_LENGTH) > MAX_STRING_LENGTH:
        raise simpleeval.IterableTooLong("value is too large to turn into a string")
    return str(value)


def _round(number: Any, ndigits: int | None = None) -> Any:
    if isinstance(ndigits, int) and abs(ndigits) > MAX_ROUND_DIGITS:
        raise simpleeval.NumberTooHigh(f"round() to {ndigits} digits is not allowed")
    return round(number, ndigits)


def _sum(values: Any, start: Any = 0) -> Any:
    # sum(lists, []) concatenates quadratically; only numbers may be added up
    if not isinstance(start, (int, float)):
        raise simpleeval.FeatureNotAvailable("sum() only adds up numbers")
    return sum(values, start)


def _power(a: Any, b: Any) -> Any:
    if isinstance(b, (int, float)) and abs(b) > MAX_POWER:
        raise simpleeval.NumberTooHigh(f"exponent {b} is too large")
    if isinstance(a, int) and isinstance(b, int) and b > 0 and a.bit_length() * b > MAX_INT_BITS:
        raise simpleeval.NumberTooHigh(f"{a} ** {b} is too large")
    return a**b


def _mult(a: Any, b: Any) -> Any:
    # check before multiplying: 'a' * 10**9 would allocate a gigabyte first
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int):
            limit = MAX_STRING_LENGTH if isinstance(seq, (str, bytes)) else MAX_COLLECTION_SIZE
            if len(seq) * n > limit:
                raise simpleeval.IterableTooLong("repetition result is too long")
    return a * b


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, (str, bytes)):  # '%999999999d' % 1 builds a gigabyte
        raise simpleeval.FeatureNotAvailable("'%' string formatting is not allowed")
    return a % b


_FUNCTIONS: dict[str, Any] = {
    "len": len, "min": min, "max": max, "abs": abs, "round": _round, "int": int, "float": float,
    "str": _str, "bool": bool, "sum": _sum, "any": any, "all": all, "sorted": sorted,
    "list": list, "dict": dict, "empty": translated.empty, "prop": translated.prop,
    "compare": translated.compare, "matches": translated.matches,
    "get": None,  # get(name, default): a variable or the default; bound per evaluation
}  # fmt: skip
FUNCTION_NAMES = frozenset(_FUNCTIONS)  # what an expression may call
_OPERATORS: dict[type[ast.AST], Any] = {
    **{op: simpleeval.DEFAULT_OPERATORS[op] for op in (
        ast.Add, ast.Sub, ast.Div, ast.FloorDiv, ast.BitAnd, ast.BitOr, ast.BitXor, ast.Eq,
        ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot,
        ast.Not, ast.USub, ast.UAdd)},
    ast.Mult: _mult, ast.Pow: _power, ast.Mod: _mod,
}  # fmt: skip
_ALLOWED_NODES = frozenset(_OPERATORS) | {
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp,
    ast.Call, ast.keyword, ast.Name, ast.Load, ast.Store, ast.Constant, ast.Subscript, ast.Slice,
    ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.GeneratorExp,
    ast.comprehension, ast.JoinedStr, ast.FormattedValue,
}  # fmt: skip
# nodes whose result is a freshly built value, charged against MAX_BUILT
_BUILDERS = (ast.BinOp, ast.Call, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.ListComp,
             ast.DictComp, ast.GeneratorExp, ast.JoinedStr)  # fmt: skip
_NODE_NAMES = {
    ast.Attribute: "attribute access", ast.Lambda: "lambda", ast.NamedExpr: "':='",
    ast.Import: "import", ast.ImportFrom: "import", ast.FunctionDef: "def", ast.For: "a for loop",
    ast.While: "a while loop", ast.Expr: "a bare expression", ast.Starred: "'*' unpacking",
}  # fmt: skip


def _problem(node: ast.AST, depth: int) -> str | None:
    """Why ``node`` is refused, or None."""
    if depth > MAX_DEPTH:
        return "the expression is nested too deeply"
    if type(node) not in _ALLOWED_NODES:
        return f"{_NODE_NAMES.get(type(node), type(node).__name__)} is not allowed"
    if isinstance(node, ast.Name) and "__" in node.id:
        return f"the name '{node.id}' is not allowed"
    if isinstance(node, ast.keyword) and (node.arg is None or "__" in node.arg):
        return "this keyword argument is not allowed"
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            # name the real culprit of x.upper() or (lambda: 1)() rather than the call
            return _problem(node.func, depth + 1) or "only functions can be called, by name"
        if node.func.id not in _FUNCTIONS:
            return f"calling '{node.func.id}' is not allowed; allowed: {', '.join(_FUNCTIONS)}"
    if isinstance(node, ast.FormattedValue) and (node.format_spec or node.conversion != -1):
        return "f-string format specs and conversions are not allowed"
    if isinstance(node, ast.comprehension) and node.is_async:
        return "async comprehensions are not allowed"
    if isinstance(getattr(node, "ctx", None), ast.Store) and not isinstance(
        node, (ast.Name, ast.Tuple, ast.List)
    ):
        return "only names can be comprehension variables"
    return None


def _check_tree(root: ast.AST, text: str, where: str = "") -> None:
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        problem = _problem(node, depth)
        if problem:
            raise ExpressionRefused(f"{where}{problem}", expression=text[:200])
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


@lru_cache(maxsize=2048)
def _parse_expression(text: str) -> ast.expr:
    """Checked AST of ``text``; raises SyntaxError or ExpressionRefused (neither is cached)."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionRefused(
            f"expression is longer than {MAX_EXPRESSION_LENGTH} characters", expression=text[:200]
        )
    tree = ast.parse(text.strip(), mode="eval")  # eval() strips too; XML bodies carry whitespace
    _check_tree(tree, text)
    return tree.body


def check_expression(text: str) -> ast.expr:
    """Refuse (ExpressionRefused) what the evaluator would not run; returns the checked AST."""
    try:
        return _parse_expression(text)
    except SyntaxError as e:
        problem = f"not a valid expression: {e.msg}"
        raise ExpressionRefused(problem, expression=text[:200], line=e.lineno) from e


_Statement = tuple[int, str, ast.expr]  # line, target name, value to assign
_AUGMENTED = (ast.Add, ast.Sub, ast.Mult)


def check_script(text: str) -> None:
    """Refuse any script that is not ``name = expr``/``name op= expr``/``pass`` lines."""
    _parse_script(text)


@lru_cache(maxsize=512)
def _parse_script(text: str) -> tuple[_Statement, ...]:
    if len(text) > MAX_SCRIPT_LENGTH:
        raise ExpressionRefused(f"script is longer than {MAX_SCRIPT_LENGTH} characters")
    try:
        tree = ast.parse(textwrap.dedent(text), mode="exec")
    except SyntaxError as e:
        raise ExpressionRefused(f"line {e.lineno}: {e.msg}", line=e.lineno) from e
    statements: list[_Statement] = []
    for stmt in tree.body:
        where = f"line {stmt.lineno}: "
        if isinstance(stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.op, _AUGMENTED):
            target = stmt.target
            left = ast.Name(id=getattr(target, "id", ""), ctx=ast.Load())
            value = ast.BinOp(left=left, op=stmt.op, right=stmt.value)
        else:
            kind = _NODE_NAMES.get(type(stmt), type(stmt).__name__)
            raise ExpressionRefused(
                f"{where}{kind} is not allowed; scripts may only contain "
                "'name = expr', 'name += expr', 'name -= expr', 'name *= expr' and 'pass'",
                line=stmt.lineno,
            )
        if not isinstance(target, ast.Name) or "__" in target.id:
            raise ExpressionRefused(f"{where}only plain names can be assigned", line=stmt.lineno)
        _check_tree(ast.Expression(body=value), text, where)
        statements.append((stmt.lineno, target.id, value))
    return tuple(statements)


class _Evaluator(simpleeval.EvalWithCompoundTypes):  # type: ignore[misc]  # simpleeval: no stubs
    """simpleeval with our functions and operators, and a budget on what it may build."""

    def __init__(self, names: Mapping[str, Any]) -> None:
        super().__init__(operators=dict(_OPERATORS), functions={}, names=names)
        self.functions = dict(_FUNCTIONS)  # EvalWithCompoundTypes adds tuple and set on its own
        self.functions["get"] = self._get
        self.budget = MAX_BUILT
        self.command = _command()
        self.ticks = CLOCK_EVERY

    def _get(self, name: str, default: Any = None) -> Any:
        """A variable that may be absent: ``get("payment_term_days", 30)``."""
        if not isinstance(name, str):
            raise TypeError("get() takes a variable name as text")
        return self.names.get(name, default)

    def run(self, text: str, node: ast.expr) -> Any:
        # the budget is not reset here: a script's statements share one, or 1000 lines
        # of `b = [a] * 9999` would each walk a million items
        try:
            return self.eval(text, previously_parsed=node)
        except simpleeval.InvalidExpression as e:
            raise ExpressionRefused(str(e), expression=text[:200]) from e

    def _eval(self, node: ast.AST) -> Any:
        self.ticks -= 1
        if self.ticks <= 0:
            self.ticks = CLOCK_EVERY
            self.command.check_clock()
        result = super()._eval(node)
        if isinstance(node, _BUILDERS):
            if isinstance(result, (str, bytes)) and len(result) > MAX_STRING_LENGTH:
                raise simpleeval.IterableTooLong("string result is too long")
            if isinstance(result, (list, tuple, set, dict)) and len(result) > MAX_COLLECTION_SIZE:
                raise simpleeval.IterableTooLong("collection result is too large")
            self._charge(_size(result, self.budget))
        return result

    def _charge(self, size: int) -> None:
        self.budget -= size
        if self.budget < 0:
            raise simpleeval.IterableTooLong("the expression builds too much data")
        self.command.charge(size)

    def _eval_subscript(self, node: ast.Subscript) -> Any:
        container = self._eval(node.value)
        key = self._eval(node.slice)
        if isinstance(key, slice) and isinstance(container, (str, bytes, list, tuple)):
            # a slice copies: charge it before it is made (data[::1] of a big list, s[:])
            self._charge(len(range(*key.indices(len(container)))) + 1)
        return container[key]

    def _eval_name(self, node: ast.Name) -> Any:
        # simpleeval falls back to its function table, which would let `f = len` put a builtin
        # into task data; and NameError gets Spiff's "did you mean" hint
        try:
            return self.names[node.id]
        except KeyError:
            raise NameError(f"name '{node.id}' is not defined", name=node.id) from None

    def _eval_formattedvalue(self, node: ast.FormattedValue) -> Any:
        return _str(self._eval(node.value))

    def _check_disallowed_items(self, item: Any) -> None:
        # simpleeval re-walks every container after every node: O(data x nodes) on big task
        # data. Nothing here can call a value or reach an attribute, so a shallow look will do.
        if not isinstance(item, (list, tuple, set, frozenset, dict)):
            super()._check_disallowed_items(item)


_local = threading.local()


@functools.cache
def _outside() -> limits.Limits:
    """The limits of an evaluation outside any command, read once."""
    return limits.Limits.from_env()


def _command() -> Budget:
    """The running command's budget; outside a command (deploy-time checks, tools), a
    budget of the configured limits for this one evaluation."""
    budget = limits.current()
    if budget is None:
        return Budget(_outside())
    if budget.exceeded is not None:  # spent earlier in the command, whatever caught it
        raise budget.exceeded
    return budget


def _evaluator(names: Mapping[str, Any]) -> _Evaluator:
    """This thread's evaluator, ready for ``names``: building one costs more than most
    conditions take to evaluate. Nothing an expression does can reach it re-entrantly."""
    evaluator: _Evaluator | None = getattr(_local, "evaluator", None)
    if evaluator is None:
        evaluator = _local.evaluator = _Evaluator({})
    evaluator.names = names
    evaluator.budget = MAX_BUILT
    evaluator.command = _command()
    return evaluator


def evaluate_expression(text: str, names: Mapping[str, Any]) -> Any:
    """Evaluate ``text`` with ``names`` as its only variables (correlation keys, lint)."""
    return _evaluator(names).run(text, check_expression(text))


def run_script(
    text: str,
    data: MutableMapping[str, Any],
    context: Mapping[str, Any] | None = None,
    *,
    task: Any = None,
) -> None:
    """Run a script's statements in order, writing into ``data`` only if all of them succeed.

    ``context`` names are readable, never written. With ``task`` given, runtime errors become
    Spiff's WorkflowTaskException naming the line; otherwise they get a note with the line.
    """
    assigned: dict[str, Any] = {}
    evaluator = _Evaluator(ChainMap(assigned, data, dict(context or {})))
    for line, target, node in _parse_script(text):
        try:
            assigned[target] = evaluator.run(text, node)
        except ExpressionRefused as e:
            details = {**e.details, "line": line}
            raise ExpressionRefused(f"line {line}: {e.message}", **details) from e
        except BudgetExceeded:
            raise
        except Exception as e:
            if task is None or isinstance(e, SpiffWorkflowException):
                e.add_note(f"script line {line}")
                raise
            error_line = textwrap.dedent(text).splitlines()[line - 1].strip()
            raise WorkflowTaskException(
                f"{type(e).__name__}: {e}", task=task, exception=e, line_number=line,
                error_line=error_line,
            ) from e  # fmt: skip
    data.update(assigned)


def _running(task: Any) -> None:
    """Name the element whose expression runs now, should the command's budget run out."""
    budget = limits.current()
    spec = getattr(task, "task_spec", None)
    if budget is not None and spec is not None:
        budget.element = spec.bpmn_id or spec.name


class SafeEnvironment(BasePythonScriptEngineEnvironment):  # type: ignore[misc]
    """Spiff calls ``script_engine.environment.evaluate`` directly for some conditions and
    correlation keys, bypassing the engine: the environment must be safe too."""

    def evaluate(self, expression: str, context: Mapping[str, Any],
                 external_context: Mapping[str, Any] | None = None) -> Any:  # fmt: skip
        return evaluate_expression(expression, {**context, **(external_context or {})})


class SafeScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """The script engine every Tradeflow workflow runs with."""

    def __init__(self) -> None:
        super().__init__(environment=SafeEnvironment())

    def validate(self, expression: str) -> None:
        # SyntaxError must escape as is: the DMN engine uses it to tell `>= 1000` from `x >= 1000`
        _parse_expression(expression)

    def evaluate(self, task: Any, expression: str,
                 external_context: Mapping[str, Any] | None = None) -> Any:  # fmt: skip
        _running(task)
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except (ExpressionRefused, BudgetExceeded):
            raise
        except SpiffWorkflowException as e:
            e.add_note(f"Error evaluating expression '{expression}'")
            raise
        except Exception as e:
            raise WorkflowTaskException(
                f"Error evaluating expression '{expression}'", task=task, exception=e
            ) from e

    def execute(self, task: Any, script: str,
                external_context: Mapping[str, Any] | None = None) -> bool:  # fmt: skip
        run_script(script, task.data, external_context, task=task)
        return True

    def call_service(self, task: Any, **kwargs: Any) -> NoReturn:
        raise ExpressionRefused("service tasks are not supported")

"""FEEL, as Camunda 7 decision tables are written in it, translated into the safe
evaluator's Python-style expressions when the table is read.

Two forms: **unary tests**, the input cells (``"silver","bronze"``, ``not("gold")``,
``[1..10]``, ``< limit``, ``-``), tested against the input's value; and **expressions**,
the input expressions, output cells and literal-expression decisions (``"A"``,
``amount * 0.1``, ``customer.grade``, ``if vip then "A" else "B"``). A translated cell is a
condition on the name ``cellinput``. Ordering comparisons go through ``compare()``, which,
as FEEL, answers false where the two sides can't be ordered (a null input, text against a
number) instead of failing the task. ``a.b`` is ``prop(a, "b")``: null for a missing key
or a null base, as FEEL answers. ``date("2024-05-01")`` is the ISO text itself, which
orders as the date does against dates kept as ISO text.

What FEEL can do and the evaluator can't — its built-in functions, contexts, ``for``,
``some``, filters, names with spaces — is refused with a sentence naming it. A cell FEEL's
grammar doesn't read is left to the older Python-style reading (engine/modeling/dmn.py).
"""

from __future__ import annotations

import ast
import datetime as dt
import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass

from engine.execution import FUNCTION_NAMES, decision_tables

INPUT = decision_tables.INPUT

__all__ = ["INPUT", "FeelRefused", "expression", "unary_tests"]

MAX_LENGTH = 2000
MAX_NESTING = 50


class FeelRefused(ValueError):
    """The FEEL text uses what can't run here; the message says what instead.
    ``grammar``: FEEL's grammar doesn't read it (it may be a Python-style cell)."""

    def __init__(self, message: str, *, grammar: bool = False) -> None:
        super().__init__(message)
        self.grammar = grammar


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d+)?|\.\d+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\.\.|<=|>=|!=|\*\*|[-+*/=<>(),.\[\]?{}:])
    """,
    re.VERBOSE | re.DOTALL,
)
_LITERALS = {"true": "True", "false": "False", "null": "None",
             "True": "True", "False": "False", "None": "None"}  # fmt: skip
_ORDERING = ("<", "<=", ">", ">=")
_WORDS_REFUSED = {
    "for": "FEEL's 'for' loops", "some": "FEEL's 'some' quantifier",
    "every": "FEEL's 'every' quantifier", "function": "FEEL function definitions",
    "instance": "FEEL's 'instance of'",
}  # fmt: skip
_INSTEAD = "compute it in a script task before the decision and test the variable"


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, name, op, end
    text: str


def _tokens(source: str) -> list[_Token]:
    if len(source) > MAX_LENGTH:
        raise FeelRefused(f"the cell is longer than {MAX_LENGTH} characters")
    found: list[_Token] = []
    at = 0
    while at < len(source):
        match = _TOKEN.match(source, at)
        if match is None:
            raise FeelRefused(f"'{source[at : at + 10]}' is not FEEL", grammar=True)
        at = match.end()
        if match.lastgroup != "space":
            found.append(_Token(match.lastgroup or "", match.group()))
    found.append(_Token("end", ""))
    return found


def _string(literal: str) -> str:
    """A FEEL string literal as a Python one (FEEL's escapes are Java's)."""
    body = literal[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            following = body[i + 1]
            simple = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'"}
            if following in simple:
                out.append(simple[following])
                i += 2
                continue
            if following == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            raise FeelRefused(f"'\\{following}' is not an escape FEEL knows", grammar=True)
        out.append(char)
        i += 1
    text = "".join(out)
    try:  # a pair of \u escapes is one character; a lone half is none
        text = text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError as exc:
        raise FeelRefused("a \\u escape names half a character") from exc
    return repr(text)


class _Translation:
    """A recursive descent over the part of FEEL (DMN 1.3, chapter 10) tables use."""

    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.at = 0
        self.depth = 0
        self.uses_input = False
        self.endpoint = False

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def is_op(self, *texts: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.text in texts

    def is_word(self, word: str) -> bool:
        return self.peek() == _Token("name", word)

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text or token.kind in ("string", "end"):
            found = f"'{token.text}'" if token.kind != "end" else "the end"
            raise FeelRefused(f"expected '{text}', found {found}", grammar=True)

    def end(self) -> None:
        if self.peek().kind != "end":
            raise FeelRefused(f"unexpected '{self.peek().text}'", grammar=True)

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise FeelRefused(f"the cell is nested more than {MAX_NESTING} deep")

    # -- unary tests ------------------------------------------------------------------
    def tests(self) -> str:
        if self.is_word("not") and self.peek(1) == _Token("op", "("):
            self.take()
            self.take()
            self.deeper()
            inner = self.positive_tests()
            self.expect(")")
            self.end()
            return f"(not {inner})"
        python = self.positive_tests()
        self.end()
        return python

    def positive_tests(self) -> str:
        found = [self.positive_test()]
        while self.is_op(","):
            self.take()
            found.append(self.positive_test())
        return found[0] if len(found) == 1 else "(" + " or ".join(found) + ")"

    def positive_test(self) -> str:
        if self.is_op(*_ORDERING):
            operator = self.take().text
            return f"compare({INPUT}, {operator!r}, {self.additive()})"
        if self.is_op("=", "!="):
            negate = "" if self.take().text == "=" else "not "
            return f"({negate}matches({INPUT}, {self.additive()}))"
        if self.is_op("[", "(", "]") and self._is_interval():
            return self.interval()
        before = self.uses_input
        self.uses_input = False
        value = self.expression()
        tests_itself = self.uses_input
        self.uses_input = self.uses_input or before
        if tests_itself:  # a condition on the input itself: '? > 5 and ? < 9'
            return value
        return f"matches({INPUT}, {value})"  # a list: one of its items

    def _is_interval(self) -> bool:
        depth = 1  # inside the opening bracket, whichever way it faces
        for token in self.tokens[self.at + 1 :]:
            if token.kind == "op" and token.text in "([{":
                depth += 1
            elif token.kind == "op" and token.text in ")]}":
                depth -= 1
                if depth <= 0:
                    return False
            elif token == _Token("op", "..") and depth == 1:
                return True
            elif token.kind == "end":
                return False
        return False

    def interval(self) -> str:
        opening = self.take().text
        self.endpoint = True  # '10[' closes the interval: no filter follows an endpoint
        low = self.additive()
        self.expect("..")
        high = self.additive()
        self.endpoint = False
        closing = self.take()
        if closing.kind != "op" or closing.text not in ("]", ")", "["):
            raise FeelRefused("an interval ends with ']', ')' or '['", grammar=True)
        low_op = ">=" if opening == "[" else ">"
        high_op = "<=" if closing.text == "]" else "<"
        return f"(compare({INPUT}, {low_op!r}, {low}) and compare({INPUT}, {high_op!r}, {high}))"

    # -- expressions --------------------------------------------------------------------
    def expression(self) -> str:
        if self.is_word("if"):
            self.take()
            self.deeper()
            condition = self.expression()
            self._word("then")
            then = self.expression()
            self._word("else")
            otherwise = self.expression()
            self.depth -= 1
            return f"({then} if {condition} is True else {otherwise})"
        return self.disjunction()

    def _word(self, word: str) -> None:
        if not self.is_word(word):
            raise FeelRefused(f"expected '{word}'", grammar=True)
        self.take()

    def disjunction(self) -> str:
        parts = [self.conjunction()]
        while self.is_word("or"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"

    def conjunction(self) -> str:
        parts = [self.comparison()]
        while self.is_word("and"):
            self.take()
            parts.append(self.comparison())
        return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"

    def comparison(self) -> str:
        left = self.additive()
        if self.is_op("=", "!="):
            operator = "==" if self.take().text == "=" else "!="
            return f"({left} {operator} {self.additive()})"
        if self.is_op(*_ORDERING):
            operator = self.take().text
            return f"compare({left}, {operator!r}, {self.additive()})"
        if self.is_word("between"):
            self.take()
            low = self.additive()
            self._word("and")
            high = self.additive()
            return f"(compare({left}, '>=', {low}) and compare({left}, '<=', {high}))"
        if self.is_word("in"):
            raise FeelRefused("FEEL's 'in' is not read in an expression here; test the "
                              "value in an input cell", grammar=True)  # fmt: skip
        return left

    def additive(self) -> str:
        return self._chain(("+", "-"), self.multiplicative)

    def multiplicative(self) -> str:
        return self._chain(("*", "/"), self.power)

    def power(self) -> str:
        return self._chain(("**",), self.unary)

    def _chain(self, operators: tuple[str, ...], operand: Callable[[], str]) -> str:
        """Operands joined left to right by ``operators``, each step bracketed."""
        python = operand()
        while self.is_op(*operators):
            operator = self.take().text
            python = f"({python} {operator} {operand()})"
        return python

    def unary(self) -> str:
        if self.is_op("-"):
            self.take()
            self.deeper()
            python = f"(-{self.unary()})"
            self.depth -= 1
            return python
        return self.postfix()

    def postfix(self) -> str:
        python = self.primary()
        while self.is_op(".") or (self.is_op("[") and not self.endpoint):
            if self.take().text == "[":
                raise FeelRefused("FEEL filters and indexes (a[...]) don't run here; " + _INSTEAD)
            name = self.take()
            if name.kind != "name":
                raise FeelRefused("a name must follow '.'", grammar=True)
            python = f"prop({python}, {name.text!r})"
        return python

    def primary(self) -> str:
        token = self.take()
        if token.kind == "number":
            return token.text if not token.text.startswith(".") else "0" + token.text
        if token.kind == "string":
            return _string(token.text)
        if token.kind == "op" and token.text == "?":
            self.uses_input = True
            return INPUT
        if token.kind == "op" and token.text == "(":
            self.deeper()
            python = self.expression()
            self.expect(")")
            self.depth -= 1
            return python
        if token.kind == "op" and token.text == "[":
            return self.list_literal()
        if token.kind == "op" and token.text == "{":
            raise FeelRefused("FEEL contexts ({...}) don't run here; " + _INSTEAD)
        if token.kind == "name":
            return self.name(token.text)
        found = f"'{token.text}'" if token.kind != "end" else "the end"
        raise FeelRefused(f"unexpected {found}", grammar=True)

    def list_literal(self) -> str:
        self.deeper()
        items: list[str] = []
        while not self.is_op("]"):
            items.append(self.expression())
            if not self.is_op("]"):
                self.expect(",")
        self.take()
        self.depth -= 1
        return "[" + ", ".join(items) + "]"

    def name(self, text: str) -> str:
        if text in _LITERALS:
            return _LITERALS[text]
        if text in _WORDS_REFUSED:
            raise FeelRefused(f"{_WORDS_REFUSED[text]} don't run here; " + _INSTEAD)
        if text == "not" and self.is_op("("):
            self.take()
            self.deeper()
            inner = self.expression()
            self.expect(")")
            self.depth -= 1
            return f"(not {inner})"
        if text == "date" and self.is_word("and") and self.peek(1) == _Token("name", "time"):
            self.take()
            self.take()
            return self.temporal("date and time", dt.datetime.fromisoformat)
        if text in ("date", "time") and self.is_op("("):
            parse = dt.date.fromisoformat if text == "date" else dt.time.fromisoformat
            return self.temporal(text, parse)
        if self.is_op("("):  # a function the evaluator has: a Python-style cell ('len(x) > 3')
            raise FeelRefused(
                f"the FEEL function '{text}()' doesn't run here; " + _INSTEAD,
                grammar=text in FUNCTION_NAMES,
            )
        if keyword.iskeyword(text):  # 'in', 'is', 'not in [...]': a Python-style cell
            raise FeelRefused(f"'{text}' is no FEEL name", grammar=True)
        if text.startswith("__") or text == INPUT:
            raise FeelRefused(f"'{text}' can't be a variable's name here")
        if self.peek().kind == "name" and self.peek().text not in (
            "and", "or", "then", "else", "between", "in", "instance",
        ):  # fmt: skip
            if self.peek(1) == _Token("op", "("):
                raise FeelRefused(
                    f"the FEEL function '{text} {self.peek().text}()' doesn't run here; " + _INSTEAD
                )
            raise FeelRefused(
                f"'{text} {self.peek().text}': names with spaces don't run here; name the "
                "variable without spaces"
            )
        return text

    def temporal(self, function: str, parse: Callable[[str], object]) -> str:
        self.expect("(")
        literal = self.take()
        if literal.kind != "string":
            raise FeelRefused(f"{function}() takes a quoted ISO 8601 value here")
        self.expect(")")
        value = ast.literal_eval(_string(literal.text))
        try:
            parse(value)
        except ValueError as exc:
            raise FeelRefused(f"{function}({literal.text}) is not an ISO 8601 value") from exc
        return repr(value)


def unary_tests(source: str) -> str | None:
    """The Python condition on ``cellinput`` a FEEL input cell means; None for any value
    (``-`` or empty). FeelRefused says why not."""
    text = source.strip()
    if text in ("", "-"):
        return None
    return _Translation(text).tests()


def expression(source: str) -> str:
    """The Python expression a FEEL expression means (an empty one is null)."""
    text = source.strip()
    if not text:
        return "None"
    translation = _Translation(text)
    python = translation.expression()
    translation.end()
    if translation.uses_input:
        raise FeelRefused("'?' stands for the input only in an input cell")
    return python

"""JUEL, as Camunda 7 users write it in ``${…}``, translated into the safe evaluator's
Python-style expressions at deploy.

Camunda evaluates ``${approved == true && amount gt 1000}`` with JUEL; the engine here
evaluates Python-style expressions (engine/execution/expressions.py). A ``${…}`` or
``#{…}`` expression is translated once, when its diagram is read, into the expression the
evaluator runs: the same precedence (everything the translation builds is bracketed),
JUEL's literals and word operators, ``empty``, ``?:``, and ``a.b`` or ``a[k]`` as
``prop(a, k)``, which answers null where JUEL does (a key not in the map, an index past
the list, a null base).
What JUEL can do and the evaluator can't — calling methods, beans, functions — is refused
with a sentence, never passed on to fail when an instance reaches it.

Where the two languages differ on values, the evaluator's meaning holds: comparisons don't
turn text into numbers (``"1" == 1`` is false), ``+`` joins text, and ``%`` takes the
divisor's sign (Java's remainder takes the dividend's); docs/compatibility.md says so.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

__all__ = ["JuelRefused", "translate"]


class JuelRefused(ValueError):
    """The JUEL expression uses what can't run here; the message says what instead.
    ``grammar``: JUEL's grammar doesn't read it (it may be a Python-style expression)."""

    def __init__(self, message: str, *, grammar: bool = False) -> None:
        super().__init__(message)
        self.grammar = grammar


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%!<>?:.,()\[\]])
    """,
    re.VERBOSE | re.DOTALL,
)
_WORDS = {
    "and": "&&", "or": "||", "not": "!", "eq": "==", "ne": "!=", "lt": "<", "gt": ">",
    "le": "<=", "ge": ">=", "div": "/", "mod": "%",
}  # fmt: skip
_LITERALS = {"true": "True", "false": "False", "null": "None"}
_LEVELS: tuple[tuple[str, ...], ...] = (("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="),
                                        ("+", "-"), ("*", "/", "%"))  # fmt: skip
_PYTHON = {"||": "or", "&&": "and"}
# a chain of these reads left to right in Python as in JUEL, so it needs no brackets
# inside (and a long one would otherwise nest past Python's parser)
_FLAT = frozenset({"||", "&&", "+", "-", "*", "/", "%"})
MAX_LENGTH = 2000  # as the evaluator's own limit on an expression
MAX_NESTING = 50  # brackets, unary operators and ?: inside one another
# Camunda's own objects: nothing here stands behind them
_CAMUNDA_NAMES = frozenset({"execution", "authenticatedUserId", "variableScope"})


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, name, op, end
    text: str


def _tokens(source: str) -> list[_Token]:
    found: list[_Token] = []
    at = 0
    while at < len(source):
        match = _TOKEN.match(source, at)
        if match is None:
            raise JuelRefused(f"'{source[at : at + 10]}' is not JUEL this engine reads")
        at = match.end()
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "space":
            continue
        if kind == "name" and text in _WORDS:
            kind, text = "op", _WORDS[text]
        found.append(_Token(kind, text))
    found.append(_Token("end", ""))
    return found


class _Translation:
    """A recursive descent over JUEL's grammar (EL 2.2, section 1.17), writing Python."""

    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.at = 0
        self.depth = 0

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise JuelRefused(f"the expression is nested more than {MAX_NESTING} deep")

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text or token.kind in ("string", "end"):
            found = f"'{token.text}'" if token.kind != "end" else "the end"
            raise JuelRefused(f"expected '{text}', found {found}", grammar=True)

    def whole(self) -> str:
        python = self.choice()
        if self.peek().kind != "end":
            raise JuelRefused(f"unexpected '{self.peek().text}'", grammar=True)
        return python

    def choice(self) -> str:
        condition = self.binary(0)
        if self.peek() == _Token("op", "?"):
            self.take()
            self.deeper()
            then = self.choice()
            self.expect(":")
            otherwise = self.choice()
            self.depth -= 1
            return f"({then} if {condition} else {otherwise})"
        return condition

    def binary(self, level: int) -> str:
        if level == len(_LEVELS):
            return self.unary()
        python = self.binary(level + 1)
        chain = ""  # a level of _FLAT operators: one bracket around all of it
        while self.peek().kind == "op" and self.peek().text in _LEVELS[level]:
            operator = self.take().text
            right = self.binary(level + 1)
            if operator in _FLAT:
                chain += f" {_PYTHON.get(operator, operator)} {right}"
            else:  # a comparison: Python would chain a < b < c, JUEL compares the result
                python = f"({python} {operator} {right})"
        return f"({python}{chain})" if chain else python

    def unary(self) -> str:
        token = self.peek()
        prefix = {"-": "-", "!": "not "}.get(token.text) if token.kind == "op" else None
        if prefix is not None or token == _Token("name", "empty"):
            self.take()
            self.deeper()
            operand = self.unary()
            self.depth -= 1
            return f"({prefix}{operand})" if prefix is not None else f"empty({operand})"
        return self.value()

    def value(self) -> str:
        python = self.primary()
        while True:
            token = self.peek()
            if token == _Token("op", "."):
                self.take()
                member = self.take()
                if member.kind != "name":
                    raise JuelRefused("a property name must follow '.'")
                if "__" in member.text or "$" in member.text:
                    raise JuelRefused(f"the property '{member.text}' can't be read here")
                if self.peek() == _Token("op", "("):
                    raise JuelRefused(
                        f"calling a method ('.{member.text}(…)') can't run here: expressions "
                        "read variables, not Java objects; compute the value in a script task"
                    )
                python = f"prop({python}, {member.text!r})"
            elif token == _Token("op", "["):
                self.take()
                self.deeper()
                index = self.choice()
                self.expect("]")
                self.depth -= 1
                python = f"prop({python}, {index})"
            else:
                return python

    def primary(self) -> str:
        token = self.take()
        if token.kind == "number":
            return token.text
        if token.kind == "string":
            return _string(token.text)
        if token.kind == "name":
            if token.text in _LITERALS:
                return _LITERALS[token.text]
            prefixed = self.tokens[self.at : self.at + 3]  # fn:name( ... ): a JUEL function
            if self.peek() == _Token("op", "(") or (
                len(prefixed) == 3
                and prefixed[0] == _Token("op", ":")
                and prefixed[1].kind == "name"
                and prefixed[2] == _Token("op", "(")
            ):
                raise JuelRefused(
                    f"calling '{token.text}' can't run here: JUEL functions and Java beans "
                    "aren't available; compute the value in a script task",
                    grammar=True,  # len(x) and the like, Python-style, still run
                )
            if token.text in _CAMUNDA_NAMES:
                raise JuelRefused(
                    f"Camunda's '{token.text}' isn't available here: expressions read the "
                    "instance's variables by name"
                )
            if keyword.iskeyword(token.text) or keyword.issoftkeyword(token.text):
                # not JUEL's; Python-style (True, None, x in y) may still read it
                raise JuelRefused(f"'{token.text}' can't be a variable name here", grammar=True)
            if token.text == "instanceof" or "$" in token.text or "__" in token.text:
                raise JuelRefused(f"'{token.text}' can't be used in an expression here")
            return token.text
        if token == _Token("op", "("):
            self.deeper()
            inner = self.choice()
            self.expect(")")
            self.depth -= 1
            return f"({inner})"
        found = f"'{token.text}'" if token.kind != "end" else "the end"
        raise JuelRefused(f"expected a value, found {found}", grammar=True)


def _string(literal: str) -> str:
    """A JUEL string literal as a Python one: JUEL's only escapes are \\', \\" and \\\\."""
    body = literal[1:-1]
    text = re.sub(r"\\(['\"\\])", r"\1", body)
    return repr(text)


def translate(source: str) -> str:
    """The Python-style expression of the JUEL inside ``${…}``; JuelRefused if it can't
    run here."""
    if not source.strip():
        raise JuelRefused("the expression is empty")
    if len(source) > MAX_LENGTH:  # the translation is quadratic in the worst case
        raise JuelRefused(f"the expression is longer than {MAX_LENGTH} characters")
    return _Translation(source).whole()

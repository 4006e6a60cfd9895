"""A form field's ``validate.pattern``, checked on the server as form-js checks it in the
browser (``new RegExp(pattern).test(value)``: found anywhere in the value unless anchored,
an empty value not checked) but on RE2, which matches in time linear in the value
whatever the pattern. Python's ``re`` backtracks: ``^(a+)+$`` against a few dozen 'a's
and a '!' runs for minutes, inside the unit of work that holds the database's write lock.

A pattern is refused (at deploy, naming the form and the field) when RE2 cannot compile
it, when it uses what needs backtracking (lookarounds, backreferences), or when the
browser's JavaScript would read it differently from RE2 (inline flags, ``(?P<``,
POSIX classes, escapes such as ``\\A``, ``\\z``, ``\\p``, ``\\u``).
"""

from __future__ import annotations

import re
from typing import Any

import re2

MAX_PATTERN_LENGTH = 1000  # characters of a pattern
MAX_MATCHED_LENGTH = 10_000  # characters of a value checked against a pattern

# escapes with one meaning in JavaScript (without the u flag) and in RE2; other letters
# are refused (\A, \z, \Q, \p, \u... mean something else, or nothing, in one of them)
_LETTER_ESCAPES = frozenset("dDwWsSbBtnrfvx")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern to stderr


class PatternRefused(ValueError):
    """A pattern that can't be checked on the server as the browser checks it."""


def _javascript_problem(pattern: str) -> str | None:
    """Why JavaScript and RE2 would read ``pattern`` differently, or None."""
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            following = pattern[i + 1 : i + 2]
            if following.isdigit() and following != "0":
                return f"backreferences such as \\{following} need backtracking"
            if following.isascii() and following.isalpha():
                if following not in _LETTER_ESCAPES:
                    return (
                        f"\\{following} is read differently by the browser (JavaScript) "
                        "and the server (RE2)"
                    )
                if following == "x" and not _HEX2.fullmatch(pattern[i + 2 : i + 4]):
                    return "write \\x with two hex digits (\\x41), as JavaScript reads it"
            i += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
            elif char == "[" and pattern[i + 1 : i + 2] in (":", "=", "."):
                return "POSIX classes such as [[:alpha:]] mean something else in JavaScript"
        elif char == "[":
            in_class = True
            # RE2 reads []a] as a class of ']' and 'a', JavaScript as an empty class and "a]"
            if pattern[i + 1 : i + 2] == "]" or pattern[i + 1 : i + 3] == "^]":
                return "write a ']' in a class as \\] ([] and [^] differ in JavaScript)"
        elif char == "(" and pattern[i + 1 : i + 2] == "?":
            rest = pattern[i + 2 :]
            if rest.startswith(("=", "!", "<=", "<!")):
                return "lookarounds ((?=, (?!, (?<=, (?<!) need backtracking"
            if not rest.startswith((":", "<")):
                return "inline flags and (?P<name>...) are not JavaScript; use (?<name>...)"
        i += 1
    return None


def compile_pattern(pattern: Any) -> Any:
    """The RE2 program of a form pattern; PatternRefused says why it can't be one."""
    if not isinstance(pattern, str):
        raise PatternRefused("a pattern must be text")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternRefused(f"longer than {MAX_PATTERN_LENGTH} characters")
    problem = _javascript_problem(pattern)
    if problem:
        raise PatternRefused(problem)
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise PatternRefused(f"not a regular expression RE2 can run: {reason}") from None


def matches(program: Any, value: str) -> bool:
    """Does ``value`` match, as form-js's ``RegExp.test`` finds it (anywhere unless
    anchored)? Linear in the value, which must be at most MAX_MATCHED_LENGTH long."""
    return program.search(value) is not None

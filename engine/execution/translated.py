"""The functions JUEL and FEEL are translated into (engine/modeling/juel.py, feel.py):
each answers as the source language does where Python would answer otherwise (null for
a missing property, false for values that can't be ordered, type-strict equality)."""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["compare", "empty", "matches", "prop"]


def empty(value: Any) -> bool:
    """JUEL's ``empty``: null, empty text, an empty list or map (engine/modeling/juel.py)."""
    if value is None:
        return True
    if isinstance(value, (str, list, tuple, dict, set, frozenset)):
        return len(value) == 0
    return False


def prop(base: Any, key: Any) -> Any:
    """JUEL's ``base.key`` and ``base[key]``: null where JUEL answers null (a null base, a
    key not in the map, an index past the list); an error where JUEL has one."""
    if base is None:
        return None
    if isinstance(base, dict):
        return base.get(key)
    if isinstance(base, (list, tuple, str)) and isinstance(key, int) and not isinstance(key, bool):
        return base[key] if 0 <= key < len(base) else None
    raise TypeError(f"{type(base).__name__} has no property {key!r}")


_ORDERINGS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def compare(left: Any, how: str, right: Any) -> bool:
    """FEEL's ordering (engine/modeling/feel.py): false, not an error, where the two sides
    can't be ordered (null, or text against a number)."""
    if left is None or right is None or isinstance(left, bool) or isinstance(right, bool):
        return False
    try:
        return bool(_ORDERINGS[how](left, right))
    except TypeError:
        return False


def matches(value: Any, test: Any) -> bool:
    """A FEEL unary test's equality (engine/modeling/feel.py): a list tests membership,
    and a boolean equals only a boolean (Python's True == 1 is no match)."""
    if isinstance(test, list):
        return value == test or any(matches(value, item) for item in test)
    if isinstance(value, bool) != isinstance(test, bool):
        return False
    return bool(value == test)

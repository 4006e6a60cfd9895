"""A task's submission is checked against the latest deployed version of its form."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any
from weakref import WeakKeyDictionary

from marshmallow import Schema
from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.orm import Session

from engine.errors import FormInvalid, Invalid
from engine.modeling.diagrams import is_variable_name
from engine.storage import Form
from forms import FormUnusable, ValidationError, schema_for

# A stored form version never changes, so its schema is built once per database (ids are
# only unique within one: a process may serve several, as the tests do).
_schemas: WeakKeyDictionary[Engine, dict[int, Schema]] = WeakKeyDictionary()
_lock = threading.Lock()


MAX_DATA_BYTES = 256 * 1024  # one submission's variables, as JSON
MAX_DATA_DEPTH = 16  # nesting of lists and objects
# integers a database column, a JSON parser and JavaScript's BigInt-free clients agree on
INT_RANGE = (-(2**63), 2**63 - 1)
NOT_A_NUMBER = "not a finite number: NaN, Infinity and numbers that overflow to it are refused"
TOO_BIG = "an integer beyond 64 bits"


def check_names(data: dict[Any, Any], error: type[Invalid] = FormInvalid) -> None:
    """Variables must be names an expression can use (identifiers, no dunders), and one
    submission must stay small and shallow: every later command loads and saves it."""
    bad = [k for k in data if not is_variable_name(k)]
    if bad:
        raise error(f"variable names must be identifiers: {bad!r}", names=bad)
    if _depth(data) > MAX_DATA_DEPTH:
        raise error(f"variables are nested deeper than {MAX_DATA_DEPTH} levels")
    numbers = number_problems(data)
    if numbers:
        fields = ", ".join(path for path, _ in numbers)
        raise error(f"numbers out of range: {fields}", errors=nested_messages(numbers))
    size = len(json.dumps(data, default=str))
    if size > MAX_DATA_BYTES:
        raise error(
            f"variables take {size:,} bytes as JSON; at most {MAX_DATA_BYTES:,} are allowed",
            size=size,
            limit=MAX_DATA_BYTES,
        )


def number_problems(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted path, why) for every number in ``value`` that JSON and the database can't
    hold as it is: NaN and the infinities, and integers beyond 64 bits. Iterative: the
    value may be as deep as a request's JSON was."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(value, prefix)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                found.append((path, NOT_A_NUMBER))
        elif isinstance(item, int) and not isinstance(item, bool):
            if not INT_RANGE[0] <= item <= INT_RANGE[1]:
                found.append((path, TOO_BIG))
        elif isinstance(item, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(item))
    return sorted(found)


def nested_messages(problems: list[tuple[str, str]]) -> dict[str, Any]:
    """[(a.b, why)] as marshmallow nests its messages: {a: {b: [why]}}."""
    tree: dict[str, Any] = {}
    for path, why in problems:
        *parents, last = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node.setdefault(last, []).append(why)
    return tree


def _depth(value: Any) -> int:
    """How deeply lists and objects nest (iterative: a hostile body can't blow the stack)."""
    deepest, stack = 0, [(value, 0)]  # the top-level object itself is level 0
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DATA_DEPTH:
                return level
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _schema(session: Session, form_id: int) -> Schema:
    engine = session.get_bind().engine
    with _lock:
        schema = _schemas.setdefault(engine, {}).get(form_id)
    if schema is None:
        form = session.get_one(Form, form_id)
        try:
            schema = schema_for(form.schema)
        except FormUnusable as exc:  # deployed before its rules were checked at deploy
            raise FormInvalid(
                f"form '{form.key}' version {form.version} cannot check submissions: {exc}; "
                "deploy a corrected version of the form",
                form=form.key,
                errors={exc.key: [exc.reason]},
            ) from exc
        with _lock:
            _schemas[engine][form_id] = schema
    return schema


def check_submission(
    session: Session, form_key: str | None, form_id: int | None, data: Any
) -> dict[str, Any]:
    """The submission typed by the form (``form_id``: the latest version of ``form_key``)."""
    if not isinstance(data, dict):
        raise FormInvalid("task data must be an object of variables")
    check_names(data)
    if form_key is None:
        return dict(data)
    if form_id is None:
        raise FormInvalid(f"form '{form_key}' is not deployed", form=form_key)
    schema = _schema(session, form_id)
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise FormInvalid(
            f"the submission does not fit form '{form_key}'", form=form_key, errors=exc.messages
        ) from exc
    # The step decides every field of its form: one left out is empty now, not whatever
    # an earlier round, a start variable or a message left under that name.
    return {**dict.fromkeys(schema.fields), **loaded}


_LATEST_FORMS = (  # a form's versions are stored in order: its latest has the highest id
    select(Form.key, func.max(Form.id))
    .where(Form.key.in_(bindparam("keys", expanding=True)))
    .group_by(Form.key)
)


def form_fields(session: Session, form_keys: Iterable[str]) -> dict[str, frozenset[str]]:
    """The value fields of the latest version of each form, by form key."""
    keys = sorted(set(form_keys))
    if not keys:
        return {}
    rows = session.execute(_LATEST_FORMS, {"keys": keys}).all()
    return {key: frozenset(_schema(session, form_id).fields) for key, form_id in rows}

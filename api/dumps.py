"""Response bodies: a marshmallow schema's dump, compiled once into a plain function.

marshmallow's dump goes through ``Field.serialize``, ``get_value``, the schema's accessor
and ``utils.get_value`` for every field of every object: a measurable share of a
completion, and most of an inbox page's time (docs/performance.md). The compiled
dump reads each value by the same rule (``marshmallow.utils._get_value_for_key``: an item,
else an attribute), applies the same default and calls the field's own ``_serialize``, so
it gives the same data, field for field (tests/api/test_dumps.py). A schema it cannot
follow exactly (dump hooks, its own accessor or ``get_attribute``, dotted attributes)
keeps marshmallow's dump. flask-smorest still documents the schema (api/openapi.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider
from marshmallow import Schema, fields, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from werkzeug.sansio.response import Response as BaseResponse

Dumper = Callable[[Any], Any]
_Step = tuple[str, Callable[[Any], Any], Callable[[Any, Any], Any]]


def compile_dump(schema: Schema) -> Dumper:
    """A function doing what ``schema.dump`` does, for its ``many`` setting (the schema's
    own dump where it cannot follow it)."""
    one = _compile_one(schema)
    if one is None:
        return schema.dump
    if not schema.many:
        return one
    return lambda objs: None if objs is None else [one(obj) for obj in objs]


def _compile_one(schema: Schema) -> Dumper | None:
    """One object's dump, compiled; None where marshmallow's must do it."""
    if (
        schema._hooks[PRE_DUMP]
        or schema._hooks[POST_DUMP]
        or type(schema).get_attribute is not Schema.get_attribute
    ):
        return None
    steps: list[_Step] = []
    for name, field in schema.dump_fields.items():
        attribute = name if field.attribute is None else field.attribute
        if "." in attribute or type(field).get_value is not fields.Field.get_value:
            return None
        key = name if field.data_key is None else field.data_key
        steps.append((key, _reader(field, attribute), _formatter(field, name)))
    make = schema.dict_class

    def dump(obj: Any) -> Any:
        out = make()
        for key, read, format_ in steps:
            value = read(obj)
            if value is not missing:
                out[key] = format_(value, obj)
        return out

    return dump


def _reader(field: fields.Field[Any], attribute: str) -> Callable[[Any], Any]:
    """The value as Field.serialize finds it: missing when absent and no default."""
    if not field._CHECK_ATTRIBUTE:  # Method, Function: no value of their own
        return lambda _obj: None
    default = field.dump_default

    def read(obj: Any) -> Any:
        if hasattr(obj, "__getitem__"):
            try:
                value = obj[attribute]
            except (KeyError, IndexError, TypeError, AttributeError):
                value = getattr(obj, attribute, missing)
        else:
            value = getattr(obj, attribute, missing)
        if value is missing and default is not missing:
            value = default() if callable(default) else default
        return value

    return read


def _formatter(field: fields.Field[Any], name: str) -> Callable[[Any, Any], Any]:
    """``field._serialize`` as Field.serialize calls it; nested schemas compiled too (one
    that cannot be is left to the field, which dumps it as marshmallow does)."""
    # exact types: a subclass (Pluck, say) may serialize its own way
    if type(field) is fields.Nested and isinstance(field.schema, Schema):
        nested = _compile_one(field.schema)
        if nested is not None:
            one = nested
            if field.schema.many or field.many:
                return lambda value, _obj: None if value is None else [one(v) for v in value]
            return lambda value, _obj: None if value is None else one(value)
    if (
        type(field) is fields.List
        and type(field.inner) is fields.Nested
        and _compile_one(field.inner.schema) is not None
    ):
        inner = _formatter(field.inner, name)
        return lambda value, obj: None if value is None else [inner(v, obj) for v in value]
    serialize = field._serialize
    same = _UNCHANGED.get(type(field))
    if same is not None and not getattr(field, "as_string", False):
        # a value of the type the field gives back is given back as it is; skip the call
        return lambda value, obj: value if type(value) is same else serialize(value, name, obj)
    return lambda value, obj: serialize(value, name, obj)


# field type -> the value type its _serialize returns unchanged (Integer: int(v), String:
# str(v), Boolean: v itself for True and False)
_UNCHANGED: dict[type[fields.Field[Any]], type] = {
    fields.Integer: int,
    fields.String: str,
    fields.Boolean: bool,
}


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON, encoded by orjson (several times faster: docs/performance.md). The same
    types (Flask's own ``default`` for dates, decimals, dataclasses), keys sorted; what
    orjson refuses (an integer past 64 bits) is encoded by the standard library, as is
    indented output. Only a float that is not a number differs: ``null``, where the
    standard library wrote ``NaN``, which no JSON parser accepts. Requests are decoded
    as before (the standard library's json)."""

    _OPTIONS = (
        orjson.OPT_SORT_KEYS
        | orjson.OPT_NON_STR_KEYS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
    )

    def _encode(self, obj: Any) -> bytes | None:
        try:
            return orjson.dumps(obj, default=self.default, option=self._OPTIONS)
        except TypeError:  # orjson.JSONEncodeError is one
            return None

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if not kwargs.keys() - {"separators"}:
            encoded = self._encode(obj)
            if encoded is not None:
                return encoded.decode()
        return super().dumps(obj, **kwargs)

    def response(self, *args: Any, **kwargs: Any) -> BaseResponse:
        compact = not ((self.compact is None and self._app.debug) or self.compact is False)
        encoded = self._encode(self._prepare_response_obj(args, kwargs)) if compact else None
        if encoded is None:
            return super().response(*args, **kwargs)
        return Response(encoded + b"\n", mimetype=self.mimetype)

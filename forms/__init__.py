"""Camunda Forms (form-js JSON) as marshmallow schemas: a submission is checked against
the form its task names before the engine sees it."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

# form-js components that hold no value
_LAYOUT = {"text", "spacer", "separator", "button", "image", "html", "iframe", "table"}


def _validators(component: dict[str, Any]) -> list[validate.Validator]:
    rules = component.get("validate") or {}
    found: list[validate.Validator] = []
    if "min" in rules or "max" in rules:
        found.append(validate.Range(min=rules.get("min"), max=rules.get("max")))
    if "minLength" in rules or "maxLength" in rules:
        found.append(validate.Length(min=rules.get("minLength"), max=rules.get("maxLength")))
    if rules.get("pattern"):
        found.append(validate.Regexp(rules["pattern"]))
    values = [v.get("value") for v in component.get("values") or [] if isinstance(v, dict)]
    if values and component["type"] in ("select", "radio"):
        found.append(validate.OneOf(values))
    return found


def _field(component: dict[str, Any]) -> fields.Field[Any]:
    kind = component["type"]
    required = bool((component.get("validate") or {}).get("required"))
    options: dict[str, Any] = {
        "required": required,
        "allow_none": not required,
        "validate": _validators(component),
    }
    if kind == "number":
        if component.get("decimalDigits") == 0:
            return fields.Integer(strict=True, **options)
        return fields.Float(allow_nan=False, **options)
    if kind == "checkbox":
        return fields.Boolean(**options)
    if kind in ("checklist", "taglist"):
        values = [v.get("value") for v in component.get("values") or [] if isinstance(v, dict)]
        inner = fields.String(validate=validate.OneOf(values)) if values else fields.String()
        return fields.List(inner, **options)
    return fields.String(**options)


def _value_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for component in components:
        if not isinstance(component, dict):
            continue
        if isinstance(component.get("components"), list):  # group, dynamic list
            found.extend(_value_components(component["components"]))
        elif component.get("type") not in _LAYOUT and component.get("key"):
            found.append(component)
    return found


def schema_for(form: dict[str, Any]) -> Schema:
    """A marshmallow schema with one field per value-holding component of the form."""
    declared = {c["key"]: _field(c) for c in _value_components(form.get("components", []))}
    schema_class = Schema.from_dict(declared, name=f"Form_{form.get('id', 'anonymous')}")
    return schema_class(unknown=RAISE)


def validate_submission(form: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The submission, typed by the form; raises marshmallow's ValidationError."""
    result: dict[str, Any] = schema_for(form).load(data)
    return result


__all__ = ["ValidationError", "schema_for", "validate_submission"]

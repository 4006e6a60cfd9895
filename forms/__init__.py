"""Camunda Forms (form-js JSON) as marshmallow schemas: a submission is checked against
the form its task names before the engine sees it.

Values are taken as form-js sends them and kept as task data can hold them: numbers as
int or float (numeric strings too, as ``serializeToString`` sends them), checkboxes as
booleans, dates and times as ISO 8601 strings (checked, not converted: the workflow state
stores JSON), selects, radios and checklists as one of their values. Keys the form does
not have are refused, and every refused field is named.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from math import isfinite
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from forms.patterns import MAX_MATCHED_LENGTH, PatternRefused, compile_pattern, matches

# form-js components that hold no value
_LAYOUT = {"text", "spacer", "separator", "button", "image", "html", "iframe", "table"}
_PHONE = r"^\+?[0-9 ()./-]{6,30}$"


class FormUnusable(ValueError):
    """A stored form the server cannot check submissions against (a pattern deployed
    before patterns were checked at deploy, say); names the field."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"field '{key}': {reason}")
        self.key, self.reason = key, reason


class _Pattern(validate.Validator):
    """form-js's check, on RE2: the pattern found in a non-empty value (linear time)."""

    def __init__(self, pattern: str, error: str) -> None:
        self.program = compile_pattern(pattern)
        self.message = error.format(regex=pattern)

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str) or value == "":  # form-js checks non-empty values only
            return value
        if len(value) > MAX_MATCHED_LENGTH:
            raise ValidationError(
                f"Longer than {MAX_MATCHED_LENGTH:,} characters: too long to check its pattern."
            )
        if not matches(self.program, value):
            raise ValidationError(self.message)
        return value


def _options(component: dict[str, Any]) -> list[Any]:
    return [v.get("value") for v in component.get("values") or [] if isinstance(v, dict)]


def _rules(component: dict[str, Any]) -> dict[str, Any]:
    """The field's ``validate`` object with its bounds as numbers (form-js's editor writes
    them as text, ``"20"``); FormUnusable for anything the server could not compare."""
    rules = component.get("validate") or {}
    key = str(component.get("key"))
    if not isinstance(rules, dict):
        raise FormUnusable(key, "'validate' must be an object")
    bounds = {}
    for name in ("min", "max", "minLength", "maxLength"):
        if rules.get(name) is not None:
            bounds[name] = _bound(key, name, rules[name], whole=name.endswith("Length"))
    return {**rules, **bounds}


def _bound(key: str, name: str, value: Any, *, whole: bool) -> int | float:
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise FormUnusable(
                key, f"'validate.{name}' must be a number, not {value!r} (FEEL is not supported)"
            ) from None
    if isinstance(number, bool) or not isinstance(number, int | float) or not isfinite(number):
        raise FormUnusable(key, f"'validate.{name}' must be a number")
    if whole:
        if number < 0 or number != int(number):
            raise FormUnusable(key, f"'validate.{name}' must be a whole number of characters")
        return int(number)
    return int(number) if isinstance(value, str) and number == int(number) else number


def _validators(component: dict[str, Any]) -> list[validate.Validator]:
    rules = _rules(component)
    found: list[validate.Validator] = []
    if "min" in rules or "max" in rules:
        found.append(validate.Range(min=rules.get("min"), max=rules.get("max")))
    if "minLength" in rules or "maxLength" in rules:
        found.append(validate.Length(min=rules.get("minLength"), max=rules.get("maxLength")))
    if rules.get("pattern"):
        try:
            found.append(_Pattern(rules["pattern"], "Does not match {regex}."))
        except PatternRefused as exc:
            pattern = _short(rules["pattern"])
            raise FormUnusable(
                str(component.get("key")), f"pattern '{pattern}' refused: {exc}"
            ) from exc
    if rules.get("validationType") == "email":
        found.append(validate.Email())
    if rules.get("validationType") == "phone":
        found.append(_Pattern(_PHONE, "Not a valid phone number."))
    if component.get("type") in ("select", "radio") and _options(component):
        found.append(validate.OneOf(_options(component)))
    if component.get("type") == "checkbox" and rules.get("required"):
        found.append(validate.Equal(True, error="Must be checked."))  # form-js: a required box
    return found


class _Number(fields.Float):
    """A number with at most ``digits`` decimals, as the form's decimalDigits allows."""

    def __init__(self, digits: int | None, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, **kwargs)
        self.digits = digits

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):  # bool is an int to Python, not a number to a form
            raise self.make_error("invalid")
        number = super()._deserialize(value, attr, data, **kwargs)
        if self.digits is not None and round(number, self.digits) != number:
            if self.digits == 0:
                raise ValidationError("Not a whole number.")
            raise ValidationError(f"At most {self.digits} decimal places.")
        if self.digits == 0:
            return int(number)
        return number


class _IsoText(fields.String):
    """A date, time or date-time as form-js writes it, checked and kept as text."""

    PARSERS: ClassVar[dict[str, Callable[[str], object]]] = {
        "date": date.fromisoformat,
        "time": time.fromisoformat,
    }

    def __init__(self, subtype: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.subtype = subtype

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        parse = self.PARSERS.get(self.subtype, datetime.fromisoformat)
        try:
            parse(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(f"Not a valid ISO 8601 {self.subtype}.") from None
        if self.subtype == "date" and len(text) != 10:  # fromisoformat takes 20261127 too
            raise ValidationError("Not a valid ISO 8601 date (YYYY-MM-DD).")
        return text


def _field(component: dict[str, Any]) -> fields.Field[Any]:
    kind = component.get("type")
    required = bool(_rules(component).get("required"))
    options: dict[str, Any] = {
        "required": required,
        "allow_none": not required,
        "validate": _validators(component),
    }
    if kind == "number":
        digits = component.get("decimalDigits")
        return _Number(digits if isinstance(digits, int) and digits >= 0 else None, **options)
    if kind == "checkbox":
        if not required:  # form-js submits an unticked box as false: gateways may rely on it
            options["load_default"] = False
        return fields.Boolean(truthy={True}, falsy={False}, **options)
    if kind in ("checklist", "taglist"):
        values = _options(component)
        inner = fields.String(validate=validate.OneOf(values)) if values else fields.String()
        return fields.List(inner, **options)
    if kind == "datetime":
        return _IsoText(str(component.get("subtype") or "datetime"), **options)
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
    """A marshmallow schema with one field per value-holding component of the form;
    FormUnusable if a field's rules can't be checked (a pattern RE2 refuses)."""
    declared = {c["key"]: _field(c) for c in _value_components(form.get("components", []))}
    schema_class = Schema.from_dict(declared, name=f"Form_{form.get('id', 'anonymous')}")
    return schema_class(unknown=RAISE)


def validate_submission(form: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The submission, typed by the form; raises marshmallow's ValidationError."""
    result: dict[str, Any] = schema_for(form).load(data)
    return result


def problems(form: dict[str, Any]) -> list[tuple[str, str]]:
    """(field key, why) for every field the server could not check submissions of (a
    pattern RE2 refuses, bounds that are not numbers): deploy-time lint."""
    found = []
    for component in _value_components(form.get("components", [])):
        if not isinstance(component.get("key"), str):
            found.append((str(component.get("key")), "a field's key must be text"))
            continue
        try:
            _field(component)
        except FormUnusable as exc:
            found.append((exc.key, exc.reason))
    return found


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = [
    "FormUnusable",
    "ValidationError",
    "problems",
    "schema_for",
    "validate_submission",
]

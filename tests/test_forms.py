"""The forms package: a form-js form as a marshmallow schema, on the shipped forms and on
one built here with every kind of component they use."""

from __future__ import annotations

import json
from typing import Any

import pytest

from forms import FormUnusable, ValidationError, problems, validate_submission
from forms.patterns import MAX_MATCHED_LENGTH
from tests.conftest import ROOT

FORM: dict[str, Any] = {
    "id": "everything",
    "components": [
        {"type": "text", "text": "# A heading holds no value"},
        {"type": "textfield", "key": "name", "validate": {"required": True, "maxLength": 5}},
        {"type": "textfield", "key": "code", "validate": {"pattern": "^Q-[0-9]{3}$"}},
        {"type": "textfield", "key": "email", "validate": {"validationType": "email"}},
        {"type": "textfield", "key": "phone", "validate": {"validationType": "phone"}},
        {"type": "number", "key": "quantity", "decimalDigits": 0, "validate": {"min": 1}},
        {"type": "number", "key": "price", "decimalDigits": 2, "validate": {"max": 1000}},
        {"type": "number", "key": "ratio"},
        {"type": "checkbox", "key": "agreed", "validate": {"required": True}},
        {"type": "checkbox", "key": "urgent"},
        {"type": "select", "key": "currency", "values": [{"value": "USD"}, {"value": "EUR"}]},
        {"type": "radio", "key": "result", "values": [{"value": "pass"}, {"value": "fail"}]},
        {"type": "checklist", "key": "docs", "values": [{"value": "invoice"}, {"value": "bl"}]},
        {"type": "datetime", "subtype": "date", "key": "ship_date"},
        {"type": "datetime", "subtype": "time", "key": "cut_off"},
        {"type": "datetime", "subtype": "datetime", "key": "departs"},
        {"type": "group", "components": [{"type": "textarea", "key": "note"}]},
    ],
}


def errors(data: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        validate_submission(FORM, data)
    return dict(caught.value.messages)  # type: ignore[arg-type]


def test_values_come_back_typed_as_task_data_holds_them() -> None:
    data = {
        "name": "ACME",
        "code": "Q-123",
        "email": "buyer@acme.example",
        "phone": "+86 21 5555 0101",
        "quantity": "12",  # form-js serializeToString sends numbers as text
        "price": 9.95,
        "ratio": "0.125",
        "agreed": True,
        "urgent": False,
        "currency": "EUR",
        "result": "pass",
        "docs": ["invoice", "bl"],
        "ship_date": "2026-12-01",
        "cut_off": "16:30",
        "departs": "2026-12-01T08:00:00Z",
        "note": "in a group",
    }
    loaded = validate_submission(FORM, data)
    assert loaded == {**data, "quantity": 12, "ratio": 0.125}
    assert type(loaded["quantity"]) is int
    # absent fields stay absent, but an unticked box is false, as form-js submits it
    assert validate_submission(FORM, {"name": "A", "agreed": True}) == {
        "name": "A",
        "agreed": True,
        "urgent": False,
    }


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "toolong"}, "name"),
        ({"code": "Q-12"}, "code"),
        ({"email": "not-an-address"}, "email"),
        ({"phone": "call me"}, "phone"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"quantity": "lots"}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"price": 1.005}, "price"),
        ({"price": 1000.01}, "price"),
        ({"ratio": "NaN"}, "ratio"),
        ({"agreed": False}, "agreed"),
        ({"urgent": "yes"}, "urgent"),
        ({"currency": "GBP"}, "currency"),
        ({"result": "maybe"}, "result"),
        ({"docs": ["invoice", "visa"]}, "docs"),
        ({"ship_date": "01/12/2026"}, "ship_date"),
        ({"ship_date": "20261201"}, "ship_date"),
        ({"cut_off": "25:00"}, "cut_off"),
        ({"departs": "tomorrow"}, "departs"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_each_refused_value_is_named(data: dict[str, Any], field: str) -> None:
    assert list(errors({"name": "A", "agreed": True, **data})) == [field]


def test_every_problem_at_once_and_required_fields() -> None:
    found = errors({"quantity": 0, "extra": "x"})
    assert sorted(found) == ["agreed", "extra", "name", "quantity"]
    assert found["name"] == ["Missing data for required field."]
    assert found["extra"] == ["Unknown field."]
    assert errors({"name": "A", "agreed": True, "price": 1.234})["price"] == [
        "At most 2 decimal places."
    ]


SHIPPED = sorted((ROOT / "forms").glob("*.form"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_form_refuses_an_empty_submission_by_name(path: Any) -> None:
    """Each form asks for something, and names what is missing."""
    form = json.loads(path.read_text())
    assert form["id"] == path.stem
    with pytest.raises(ValidationError) as caught:
        validate_submission(form, {"not_a_field": 1})
    messages = dict(caught.value.messages)  # type: ignore[arg-type]
    assert messages.pop("not_a_field") == ["Unknown field."]
    required = [
        c["key"]
        for c in form["components"]
        if (c.get("validate") or {}).get("required") and c.get("key")
    ]
    assert sorted(messages) == sorted(required)


# --- patterns: as form-js checks them in the browser, on RE2 (forms/patterns.py) -----------


def patterned(pattern: str) -> dict[str, Any]:
    return {
        "id": "p",
        "components": [{"type": "textfield", "key": "v", "validate": {"pattern": pattern}}],
    }


@pytest.mark.parametrize(
    ("pattern", "value", "passes"),
    [
        ("[0-9]{4}", "PO-2026", True),  # RegExp.test finds it anywhere, as the browser does
        ("^[0-9]{4}", "PO-2026", False),
        ("^[A-Z]{2}$", "CN\n", False),  # `$` is the end, as in JavaScript (Python: before \n)
        ("^[A-Z]{2}$", "", True),  # form-js checks no empty value
        ("^(a+)+$", "a" * 5000 + "!", False),  # linear: no backtracking
        (r"^\d+(\.\d{2})?$", "12.50", True),
        ("^(?<year>[0-9]{4})$", "2026", True),
    ],
)
def test_a_pattern_is_checked_as_the_browser_checks_it(
    pattern: str, value: str, passes: bool
) -> None:
    if passes:
        assert validate_submission(patterned(pattern), {"v": value}) == {"v": value}
    else:
        with pytest.raises(ValidationError):
            validate_submission(patterned(pattern), {"v": value})


def test_a_value_too_long_to_match_is_refused_by_name() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_submission(patterned("^a+$"), {"v": "a" * (MAX_MATCHED_LENGTH + 1)})
    assert caught.value.messages == {
        "v": ["Longer than 10,000 characters: too long to check its pattern."]
    }


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("(a", "missing )"),
        ("(?=a)", "lookaround"),
        ("(?<!a)b", "lookaround"),
        (r"(a)\1", "backreference"),
        ("(?i)a", "inline flags"),
        ("(?P<n>a)", "(?<name>"),
        ("[[:alpha:]]", "POSIX"),
        (r"\Aa", r"\A"),
        (r"\u00e9", r"\u"),
        (r"\x{41}", "two hex digits"),
        ("[]a]", "class"),
        ("a{1001}", "repetition"),
        ("a" * 1001, "longer than 1000"),
    ],
)
def test_a_pattern_the_server_cannot_run_as_the_browser_does_is_named(
    pattern: str, words: str
) -> None:
    [(key, why)] = problems(patterned(pattern))
    assert key == "v" and words in why, why
    with pytest.raises(FormUnusable) as caught:
        validate_submission(patterned(pattern), {"v": "a"})
    assert caught.value.key == "v"


def test_bounds_written_as_text_are_numbers() -> None:
    """form-js's editor writes a maximum of 20 as "20": compared as the number."""
    form = {
        "id": "p",
        "components": [
            {"type": "number", "key": "n", "validate": {"min": "1.5", "max": "20"}},
            {"type": "textfield", "key": "t", "validate": {"maxLength": "3"}},
        ],
    }
    assert problems(form) == []
    assert validate_submission(form, {"n": 20, "t": "abc"}) == {"n": 20, "t": "abc"}
    with pytest.raises(ValidationError) as caught:
        validate_submission(form, {"n": 21, "t": "abcd"})
    assert sorted(caught.value.messages) == ["n", "t"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rules", "why"),
    [
        ({"min": "=amount * 2"}, "'validate.min' must be a number, not '=amount * 2'"),
        ({"max": True}, "'validate.max' must be a number"),
        ({"max": "inf"}, "'validate.max' must be a number"),
        ({"maxLength": "2.5"}, "whole number"),
        ({"minLength": -1}, "whole number"),
    ],
)
def test_bounds_that_are_not_numbers_are_named(rules: dict[str, Any], why: str) -> None:
    form = {"id": "p", "components": [{"type": "number", "key": "n", "validate": rules}]}
    [(key, found)] = problems(form)
    assert key == "n" and why in found
    listed = {"id": "p", "components": [{"type": "textfield", "key": "t", "validate": ["x"]}]}
    assert problems(listed) == [("t", "'validate' must be an object")]


def test_the_shipped_forms_have_no_problems() -> None:
    for path in SHIPPED:
        assert problems(json.loads(path.read_text())) == [], path.name

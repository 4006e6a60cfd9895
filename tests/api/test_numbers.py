"""Numbers are numbers: what JSON can't carry back (NaN, the infinities, a float that
overflows to one, integers past 64 bits) is refused where it comes in, naming the field,
and nothing changes."""

from __future__ import annotations

import pytest

from engine.errors import FormInvalid
from tests.api.conftest import V1, ApiClient, problem

BAD = {
    "NaN": "not a finite number",
    "Infinity": "not a finite number",
    "-Infinity": "not a finite number",
    "1e999": "not a finite number",  # overflows to infinity as it is parsed
    "-1e400": "not a finite number",
    "18446744073709551616": "beyond 64 bits",  # 2 ** 64
    "-9223372036854775809": "beyond 64 bits",
    "9" * 5000: "beyond 64 bits",  # past Python's own 4,300-digit limit: no 500
}


def _field_errors(body: dict[str, object]) -> dict[str, str]:
    return {e["field"]: e["message"] for e in body["errors"]}  # type: ignore[attr-defined]


@pytest.mark.parametrize("number", list(BAD))
def test_a_start_with_a_number_json_cannot_carry_is_422_naming_it(
    deployed: ApiClient, number: str
) -> None:
    body = (
        '{"definition": "document_review", "business_key": "SO-1",'
        f' "variables": {{"customer": "ACME", "terms": {{"amount": {number}}}}}}}'
    )
    with deployed.unchanged():
        response = deployed.post(
            f"{V1}/instances", "clerk", data=body, content_type="application/json"
        )
        found = _field_errors(problem(response, 422))
    assert list(found) == ["variables.terms.amount"]
    assert BAD[number] in found["variables.terms.amount"]


def test_a_completion_and_a_message_are_held_to_it_too(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk", business_key="SO-9")
    task = deployed.task(iid, "prepare_documents")
    with deployed.unchanged():
        response = deployed.post(
            f"{V1}/tasks/{task}/complete",
            "clerk",
            data='{"data": {"invoice_number": "INV-1", "weights": [1.5, NaN, 1e400]}}',
            content_type="application/json",
        )
        assert sorted(_field_errors(problem(response, 422))) == ["data.weights.1", "data.weights.2"]
        response = deployed.post(
            f"{V1}/messages",
            "bank",
            data='{"name": "payment_received", "business_key": "SO-9",'
            ' "variables": {"amount_received": Infinity}}',
            content_type="application/json",
        )
        assert list(_field_errors(problem(response, 422))) == ["variables.amount_received"]


def test_in_range_numbers_pass(deployed: ApiClient) -> None:
    top = 2**63 - 1
    body = (
        '{"definition": "document_review",'
        f' "variables": {{"big": {top}, "small": {-(2**63)}, "huge": 1e308, "tiny": 5e-324}}}}'
    )
    response = deployed.post(f"{V1}/instances", "clerk", data=body, content_type="application/json")
    assert response.status_code == 201, response.get_json()
    variables = deployed.flow.variables(response.get_json()["id"])
    assert (variables["big"], variables["huge"]) == (top, 1e308)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**64, [1, {"x": -(2**70)}]])
def test_the_engine_refuses_them_from_any_caller(deployed: ApiClient, value: object) -> None:
    with deployed.unchanged(), pytest.raises(FormInvalid, match="numbers out of range"):
        deployed.flow.start("document_review", actor="clerk", variables={"v": value})

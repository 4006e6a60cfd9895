"""Workflow state JSON: written by orjson where it gives the data json.dumps gave."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from engine.execution.serialization import _dumps


@pytest.mark.parametrize(
    "value",
    [
        {"invoice": "INV-1", "amount": 12.5, "ok": True, "n": None, "items": [1, 2.0, "三"]},
        {"tiny": 1e-7, "huge": 1e16, "negative_zero": -0.0, "exact": 0.1 + 0.2},
        {"nan": math.nan, "inf": math.inf, "ninf": -math.inf},  # orjson: null; json keeps them
        {"big": 2**70, "neg": -(2**64)},  # past 64 bits: orjson refuses
        {1: "an int key", None: "a None key"},  # keys json turns into text
        {"lone": "\ud800"},  # a lone surrogate: orjson refuses
        {"nested": [[[{"deep": [math.nan]}]]]},
        {"text": "null", "word": "nullable"},  # the word null in a string, no NaN
    ],
)
def test_state_text_reads_back_as_the_standard_librarys(value: dict[Any, Any]) -> None:
    ours = json.loads(_dumps(value))
    theirs = json.loads(json.dumps(value, separators=(",", ":")))
    assert _same(ours, theirs)


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, and the same type (1.0 is not 1, True is not 1)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)

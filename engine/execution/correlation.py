"""Correlation keys: a variable's value as message correlation compares it.

A message correlated by values (``correlation``: order number, invoice number) goes to
the instance whose variables of those names hold those values. Both sides are reduced
to a key text here, so "equal" means one thing whether the index of waiting instances
answers (storage/subscriptions.py) or the instance's own data does (runtime/delivery.py).
"""

from __future__ import annotations

import hashlib
import math
from decimal import Decimal
from typing import Any

KEY_MAX = 255  # longer names are not correlation keys; longer values are hashed


def correlation_key(value: Any) -> str | None:
    """A variable's value as correlation compares it, or None if correlation can't: a
    string (exactly), a number (by its decimal value: 1, 1.0 and Decimal("1.00") are
    one, 0.1 and Decimal("0.1") too, a float being the shortest decimal that reads back
    as it; 10**30 and 10**30 + 1 are two) or a boolean (not a number: true is not 1).
    The text is what the index holds (storage/subscriptions.py); past KEY_MAX characters
    (or with what a text column refuses), its SHA-256."""
    if isinstance(value, bool):
        text = f"b:{'true' if value else 'false'}"
    elif isinstance(value, str):
        text = f"s:{value}"
    elif isinstance(value, int | float | Decimal):
        number = _number(value)
        if number is None:
            return None
        text = f"n:{number}"
    else:
        return None
    if len(text) > KEY_MAX or "\x00" in text or not _storable(text):
        return "h:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return text


INT_DIGITS = 4000  # longer integers are not compared (Python won't write them as text)


def _number(value: int | float | Decimal) -> str | None:
    """A finite number as ``digits`` e ``exponent``, exactly, with no trailing zero
    (no context rounding: Decimal's 28 digits would make 10**30 and 10**30 + 1 one)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = Decimal(repr(value))
    if isinstance(value, int):
        if value.bit_length() > INT_DIGITS * 3:  # under 10**INT_DIGITS
            return None
        negative, digits, exponent = value < 0, str(abs(value)), 0
    else:
        if not value.is_finite():
            return None
        sign, figures, power = value.as_tuple()
        negative, digits = bool(sign), "".join(map(str, figures))
        if len(digits) > INT_DIGITS or not isinstance(power, int):
            return None
        exponent = power
    significant = digits.rstrip("0")
    if not significant.lstrip("0"):
        return "0"  # -0 and 0E+5 too
    exponent += len(digits) - len(significant)  # each trailing zero moved to the exponent
    return f"{'-' if negative else ''}{significant.lstrip('0')}e{exponent}"


def _storable(text: str) -> bool:
    """Whether a database text column takes it as it is (a lone surrogate it doesn't)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def correlation_keys(data: dict[str, Any]) -> dict[str, str]:
    """The correlation keys of an instance's variables: those correlation can compare."""
    keys = {}
    for name, value in data.items():
        key = correlation_key(value)
        if key is not None and len(name) <= KEY_MAX:
            keys[name] = key
    return keys

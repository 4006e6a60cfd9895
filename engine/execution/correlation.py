"""Correlation keys: a variable's value as message correlation compares it.

A message correlated by values (``correlation``: order number, invoice number) goes to
the instance whose variables of those names hold those values. Both sides are reduced
to a key text here, so "equal" means one thing whether the index of waiting instances
answers (storage/subscriptions.py) or the instance's own data does (runtime/delivery.py).
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

KEY_MAX = 255  # longer names are not correlation keys; longer values are hashed


def correlation_key(value: Any) -> str | None:
    """A variable's value as correlation compares it, or None if correlation can't: a
    string, a number (1, 1.0 and Decimal("1.00") are one; 0.1 and Decimal("0.1") too)
    or a boolean (not a number: true is not 1). The text is what the index holds
    (storage/subscriptions.py); past KEY_MAX characters (or
    with what a text column refuses), its SHA-256."""
    if isinstance(value, bool):
        text = f"b:{'true' if value else 'false'}"
    elif isinstance(value, str):
        text = f"s:{value}"
    elif isinstance(value, int | float | Decimal):
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        if not number.is_finite():
            return None
        text = "n:0" if number == 0 else f"n:{number.normalize():f}"
    else:
        return None
    if len(text) > KEY_MAX or "\x00" in text or not _storable(text):
        return "h:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return text


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

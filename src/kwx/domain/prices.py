"""Exact money and contract counts, read from both the current and the legacy API shapes.

Since 2026-03-12 Kalshi sends prices as fixed-point dollar strings (``"0.5600"``, up to 6
decimals) and counts as 2-decimal strings (``"10.00"``); recorded data from before that uses
integer cents and integer counts, and pandas often hands those back as floats (``47.0``). Every
value becomes a ``Decimal`` so that fees, P&L and position sizes add up to the cent; a float
with a fractional part is refused because its meaning (dollars or cents?) and its exact value
are both in doubt.
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal, InvalidOperation

__all__ = ["CENT", "parse_count", "parse_dollars"]

CENT = Decimal("0.01")
_ONE_DOLLAR = Decimal(1)
# Far above any real position, and small enough that cent checks stay within Decimal precision.
_MAX_COUNT = Decimal(10) ** 15


def _from_string(value: str, field: str) -> Decimal:
    try:
        result = Decimal(value.strip())
    except InvalidOperation as exc:
        raise ValueError(f"{field}: not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"{field}: must be finite, got {value!r}")
    return result


def _integral_float(value: float, field: str) -> int:
    if not math.isfinite(value) or not value.is_integer():
        raise ValueError(
            f"{field}: refusing non-integral float {value!r}; pass dollars as a string "
            "(e.g. '0.5600') or legacy cents as an integer"
        )
    return int(value)


def parse_dollars(value: object, *, field: str = "price") -> Decimal:
    """Return a price in dollars as an exact ``Decimal`` in [0, 1].

    * ``str`` / ``Decimal``: already dollars (``"0.5600"`` -> ``Decimal("0.5600")``).
    * ``int``: legacy integer cents (``47`` -> ``Decimal("0.47")``).
    * ``float``: only when integral, read as legacy cents that went through pandas.

    Anything else, or a value outside [0, 1], raises ``ValueError`` naming ``field``.
    """
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a price, got {value!r}")
    if isinstance(value, str):
        result = _from_string(value, field)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{field}: must be finite, got {value!r}")
        result = value
    elif isinstance(value, int):
        result = Decimal(value) / 100
    elif isinstance(value, float):
        result = Decimal(_integral_float(value, field)) / 100
    else:
        raise ValueError(f"{field}: expected a dollar string or integer cents, got {value!r}")
    if not Decimal(0) <= result <= _ONE_DOLLAR:
        raise ValueError(f"{field}: price {value!r} is outside [0, 1] dollars")
    return result


def parse_count(value: object, *, field: str = "count") -> Decimal:
    """Return a contract count as an exact non-negative ``Decimal`` in steps of 0.01.

    ``"10.00"`` (current ``*_fp`` fields), legacy ``int`` counts and integral floats are
    accepted; fractional contracts exist since 2026 but never finer than 0.01.
    """
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a count, got {value!r}")
    if isinstance(value, str):
        result = _from_string(value, field)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{field}: must be finite, got {value!r}")
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(_integral_float(value, field))
    else:
        raise ValueError(f"{field}: expected a count string or integer, got {value!r}")
    if result < 0:
        raise ValueError(f"{field}: count {value!r} is negative")
    if result >= _MAX_COUNT:
        raise ValueError(f"{field}: count {value!r} is implausibly large")
    if not _is_cent_multiple(result):
        raise ValueError(f"{field}: count {value!r} is not a multiple of 0.01")
    return result


def _is_cent_multiple(value: Decimal) -> bool:
    return value == value.quantize(CENT, rounding=ROUND_DOWN)

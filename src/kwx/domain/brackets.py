"""Bracket semantics of Kalshi daily-high markets and the settlement value.

Every KXHIGH* event is a ladder of mutually exclusive brackets over the integer settlement
value T (whole °F). The exact inequalities matter: ``between`` is inclusive at both ends while
the ``less``/``greater`` tails are *strict*, so ``T66`` as a ``less`` tail pays for 65 and
below. Brackets are built from ``strike_type``/``floor_strike``/``cap_strike``, never from the
ticker letter, and a ladder is only trusted once it tiles the integers.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "Bracket",
    "LadderError",
    "StrikeType",
    "parse_expiration_value",
    "settled_tmax",
    "validate_ladder",
    "winning_index",
]


class StrikeType(StrEnum):
    """Kalshi's ``strike_type``; the ``*_or_equal`` kinds are in the schema but unseen on KXHIGH."""

    LESS = "less"
    BETWEEN = "between"
    GREATER = "greater"
    LESS_OR_EQUAL = "less_or_equal"
    GREATER_OR_EQUAL = "greater_or_equal"


class LadderError(ValueError):
    """The brackets of an event do not tile the integers (gap, overlap or missing tail)."""


_NEEDS_FLOOR = frozenset({StrikeType.BETWEEN, StrikeType.GREATER, StrikeType.GREATER_OR_EQUAL})
_NEEDS_CAP = frozenset({StrikeType.BETWEEN, StrikeType.LESS, StrikeType.LESS_OR_EQUAL})
_LOWER_TAILS = frozenset({StrikeType.LESS, StrikeType.LESS_OR_EQUAL})
_UPPER_TAILS = frozenset({StrikeType.GREATER, StrikeType.GREATER_OR_EQUAL})


def _canonical(value: Decimal) -> Decimal:
    """Drop trailing zeros so that ``82.0`` from a CSV and ``82`` from a ticker print alike."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def _lenient_strike(value: object, name: str) -> Decimal | None:
    """Read a strike the way CSVs, pandas and JSON hand it over; blanks and NaN mean absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if math.isnan(value):
            return None
        # repr gives the shortest string that round-trips, so 82.0 -> "82.0", not 81.99999...
        result = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if text == "" or text.lower() == "nan":
            return None
        try:
            result = Decimal(text)
        except InvalidOperation as exc:
            raise ValueError(f"{name} is not a number: {value!r}") from exc
    else:
        raise ValueError(f"{name} must be a number, string or None, got {value!r}")
    if result.is_nan():
        return None
    if not result.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return _canonical(result)


@dataclass(frozen=True)
class Bracket:
    """One market's payout condition on the integer settlement value."""

    strike_type: StrikeType
    floor: Decimal | None
    cap: Decimal | None

    def __post_init__(self) -> None:
        try:
            kind = StrikeType(self.strike_type)
        except ValueError as exc:
            raise ValueError(f"unknown strike_type {self.strike_type!r}") from exc
        # Accept a plain "between" string from callers but store the enum, so equality holds.
        object.__setattr__(self, "strike_type", kind)
        for name in ("floor", "cap"):
            strike = getattr(self, name)
            if strike is not None and not (isinstance(strike, Decimal) and strike.is_finite()):
                raise ValueError(f"{kind} bracket: {name} must be a finite Decimal, got {strike!r}")
        if kind in _NEEDS_FLOOR and self.floor is None:
            raise ValueError(f"{kind} bracket needs a floor strike (cap={self.cap})")
        if kind in _NEEDS_CAP and self.cap is None:
            raise ValueError(f"{kind} bracket needs a cap strike (floor={self.floor})")
        if (
            kind is StrikeType.BETWEEN
            and self.floor is not None
            and self.cap is not None
            and self.floor > self.cap
        ):
            raise ValueError(f"between bracket has floor {self.floor} above cap {self.cap}")

    @classmethod
    def from_strikes(
        cls,
        strike_type: str,
        floor: Decimal | float | int | str | None,
        cap: Decimal | float | int | str | None,
    ) -> Bracket:
        """Build a bracket from loosely typed metadata (CSV strings, pandas floats/NaN, ints)."""
        try:
            kind = StrikeType(str(strike_type).strip().lower())
        except ValueError as exc:
            raise ValueError(f"unknown strike_type {strike_type!r}") from exc
        return cls(kind, _lenient_strike(floor, "floor"), _lenient_strike(cap, "cap"))

    def wins(self, tmax: int) -> bool:
        """Whether YES pays when the official daily high is ``tmax`` (Kalshi's inequalities)."""
        floor, cap = self.floor, self.cap
        match self.strike_type:
            case StrikeType.BETWEEN:
                assert floor is not None and cap is not None
                return floor <= tmax <= cap
            case StrikeType.LESS:
                assert cap is not None
                return tmax < cap
            case StrikeType.LESS_OR_EQUAL:
                assert cap is not None
                return tmax <= cap
            case StrikeType.GREATER:
                assert floor is not None
                return tmax > floor
            case StrikeType.GREATER_OR_EQUAL:
                assert floor is not None
                return tmax >= floor
        raise AssertionError(f"unhandled strike_type {self.strike_type!r}")  # pragma: no cover

    def integer_range(self) -> tuple[int | None, int | None]:
        """The inclusive integer interval ``(lo, hi)`` that wins; ``None`` means unbounded.

        Tiling is a statement about integers (T is a whole °F), so ladders are checked on these
        intervals rather than on the raw strikes. ``lo > hi`` means no integer wins.
        """
        floor, cap = self.floor, self.cap
        match self.strike_type:
            case StrikeType.BETWEEN:
                assert floor is not None and cap is not None
                return math.ceil(floor), math.floor(cap)
            case StrikeType.LESS:
                assert cap is not None
                return None, math.ceil(cap) - 1
            case StrikeType.LESS_OR_EQUAL:
                assert cap is not None
                return None, math.floor(cap)
            case StrikeType.GREATER:
                assert floor is not None
                return math.floor(floor) + 1, None
            case StrikeType.GREATER_OR_EQUAL:
                assert floor is not None
                return math.ceil(floor), None
        raise AssertionError(f"unhandled strike_type {self.strike_type!r}")  # pragma: no cover

    def __str__(self) -> str:
        lo, hi = self.integer_range()
        if lo is None:
            return f"≤{hi}"
        if hi is None:
            return f"≥{lo}"
        return f"{lo}..{hi}"


def validate_ladder(brackets: Sequence[Bracket]) -> None:
    """Raise ``LadderError`` unless exactly one bracket wins for every integer T.

    Equivalent, for integer strikes, to: one lower tail, one upper tail,
    ``less.cap == min(between.floor)``, ``next.floor == prev.cap + 1`` and
    ``greater.floor == max(between.cap)``. A ladder that fails this cannot be priced as a
    distribution, so it is better to stop than to trade on it.
    """
    if not brackets:
        raise LadderError("empty ladder")
    lower = [b for b in brackets if b.strike_type in _LOWER_TAILS]
    upper = [b for b in brackets if b.strike_type in _UPPER_TAILS]
    for name, tails in (("lower", lower), ("upper", upper)):
        if len(tails) != 1:
            raise LadderError(
                f"ladder needs exactly one {name} tail, found {len(tails)}: {_show(brackets)}"
            )
    middle: list[tuple[int, int]] = []
    for b in brackets:
        if b.strike_type is StrikeType.BETWEEN:
            lo, hi = b.integer_range()
            assert lo is not None and hi is not None
            middle.append((lo, hi))
    middle.sort()
    ranges: list[tuple[int | None, int | None]] = [
        lower[0].integer_range(),
        *middle,
        upper[0].integer_range(),
    ]
    for lo, hi in ranges:
        if lo is not None and hi is not None and lo > hi:
            raise LadderError(f"a bracket wins for no integer: {_show(brackets)}")
    for (_, prev_hi), (next_lo, _) in itertools.pairwise(ranges):
        assert prev_hi is not None and next_lo is not None
        if next_lo > prev_hi + 1:
            gap = f"{prev_hi + 1}" if next_lo == prev_hi + 2 else f"{prev_hi + 1}..{next_lo - 1}"
            raise LadderError(f"gap: no bracket wins T={gap}: {_show(brackets)}")
        if next_lo <= prev_hi:
            raise LadderError(f"overlap: T={next_lo} wins more than one bracket: {_show(brackets)}")


def _show(brackets: Sequence[Bracket]) -> str:
    return "[" + ", ".join(f"{b.strike_type}:{b}" for b in brackets) + "]"


def winning_index(brackets: Sequence[Bracket], tmax: int) -> int:
    """Return the index of the one bracket that pays at ``tmax``; ``LadderError`` otherwise."""
    winners = [i for i, b in enumerate(brackets) if b.wins(tmax)]
    if len(winners) != 1:
        raise LadderError(
            f"T={tmax} wins {len(winners)} brackets (indices {winners}), expected exactly one: "
            f"{_show(brackets)}"
        )
    return winners[0]


_LEADING_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")


def parse_expiration_value(value: object) -> Decimal | None:
    """Read Kalshi's ``expiration_value``, which is a string and not always a number.

    Seen as ``"81"``, ``"85.00"`` and free text such as ``"84. Although the Daily Climate Report
    was not finalized ..."``; the settled figure is the leading number. Blank means not yet
    determined. Values read back by pandas as floats (or NaN) are accepted too.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        match = _LEADING_NUMBER.match(value)
        return Decimal(match.group(1)) if match else None
    return None


def settled_tmax(value: object) -> int | None:
    """The settlement value as a whole °F, or ``None`` if not (yet) determined.

    The CLI reports whole degrees, so a fractional value means we misread something; raise
    rather than round it into the wrong bracket.
    """
    parsed = parse_expiration_value(value)
    if parsed is None:
        return None
    if parsed != parsed.to_integral_value():
        raise ValueError(f"expiration_value {value!r} is not a whole number of degrees")
    return int(parsed)

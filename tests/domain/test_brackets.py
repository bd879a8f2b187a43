"""Bracket payout rules, ladder tiling and settlement-value parsing."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kwx.domain.brackets import (
    Bracket,
    LadderError,
    StrikeType,
    parse_expiration_value,
    settled_tmax,
    validate_ladder,
    winning_index,
)

if TYPE_CHECKING:
    import random

D = Decimal


def between(lo: int, hi: int) -> Bracket:
    return Bracket(StrikeType.BETWEEN, D(lo), D(hi))


def less(cap: int) -> Bracket:
    return Bracket(StrikeType.LESS, None, D(cap))


def greater(floor: int) -> Bracket:
    return Bracket(StrikeType.GREATER, D(floor), None)


def kalshi_ladder(low_cap: int, n_between: int = 4) -> list[Bracket]:
    """The usual shape: less L, betweens [L, L+1], [L+2, L+3], ..., greater at the last cap."""
    middle = [between(low_cap + 2 * i, low_cap + 2 * i + 1) for i in range(n_between)]
    return [less(low_cap), *middle, greater(low_cap + 2 * n_between - 1)]


# --- wins -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bracket", "wins_at", "loses_at"),
    [
        (between(77, 78), [77, 78], [76, 79]),  # B77.5: both ends inclusive
        (less(66), [65, -40], [66, 67]),  # T66 less: strict, 65 or below
        (greater(79), [80, 120], [79, 78]),  # T79 greater: strict, 80 or above
        (Bracket(StrikeType.LESS_OR_EQUAL, None, D(66)), [66, 65], [67]),
        (Bracket(StrikeType.GREATER_OR_EQUAL, D(79), None), [79, 80], [78]),
        (between(-3, -2), [-3, -2], [-4, -1]),
    ],
)
def test_wins(bracket: Bracket, wins_at: list[int], loses_at: list[int]) -> None:
    assert all(bracket.wins(t) for t in wins_at)
    assert not any(bracket.wins(t) for t in loses_at)


@pytest.mark.parametrize(
    ("kind", "floor", "cap", "message"),
    [
        (StrikeType.BETWEEN, None, D(5), "needs a floor"),
        (StrikeType.BETWEEN, D(5), None, "needs a cap"),
        (StrikeType.LESS, D(5), None, "needs a cap"),
        (StrikeType.LESS_OR_EQUAL, None, None, "needs a cap"),
        (StrikeType.GREATER, None, D(5), "needs a floor"),
        (StrikeType.GREATER_OR_EQUAL, None, None, "needs a floor"),
        (StrikeType.BETWEEN, D(6), D(5), "above cap"),
        (StrikeType.BETWEEN, D("NaN"), D(5), "finite"),
    ],
)
def test_invalid_brackets(
    kind: StrikeType, floor: Decimal | None, cap: Decimal | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Bracket(kind, floor, cap)


def test_bracket_rejects_unknown_type_and_float_strikes() -> None:
    with pytest.raises(ValueError, match="unknown strike_type"):
        Bracket("sideways", D(1), D(2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite Decimal"):
        Bracket(StrikeType.LESS, None, 82.0)  # type: ignore[arg-type]


def test_plain_string_type_is_coerced_to_enum() -> None:
    b = Bracket("between", D(1), D(2))  # type: ignore[arg-type]
    assert b.strike_type is StrikeType.BETWEEN
    assert b == between(1, 2)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("less", "", "82.0"), less(82)),
        (("less", None, 82), less(82)),
        (("less", math.nan, 82.0), less(82)),
        (("less", "nan", " 82 "), less(82)),
        (("between", "82.0", "83.0"), between(82, 83)),
        (("between", 82.0, D("83.00")), between(82, 83)),
        ((" Between ", "-3", "-2"), between(-3, -2)),
        (("greater", "89.0", ""), greater(89)),
        (("greater", 89, math.nan), greater(89)),
        (("between", "84.5", "85.5"), Bracket(StrikeType.BETWEEN, D("84.5"), D("85.5"))),
    ],
)
def test_from_strikes_is_lenient(args: tuple[str, object, object], expected: Bracket) -> None:
    kind, floor, cap = args
    got = Bracket.from_strikes(kind, floor, cap)  # type: ignore[arg-type]
    assert got == expected
    # Canonical strikes: "82.0" and 82 print the same, so logs and keys agree.
    assert str(got.floor) == str(expected.floor)
    assert str(got.cap) == str(expected.cap)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("less", None, "eighty"), "not a number"),
        (("less", None, None), "needs a cap"),
        (("between", "82", None), "needs a cap"),
        (("weird", 1, 2), "unknown strike_type"),
        (("less", None, "inf"), "finite"),
        (("less", None, True), "must be a number"),
    ],
)
def test_from_strikes_rejects(args: tuple[str, object, object], message: str) -> None:
    kind, floor, cap = args
    with pytest.raises(ValueError, match=message):
        Bracket.from_strikes(kind, floor, cap)  # type: ignore[arg-type]


# --- ladders --------------------------------------------------------------------------------


def brute_force_tiles(brackets: list[Bracket], lo: int, hi: int) -> bool:
    return all(sum(b.wins(t) for b in brackets) == 1 for t in range(lo, hi + 1))


def test_reference_ladder_from_docs() -> None:
    # -T55 less, -B57.5 between 57-58, -T62 greater: tiling implies 55-56 ... 61-62.
    ladder = kalshi_ladder(55)
    assert ladder[-1] == greater(62)
    validate_ladder(ladder)
    assert [winning_index(ladder, t) for t in (54, 55, 56, 57, 62, 63)] == [0, 1, 1, 2, 4, 5]


@given(st.integers(-40, 120), st.integers(0, 8), st.randoms(use_true_random=False))
def test_kalshi_shaped_ladders_tile_in_any_order(low: int, n: int, rnd: random.Random) -> None:
    ladder = kalshi_ladder(low, n)
    rnd.shuffle(ladder)
    validate_ladder(ladder)
    assert brute_force_tiles(ladder, low - 100, low + 2 * n + 100)


@pytest.mark.parametrize(
    ("ladder", "message"),
    [
        ([], "empty"),
        ([between(55, 56), between(57, 58), greater(58)], "one lower tail, found 0"),
        ([less(55), between(55, 56)], "one upper tail, found 0"),
        ([less(55), less(50), between(55, 56), greater(56)], "one lower tail, found 2"),
        (
            [less(55), between(55, 56), between(59, 60), greater(60)],
            "gap: no bracket wins T=57..58",
        ),
        ([less(55), between(55, 56), between(58, 59), greater(59)], "gap: no bracket wins T=57:"),
        ([less(55), between(55, 56), between(56, 57), greater(57)], "overlap: T=56"),
        ([less(56), between(55, 56), greater(56)], "overlap: T=55"),
        ([less(55), between(55, 56), greater(57)], "gap"),
        ([less(55), between(55, 56), greater(55)], "overlap"),
        ([less(55), between(55, 56), between(55, 56), greater(56)], "overlap"),
        (
            [
                less(55),
                Bracket(StrikeType.BETWEEN, D("55.2"), D("55.8")),
                between(55, 56),
                greater(56),
            ],
            "wins for no integer",
        ),
    ],
)
def test_bad_ladders(ladder: list[Bracket], message: str) -> None:
    with pytest.raises(LadderError, match=message):
        validate_ladder(ladder)


def test_two_tails_alone_tile() -> None:
    # Not a Kalshi shape, but a valid partition of the integers; tiling is what matters.
    validate_ladder([less(60), greater(59)])


_kinds = st.sampled_from(list(StrikeType))


@st.composite
def random_brackets(draw: st.DrawFn) -> list[Bracket]:
    """Arbitrary small ladders, most of them broken, some of them valid."""
    out = []
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(_kinds)
        a = draw(st.integers(-10, 10))
        if kind is StrikeType.BETWEEN:
            out.append(Bracket(kind, D(a), D(a + draw(st.integers(0, 3)))))
        elif kind in (StrikeType.LESS, StrikeType.LESS_OR_EQUAL):
            out.append(Bracket(kind, None, D(a)))
        else:
            out.append(Bracket(kind, D(a), None))
    return out


@given(random_brackets())
def test_validate_ladder_agrees_with_brute_force(ladder: list[Bracket]) -> None:
    # All strikes lie in [-10, 13]; beyond that only the tails change, so [-15, 18] is exhaustive.
    tiles = brute_force_tiles(ladder, -15, 18)
    try:
        validate_ladder(ladder)
    except LadderError:
        assert not tiles
    else:
        assert tiles


def _shift(b: Bracket, floor_by: int, cap_by: int) -> Bracket:
    floor = None if b.floor is None else b.floor + floor_by
    cap = None if b.cap is None else b.cap + cap_by
    if b.strike_type is StrikeType.BETWEEN and floor is not None and cap is not None:
        floor, cap = min(floor, cap), max(floor, cap)
    return Bracket(b.strike_type, floor, cap)


@st.composite
def perturbed_ladders(draw: st.DrawFn) -> list[Bracket]:
    """Valid ladders (tails possibly in their ``_or_equal`` form) and near-misses of them."""
    low = draw(st.integers(-10, 10))
    ladder = kalshi_ladder(low, draw(st.integers(0, 5)))
    if draw(st.booleans()):
        ladder[0] = Bracket(StrikeType.LESS_OR_EQUAL, None, D(low - 1))
    if draw(st.booleans()):
        top = ladder[-1].floor
        assert top is not None
        ladder[-1] = Bracket(StrikeType.GREATER_OR_EQUAL, top + 1, None)
    i = draw(st.integers(0, len(ladder) - 1))
    match draw(st.sampled_from(["none", "drop", "shift", "duplicate"])):
        case "drop":
            del ladder[i]
        case "shift":
            by = draw(st.sampled_from([-1, 1]))
            ladder[i] = _shift(ladder[i], by * draw(st.integers(0, 1)), by)
        case "duplicate":
            ladder.append(ladder[i])
    draw(st.randoms(use_true_random=False)).shuffle(ladder)
    return ladder


@given(perturbed_ladders())
def test_validate_ladder_agrees_with_brute_force_near_valid(ladder: list[Bracket]) -> None:
    tiles = brute_force_tiles(ladder, -40, 40)
    try:
        validate_ladder(ladder)
    except LadderError:
        assert not tiles
    else:
        assert tiles


@given(st.integers(-40, 110), st.integers(-60, 140))
def test_winning_index_matches_wins(low: int, t: int) -> None:
    ladder = kalshi_ladder(low)
    i = winning_index(ladder, t)
    assert ladder[i].wins(t)
    assert sum(b.wins(t) for b in ladder) == 1


def test_winning_index_raises_on_gap_and_overlap() -> None:
    with pytest.raises(LadderError, match="wins 0 brackets"):
        winning_index([less(55), greater(56)], 56)
    with pytest.raises(LadderError, match="wins 2 brackets"):
        winning_index([less(57), between(55, 56), greater(56)], 56)


def test_bracket_str() -> None:
    assert [str(b) for b in kalshi_ladder(55, 1)] == ["≤54", "55..56", "≥57"]


# --- expiration_value -----------------------------------------------------------------------

FREE_TEXT = (
    "84. Although the Daily Climate Report was not finalized for November 5th, the NWS provides "
    "hourly high data which indicates a high of 84 degrees"
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("81", D(81)),
        ("85.00", D("85.00")),
        ("  85.0", D("85.0")),
        ("-3", D(-3)),
        ("84.5", D("84.5")),
        (FREE_TEXT, D(84)),
        ("", None),
        ("   ", None),
        (None, None),
        (math.nan, None),
        ("nan", None),
        ("NaN", None),
        ("above 80", None),
        (81.0, D("81.0")),
        (81, D(81)),
        (D("82"), D(82)),
        (D("NaN"), None),
        (True, None),
        ([81], None),
    ],
)
def test_parse_expiration_value(value: object, expected: Decimal | None) -> None:
    assert parse_expiration_value(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("81", 81), ("85.00", 85), (FREE_TEXT, 84), ("", None), (None, None), ("-3.0", -3)],
)
def test_settled_tmax(value: object, expected: int | None) -> None:
    got = settled_tmax(value)
    assert got == expected
    assert got is None or type(got) is int


def test_settled_tmax_rejects_fractions() -> None:
    with pytest.raises(ValueError, match="whole number"):
        settled_tmax("84.5")

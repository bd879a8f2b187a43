"""Kalshi fees: the taker/maker formula, its rounding, and the per-order accumulator."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kwx.domain.fees import (
    QUADRATIC,
    QUADRATIC_WITH_MAKER_FEES,
    exact_fee,
    fee,
    maker_fee,
    order_fee_total,
    order_fees,
    taker_fee,
)

D = Decimal

prices = st.integers(min_value=0, max_value=100).map(lambda c: D(c) / 100)
fine_prices = st.integers(min_value=0, max_value=10_000).map(lambda c: D(c) / 10_000)
counts = st.integers(min_value=0, max_value=100_000).map(lambda c: D(c) / 100)


@pytest.mark.parametrize(
    ("count", "price", "expected"),
    [
        (10, D("0.50"), D("0.18")),  # 0.175 -> 0.18 (reference §9.1 example)
        (1, D("0.50"), D("0.02")),  # 0.0175 -> 0.02
        (100, D("0.50"), D("1.75")),  # exact, no rounding
        (2, D("0.30"), D("0.03")),  # 0.0294 (real fill, KXHIGHPHIL)
        (6, D("0.32"), D("0.10")),  # 0.091392 (real fill, KXHIGHTDC)
        (19, D("0.05"), D("0.07")),  # 0.0632 (real fill, KXHIGHTSATX)
        (1, D("0.01"), D("0.01")),  # 0.000693: any positive fee costs a cent
        (D("0.5"), D("0.40"), D("0.01")),  # fractional contracts
        (0, D("0.40"), D("0.00")),
        (5, D("0"), D("0.00")),
        (5, D("1"), D("0.00")),
    ],
)
def test_taker_fee_worked_examples(count: int | Decimal, price: Decimal, expected: Decimal) -> None:
    assert taker_fee(count, price) == expected


def test_maker_fee_depends_on_fee_type() -> None:
    assert maker_fee(10, D("0.50"), QUADRATIC) == D(0)
    # 0.0175 * 10 * 0.25 = 0.04375 -> 0.05
    assert maker_fee(10, D("0.50"), QUADRATIC_WITH_MAKER_FEES) == D("0.05")
    assert fee(10, D("0.50"), is_taker=False, fee_type=QUADRATIC) == D(0)
    assert fee(10, D("0.50"), is_taker=True, fee_type=QUADRATIC) == D("0.18")
    assert fee(10, D("0.50"), is_taker=False, fee_type=QUADRATIC_WITH_MAKER_FEES) == D("0.05")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: taker_fee(-1, D("0.5")), "count"),
        (lambda: taker_fee(1, D("1.01")), "price"),
        (lambda: taker_fee(1, D("-0.01")), "price"),
        (lambda: taker_fee(1, D("NaN")), "price"),
        (lambda: taker_fee(1, 0.5), "price"),  # type: ignore[arg-type]
        (lambda: maker_fee(1, D("0.5"), "quadratik"), "unknown"),
        (lambda: maker_fee(1, D("0.5"), "flat"), "not modelled"),
        (lambda: fee(1, D("0.5"), is_taker=True, fee_type="nope"), "unknown"),
        (lambda: maker_fee(-2, D("0.5"), QUADRATIC), "count"),
    ],
)
def test_bad_input_is_refused(call: object, message: str) -> None:
    assert callable(call)
    with pytest.raises((ValueError, TypeError), match=message):
        call()


@given(counts, fine_prices)
def test_taker_fee_properties(count: Decimal, price: Decimal) -> None:
    got = taker_fee(count, price)
    assert got >= 0
    assert got == got.quantize(D("0.01"))  # whole cents
    assert got == taker_fee(count, 1 - price)  # YES price and NO price give the same fee
    raw = exact_fee(count, price)
    assert raw <= got < raw + D("0.01")  # rounded up, by less than a cent
    if price in (0, 1) or count == 0:
        assert got == 0


@given(counts, counts, prices)
def test_taker_fee_monotone_in_count(a: Decimal, b: Decimal, price: Decimal) -> None:
    low, high = sorted((a, b))
    assert taker_fee(low, price) <= taker_fee(high, price)


@given(counts, prices)
def test_maker_fee_never_above_taker(count: Decimal, price: Decimal) -> None:
    assert maker_fee(count, price, QUADRATIC) == 0
    assert 0 <= maker_fee(count, price, QUADRATIC_WITH_MAKER_FEES) <= taker_fee(count, price)


def test_order_accumulator_on_a_real_order() -> None:
    # Order 1aa9fdfd… (KXHIGHTLV, 2026-02): three 1-lot fills at 0.05 charged 0.01, 0.00, 0.01.
    # Each exact fee 0.003325 rounds up to 0.0034; 0.0034/0.0068/0.0102 -> 0.01/0.01/0.02.
    assert order_fees([(1, D("0.05"))] * 3) == [D("0.01"), D("0.00"), D("0.01")]
    # Order c42a138c… (KXHIGHTOKC): fills of 20, 1, 2, 2 at 0.10 (same timestamp) charged
    # 0.12, 0.00, 0.02, 0.02 — what the accumulator gives when they matched as 2, 1, 2, 20.
    parts = [(2, D("0.10")), (1, D("0.10")), (2, D("0.10")), (20, D("0.10"))]
    assert order_fees(parts) == [D("0.02"), D("0.00"), D("0.02"), D("0.12")]
    assert order_fee_total(parts) == D("0.16") == taker_fee(25, D("0.10"))


@given(st.lists(st.tuples(counts, prices), min_size=1, max_size=12))
def test_order_accumulator_properties(parts: list[tuple[Decimal, Decimal]]) -> None:
    charged = order_fees(parts)
    assert all(c >= 0 and c == c.quantize(D("0.01")) for c in charged)
    total = sum(charged, D(0))
    # Never more than charging every fill on its own, never less than the exact total.
    assert total <= sum((taker_fee(c, p) for c, p in parts), D(0))
    assert total >= sum((exact_fee(c, p) for c, p in parts), D(0))
    # A single fill is charged exactly like a one-fill order.
    count, price = parts[0]
    assert order_fees([parts[0]]) == [taker_fee(count, price)]


@given(st.lists(st.tuples(counts, prices), min_size=1, max_size=12), st.randoms())
def test_order_total_does_not_depend_on_fill_order(
    parts: list[tuple[Decimal, Decimal]], rnd: object
) -> None:
    import random

    assert isinstance(rnd, random.Random)
    shuffled = list(parts)
    rnd.shuffle(shuffled)
    assert order_fee_total(parts) == order_fee_total(shuffled)

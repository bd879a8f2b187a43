"""The L2 book: delta arithmetic, both price conventions, and snapshot-wins properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kwx.sources.orderbook import Level, OrderBook

D = Decimal

prices = st.integers(min_value=1, max_value=99).map(lambda c: Decimal(c) / 100)
sizes = st.integers(min_value=1, max_value=100_000).map(lambda c: Decimal(c) / 100)
levels = st.dictionaries(prices, sizes, max_size=20).map(lambda d: sorted(d.items()))
deltas = st.lists(
    st.tuples(
        st.sampled_from(["yes", "no"]),
        prices,
        st.integers(min_value=-100_000, max_value=100_000).map(lambda c: Decimal(c) / 100),
    ),
    max_size=50,
)


def test_empty_book_has_no_quotes() -> None:
    for use_yes in (True, False):
        book = OrderBook("T", use_yes)
        assert book.is_empty
        assert book.best_yes_bid is None
        assert book.best_yes_ask is None
        assert book.best_no_bid is None
        assert book.best_no_ask is None
        assert book.depth("yes") == 0
        assert book.levels("no") == []


def test_quotes_in_both_conventions() -> None:
    # YES bids at 40 and 41; a NO bid at NO-leg 0.55 (= YES offer at 0.45) and one at 0.50.
    legacy = OrderBook("T", use_yes_price=False)
    legacy.apply_snapshot(
        [(D("0.40"), D(10)), (D("0.41"), D(3))], [(D("0.55"), D(5)), (D("0.50"), D(7))]
    )
    assert legacy.best_yes_bid == D("0.41")
    assert legacy.best_yes_ask == D("0.45")  # 1 - max NO
    assert legacy.best_no_bid == D("0.55")
    assert legacy.best_no_ask == D("0.59")

    yes_conv = OrderBook("T", use_yes_price=True)
    yes_conv.apply_snapshot(
        [(D("0.40"), D(10)), (D("0.41"), D(3))], [(D("0.45"), D(5)), (D("0.50"), D(7))]
    )
    assert yes_conv.best_yes_ask == D("0.45")  # min NO-side price
    assert yes_conv.best_no_bid == D("0.55")
    assert legacy.converted(True) == yes_conv
    assert yes_conv.converted(False) == legacy


def test_delta_adds_and_drops_levels() -> None:
    book = OrderBook("T", use_yes_price=True)
    book.apply_snapshot([(D("0.40"), D(10))], [])
    assert book.apply_delta("yes", D("0.40"), D(-4)) == D(6)
    assert book.apply_delta("yes", D("0.42"), D("2.50")) == D("2.50")
    assert book.levels("yes") == [(D("0.40"), D(6)), (D("0.42"), D("2.50"))]
    assert book.apply_delta("yes", D("0.40"), D(-6)) == 0
    assert book.apply_delta("no", D("0.70"), D(-1)) == 0  # never below zero
    assert book.levels("yes") == [(D("0.42"), D("2.50"))]
    assert book.levels("no") == []
    assert book.depth("yes") == D("2.50")
    with pytest.raises(ValueError, match="side"):
        book.apply_delta("maybe", D("0.5"), D(1))


def test_snapshot_sums_repeated_prices_and_drops_empty_levels() -> None:
    book = OrderBook("T", use_yes_price=True)
    book.apply_snapshot([(D("0.40"), D(1)), (D("0.40"), D(2)), (D("0.30"), D(0))], [])
    assert book.levels("yes") == [(D("0.40"), D(3))]


@given(first=levels, moves=deltas, yes=levels, no=levels, use_yes=st.booleans())
def test_snapshot_after_any_deltas_equals_the_snapshot(
    first: list[Level],
    moves: list[tuple[str, Decimal, Decimal]],
    yes: list[Level],
    no: list[Level],
    use_yes: bool,
) -> None:
    book = OrderBook("T", use_yes)
    book.apply_snapshot(first, first)
    for side, price, delta in moves:
        book.apply_delta(side, price, delta)
    book.apply_snapshot(yes, no)
    fresh = OrderBook("T", use_yes)
    fresh.apply_snapshot(yes, no)
    assert book == fresh
    assert book.levels("yes") == yes
    assert book.levels("no") == no


@given(yes=levels, no=levels, moves=deltas)
def test_no_leg_book_converted_to_yes_prices_quotes_the_same(
    yes: list[Level], no: list[Level], moves: list[tuple[str, Decimal, Decimal]]
) -> None:
    legacy = OrderBook("T", use_yes_price=False)
    legacy.apply_snapshot(yes, no)
    modern = OrderBook("T", use_yes_price=True)
    modern.apply_snapshot(yes, [(1 - p, s) for p, s in no])
    for side, price, delta in moves:
        legacy.apply_delta(side, price, delta)
        # The same order seen under use_yes_price=true: NO levels arrive as 1 - price.
        modern.apply_delta(side, 1 - price if side == "no" else price, delta)
    assert legacy.converted(True) == modern
    for book in (legacy.converted(True), modern):
        assert book.best_yes_bid == legacy.best_yes_bid
        assert book.best_yes_ask == legacy.best_yes_ask
        assert book.best_no_bid == legacy.best_no_bid
        assert book.best_no_ask == legacy.best_no_ask
        assert book.depth("no") == legacy.depth("no")
    if legacy.best_yes_bid is not None and legacy.best_yes_ask is not None:
        # Bids and asks come from independent sides here, so only their definitions are checked.
        assert legacy.best_yes_ask == 1 - max(p for p, _ in legacy.levels("no"))

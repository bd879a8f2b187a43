"""The simulated venue's own rules: taker prices and limits, crossing limits, FIFO positions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from kwx.backtest.fills import MakerB, TakerOnly
from kwx.engine.ports import PlaceLimit, PlaceTaker
from kwx.engine.sim_venue import SimulatedVenue, touch_price
from kwx.engine.tape import ArrayTape
from tests.engine.helpers import EVENT, D, bracket, minute, snapshot

A = f"{EVENT}-B40.5"


def _snap(k: int, bid: str | None = "0.40", ask: str | None = "0.44") -> object:
    return snapshot(minute(k), [bracket(A, bid, ask)])


def test_touch_prices_of_each_side_and_action() -> None:
    bid, ask = D("0.40"), D("0.44")
    assert touch_price("yes", "buy", bid, ask) == D("0.44")
    assert touch_price("yes", "sell", bid, ask) == D("0.40")
    assert touch_price("no", "buy", bid, ask) == D("0.60")
    assert touch_price("no", "sell", bid, ask) == D("0.56")
    assert touch_price("no", "buy", None, ask) is None


def test_taker_beyond_its_limit_or_without_a_quote_does_not_fill() -> None:
    venue = SimulatedVenue(ArrayTape(), TakerOnly(slippage=D("0.02")))
    order, fills = venue.place(PlaceTaker(A, "yes", "buy", D("0.45"), D("5")), _snap(0))  # type: ignore[arg-type]
    assert (order.status, fills) == ("canceled", [])  # 0.44 + 0.02 > 0.45
    order, fills = venue.place(PlaceTaker(A, "no", "buy", D("0.99"), D("5")), _snap(0, bid=None))  # type: ignore[arg-type]
    assert (order.status, fills) == ("rejected", [])
    order, fills = venue.place(PlaceTaker(A, "no", "buy", D("0.62"), D("5")), _snap(0))  # type: ignore[arg-type]
    assert order.status == "filled" and fills[0].price == D("0.62")  # 1 − 0.40 + 0.02


def test_a_crossing_limit_fills_at_the_touch_not_at_its_limit() -> None:
    venue = SimulatedVenue(ArrayTape(), TakerOnly(slippage=D("0.02")))
    order, fills = venue.place(PlaceLimit(A, "yes", "buy", D("0.50"), D("3")), _snap(0))  # type: ignore[arg-type]
    assert order.status == "filled"
    assert (fills[0].price, fills[0].is_taker) == (D("0.44"), True)  # no slippage on a limit


def test_off_grid_prices_are_rejected() -> None:
    venue = SimulatedVenue(ArrayTape(), MakerB())
    order, _ = venue.place(PlaceLimit(A, "yes", "buy", D("0.405"), D("3")), _snap(0))  # type: ignore[arg-type]
    assert order.status == "rejected" and "grid" in order.reason


def test_positions_are_fifo_and_flip_sides_exactly() -> None:
    venue = SimulatedVenue(ArrayTape(), TakerOnly(slippage=D("0")))
    venue.place(PlaceTaker(A, "yes", "buy", D("0.44"), D("10")), _snap(0))  # type: ignore[arg-type]
    venue.place(PlaceTaker(A, "yes", "buy", D("0.50"), D("5")), _snap(1, "0.46", "0.50"))  # type: ignore[arg-type]
    pos = venue.positions()[A]
    assert (pos.yes_count, pos.cost) == (D("15"), D("6.90"))  # 10·0.44 + 5·0.50
    # Buying 20 NO at 1 − 0.60 = 0.40 closes the 15 YES first-in first-out (the YES sells
    # for 0.60): 10·(0.60 − 0.44) + 5·(0.60 − 0.50) = 2.10, then holds 5 NO at 0.40.
    venue.place(PlaceTaker(A, "no", "buy", D("0.40"), D("20")), _snap(2, "0.60", "0.62"))  # type: ignore[arg-type]
    pos = venue.positions()[A]
    assert (pos.yes_count, pos.cost, pos.realized) == (D("-5"), D("2.00"), D("2.10"))
    fees = sum((f.fee for f in venue.fills), D("0"))
    assert pos.fees == fees


def test_resting_orders_fill_only_from_prints_after_placement() -> None:
    secs = dt.timedelta(seconds=10)
    tape = ArrayTape.from_rows(
        [
            (A, minute(0) + secs, D("4"), D("0.40"), "no"),  # before we rest: ignored
            (A, minute(2) + secs, D("4"), D("0.40"), "no"),  # through our 0.41 bid
        ]
    )
    venue = SimulatedVenue(tape, MakerB())
    order, _ = venue.place(PlaceLimit(A, "yes", "buy", D("0.41"), D("10")), _snap(1))  # type: ignore[arg-type]
    assert venue.advance(minute(2)) == []  # nothing in [18:01, 18:02)
    fills = venue.advance(minute(3))
    assert [(f.count, f.ts) for f in fills] == [(D("4"), minute(2) + secs)]
    assert venue.order(order.order_id).filled == D("4")


def _levels(count: Decimal) -> list[tuple[int, Decimal]]:
    """A modelled book: 4 contracts a level, three levels."""
    out: list[tuple[int, Decimal]] = []
    left = count
    for lvl in range(3):
        if left <= 0:
            break
        out.append((lvl, min(left, D("4"))))
        left -= min(left, D("4"))
    return out


def test_depth_limited_taker_walks_the_levels_and_leaves_the_rest() -> None:
    venue = SimulatedVenue(ArrayTape(), TakerOnly(slippage=D("0.01")), taker_levels=_levels)
    order, fills = venue.place(PlaceTaker(A, "yes", "buy", D("0.99"), D("20")), _snap(0))  # type: ignore[arg-type]
    # 0.44 + 1¢, then a cent deeper per level: 4 @0.45, 4 @0.46, 4 @0.47; 8 left.
    assert [(f.price, f.count) for f in fills] == [
        (D("0.45"), D("4")),
        (D("0.46"), D("4")),
        (D("0.47"), D("4")),
    ]
    assert (order.status, order.filled) == ("canceled", D("12"))
    assert "depth" in order.reason
    # The limit stops the walk; a sell walks down.
    order, fills = venue.place(PlaceTaker(A, "yes", "buy", D("0.46"), D("20")), _snap(1))  # type: ignore[arg-type]
    assert [f.price for f in fills] == [D("0.45"), D("0.46")] and order.filled == D("8")
    order, fills = venue.place(PlaceTaker(A, "yes", "sell", D("0.01"), D("6")), _snap(2))  # type: ignore[arg-type]
    assert [(f.price, f.count) for f in fills] == [(D("0.39"), D("4")), (D("0.38"), D("2"))]
    assert order.status == "filled"
    # Within one level it is the old rule: the whole order at the touch.
    order, fills = venue.place(PlaceTaker(A, "yes", "buy", D("0.99"), D("3")), _snap(3))  # type: ignore[arg-type]
    assert [(f.price, f.count) for f in fills] == [(D("0.45"), D("3"))]

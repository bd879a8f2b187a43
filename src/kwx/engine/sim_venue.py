"""The simulated venue: our orders matched against recorded market data by a fill model.

Backtest and paper mode both use it (paper mode is this venue on live data), so the only thing
that decides how an order fills is the :class:`FillModel` chosen for the run. The venue keeps
the orders, the positions (FIFO lots, so realised P&L is exact) and charges Kalshi's fees
(:func:`kwx.domain.fees.fee` with the series' fee_type).

Rules the venue enforces whatever the fill model:

* a taker order fills at once, at the touch the snapshot shows plus the model's slippage, or not
  at all when that is worse than the order's limit or there is no quote on that side; with a
  depth model (``taker_levels``: no recorded book has sizes, so the depth is modelled) it fills
  at most that many contracts a level, walking 1 ¢ levels up to its limit, and the rest is left
  (the order ends canceled, partly filled);
* a limit order that would cross the touch when placed is filled as a taker at the touch
  (an exchange would match it at once), capped at its limit;
* a resting order is matched only against market data stamped at or after its placement, in
  time order, one step at a time (:meth:`SimulatedVenue.advance`), never past the step's end.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Final, Protocol

from kwx.domain import fees
from kwx.engine.ports import (
    ONE,
    ZERO,
    Action,
    EventSnapshot,
    Fill,
    Order,
    OrderStatus,
    PlaceLimit,
    PlaceTaker,
    Position,
    Side,
    book_level,
)
from kwx.engine.tape import HUNDREDTHS, MICRO, MarketTape, ns_of, to_micro, ts_of

__all__ = ["FillModel", "SimOrder", "SimulatedVenue", "touch_price"]

CENT: Final = Decimal("0.01")
MIN_PRICE: Final = Decimal("0.01")
MAX_PRICE: Final = Decimal("0.99")
_NAMESPACE: Final = uuid.UUID("6b1f2d3e-9a3c-4f0e-8f7a-2c5d1e0b7a41")


@dataclass
class SimOrder:
    """A resting order's matching state (mutable; the venue hands out frozen :class:`Order`)."""

    order: Order
    book_side: Side
    book_price: int  # micro-dollars
    remaining: int  # hundredths
    placed_ns: int
    checked_ns: int  # market data before this instant has been matched
    state: dict[str, float | int] = field(default_factory=dict)


class FillModel(Protocol):
    """How resting orders fill, and how much takers pay above the touch."""

    name: str
    slippage: Decimal  # dollars added to a taker's price (subtracted when selling)

    def on_place(self, order: SimOrder, tape: MarketTape, touch: Decimal | None) -> None:
        """Set up the order's state at placement (e.g. its place in the queue).

        ``touch`` is the best bid on the order's book side at placement (None if unknown).
        """

    def match(
        self, order: SimOrder, tape: MarketTape, start_ns: int, end_ns: int
    ) -> list[tuple[int, int]]:
        """Fills of a resting order from data in [start, end): (time ns, hundredths)."""

    def assumptions(self) -> list[str]:
        """Sentences for the run's notes: what the model assumes, and where data is missing."""


def touch_price(
    side: Side, action: Action, yes_bid: Decimal | None, yes_ask: Decimal | None
) -> Decimal | None:
    """The price of ``side`` a taker gets now: buy YES at the ask, buy NO at 1 − bid, sell YES at
    the bid, sell NO at 1 − ask; None when that side of the book is unknown."""
    if side == "yes":
        return yes_ask if action == "buy" else yes_bid
    if action == "buy":
        return None if yes_bid is None else ONE - yes_bid
    return None if yes_ask is None else ONE - yes_ask


def _best_bid_on(
    book_side: Side, yes_bid: Decimal | None, yes_ask: Decimal | None
) -> Decimal | None:
    if book_side == "yes":
        return yes_bid
    return None if yes_ask is None else ONE - yes_ask


@dataclass
class _Lot:
    count: Decimal
    price: Decimal  # price of the side held


@dataclass
class _Book:
    """Positions per ticker as FIFO lots of the side held (YES or NO, never both)."""

    event_ticker: str
    city: str
    side: Side | None = None
    lots: list[_Lot] = field(default_factory=list)
    realized: Decimal = ZERO
    fees: Decimal = ZERO

    def apply(self, side: Side, action: Action, price: Decimal, count: Decimal) -> None:
        # In "side held" terms: buying the held side (or opening) adds lots; anything else
        # closes lots first-in first-out and may open the other side with what is left.
        opening_side: Side = side if action == "buy" else ("no" if side == "yes" else "yes")
        opening_price = price if action == "buy" else ONE - price
        if self.side is None or self.side == opening_side:
            self.side = opening_side
            self.lots.append(_Lot(count, opening_price))
            return
        left = count
        exit_price = ONE - opening_price  # what the held side is sold for
        while left > 0 and self.lots:
            lot = self.lots[0]
            take = min(lot.count, left)
            self.realized += take * (exit_price - lot.price)
            lot.count -= take
            left -= take
            if lot.count == 0:
                self.lots.pop(0)
        if not self.lots:
            self.side = None
        if left > 0:
            self.side = opening_side
            self.lots = [_Lot(left, opening_price)]

    def position(self, ticker: str) -> Position:
        count = sum((lot.count for lot in self.lots), ZERO)
        cost = sum((lot.count * lot.price for lot in self.lots), ZERO)
        signed = count if self.side == "yes" else -count
        return Position(
            ticker, self.event_ticker, self.city, signed, cost, self.realized, self.fees
        )


class SimulatedVenue:
    """Matches our orders against a :class:`MarketTape` with a :class:`FillModel`."""

    def __init__(
        self,
        tape: MarketTape,
        fill_model: FillModel,
        *,
        fee_types: Mapping[str, str] | None = None,
        id_prefix: str = "sim",
        taker_levels: Callable[[Decimal], list[tuple[int, Decimal]]] | None = None,
    ) -> None:
        self.tape = tape
        self._taker_levels = taker_levels
        self.model = fill_model
        self._fee_types = dict(fee_types or {})  # event_ticker → fee_type
        self._prefix = id_prefix
        self._seq = itertools.count(1)
        self._fill_seq = itertools.count(1)
        self._resting: dict[str, SimOrder] = {}
        self._orders: dict[str, Order] = {}
        self._books: dict[str, _Book] = {}
        self._positions: dict[str, Position] = {}
        self.fills: list[Fill] = []

    # ------------------------------------------------------------ Venue protocol

    def positions(self) -> Mapping[str, Position]:
        return self._positions

    def resting(self, event_ticker: str | None = None) -> list[Order]:
        return [
            s.order
            for s in self._resting.values()
            if event_ticker is None or s.order.event_ticker == event_ticker
        ]

    def order(self, order_id: str) -> Order:
        return self._orders[order_id]

    def all_orders(self) -> list[Order]:
        return list(self._orders.values())

    def place(
        self, intent: PlaceLimit | PlaceTaker, snapshot: EventSnapshot
    ) -> tuple[Order, list[Fill]]:
        ts = snapshot.ts
        bracket = snapshot.bracket(intent.ticker)
        seq = next(self._seq)
        order_id = f"{self._prefix}-{seq}"
        client_id = str(uuid.uuid5(_NAMESPACE, f"{self._prefix}/{seq}"))
        is_taker = isinstance(intent, PlaceTaker)
        price = intent.limit if isinstance(intent, PlaceTaker) else intent.price
        order = Order(
            order_id=order_id,
            client_order_id=client_id,
            ticker=intent.ticker,
            event_ticker=snapshot.event_ticker,
            city=snapshot.city,
            side=intent.side,
            action=intent.action,
            kind="taker" if is_taker else "limit",
            price=price,
            count=intent.count,
            filled=ZERO,
            status="resting",
            created_at=ts,
            updated_at=ts,
            reason=intent.reason,
        )
        self._fee_types.setdefault(snapshot.event_ticker, snapshot.fee_type)
        problem = self._validate(price, intent.count)
        if problem:
            return self._finish(order, "rejected", ts, problem), []
        touch = touch_price(intent.side, intent.action, bracket.yes_bid, bracket.yes_ask)
        crosses = touch is not None and (
            price >= touch if intent.action == "buy" else price <= touch
        )
        if is_taker or crosses:
            return self._take(order, touch, ts, is_taker)
        level_side, level_price = book_level(intent.side, intent.action, price)
        sim = SimOrder(
            order=order,
            book_side=level_side,
            book_price=to_micro(level_price),
            remaining=int(intent.count * HUNDREDTHS),
            placed_ns=ns_of(ts),
            checked_ns=ns_of(ts),
        )
        self.model.on_place(
            sim, self.tape, _best_bid_on(level_side, bracket.yes_bid, bracket.yes_ask)
        )
        self._resting[order_id] = sim
        self._orders[order_id] = order
        return order, []

    def cancel(self, order_id: str, ts: datetime, reason: str = "") -> Order:
        sim = self._resting.pop(order_id, None)
        if sim is None:
            return self._orders[order_id]
        return self._finish(sim.order, "canceled", ts, reason)

    def advance(self, ts: datetime) -> list[Fill]:
        """Match every resting order against the data in [its last check, ts)."""
        end = ns_of(ts)
        out: list[Fill] = []
        for order_id in list(self._resting):
            sim = self._resting[order_id]
            if end <= sim.checked_ns:
                continue
            matches = self.model.match(sim, self.tape, sim.checked_ns, end)
            sim.checked_ns = end
            for at_ns, qty in matches:
                if qty <= 0 or sim.remaining <= 0:
                    continue
                if not sim.placed_ns <= at_ns < end:
                    raise AssertionError(
                        f"{self.model.name}: fill at {at_ns} outside [{sim.placed_ns}, {end})"
                    )
                qty = min(qty, sim.remaining)
                sim.remaining -= qty
                count = Decimal(qty) / HUNDREDTHS
                out.append(self._fill(sim.order, sim.order.price, count, ts_of(at_ns), False))
                status: OrderStatus = "filled" if sim.remaining == 0 else "resting"
                sim.order = self._update(sim.order, count, status, ts_of(at_ns))
            if sim.remaining == 0:
                del self._resting[order_id]
        out.sort(key=lambda f: f.ts)
        return out

    # ------------------------------------------------------------ internals

    @staticmethod
    def _validate(price: Decimal, count: Decimal) -> str:
        if not MIN_PRICE <= price <= MAX_PRICE or price % CENT != 0:
            return f"price {price} is not on the 1¢ grid in [0.01, 0.99]"
        if count <= 0 or (count * HUNDREDTHS) % 1 != 0:
            return f"count {count} is not a positive multiple of 0.01"
        return ""

    def _take(
        self, order: Order, touch: Decimal | None, ts: datetime, is_taker: bool
    ) -> tuple[Order, list[Fill]]:
        if touch is None:
            return self._finish(order, "rejected", ts, "no quote on that side"), []
        slip = self.model.slippage if is_taker else ZERO
        base = touch + slip if order.action == "buy" else touch - slip
        levels = (
            [(0, order.count)] if self._taker_levels is None else self._taker_levels(order.count)
        )
        fills: list[Fill] = []
        filled = ZERO
        for cents, qty in levels:
            step = CENT * cents
            price = base + step if order.action == "buy" else base - step
            price = min(max(price, MIN_PRICE), MAX_PRICE)
            worse = price > order.price if order.action == "buy" else price < order.price
            if worse or qty <= 0:
                break
            fills.append(self._fill(order, price, qty, ts, True))
            filled += qty
        if not fills:
            first = min(max(base, MIN_PRICE), MAX_PRICE)
            return self._finish(order, "canceled", ts, f"touch {first} beyond limit"), []
        if filled >= order.count:
            done = self._update(order, filled, "filled", ts)
        else:
            part = self._update(order, filled, "canceled", ts)
            done = self._finish(
                part, "canceled", ts, f"depth: {filled} of {order.count} filled, rest left"
            )
        self._orders[order.order_id] = done
        return done, fills

    def _fill(
        self, order: Order, price: Decimal, count: Decimal, ts: datetime, is_taker: bool
    ) -> Fill:
        fee_type = self._fee_types.get(order.event_ticker, fees.QUADRATIC)
        fee = fees.fee(count, price, is_taker=is_taker, fee_type=fee_type)
        book = self._books.setdefault(order.ticker, _Book(order.event_ticker, order.city))
        book.apply(order.side, order.action, price, count)
        book.fees += fee
        self._positions[order.ticker] = book.position(order.ticker)
        fill = Fill(
            fill_id=f"{order.order_id}-f{next(self._fill_seq)}",
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            ticker=order.ticker,
            event_ticker=order.event_ticker,
            city=order.city,
            side=order.side,
            action=order.action,
            price=price,
            count=count,
            fee=fee,
            is_taker=is_taker,
            ts=ts,
        )
        self.fills.append(fill)
        return fill

    def _update(self, order: Order, filled: Decimal, status: OrderStatus, ts: datetime) -> Order:
        new = replace(order, filled=order.filled + filled, status=status, updated_at=ts)
        self._orders[order.order_id] = new
        return new

    def _finish(self, order: Order, status: OrderStatus, ts: datetime, reason: str) -> Order:
        new = replace(order, status=status, updated_at=ts, reason=reason or order.reason)
        self._orders[order.order_id] = new
        return new


def micro_to_price(value: int) -> Decimal:
    """Micro-dollars → Decimal dollars (exact)."""
    return Decimal(value) / MICRO

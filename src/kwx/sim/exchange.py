"""The simulated exchange: replayed markets, our account, and the matching of our orders.

One object holds all mutable state behind one lock, because two kinds of thread change it:
the replay driver (prints, quotes, closes, settlements, the maintenance pause) and the REST
handlers (our orders). Everything it reports goes to an `ExchangeListener` in the order it
happened, stamped with the simulated clock, never the wall clock.

Account rules, as Kalshi keeps them (reference §8): ``position`` > 0 holds YES, < 0 holds
NO; buying YES against a NO position closes it (the YES/NO pair pays $1 at once), and vice
versa. Cash, costs and P&L are exact ``Decimal`` dollars. Fees follow Kalshi's per-order
accumulator (`kwx.domain.fees.order_fees`): takers pay 0.07·C·P·(1−P), makers nothing in
``quadratic`` series. Collateral is the full cost of an order's opening side (no netting
against positions or other orders; conservative). Settlement pays $1 per winning contract at
the stored result.

Order rules: V2 only; ``client_order_id`` is an idempotency key (the same key always names
the same order); after ``close_time`` every operation, cancel included, is refused with
``MARKET_INACTIVE``; during the maintenance pause new orders and amends are refused with
``trading_paused`` (cancels and decreases are allowed) and orders flagged
``cancel_order_on_pause`` are cancelled when it starts.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, Literal, Protocol

from kwx.domain.fees import (
    CENTI_CENT,
    MAKER_RATE,
    QUADRATIC_WITH_MAKER_FEES,
    TAKER_RATE,
    exact_fee,
    round_up_cent,
)
from kwx.sim.clock import SimClock
from kwx.sim.fills import FillModel
from kwx.sim.replay import ReplayBook, ReplayData, ReplayEvent, ReplayTrade
from kwx.sources.kalshi_models import dollars_str, parse_price_ranges

__all__ = ["Exchange", "ExchangeError", "ExchangeListener", "SimOrder"]

log = logging.getLogger("kwx.sim.exchange")

Json = dict[str, Any]
Side = Literal["bid", "ask"]
_ONE = Decimal(1)
_ZERO = Decimal(0)
_CENT = Decimal("0.01")
TIME_IN_FORCE = ("good_till_canceled", "immediate_or_cancel", "fill_or_kill")


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _fp(value: Decimal) -> str:
    return dollars_str(value, 2)


def _usd(value: Decimal) -> str:
    return dollars_str(value, 4)


class ExchangeError(Exception):
    """A refused request: HTTP status, Kalshi-style error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ExchangeListener(Protocol):
    """Where the exchange reports what happened (the WebSocket publisher, in the server)."""

    def on_user_order(self, order: Json) -> None: ...
    def on_fill(self, fill: Json, duplicate_ok: bool) -> None: ...
    def on_position(self, position: Json) -> None: ...
    def on_book(
        self,
        ticker: str,
        yes: list[tuple[Decimal, Decimal]],
        no: list[tuple[Decimal, Decimal]],
        client_order_id: str | None,
    ) -> None: ...
    def on_trade(self, trade: ReplayTrade) -> None: ...
    def on_ticker(self, ticker: Json) -> None: ...
    def on_lifecycle(self, msg: Json) -> None: ...
    def on_pause(self, paused: bool) -> None: ...


class _Quiet:
    """The listener during warm-up: replaying the past before the start reports nothing."""

    def on_user_order(self, order: Json) -> None:
        pass

    def on_fill(self, fill: Json, duplicate_ok: bool) -> None:
        pass

    def on_position(self, position: Json) -> None:
        pass

    def on_book(
        self,
        ticker: str,
        yes: list[tuple[Decimal, Decimal]],
        no: list[tuple[Decimal, Decimal]],
        client_order_id: str | None,
    ) -> None:
        pass

    def on_trade(self, trade: ReplayTrade) -> None:
        pass

    def on_ticker(self, ticker: Json) -> None:
        pass

    def on_lifecycle(self, msg: Json) -> None:
        pass

    def on_pause(self, paused: bool) -> None:
        pass


@dataclass
class SimOrder:
    order_id: str
    client_order_id: str
    ticker: str
    side: Side
    price: Decimal  # YES price
    initial: Decimal
    time_in_force: str
    created: datetime
    updated: datetime
    post_only: bool = False
    cancel_on_pause: bool = False
    self_trade_prevention: str = "taker_at_cross"
    expiration: datetime | None = None
    filled: Decimal = _ZERO
    remaining: Decimal = _ZERO
    status: str = "resting"
    queue_ahead: Decimal = _ZERO
    taker_cost: Decimal = _ZERO
    maker_cost: Decimal = _ZERO
    taker_fees: Decimal = _ZERO
    maker_fees: Decimal = _ZERO
    fee_accum: dict[bool, Decimal] = field(default_factory=lambda: {True: _ZERO, False: _ZERO})

    @property
    def collateral_per(self) -> Decimal:
        """Dollars one contract of this order costs: YES price for a bid, NO price for an ask."""
        return self.price if self.side == "bid" else _ONE - self.price

    def wire(self) -> Json:
        out: Json = {
            "order_id": self.order_id,
            "user_id": "sim-user",
            "client_order_id": self.client_order_id,
            "ticker": self.ticker,
            "outcome_side": "yes" if self.side == "bid" else "no",
            "book_side": self.side,
            "side": "yes" if self.side == "bid" else "no",
            "action": "buy",
            "type": "limit",
            "status": self.status,
            "yes_price_dollars": _usd(self.price),
            "no_price_dollars": _usd(_ONE - self.price),
            "fill_count_fp": _fp(self.filled),
            "remaining_count_fp": _fp(self.remaining),
            "initial_count_fp": _fp(self.initial),
            "taker_fill_cost_dollars": _usd(self.taker_cost),
            "maker_fill_cost_dollars": _usd(self.maker_cost),
            "taker_fees_dollars": _usd(self.taker_fees),
            "maker_fees_dollars": _usd(self.maker_fees),
            "created_time": _iso(self.created),
            "last_update_time": _iso(self.updated),
            "created_ts_ms": int(self.created.timestamp() * 1000),
            "time_in_force": self.time_in_force,
            "self_trade_prevention_type": self.self_trade_prevention,
            "cancel_order_on_pause": self.cancel_on_pause,
            "post_only": self.post_only,
            "exchange_index": 0,
            "subaccount_number": 0,
        }
        if self.expiration is not None:
            out["expiration_time"] = _iso(self.expiration)
            out["expiration_ts_ms"] = int(self.expiration.timestamp() * 1000)
        return out


@dataclass
class _Position:
    ticker: str
    event_ticker: str
    position: Decimal = _ZERO
    cost: Decimal = _ZERO  # what the open position cost, dollars (>= 0)
    realized: Decimal = _ZERO
    fees: Decimal = _ZERO
    traded: Decimal = _ZERO  # dollars
    volume: Decimal = _ZERO  # contracts
    updated: datetime | None = None
    settled: bool = False

    def wire(self) -> Json:
        return {
            "ticker": self.ticker,
            "exchange_index": 0,
            "position_fp": _fp(self.position),
            "market_exposure_dollars": _usd(self.cost),
            "total_traded_dollars": _usd(self.traded),
            "realized_pnl_dollars": _usd(self.realized),
            "fees_paid_dollars": _usd(self.fees),
            "last_updated_ts": _iso(self.updated) if self.updated else None,
        }

    def ws(self) -> Json:
        return {
            "market_ticker": self.ticker,
            "position_fp": _fp(self.position),
            "position_cost_dollars": _usd(self.cost),
            "realized_pnl_dollars": _usd(self.realized),
            "fees_paid_dollars": _usd(self.fees),
            "position_fee_cost_dollars": _usd(self.fees),
            "volume_fp": _fp(self.volume),
        }


@dataclass
class _Market:
    book: ReplayBook
    status: str = "initialized"
    last_price: Decimal | None = None
    volume: Decimal = _ZERO
    result: str = ""
    settled_at: datetime | None = None


class Exchange:
    """See the module notes. All public methods are thread-safe."""

    def __init__(
        self,
        data: ReplayData,
        clock: SimClock,
        fill_model: FillModel,
        *,
        balance: Decimal = Decimal(1000),
        maintenance: Sequence[tuple[datetime, datetime]] = (),
        listener: ExchangeListener | None = None,
    ) -> None:
        self.data = data
        self.clock = clock
        self.fill_model = fill_model
        self.cash = balance
        self.listener: ExchangeListener = listener or _Quiet()
        self._lock = threading.RLock()
        self._markets = {
            t: _Market(ReplayBook(t, m.book_source, data.synthetic_size))
            for t, m in data.markets.items()
        }
        series = next(iter(data.series.values()), {})
        self.fee_type = str(series.get("fee_type") or "quadratic")
        self._orders: dict[str, SimOrder] = {}
        self._by_client: dict[str, str] = {}
        self._fills: list[Json] = []
        self._positions: dict[str, _Position] = {}
        self._settlements: list[Json] = []
        self._next = 0  # index of the next replay event
        self._windows = sorted((a.astimezone(UTC), b.astimezone(UTC)) for a, b in maintenance)
        self.paused_until: datetime | None = None
        self.finished = False
        with self._lock:
            self._advance(clock.now(), inclusive=True, quiet=True)
            self._update_statuses(clock.now())
            listener_, self.listener = self.listener, _Quiet()
            self._set_pause(clock.now())
            self.listener = listener_

    # ------------------------------------------------------------------ replay driving

    def next_event_time(self) -> datetime | None:
        """When the next replayed fact or timer falls (None: nothing left)."""
        with self._lock:
            times = []
            if self._next < len(self.data.stream):
                times.append(self.data.stream[self._next].ts)
            now = self.clock.now()
            times += [t for w in self._windows for t in w if t > now]
            times += [
                o.expiration
                for o in self._orders.values()
                if o.status == "resting" and o.expiration is not None and o.expiration > now
            ]
            return min(times) if times else None

    def advance_to(self, when: datetime) -> None:
        """Apply everything stamped at or before ``when`` and move the clock there."""
        with self._lock:
            self._advance(when, inclusive=True, quiet=False)
            if self._next >= len(self.data.stream) and not self.finished:
                self.finished = True
                log.info("replay finished at %s", _iso(when))

    def _advance(self, when: datetime, *, inclusive: bool, quiet: bool) -> None:
        listener = self.listener
        if quiet:
            self.listener = _Quiet()
        try:
            stream = self.data.stream
            while self._next < len(stream):
                event = stream[self._next]
                if event.ts > when or (not inclusive and event.ts == when):
                    break
                self._timers(event.ts)
                if event.ts > self.clock.now():
                    self.clock.set(event.ts)
                self._next += 1
                self._apply(event)
            self._timers(when)
            if when > self.clock.now():
                self.clock.set(when)
        finally:
            self.listener = listener

    def _timers(self, until: datetime) -> None:
        """Pause edges and order expiries up to ``until``, in time order."""
        while True:
            now = self.clock.now()
            edges = [(t, "pause") for a, b in self._windows for t in (a, b) if now < t <= until]
            expiries = [
                (o.expiration, o.order_id)
                for o in self._orders.values()
                if o.status == "resting" and o.expiration is not None and o.expiration <= until
            ]
            candidates: list[tuple[datetime, str]] = edges + [(t, i) for t, i in expiries]
            if not candidates:
                self._update_statuses(until)
                return
            at, what = min(candidates)
            if at > now:
                self.clock.set(at)
            self._update_statuses(at)
            if what == "pause":
                self._set_pause(at)
            else:
                order = self._orders[what]
                self._cancel(order, "expired")

    def _set_pause(self, at: datetime) -> None:
        window = next(((a, b) for a, b in self._windows if a <= at < b), None)
        paused = window is not None
        if paused == (self.paused_until is not None):
            return
        self.paused_until = window[1] if window is not None else None
        log.info("exchange %s at %s", "paused" if paused else "resumed", _iso(at))
        if paused:
            for order in list(self._orders.values()):
                if order.status == "resting" and order.cancel_on_pause:
                    self._cancel(order, "paused")
        self.listener.on_pause(paused)

    def _update_statuses(self, now: datetime) -> None:
        for ticker, market in self._markets.items():
            info = self.data.markets[ticker]
            opened = info.open_time is None or info.open_time <= now
            if market.status == "initialized" and opened and now < info.close_time:
                market.status = "active"

    def _apply(self, event: ReplayEvent) -> None:
        market = self._markets[event.ticker]
        if market.status in ("closed", "finalized") and event.kind != "settle":
            return  # a closed market's book is gone; late records change nothing
        if event.kind == "trade":
            self._on_trade(event.payload)
            if market.book.apply(event):
                self._book_changed(event.ticker, None)
            self.listener.on_ticker(self._ticker_msg(event.ticker))
            return
        elif event.kind == "close":
            self._close(event.ticker)
            return
        elif event.kind == "settle":
            self._settle(event.ticker, str(event.payload))
            return
        else:
            changed = market.book.apply(event)
        if changed:
            self._book_changed(event.ticker, None)

    # ------------------------------------------------------------------ replayed facts

    def _on_trade(self, trade: ReplayTrade) -> None:
        market = self._markets[trade.ticker]
        market.last_price = trade.yes_price
        market.volume += trade.count
        self.listener.on_trade(trade)
        resting = [
            o for o in self._orders.values() if o.ticker == trade.ticker and o.status == "resting"
        ]
        # Price priority, then time: the best bid (highest) or offer (lowest) fills first.
        resting.sort(key=lambda o: (-o.price if o.side == "bid" else o.price, o.created))
        available = trade.count
        for order in resting:
            if available <= 0:
                break
            effect = self.fill_model.on_trade(
                order.side,
                order.price,
                order.queue_ahead,
                order.remaining,
                trade.yes_price,
                trade.taker_side,
                available,
            )
            order.queue_ahead = effect.queue_ahead
            available -= effect.consumed
            if effect.filled > 0:
                self._fill(order, order.price, effect.filled, is_taker=False)
                self._book_changed(order.ticker, order.client_order_id)

    def _close(self, ticker: str) -> None:
        market = self._markets[ticker]
        if market.status in ("closed", "finalized"):
            return
        market.status = "closed"
        log.info("market %s closed at %s", ticker, _iso(self.clock.now()))
        for order in list(self._orders.values()):
            if order.ticker == ticker and order.status == "resting":
                self._cancel(order, "market closed")
        market.book.book.clear()
        self._book_changed(ticker, None)
        self.listener.on_lifecycle(
            {
                "market_ticker": ticker,
                "event_type": "deactivated",
                "close_ts": int(self.data.markets[ticker].close_time.timestamp()),
            }
        )

    def _settle(self, ticker: str, result: str) -> None:
        self._close(ticker)
        market = self._markets[ticker]
        market.status = "finalized"
        market.result = result
        now = self.clock.now()
        market.settled_at = now
        info = self.data.markets[ticker]
        value = _ONE if result == "yes" else _ZERO
        self.listener.on_lifecycle(
            {
                "market_ticker": ticker,
                "event_type": "determined",
                "result": result,
                "settlement_value": _usd(value),
                "determination_ts": int(now.timestamp()),
            }
        )
        pos = self._positions.get(ticker)
        if pos is not None and not pos.settled:
            held = pos.position
            payout = held * value if held > 0 else (-held) * (_ONE - value)
            yes_cost = pos.cost if held > 0 else _ZERO
            no_cost = pos.cost if held < 0 else _ZERO
            self.cash += payout
            pos.realized += payout - pos.cost
            pos.cost = _ZERO
            pos.position = _ZERO
            pos.settled = True
            pos.updated = now
            self._settlements.append(
                {
                    "ticker": ticker,
                    "event_ticker": info.event_ticker,
                    "market_result": result,
                    "yes_count_fp": _fp(max(held, _ZERO)),
                    "yes_total_cost_dollars": _usd(yes_cost),
                    "no_count_fp": _fp(max(-held, _ZERO)),
                    "no_total_cost_dollars": _usd(no_cost),
                    "revenue": int((payout * 100).to_integral_value()),
                    "value": int(value * 100),
                    "fee_cost": _usd(pos.fees),
                    "settled_time": _iso(now),
                }
            )
            log.info("settle %s result=%s position=%s payout=%s", ticker, result, held, payout)
            self.listener.on_position(pos.ws())
        self.listener.on_lifecycle(
            {"market_ticker": ticker, "event_type": "settled", "settled_ts": int(now.timestamp())}
        )

    # ------------------------------------------------------------------ books

    def _published(
        self, ticker: str
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The book a client sees: the replayed levels plus our resting orders."""
        yes_levels, no_levels = self._markets[ticker].book.levels()
        yes = dict(yes_levels)
        no = dict(no_levels)
        for o in self._orders.values():
            if o.ticker == ticker and o.status == "resting" and o.remaining > 0:
                if o.side == "bid":
                    yes[o.price] = yes.get(o.price, _ZERO) + o.remaining
                else:
                    no[_ONE - o.price] = no.get(_ONE - o.price, _ZERO) + o.remaining
        return sorted(yes.items()), sorted(no.items())

    def _book_changed(self, ticker: str, client_order_id: str | None) -> None:
        book = self._markets[ticker].book
        for o in self._orders.values():  # a level that shrank moves us up the queue
            if o.ticker == ticker and o.status == "resting":
                o.queue_ahead = min(o.queue_ahead, book.size_at(o.side, o.price))
        yes, no = self._published(ticker)
        self.listener.on_book(ticker, yes, no, client_order_id)

    def published_books(
        self,
    ) -> dict[str, tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]]:
        """Every market's visible book (YES bids, NO bids in NO-leg prices)."""
        with self._lock:
            return {t: self._published(t) for t in self._markets}

    def orderbook(self, ticker: str) -> Json:
        """``orderbook_fp`` as the REST endpoint returns it (bids only, ascending)."""
        with self._lock:
            self._market(ticker)
            yes, no = self._published(ticker)
        out: Json = {}
        if yes:
            out["yes_dollars"] = [[_usd(p), _fp(s)] for p, s in yes]
        if no:
            out["no_dollars"] = [[_usd(p), _fp(s)] for p, s in no]
        return out

    def _touch(self, ticker: str) -> tuple[Decimal | None, Decimal, Decimal | None, Decimal]:
        yes, no = self._published(ticker)
        bid, bid_size = yes[-1] if yes else (None, _ZERO)
        ask, ask_size = (_ONE - no[-1][0], no[-1][1]) if no else (None, _ZERO)
        return bid, bid_size, ask, ask_size

    def _ticker_msg(self, ticker: str) -> Json:
        market = self._markets[ticker]
        bid, bid_size, ask, ask_size = self._touch(ticker)
        return {
            "market_ticker": ticker,
            "price_dollars": _usd(market.last_price) if market.last_price is not None else None,
            "yes_bid_dollars": _usd(bid) if bid is not None else "0.0000",
            "yes_ask_dollars": _usd(ask) if ask is not None else "1.0000",
            "yes_bid_size_fp": _fp(bid_size),
            "yes_ask_size_fp": _fp(ask_size),
            "volume_fp": _fp(market.volume),
            "open_interest_fp": "0.00",
            "ts_ms": self.clock.now_ms(),
        }

    # ------------------------------------------------------------------ market views

    def _market(self, ticker: str) -> _Market:
        market = self._markets.get(ticker)
        if market is None:
            raise ExchangeError(404, "not_found", f"market {ticker} not found")
        return market

    def market_wire(self, ticker: str) -> Json:
        """The 2026 Market object as of the clock: quotes, last price, volume, status, result."""
        with self._lock:
            market = self._market(ticker)
            info = self.data.markets[ticker]
            bid, bid_size, ask, ask_size = self._touch(ticker)
            out = info.static_wire()
            out.update(
                {
                    "status": market.status,
                    "yes_bid_dollars": _usd(bid) if bid is not None else "0.0000",
                    "yes_bid_size_fp": _fp(bid_size),
                    "yes_ask_dollars": _usd(ask) if ask is not None else "1.0000",
                    "yes_ask_size_fp": _fp(ask_size),
                    "no_bid_dollars": _usd(_ONE - ask) if ask is not None else "0.0000",
                    "no_ask_dollars": _usd(_ONE - bid) if bid is not None else "1.0000",
                    "last_price_dollars": (
                        _usd(market.last_price) if market.last_price is not None else "0.0000"
                    ),
                    "volume_fp": _fp(market.volume),
                    "volume_24h_fp": _fp(market.volume),
                    "open_interest_fp": "0.00",
                    "result": market.result,
                    "expiration_value": info.expiration_value if market.result else "",
                }
            )
            if market.settled_at is not None:
                out["settlement_ts"] = _iso(market.settled_at)
                out["settlement_value_dollars"] = "1.0000" if market.result == "yes" else "0.0000"
            return out

    def market_wires(self) -> dict[str, Json]:
        with self._lock:
            return {t: self.market_wire(t) for t in self._markets}

    def exchange_status(self) -> Json:
        with self._lock:
            paused = self.paused_until is not None
            return {
                "exchange_active": True,
                "trading_active": not paused,
                "exchange_estimated_resume_time": (
                    _iso(self.paused_until) if self.paused_until is not None else None
                ),
            }

    def maintenance_windows(self) -> list[tuple[datetime, datetime]]:
        return list(self._windows)

    # ------------------------------------------------------------------ account reads

    def balance(self) -> Json:
        with self._lock:
            cents = int((self.cash * 100).to_integral_value(rounding=ROUND_FLOOR))
            value = sum(
                (
                    p.position * (self._markets[t].last_price or _ZERO)
                    if p.position > 0
                    else -p.position * (_ONE - (self._markets[t].last_price or _ONE))
                    for t, p in self._positions.items()
                ),
                _ZERO,
            )
            return {
                "balance": cents,
                "balance_dollars": _usd(self.cash),
                "portfolio_value": int((value * 100).to_integral_value(rounding=ROUND_FLOOR)),
                "updated_ts": int(self.clock.now().timestamp()),
            }

    def positions(self, settlement_status: str = "unsettled") -> tuple[list[Json], list[Json]]:
        """(market_positions, event_positions) for ``unsettled`` | ``settled`` | ``all``."""
        if settlement_status not in ("unsettled", "settled", "all"):
            raise ExchangeError(400, "invalid_parameters", "bad settlement_status")
        with self._lock:
            chosen = [
                p
                for p in self._positions.values()
                if settlement_status == "all" or (settlement_status == "settled") == p.settled
            ]
            events: dict[str, Json] = {}
            for p in chosen:
                e = events.setdefault(
                    p.event_ticker,
                    {
                        "event_ticker": p.event_ticker,
                        "total_cost": _ZERO,
                        "shares": _ZERO,
                        "realized": _ZERO,
                        "fees": _ZERO,
                    },
                )
                e["total_cost"] += p.cost
                e["shares"] += abs(p.position)
                e["realized"] += p.realized
                e["fees"] += p.fees
            return [p.wire() for p in sorted(chosen, key=lambda p: p.ticker)], [
                {
                    "event_ticker": e["event_ticker"],
                    "total_cost_dollars": _usd(e["total_cost"]),
                    "total_cost_shares_fp": _fp(e["shares"]),
                    "event_exposure_dollars": _usd(e["total_cost"]),
                    "realized_pnl_dollars": _usd(e["realized"]),
                    "fees_paid_dollars": _usd(e["fees"]),
                }
                for e in events.values()
            ]

    def fills(self) -> list[Json]:
        """Newest first, as Kalshi lists them."""
        with self._lock:
            return [dict(f) for f in reversed(self._fills)]

    def orders(self) -> list[Json]:
        """Newest first."""
        with self._lock:
            ordered = sorted(self._orders.values(), key=lambda o: o.created, reverse=True)
            return [o.wire() for o in ordered]

    def order(self, order_id: str) -> Json:
        with self._lock:
            return self._order(order_id).wire()

    def settlements(self) -> list[Json]:
        with self._lock:
            return [dict(s) for s in reversed(self._settlements)]

    def queue_position(self, order_id: str) -> Decimal:
        with self._lock:
            return self._order(order_id).queue_ahead

    def _order(self, order_id: str) -> SimOrder:
        order = self._orders.get(order_id)
        if order is None:
            raise ExchangeError(404, "not_found", f"order {order_id} not found")
        return order

    # ------------------------------------------------------------------ order entry

    def create(self, body: Json) -> Json:
        """``POST /portfolio/events/orders``: returns the 201 body; raises ExchangeError."""
        for name in ("ticker", "side", "count", "price", "time_in_force"):
            if name not in body:
                raise _bad(f"{name} is required")
        stp = body.get("self_trade_prevention_type")
        if stp not in ("taker_at_cross", "maker"):
            raise _bad("self_trade_prevention_type is required")
        side = body["side"]
        if side not in ("bid", "ask"):
            raise _bad("side must be bid or ask")
        tif = body["time_in_force"]
        if tif not in TIME_IN_FORCE:
            raise _bad("invalid time_in_force")
        ticker = str(body["ticker"])
        count = _decimal(body["count"], "count")
        if count < _CENT or count != count.quantize(_CENT):
            raise _bad("count must be at least 0.01 in steps of 0.01")
        client_id = str(body.get("client_order_id") or uuid.uuid4())
        expiration: datetime | None = None
        if body.get("expiration_time") is not None:
            if tif == "immediate_or_cancel":
                raise _bad("expiration_time is not allowed with immediate_or_cancel")
            try:
                expiration = datetime.fromtimestamp(int(body["expiration_time"]), tz=UTC)
            except (TypeError, ValueError):
                raise _bad("expiration_time must be Unix seconds") from None
        with self._lock:
            existing = self._by_client.get(client_id)
            if existing is not None:  # idempotency: the same key names the same order
                order = self._orders[existing]
                log.info("order %s: repeated client_order_id %s", order.order_id, client_id)
                return self._ack(order)
            market = self._market(ticker)
            self._check_open(ticker, market, amend=True)
            price = self._price(ticker, body["price"])
            now = self.clock.now()
            order = SimOrder(
                order_id=str(uuid.uuid4()),
                client_order_id=client_id,
                ticker=ticker,
                side=side,
                price=price,
                initial=count,
                remaining=count,
                time_in_force=tif,
                created=now,
                updated=now,
                post_only=bool(body.get("post_only", False)),
                cancel_on_pause=bool(body.get("cancel_order_on_pause", False)),
                self_trade_prevention=str(stp),
                expiration=expiration,
            )
            if expiration is not None and expiration <= now:
                raise _bad("expiration_time is in the past")
            need = count * order.collateral_per + _taker_fee_bound(count, price)
            if need > self._available():
                raise ExchangeError(
                    400,
                    "insufficient_balance",
                    f"order needs ${need} and ${self._available()} is available",
                )
            opposite = market.book.asks() if side == "bid" else market.book.bids()
            takes = self.fill_model.taker_fills(side, price, count, opposite)
            if order.post_only and takes:
                raise ExchangeError(400, "post_only_cross", "post-only order would cross")
            if tif == "fill_or_kill" and sum((q for _, q in takes), _ZERO) < count:
                takes = []
                order.remaining = _ZERO
                order.status = "canceled"
            self._orders[order.order_id] = order
            self._by_client[client_id] = order.order_id
            log.info(
                "order %s %s %s %s @ %s %s (client %s)",
                order.order_id[:8],
                ticker,
                side,
                _fp(count),
                _usd(price),
                tif,
                client_id,
            )
            for level_price, qty in takes:
                market.book.take(side, level_price, qty)
                self._fill(order, level_price, qty, is_taker=True)
            if order.status == "resting" and order.remaining > 0:
                if tif == "good_till_canceled":
                    order.queue_ahead = self.fill_model.initial_queue(
                        market.book.size_at(side, price)
                    )
                else:
                    order.remaining = _ZERO
                    order.status = "canceled" if order.filled < count else "executed"
            if order.status != "resting" and order.remaining == 0 and order.filled == count:
                order.status = "executed"
            self.listener.on_user_order(order.wire())
            if takes or order.status == "resting":
                self._book_changed(ticker, client_id)
                self.listener.on_ticker(self._ticker_msg(ticker))
            return self._ack(order)

    def _ack(self, order: SimOrder) -> Json:
        out: Json = {
            "order_id": order.order_id,
            "client_order_id": order.client_order_id,
            "fill_count": _fp(order.filled),
            "remaining_count": _fp(order.remaining),
            "status": order.status,
            "ts_ms": self.clock.now_ms(),
        }
        if order.filled > 0:
            cost = order.taker_cost + order.maker_cost
            per = cost / order.filled
            fees = (order.taker_fees + order.maker_fees) / order.filled
            yes_avg = per if order.side == "bid" else _ONE - per
            out["average_fill_price"] = _usd(yes_avg.quantize(Decimal("0.0001")))
            out["average_fee_paid"] = _usd(fees.quantize(Decimal("0.0001")))
        return out

    def cancel(self, order_id: str) -> Json:
        with self._lock:
            order = self._order(order_id)
            self._check_open(order.ticker, self._markets[order.ticker], amend=False)
            if order.status != "resting":
                raise _bad("order is not resting", code="order_not_resting")
            reduced = self._cancel(order, "cancel")
            return {
                "order_id": order.order_id,
                "client_order_id": order.client_order_id,
                "reduced_by": _fp(reduced),
                "reduced_by_fp": _fp(reduced),
                "ts_ms": self.clock.now_ms(),
            }

    def cancel_all(self) -> list[str]:
        with self._lock:
            done = []
            for order in list(self._orders.values()):
                if order.status != "resting":
                    continue
                if self._markets[order.ticker].status != "active":
                    continue
                self._cancel(order, "cancel all")
                done.append(order.order_id)
            return done

    def amend(self, order_id: str, body: Json) -> Json:
        """New price and/or new *total* count; the order loses its place in the queue."""
        with self._lock:
            order = self._order(order_id)
            market = self._markets[order.ticker]
            self._check_open(order.ticker, market, amend=True)
            if order.status != "resting":
                raise _bad("order is not resting", code="order_not_resting")
            if body.get("ticker", order.ticker) != order.ticker:
                raise _bad("ticker does not match the order")
            if body.get("side", order.side) != order.side:
                raise _bad("side does not match the order")
            price = self._price(order.ticker, body.get("price"))
            total = _decimal(body.get("count"), "count")
            if total < order.filled + _CENT or total != total.quantize(_CENT):
                raise _bad("count must exceed the filled count")
            new_remaining = total - order.filled
            extra = new_remaining * (price if order.side == "bid" else _ONE - price) - (
                order.remaining * order.collateral_per
            )
            if extra > self._available():
                raise ExchangeError(400, "insufficient_balance", "amend needs more collateral")
            order.price = price
            order.remaining = new_remaining
            order.initial = total
            if body.get("updated_client_order_id"):
                new_id = str(body["updated_client_order_id"])
                self._by_client[new_id] = order.order_id
                order.client_order_id = new_id
            order.updated = self.clock.now()
            opposite = market.book.asks() if order.side == "bid" else market.book.bids()
            for level_price, qty in self.fill_model.taker_fills(
                order.side, price, order.remaining, opposite
            ):
                market.book.take(order.side, level_price, qty)
                self._fill(order, level_price, qty, is_taker=True)
            order.queue_ahead = self.fill_model.initial_queue(
                market.book.size_at(order.side, order.price)
            )
            log.info("amend %s -> %s @ %s", order.order_id[:8], _fp(order.remaining), _usd(price))
            self.listener.on_user_order(order.wire())
            self._book_changed(order.ticker, order.client_order_id)
            return {**self._ack(order), "order": order.wire()}

    def decrease(self, order_id: str, body: Json) -> Json:
        if ("reduce_by" in body) == ("reduce_to" in body):
            raise _bad("exactly one of reduce_by and reduce_to")
        with self._lock:
            order = self._order(order_id)
            self._check_open(order.ticker, self._markets[order.ticker], amend=False)
            if order.status != "resting":
                raise _bad("order is not resting", code="order_not_resting")
            if "reduce_by" in body:
                target = order.remaining - _decimal(body["reduce_by"], "reduce_by")
            else:
                target = _decimal(body["reduce_to"], "reduce_to")
            target = max(_ZERO, min(order.remaining, target))
            reduced = order.remaining - target
            if target == 0:
                self._cancel(order, "decrease")
            else:
                order.remaining = target
                order.updated = self.clock.now()
                self.listener.on_user_order(order.wire())
                self._book_changed(order.ticker, order.client_order_id)
            return {
                "order_id": order.order_id,
                "client_order_id": order.client_order_id,
                "reduced_by": _fp(reduced),
                "reduced_by_fp": _fp(reduced),
                "ts_ms": self.clock.now_ms(),
            }

    # ------------------------------------------------------------------ internals

    def _check_open(self, ticker: str, market: _Market, *, amend: bool) -> None:
        if market.status != "active":
            raise ExchangeError(
                400, "MARKET_INACTIVE", f"market {ticker} is {market.status}, not active"
            )
        if amend and self.paused_until is not None:
            raise ExchangeError(
                400,
                "trading_paused",
                f"trading is paused for maintenance until {_iso(self.paused_until)}",
            )

    def _price(self, ticker: str, raw: object) -> Decimal:
        price = _decimal(raw, "price")
        exponent = price.as_tuple().exponent
        if not isinstance(exponent, int) or exponent < -4:
            raise _bad("price accepts at most 4 decimals")
        if not _ZERO < price < _ONE:
            raise _bad("price must be between 0 and 1")
        ranges = parse_price_ranges(self.data.markets[ticker].static_wire()["price_ranges"])
        if not any(r.admits(price) for r in ranges):
            raise _bad(f"price {raw} is not a valid tick", code="invalid_price")
        return price

    def _available(self) -> Decimal:
        resting = [o for o in self._orders.values() if o.status == "resting"]
        reserved = sum((o.remaining * o.collateral_per for o in resting), _ZERO)
        return self.cash - reserved

    def _cancel(self, order: SimOrder, why: str) -> Decimal:
        reduced = order.remaining
        order.status = "canceled"
        order.remaining = _ZERO
        order.updated = self.clock.now()
        log.info("cancel %s (%s) %s", order.order_id[:8], why, order.ticker)
        self.listener.on_user_order(order.wire())
        self._book_changed(order.ticker, order.client_order_id)
        return reduced

    def _fee(self, order: SimOrder, price: Decimal, qty: Decimal, is_taker: bool) -> Decimal:
        """Kalshi's per-order accumulator: centi-cent fill fees, billed in whole cents."""
        if is_taker:
            rate = TAKER_RATE
        elif self.fee_type == QUADRATIC_WITH_MAKER_FEES:
            rate = MAKER_RATE
        else:
            return _ZERO
        before = round_up_cent(order.fee_accum[is_taker])
        order.fee_accum[is_taker] += exact_fee(qty, price, rate).quantize(
            CENTI_CENT, rounding=ROUND_CEILING
        )
        return round_up_cent(order.fee_accum[is_taker]) - before

    def _fill(self, order: SimOrder, price: Decimal, qty: Decimal, *, is_taker: bool) -> None:
        now = self.clock.now()
        fee = self._fee(order, price, qty, is_taker)
        info = self.data.markets[order.ticker]
        pos = self._positions.setdefault(order.ticker, _Position(order.ticker, info.event_ticker))
        own = price if order.side == "bid" else _ONE - price  # price of what we bought
        # Closing the opposite holding first: a YES+NO pair is worth $1 at once.
        holding_opposite = -pos.position if order.side == "bid" else pos.position
        closing = min(qty, max(holding_opposite, _ZERO))
        opening = qty - closing
        if closing > 0:
            avg = pos.cost / abs(pos.position)
            proceeds = (_ONE - own) * closing
            self.cash += proceeds
            pos.realized += proceeds - avg * closing
            pos.cost -= avg * closing
            pos.position += closing if order.side == "bid" else -closing
        if opening > 0:
            self.cash -= own * opening
            pos.cost += own * opening
            pos.position += opening if order.side == "bid" else -opening
        self.cash -= fee
        pos.fees += fee
        pos.traded += own * qty
        pos.volume += qty
        pos.updated = now
        order.filled += qty
        order.remaining -= qty
        order.updated = now
        if is_taker:
            order.taker_cost += own * qty
            order.taker_fees += fee
        else:
            order.maker_cost += own * qty
            order.maker_fees += fee
        if order.remaining <= 0:
            order.remaining = _ZERO
            order.status = "executed"
        fill_id = str(uuid.uuid4())
        outcome = "yes" if order.side == "bid" else "no"
        fill: Json = {
            "fill_id": fill_id,
            "trade_id": fill_id,
            "order_id": order.order_id,
            "ticker": order.ticker,
            "market_ticker": order.ticker,
            "exchange_index": 0,
            "outcome_side": outcome,
            "book_side": order.side,
            "side": outcome,
            "action": "buy",
            "count_fp": _fp(qty),
            "yes_price_dollars": _usd(price),
            "no_price_dollars": _usd(_ONE - price),
            "is_taker": is_taker,
            "fee_cost": _usd(fee),
            "created_time": _iso(now),
            "ts": int(now.timestamp()),
            "subaccount_number": 0,
        }
        self._fills.append(fill)
        log.info(
            "fill %s %s %s %s @ %s %s fee %s -> position %s",
            order.order_id[:8],
            order.ticker,
            order.side,
            _fp(qty),
            _usd(price),
            "taker" if is_taker else "maker",
            _usd(fee),
            _fp(pos.position),
        )
        ws_fill = {
            k: v
            for k, v in fill.items()
            if k not in ("ticker", "created_time", "fill_id", "subaccount_number")
        }
        ws_fill.update(
            {
                "client_order_id": order.client_order_id,
                "post_position_fp": _fp(pos.position),
                "purchased_side": outcome,
                "ts_ms": int(now.timestamp() * 1000),
            }
        )
        self.listener.on_fill(ws_fill, True)
        self.listener.on_position(pos.ws())


def _bad(message: str, code: str = "invalid_parameters") -> ExchangeError:
    return ExchangeError(400, code, message)


def _decimal(raw: object, name: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise _bad(f"{name} must be a fixed-point string")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise _bad(f"{name} is not a number") from None
    if not value.is_finite():
        raise _bad(f"{name} is not a number")
    return value


def _taker_fee_bound(count: Decimal, price: Decimal) -> Decimal:
    """The most one order can pay in taker fees (at its limit; P(1−P) peaks at 0.5)."""
    worst = min(max(price, _ZERO), _ONE)
    return round_up_cent(exact_fee(count, worst, TAKER_RATE))

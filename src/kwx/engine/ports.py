"""The agent's ports: what a strategy sees and says, and what clock, feed and venue provide.

One agent, three modes (DESIGN.md, principle 1): backtest, paper and live run the same
:class:`Strategy` inside the same :class:`kwx.engine.agent.Agent`; only the three adapters behind
these protocols change.

=========  =====================  ============================  ==============================
mode       :class:`Clock`         :class:`Feed`                 :class:`Venue`
=========  =====================  ============================  ==============================
backtest   historical (set by     bulk-loaded store data        simulated matching with a
           the feed's minutes)    (:mod:`kwx.backtest.feed`)    :class:`FillModel`
paper      wall clock             live store / stream           the same simulated venue
live       wall clock             live store / stream           Kalshi
=========  =====================  ============================  ==============================

Conventions every adapter keeps:

* **Money is Decimal dollars.** A price is the price *of the side traded*: a NO buy at 0.30 pays
  30¢ per NO contract (a YES price of 0.70). Prices sit on the 1¢ grid in [0.01, 0.99]; counts are
  whole or hundredth contracts. Probabilities and features are floats.
* **Kalshi has only bids.** Every order is a bid on the YES or the NO side of the book: buy YES
  at P rests at (yes, P); sell YES at P rests at (no, 1 − P); buy NO at Q rests at (no, Q); sell
  NO at Q rests at (yes, 1 − Q). :meth:`Order.book_level` gives that level; fill models match
  trades against it, so one rule serves every side and action.
* **Time** is timezone-aware UTC. A snapshot at ``ts`` holds only what was known at ``ts``
  (candles closed by then, trades printed before it); an order placed at ``ts`` can fill only
  from market data at or after ``ts``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, Protocol

__all__ = [
    "ONE",
    "ZERO",
    "AccountView",
    "Action",
    "Amend",
    "BracketView",
    "Cancel",
    "Clock",
    "Demand",
    "EventSnapshot",
    "Feed",
    "Fill",
    "Intent",
    "MarketStep",
    "Order",
    "PlaceLimit",
    "PlaceTaker",
    "Position",
    "RiskState",
    "Side",
    "Strategy",
    "Venue",
    "book_level",
]

Side = Literal["yes", "no"]
Action = Literal["buy", "sell"]
OrderKind = Literal["limit", "taker"]
OrderStatus = Literal["resting", "filled", "canceled", "rejected"]

ZERO = Decimal(0)
ONE = Decimal(1)


def book_level(side: Side, action: Action, price: Decimal) -> tuple[Side, Decimal]:
    """The (book side, bid price) at which an order rests: Kalshi's books hold only bids."""
    if action == "buy":
        return side, price
    other: Side = "no" if side == "yes" else "yes"
    return other, ONE - price


# ---------------------------------------------------------------- what the strategy sees


@dataclass(frozen=True, slots=True)
class BracketView:
    """One bracket of an event at one minute: quotes, probabilities, signals, features.

    ``yes_bid``/``yes_ask`` are the executable touch the venue will use (Decimal, None when
    unknown); ``quote_source`` says where it came from (``real``: the exchange's bid/ask;
    ``rebuilt``: the quote model's, from the prints, when the data has no quotes; ``mixed``: one
    side of each). ``features["p_mkt_real"]`` says the same of p_mkt (1: a real mid).
    ``p`` is the probability the strategy trades on (``p_fused_norm``, or the fallback pool
    the run's notes name). ``signal`` is S_j(t); ``features`` carries the panel row.
    """

    ticker: str
    index: int
    yes_bid: Decimal | None
    yes_ask: Decimal | None
    quote_source: str
    p: float | None
    p_mkt: float | None
    p_wx: float | None
    p_fused_norm: float | None
    hazard_next_5m: float | None
    hazard_next_60m: float | None
    signal: float | None
    volume_20m: float
    minutes_to_close: float | None
    features: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def spread(self) -> Decimal | None:
        if self.yes_bid is None or self.yes_ask is None:
            return None
        return self.yes_ask - self.yes_bid


@dataclass(frozen=True, eq=False)
class EventSnapshot:
    """The market state of one event (all its brackets, ladder order) at one minute.

    Brackets are built on first access (``loader(k)`` makes the k-th): a historical feed
    yields many minutes at which only one or two brackets are ever looked at. Live feeds
    that have the views already use :meth:`of`.
    """

    ts: datetime
    event_ticker: str
    city: str
    climate_date: date
    series_ticker: str
    fee_type: str
    close_time: datetime
    tickers: tuple[str, ...]
    loader: Callable[[int], BracketView] = field(repr=False)
    screened: bool = True  # the strategy's vectorised screen passed here (feeds may skip others)
    _cache: dict[int, BracketView] = field(default_factory=dict, repr=False)

    @classmethod
    def of(
        cls,
        *,
        ts: datetime,
        event_ticker: str,
        city: str,
        climate_date: date,
        series_ticker: str,
        fee_type: str,
        close_time: datetime,
        brackets: Sequence[BracketView],
        screened: bool = True,
    ) -> EventSnapshot:
        """A snapshot from ready-made bracket views (in ladder order)."""
        views = tuple(brackets)
        return cls(
            ts=ts,
            event_ticker=event_ticker,
            city=city,
            climate_date=climate_date,
            series_ticker=series_ticker,
            fee_type=fee_type,
            close_time=close_time,
            tickers=tuple(b.ticker for b in views),
            loader=views.__getitem__,
            screened=screened,
        )

    @property
    def minutes_to_close(self) -> float:
        return (self.close_time - self.ts).total_seconds() / 60.0

    def bracket_at(self, k: int) -> BracketView:
        view = self._cache.get(k)
        if view is None:
            view = self.loader(k)
            self._cache[k] = view
        return view

    @property
    def brackets(self) -> tuple[BracketView, ...]:
        return tuple(self.bracket_at(k) for k in range(len(self.tickers)))

    def bracket(self, ticker: str) -> BracketView:
        try:
            return self.bracket_at(self.tickers.index(ticker))
        except ValueError:
            raise KeyError(f"{self.event_ticker} at {self.ts}: no bracket {ticker!r}") from None


@dataclass(frozen=True, slots=True)
class MarketStep:
    """Everything a feed says about one minute: the events it has a snapshot for."""

    ts: datetime
    events: tuple[EventSnapshot, ...]


@dataclass(frozen=True, slots=True)
class Position:
    """Our net holding in one market, in YES terms: ``yes_count`` > 0 holds YES, < 0 holds NO.

    ``cost`` is the premium paid for the open contracts (dollars, ≥ 0, of the side held);
    ``realized`` the cash P&L of contracts already closed; ``fees`` every fee paid on it.
    """

    ticker: str
    event_ticker: str
    city: str
    yes_count: Decimal
    cost: Decimal
    realized: Decimal
    fees: Decimal

    @property
    def side(self) -> Side | None:
        if self.yes_count > 0:
            return "yes"
        if self.yes_count < 0:
            return "no"
        return None

    @property
    def count(self) -> Decimal:
        return abs(self.yes_count)


@dataclass(frozen=True, slots=True)
class Order:
    """An order the venue knows: resting, filled, canceled or rejected."""

    order_id: str
    client_order_id: str
    ticker: str
    event_ticker: str
    city: str
    side: Side
    action: Action
    kind: OrderKind
    price: Decimal
    count: Decimal
    filled: Decimal
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    reason: str = ""

    @property
    def remaining(self) -> Decimal:
        return self.count - self.filled

    @property
    def book_level(self) -> tuple[Side, Decimal]:
        return book_level(self.side, self.action, self.price)


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of one of our orders; ``fee`` in dollars (already charged)."""

    fill_id: str
    order_id: str
    client_order_id: str
    ticker: str
    event_ticker: str
    city: str
    side: Side
    action: Action
    price: Decimal
    count: Decimal
    fee: Decimal
    is_taker: bool
    ts: datetime


@dataclass(frozen=True, slots=True)
class RiskState:
    """What risk allows right now, for the strategy to size within (the engine still checks)."""

    killed: bool
    kill_reason: str
    no_new_orders: bool
    time_stop: bool
    exposure: Decimal
    exposure_cap: Decimal
    day_pnl_city: Decimal
    day_pnl_global: Decimal


@dataclass(frozen=True, slots=True)
class AccountView:
    """Our side of one event at one minute: positions, resting orders and the risk state."""

    positions: Mapping[str, Position]
    resting: Sequence[Order]
    risk: RiskState

    def position(self, ticker: str) -> Decimal:
        pos = self.positions.get(ticker)
        return pos.yes_count if pos is not None else ZERO


# ---------------------------------------------------------------- what the strategy says


@dataclass(frozen=True, slots=True)
class PlaceLimit:
    """Rest a limit order (maker). ``price`` is the price of ``side`` in dollars."""

    ticker: str
    side: Side
    action: Action
    price: Decimal
    count: Decimal
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PlaceTaker:
    """Take liquidity now, paying at most ``limit`` (the touch plus the slippage allowed)."""

    ticker: str
    side: Side
    action: Action
    limit: Decimal
    count: Decimal
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Cancel:
    order_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Amend:
    """Move a resting order to a new price/count (a cancel/replace; queue position is lost)."""

    order_id: str
    price: Decimal
    count: Decimal
    reason: str = ""


Intent = PlaceLimit | PlaceTaker | Cancel | Amend


# ---------------------------------------------------------------- the ports


class Clock(Protocol):
    """Time as the agent sees it: historical in a backtest, the wall clock otherwise."""

    def now(self) -> datetime: ...

    def wait_until(self, ts: datetime) -> None:
        """Block (wall clock) or jump (historical clock) until ``ts``."""


class Demand(Protocol):
    """What the agent needs from a feed: every minute of an event, or only some."""

    def needs_every_minute(self, event_ticker: str) -> bool:
        """True while we have resting orders in the event (they must be managed each minute)."""

    def holdings(self, event_ticker: str) -> Mapping[str, Decimal]:
        """Our non-zero positions in the event (YES count, negative for NO), by ticker."""


class Feed(Protocol):
    """Market (and weather-derived) state, minute by minute, in time order.

    A feed may leave out an event's minute when nothing can happen there: the strategy's
    vectorised screens say it would neither enter (the snapshot would not be ``screened``) nor
    exit any of ``demand.holdings(event)``, and ``demand.needs_every_minute(event)`` is False.
    That is what makes a city-year backtest fast. Live feeds yield every minute.
    """

    def steps(self, demand: Demand) -> Iterator[MarketStep]: ...


class Venue(Protocol):
    """Where orders go: the simulated matcher (backtest, paper) or Kalshi (live)."""

    def advance(self, ts: datetime) -> list[Fill]:
        """Process market data up to ``ts`` (exclusive) and return our fills in time order."""

    def place(
        self, intent: PlaceLimit | PlaceTaker, snapshot: EventSnapshot
    ) -> tuple[Order, list[Fill]]:
        """Submit an order at ``snapshot.ts``; a taker order returns its fills at once."""

    def cancel(self, order_id: str, ts: datetime, reason: str = "") -> Order: ...

    def resting(self, event_ticker: str | None = None) -> list[Order]: ...

    def positions(self) -> Mapping[str, Position]: ...


class Strategy(Protocol):
    """A pure decision rule: the event's state and our account in, order intents out."""

    name: str

    def on_event(self, snapshot: EventSnapshot, account: AccountView) -> list[Intent]: ...

    def params(self) -> dict[str, object]:
        """Every parameter, JSON-ready, recorded with each run."""

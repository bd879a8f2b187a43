"""Stored market data for one city-day, as a time-ordered stream the simulator replays.

`ReplayData.load` reads what the store has for the markets of one event (kalshi.markets,
md.trades, md.candles_1m, md.top_of_book, md.orderbook_snapshot / md.orderbook_delta) and turns
it into `ReplayEvent`s stamped with the moment each fact became known:

* a trade at its ``created_time``;
* a top-of-book row at its ``ts``;
* a 1-minute candle's closing bid/ask at the *end* of its minute (ts + 60 s): the close of a
  minute is not known before the minute is over;
* order-book snapshots and deltas at their ``ts`` (deltas in ``seq`` order);
* the market's close at ``close_time`` and its settlement, with the stored result, at
  ``close_time`` + the settlement delay.

Each market keeps a book (`ReplayBook`) from the best source it has: full depth (L2) where
recorded; otherwise a *synthetic* one-level book from quotes (top of book, else candle
bid/ask), or, for days recorded as trades only, from the touch the trades imply (a YES-taker
print at p means the ask stood at p; a NO-taker print means the bid did). Synthetic levels
carry an assumed size, `synthetic_size` contracts, because the data does not say how deep
the touch was; that assumption is printed when the simulator starts.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from kwx.domain.brackets import Bracket, settled_tmax
from kwx.domain.climate_day import climate_day_window
from kwx.registry import City
from kwx.sim.kalshi_rest_server import LINEAR_CENT, _candle_from_row
from kwx.sources.kalshi_models import dollars_str
from kwx.sources.orderbook import OrderBook

__all__ = [
    "DEFAULT_SYNTHETIC_SIZE",
    "BookSource",
    "EventKind",
    "MarketInfo",
    "ReplayBook",
    "ReplayData",
    "ReplayEvent",
    "ReplayTrade",
]

log = logging.getLogger(__name__)

Json = dict[str, Any]
BookSource = Literal["l2", "top_of_book", "candles", "trades"]
EventKind = Literal["l2_snapshot", "l2_delta", "quote", "trade", "close", "settle"]
# Ties at one instant: the book first, then prints, then the close and the settlement.
_KIND_ORDER: dict[str, int] = {
    "l2_snapshot": 0,
    "l2_delta": 1,
    "quote": 2,
    "trade": 3,
    "close": 4,
    "settle": 5,
}
DEFAULT_SYNTHETIC_SIZE = Decimal(25)
TICK = Decimal("0.01")
_ONE = Decimal(1)
_ZERO = Decimal(0)
_MINUTE = timedelta(minutes=1)
SETTLEMENT_SOURCES = ("official", "cli", "iem", "acis", "ncei")


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ReplayTrade:
    """One public print, exact: YES price in dollars, count in contracts."""

    ts: datetime
    trade_id: str
    ticker: str
    yes_price: Decimal
    count: Decimal
    taker_side: str | None  # "yes" (bought YES at the ask) | "no" (sold YES at the bid)
    is_block_trade: bool = False

    def wire(self) -> Json:
        """The 2026 REST shape of ``GET /markets/trades``."""
        return {
            "trade_id": self.trade_id,
            "ticker": self.ticker,
            "count_fp": dollars_str(self.count, 2),
            "yes_price_dollars": dollars_str(self.yes_price),
            "no_price_dollars": dollars_str(_ONE - self.yes_price),
            "taker_outcome_side": self.taker_side,
            "taker_book_side": {"yes": "bid", "no": "ask"}.get(self.taker_side or ""),
            "is_block_trade": self.is_block_trade,
            "created_time": _iso(self.ts),
        }


@dataclass(frozen=True)
class ReplayEvent:
    ts: datetime
    kind: EventKind
    ticker: str
    payload: Any = None

    @property
    def key(self) -> tuple[datetime, int]:
        return (self.ts, _KIND_ORDER[self.kind])


@dataclass(frozen=True)
class MarketInfo:
    """What is known about a market *before* it trades (no volume, price or result here)."""

    ticker: str
    event_ticker: str
    series_ticker: str
    strike_type: str
    floor_strike: Decimal | None
    cap_strike: Decimal | None
    yes_sub_title: str | None
    rules_primary: str
    open_time: datetime | None
    close_time: datetime
    settle_time: datetime
    result: str  # "yes" | "no" | "" (unknown: the market is never settled)
    expiration_value: str
    book_source: BookSource

    def static_wire(self) -> Json:
        """The fields of the 2026 Market object that do not change while it trades."""

        def strike(value: Decimal | None) -> int | float | None:
            if value is None:
                return None
            return int(value) if value == value.to_integral_value() else float(value)

        out: Json = {
            "ticker": self.ticker,
            "event_ticker": self.event_ticker,
            "market_type": "binary",
            "strike_type": self.strike_type,
            "floor_strike": strike(self.floor_strike),
            "cap_strike": strike(self.cap_strike),
            "yes_sub_title": self.yes_sub_title,
            "no_sub_title": self.yes_sub_title,
            "open_time": _iso(self.open_time) if self.open_time else None,
            "close_time": _iso(self.close_time),
            "expected_expiration_time": _iso(self.settle_time),
            "latest_expiration_time": _iso(self.settle_time),
            "settlement_timer_seconds": 0,
            "notional_value_dollars": "1.0000",
            "rules_primary": self.rules_primary,
            "rules_secondary": "",
            "price_level_structure": "linear_cent",
            "price_ranges": LINEAR_CENT,
            "can_close_early": False,
        }
        return {k: v for k, v in out.items() if v is not None}


class ReplayBook:
    """One market's replayed book: resting bids, YES side and NO side in NO-leg prices.

    ``take`` removes what one of our marketable orders consumed, until the replayed data next
    rewrites that level (a new quote, snapshot or delta).
    """

    def __init__(self, ticker: str, source: BookSource, synthetic_size: Decimal) -> None:
        self.ticker = ticker
        self.source = source
        self.synthetic_size = synthetic_size
        self.book = OrderBook(ticker, use_yes_price=False)
        self._bid: Decimal | None = None  # synthetic touch (trade-implied or quoted)
        self._ask: Decimal | None = None

    # ------------------------------------------------------------------ replayed updates

    def apply(self, event: ReplayEvent) -> bool:
        """Apply one replayed fact; True when the visible book changed."""
        before = self.levels()
        if event.kind == "l2_snapshot":
            yes, no = event.payload
            self.book.apply_snapshot(yes, no)
        elif event.kind == "l2_delta":
            side, price, delta = event.payload
            self.book.apply_delta(side, price, delta)
        elif event.kind == "quote":
            bid, ask = event.payload
            self._set_touch(bid, ask)
        elif event.kind == "trade" and self.source == "trades":
            trade: ReplayTrade = event.payload
            bid, ask = self._bid, self._ask
            if trade.taker_side == "yes":  # lifted the offer: the ask stood at the print
                ask = trade.yes_price
                if bid is not None and bid >= ask:
                    bid = ask - TICK
            elif trade.taker_side == "no":  # hit the bid
                bid = trade.yes_price
                if ask is not None and ask <= bid:
                    ask = bid + TICK
            self._set_touch(bid, ask)
        return self.levels() != before

    def _set_touch(self, bid: Decimal | None, ask: Decimal | None) -> None:
        """A one-level synthetic book; a 0 bid or a 1 ask is Kalshi's empty side."""
        self._bid = bid if bid is not None and _ZERO < bid < _ONE else None
        self._ask = ask if ask is not None and _ZERO < ask < _ONE else None
        yes = [(self._bid, self.synthetic_size)] if self._bid is not None else []
        no = [(_ONE - self._ask, self.synthetic_size)] if self._ask is not None else []
        self.book.apply_snapshot(yes, no)

    # ------------------------------------------------------------------ reads and takes

    def levels(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """(YES bids, NO bids in NO-leg prices), ascending."""
        return self.book.levels("yes"), self.book.levels("no")

    def asks(self) -> list[tuple[Decimal, Decimal]]:
        """YES offers (price, size), best (lowest) first."""
        return [(_ONE - p, s) for p, s in reversed(self.book.levels("no"))]

    def bids(self) -> list[tuple[Decimal, Decimal]]:
        """YES bids (price, size), best (highest) first."""
        return list(reversed(self.book.levels("yes")))

    def size_at(self, side: Literal["bid", "ask"], yes_price: Decimal) -> Decimal:
        """Replayed size resting at our price on our side (what queues ahead of us)."""
        if side == "bid":
            return self.book.size_at("yes", yes_price)
        return self.book.size_at("no", _ONE - yes_price)

    def take(self, side: Literal["bid", "ask"], yes_price: Decimal, count: Decimal) -> None:
        """Remove liquidity our taker order consumed: a bid takes offers, an ask takes bids."""
        if side == "bid":
            self.book.apply_delta("no", _ONE - yes_price, -count)
        else:
            self.book.apply_delta("yes", yes_price, -count)


@dataclass
class ReplayData:
    """Everything the simulator replays for one city and climate date (see the module notes)."""

    city: City
    day: date
    markets: dict[str, MarketInfo]
    series: dict[str, Json]
    events_meta: dict[str, Json]
    trades: list[ReplayTrade]
    candles: dict[str, list[Json]]
    stream: list[ReplayEvent]
    synthetic_size: Decimal = DEFAULT_SYNTHETIC_SIZE
    _trade_ts: list[datetime] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.trades.sort(key=lambda t: (t.ts, t.trade_id))
        self.stream.sort(key=lambda e: e.key)
        self._trade_ts = [t.ts for t in self.trades]
        for rows in self.candles.values():
            rows.sort(key=lambda c: int(c["end_period_ts"]))

    # ------------------------------------------------------------------ as-of reads

    def trades_until(self, now: datetime) -> list[ReplayTrade]:
        """Prints created at or before ``now``, oldest first."""
        return self.trades[: bisect.bisect_right(self._trade_ts, now)]

    def candles_until(self, ticker: str, now: datetime) -> list[Json]:
        """1-minute candles whose minute has ended by ``now``."""
        limit = now.timestamp()
        return [c for c in self.candles.get(ticker, []) if int(c["end_period_ts"]) <= limit]

    @property
    def first_ts(self) -> datetime:
        opens = [m.open_time for m in self.markets.values() if m.open_time is not None]
        candidates = [*opens, *(e.ts for e in self.stream[:1])]
        return min(candidates) if candidates else self.day_start()

    @property
    def last_ts(self) -> datetime:
        return max(e.ts for e in self.stream) if self.stream else self.first_ts

    def day_start(self) -> datetime:
        """Midnight local standard time of the climate day (its first instant)."""
        return climate_day_window(self.city.timezone, self.day)[0]

    def with_future_changed(self, after: datetime) -> ReplayData:
        """A copy whose data after ``after`` is different (prints dropped, results flipped):
        what any state at or before ``after`` must not depend on (the look-ahead check)."""
        flipped = {
            t: dataclasses.replace(m, result={"yes": "no", "no": "yes"}.get(m.result, m.result))
            for t, m in self.markets.items()
        }
        stream = [
            (dataclasses.replace(e, payload=flipped[e.ticker].result) if e.kind == "settle" else e)
            for e in self.stream
            if e.ts <= after or e.kind in ("close", "settle")
        ]
        return ReplayData(
            city=self.city,
            day=self.day,
            markets=flipped,
            series=self.series,
            events_meta=self.events_meta,
            trades=[t for t in self.trades if t.ts <= after],
            candles={
                k: [c for c in v if int(c["end_period_ts"]) <= after.timestamp()]
                for k, v in self.candles.items()
            },
            stream=stream,
            synthetic_size=self.synthetic_size,
        )

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(
        cls,
        conn: psycopg.Connection[Any],
        city: City,
        day: date,
        *,
        synthetic_size: Decimal = DEFAULT_SYNTHETIC_SIZE,
        settle_delay: timedelta = timedelta(0),
    ) -> ReplayData:
        """The markets of ``city``'s event for climate date ``day`` and all their data."""
        if synthetic_size <= 0:
            raise ValueError(f"synthetic_size must be positive, got {synthetic_size}")
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT * FROM kalshi.markets WHERE series_ticker = %s AND climate_date = %s "
                "ORDER BY ticker",
                [city.series, day],
            )
            market_rows = cur.fetchall()
            if not market_rows:
                raise ValueError(
                    f"kalshi.markets has no {city.series} markets for climate date {day} "
                    f"(city {city.key}): import or backfill that day first"
                )
            tickers = [str(r["ticker"]) for r in market_rows]
            cur.execute(
                "SELECT ticker, created_time, trade_id, count_fp, yes_price, taker_side, "
                "is_block_trade FROM md.trades WHERE ticker = ANY(%s) "
                "ORDER BY created_time, trade_id",
                [tickers],
            )
            trade_rows = cur.fetchall()
            cur.execute(
                "SELECT * FROM md.candles_1m WHERE ticker = ANY(%s) AND NOT is_synthetic "
                "ORDER BY ticker, ts",
                [tickers],
            )
            candle_rows = cur.fetchall()
            cur.execute(
                "SELECT ticker, ts, yes_bid, yes_ask FROM md.top_of_book WHERE ticker = ANY(%s) "
                "ORDER BY ticker, ts",
                [tickers],
            )
            tob_rows = cur.fetchall()
            cur.execute(
                "SELECT ticker, ts, side, price, size, use_yes_price FROM md.orderbook_snapshot "
                "WHERE ticker = ANY(%s) ORDER BY ticker, ts",
                [tickers],
            )
            snap_rows = cur.fetchall()
            cur.execute(
                "SELECT ticker, ts, sid, seq, side, price, delta, use_yes_price "
                "FROM md.orderbook_delta WHERE ticker = ANY(%s) ORDER BY ts, sid, seq",
                [tickers],
            )
            delta_rows = cur.fetchall()
            cur.execute(
                "SELECT source, tmax_final FROM wx.settlement WHERE city = %s "
                "AND climate_date = %s",
                [city.key, day],
            )
            settlement = {str(r["source"]): int(r["tmax_final"]) for r in cur.fetchall()}
            cur.execute("SELECT * FROM kalshi.series WHERE series_ticker = %s", [city.series])
            series_rows = cur.fetchall()
            cur.execute(
                "SELECT * FROM kalshi.events WHERE event_ticker = ANY(%s)",
                [sorted({str(r["event_ticker"]) for r in market_rows})],
            )
            event_rows = cur.fetchall()

        day_end = climate_day_window(city.timezone, day)[1]
        with_l2 = {str(r["ticker"]) for r in snap_rows}
        with_tob = {str(r["ticker"]) for r in tob_rows}
        with_quotes = {
            str(r["ticker"])
            for r in candle_rows
            if r["yes_bid_close"] is not None or r["yes_ask_close"] is not None
        }
        official = next((settlement[s] for s in SETTLEMENT_SOURCES if s in settlement), None)

        markets: dict[str, MarketInfo] = {}
        stream: list[ReplayEvent] = []
        for r in market_rows:
            ticker = str(r["ticker"])
            source: BookSource = (
                "l2"
                if ticker in with_l2
                else "top_of_book"
                if ticker in with_tob
                else "candles"
                if ticker in with_quotes
                else "trades"
            )
            close_time: datetime = r["close_time"] or day_end
            info = MarketInfo(
                ticker=ticker,
                event_ticker=str(r["event_ticker"]),
                series_ticker=str(r["series_ticker"]),
                strike_type=str(r["strike_type"]),
                floor_strike=r["floor_strike"],
                cap_strike=r["cap_strike"],
                yes_sub_title=r["yes_sub_title"],
                rules_primary=r["rules_primary"] or "",
                open_time=r["open_time"],
                close_time=close_time,
                settle_time=close_time + settle_delay,
                result=_result(r, official),
                expiration_value=_expiration_value(r, official),
                book_source=source,
            )
            markets[ticker] = info
            stream.append(ReplayEvent(info.close_time, "close", ticker))
            if info.result:
                stream.append(ReplayEvent(info.settle_time, "settle", ticker, info.result))
            else:
                log.warning("%s: no stored result; it will close but never settle", ticker)

        trades = [
            ReplayTrade(
                ts=r["created_time"],
                trade_id=str(r["trade_id"]),
                ticker=str(r["ticker"]),
                yes_price=Decimal(r["yes_price"]),
                count=Decimal(r["count_fp"]),
                taker_side=r["taker_side"],
                is_block_trade=bool(r["is_block_trade"]),
            )
            for r in trade_rows
        ]
        stream.extend(ReplayEvent(t.ts, "trade", t.ticker, t) for t in trades)
        stream.extend(_l2_events(snap_rows, delta_rows))
        for r in tob_rows:
            if markets[str(r["ticker"])].book_source == "top_of_book":
                stream.append(
                    ReplayEvent(r["ts"], "quote", str(r["ticker"]), (r["yes_bid"], r["yes_ask"]))
                )
        candles: dict[str, list[Json]] = {}
        for r in candle_rows:
            ticker = str(r["ticker"])
            candles.setdefault(ticker, []).append(_candle_from_row(r))
            if markets[ticker].book_source == "candles":
                stream.append(
                    ReplayEvent(
                        r["ts"] + _MINUTE, "quote", ticker, (r["yes_bid_close"], r["yes_ask_close"])
                    )
                )
        return cls(
            city=city,
            day=day,
            markets=markets,
            series={str(r["series_ticker"]): _series_wire(r) for r in series_rows}
            or {city.series: _series_wire({"series_ticker": city.series})},
            events_meta=_events_wire(event_rows, market_rows),
            trades=trades,
            candles=candles,
            stream=stream,
            synthetic_size=synthetic_size,
        )


def _result(row: Mapping[str, Any], official: int | None) -> str:
    """The stored result, else the bracket the stored settlement value falls in, else ''."""
    result = str(row["result"] or "")
    if result in ("yes", "no"):
        return result
    tmax = row["settled_tmax"]
    if tmax is None:
        tmax = settled_tmax(row["expiration_value"]) if row["expiration_value"] else official
    if tmax is None:
        return ""
    bracket = Bracket.from_strikes(row["strike_type"], row["floor_strike"], row["cap_strike"])
    return "yes" if bracket.wins(int(tmax)) else "no"


def _expiration_value(row: Mapping[str, Any], official: int | None) -> str:
    if row["settled_tmax"] is not None:
        return str(row["settled_tmax"])
    if row["expiration_value"]:
        return str(row["expiration_value"])
    return "" if official is None else str(official)


def _no_leg(
    levels: Iterable[tuple[Decimal, Decimal]], yes_prices: bool
) -> list[tuple[Decimal, Decimal]]:
    return [((_ONE - p) if yes_prices else p, s) for p, s in levels]


def _l2_events(
    snap_rows: Sequence[Mapping[str, Any]], delta_rows: Sequence[Mapping[str, Any]]
) -> list[ReplayEvent]:
    """Snapshots grouped per (ticker, ts); NO levels converted to NO-leg prices."""
    out: list[ReplayEvent] = []
    groups: dict[tuple[str, datetime], dict[str, list[tuple[Decimal, Decimal]]]] = {}
    yes_prices: dict[tuple[str, datetime], bool] = {}
    for r in snap_rows:
        key = (str(r["ticker"]), r["ts"])
        groups.setdefault(key, {"yes": [], "no": []})[str(r["side"])].append(
            (Decimal(r["price"]), Decimal(r["size"]))
        )
        yes_prices[key] = bool(r["use_yes_price"])
    for (ticker, ts), sides in groups.items():
        no = _no_leg(sides["no"], yes_prices[(ticker, ts)])
        out.append(ReplayEvent(ts, "l2_snapshot", ticker, (sides["yes"], no)))
    for r in delta_rows:
        price = Decimal(r["price"])
        if r["side"] == "no" and r["use_yes_price"]:
            price = _ONE - price
        out.append(
            ReplayEvent(
                r["ts"], "l2_delta", str(r["ticker"]), (str(r["side"]), price, Decimal(r["delta"]))
            )
        )
    return out


def _series_wire(r: Mapping[str, Any]) -> Json:
    raw: Json = r["raw"] if isinstance(r.get("raw"), dict) else {}
    return {
        **raw,
        "ticker": r["series_ticker"],
        "title": r.get("title") or raw.get("title") or r["series_ticker"],
        "category": r.get("category") or raw.get("category") or "Climate and Weather",
        "frequency": r.get("frequency") or raw.get("frequency") or "daily",
        "fee_type": r.get("fee_type") or raw.get("fee_type") or "quadratic",
        "fee_multiplier": float(r.get("fee_multiplier") or 1),
    }


def _events_wire(
    event_rows: Sequence[Mapping[str, Any]], market_rows: Sequence[Mapping[str, Any]]
) -> dict[str, Json]:
    out: dict[str, Json] = {}
    for r in event_rows:
        out[str(r["event_ticker"])] = {
            "event_ticker": r["event_ticker"],
            "series_ticker": r["series_ticker"],
            "title": r["title"] or r["event_ticker"],
            "mutually_exclusive": True,
            "collateral_return_type": "MECNET",
            "strike_date": _iso(
                datetime.combine(r["climate_date"], datetime.min.time(), tzinfo=UTC)
            ),
        }
    for r in market_rows:
        event = str(r["event_ticker"])
        out.setdefault(
            event,
            {
                "event_ticker": event,
                "series_ticker": r["series_ticker"],
                "title": event,
                "mutually_exclusive": True,
                "collateral_return_type": "MECNET",
                "strike_date": _iso(
                    datetime.combine(r["climate_date"], datetime.min.time(), tzinfo=UTC)
                ),
            },
        )
    return out

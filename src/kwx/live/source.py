"""Market data for the live loop: the WebSocket first, REST to fill what it missed.

At each minute boundary :meth:`MarketSource.sync`:

1. drains the stream (:class:`kwx.live.stream.MarketStream`): prints go to the cities'
   :class:`~kwx.live.market_data.LiveMarketData`, book snapshots and deltas to
   :class:`~kwx.live.stream.Books`, fills and order updates to the venue's hook (which then
   confirms them over REST when orders are live);
2. polls REST (``GET /markets/trades`` per market since the last poll, ``GET
   /markets/{ticker}/orderbook``) — with ``confirm`` on (the default) at every boundary, else
   only while the stream is down or a book is being resynced. A dropped connection loses the
   prints sent meanwhile and a sequence gap leaves a book silently stale until the next
   delta shows it; the minute's REST read closes both holes, at 2·K reads a minute per city;
3. reads each market's touch — from REST when it answered, else from the stream's book when
   it is usable, else unknown — *without our own resting orders* (the exchange shows them in
   its book; the strategy must see the market it trades against, and paper mode, whose
   orders never reach the exchange, sees exactly that) and closes the minute's candle with it.

Public market data needs no key; the stream's private channels do.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from kwx.live.market_data import LiveMarketData
from kwx.live.stream import Books, MarketStream
from kwx.sources.http import SourceError
from kwx.sources.kalshi_rest import KalshiRest
from kwx.sources.kalshi_ws import (
    BookDelta,
    BookInvalidated,
    BookSnapshot,
    Connected,
    Disconnected,
    FillMsg,
    Resynced,
    TradeMsg,
    UserOrderMsg,
    WsEvent,
)

__all__ = ["MarketSource", "OwnLevels", "SourceStats", "touch_without"]

log = logging.getLogger(__name__)

OwnLevels = tuple[Mapping[Decimal, Decimal], Mapping[Decimal, Decimal]]  # YES bids, YES asks
_ONE = Decimal(1)
_NO_OWN: OwnLevels = ({}, {})
TRADE_LOOKBACK = dt.timedelta(minutes=2)


def touch_without(
    bids: Mapping[Decimal, Decimal],
    asks: Mapping[Decimal, Decimal],
    own: OwnLevels = _NO_OWN,
) -> tuple[Decimal | None, Decimal | None]:
    """Best YES bid and ask (YES prices) once our own resting size is taken out."""
    own_bids, own_asks = own
    bid = next(
        (p for p in sorted(bids, reverse=True) if bids[p] - own_bids.get(p, Decimal(0)) > 0), None
    )
    ask = next((p for p in sorted(asks) if asks[p] - own_asks.get(p, Decimal(0)) > 0), None)
    return bid, ask


@dataclass
class SourceStats:
    syncs: int = 0
    ws_trades: int = 0
    rest_trades: int = 0
    rest_polls: int = 0
    rest_failures: int = 0
    touches_rest: int = 0
    touches_ws: int = 0
    touches_unknown: int = 0
    ws_stale: int = 0  # the stream's book disagreed with REST at a boundary
    private_events: int = 0
    notes: list[str] = field(default_factory=list)


class MarketSource:
    """The cities' market data, kept from the stream and completed over REST."""

    def __init__(
        self,
        rest: KalshiRest,
        markets: Sequence[LiveMarketData],
        *,
        stream: MarketStream | None = None,
        confirm: bool = True,
        own_levels: Callable[[str], OwnLevels] | None = None,
        on_private: Callable[[dt.datetime, Sequence[WsEvent]], None] | None = None,
    ) -> None:
        self.rest = rest
        self.markets = list(markets)
        self.stream = stream
        self.confirm = confirm
        self.own_levels = own_levels
        self.on_private = on_private
        self.books = Books()
        self.stats = SourceStats()
        self._by_ticker = {t: m for m in self.markets for t in m.tickers}
        self._last_poll: dt.datetime | None = None
        self._stream_trouble = True  # until the stream has shown it works

    @property
    def tickers(self) -> list[str]:
        return list(self._by_ticker)

    def backfill(self, now: dt.datetime) -> int:
        """Every print of the followed markets so far (their whole history: the panel's
        quotes and flows look back across the day's start)."""
        added = 0
        for ticker in self.tickers:
            added += self._poll_trades(ticker, None)
        self._last_poll = now
        return added

    def sync(self, boundary: dt.datetime) -> None:
        """Bring everything up to ``boundary`` (see the module notes)."""
        self.stats.syncs += 1
        events = self.stream.drain() if self.stream is not None else []
        self._apply(events)
        private: list[WsEvent] = [
            e for e in events if isinstance(e, FillMsg | UserOrderMsg | Disconnected)
        ]
        self.stats.private_events += len(private)
        if self.on_private is not None:
            self.on_private(boundary, private)
        stream_down = self.stream is None or self.stream.error is not None or self._stream_trouble
        poll = self.confirm or stream_down
        since = None if self._last_poll is None else self._last_poll - TRADE_LOOKBACK
        for ticker in self.tickers:
            rest_book: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] | None = None
            if poll or not self.books.valid(ticker):
                self._poll_trades(ticker, since)
                rest_book = self._poll_book(ticker)
            own = self.own_levels(ticker) if self.own_levels is not None else _NO_OWN
            ws_book = self.books.levels(ticker)
            if rest_book is not None:
                bid, ask = touch_without(*rest_book, own)
                self.stats.touches_rest += 1
                if ws_book is not None and touch_without(*ws_book, own) != (bid, ask):
                    self.stats.ws_stale += 1
            elif ws_book is not None:
                bid, ask = touch_without(*ws_book, own)
                self.stats.touches_ws += 1
            else:
                self.stats.touches_unknown += 1
                self._by_ticker[ticker].set_touch(ticker, boundary, float("nan"), float("nan"))
                continue
            self._by_ticker[ticker].set_touch(
                ticker,
                boundary,
                None if bid is None else float(bid),
                None if ask is None else float(ask),
            )
        if poll:
            self._last_poll = boundary

    def live_touch(self, ticker: str) -> tuple[Decimal | None, Decimal | None] | None:
        """The stream's touch now (our orders taken out), None when its book is unusable."""
        levels = self.books.levels(ticker)
        if levels is None:
            return None
        own = self.own_levels(ticker) if self.own_levels is not None else _NO_OWN
        return touch_without(*levels, own)

    # ------------------------------------------------------------------ internals

    def _apply(self, events: Iterable[WsEvent]) -> None:
        events = list(events)
        self.books.apply(events)
        for event in events:
            if isinstance(event, TradeMsg):
                market = self._by_ticker.get(event.ticker)
                if market is not None and market.add_trade(
                    event.trade_id,
                    event.ticker,
                    event.ts,
                    event.yes_price,
                    event.count,
                    event.taker_side,
                    source="ws",
                ):
                    self.stats.ws_trades += 1
            elif isinstance(event, Connected | Resynced):
                self._stream_trouble = False
            elif isinstance(event, Disconnected | BookInvalidated):
                self._stream_trouble = True
            elif isinstance(event, BookSnapshot | BookDelta):
                pass

    def _poll_trades(self, ticker: str, since: dt.datetime | None) -> int:
        market = self._by_ticker[ticker]
        self.stats.rest_polls += 1
        added = 0
        try:
            for trade in self.rest.iter_trades(ticker, min_ts=since, tier="live"):
                if market.add_trade(
                    trade.trade_id,
                    trade.ticker,
                    trade.created_time,
                    trade.yes_price,
                    trade.count,
                    trade.taker_side,
                    source="rest",
                ):
                    added += 1
        except SourceError as exc:
            self.stats.rest_failures += 1
            log.warning("REST trades of %s failed: %s", ticker, exc)
        self.stats.rest_trades += added
        return added

    def _poll_book(
        self, ticker: str
    ) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] | None:
        self.stats.rest_polls += 1
        try:
            book = self.rest.get_orderbook(ticker)
        except SourceError as exc:
            self.stats.rest_failures += 1
            log.warning("REST orderbook of %s failed: %s", ticker, exc)
            return None
        bids = dict(book.yes)
        asks = {_ONE - p: s for p, s in book.no}
        return bids, asks

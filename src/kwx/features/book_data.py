"""Read one market's book events from the store into `kwx.features.book` arrays.

Sources, best first (`load_market_book` takes the first that has rows for the market):

* ``l2`` — ``md.orderbook_snapshot`` + ``md.orderbook_delta`` (the WebSocket recorder): the
  touch with sizes and cancels at the touch, by `kwx.features.book.replay_l2`;
* ``top_of_book`` — ``md.top_of_book`` (the New York logs: best bids and implied asks at each
  change, no sizes). The logs' naive timestamps are US/Pacific (``TOP_OF_BOOK_TIMEZONE``, applied
  at import): read that way, each event's first quote falls within a minute or two after its
  markets' 10:00 ET open on the day before (``tests/features/test_book_data.py`` checks every
  file); read as Eastern or UTC, the quotes would start hours before the markets opened;
* ``candles`` — ``md.candles_1m`` rows from the API (Chicago, May 2025: yes bid/ask OHLC per
  minute). Each candle gives two quote events: its open at the minute's start and its close
  just before the minute's end (the close is known when the minute closes, not before);
  events that repeat the touch before them are dropped.

Prints come from ``md.trades`` where the market has any (``trades`` is None otherwise: no trade
data, which is not the same as no trades). A bid of 0 (nobody bids) and an ask of 1 (nobody
offers) are read as an empty side (NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import psycopg

from kwx.features.book import NS_PER_MIN, Cancels, Quotes, Trades, replay_l2

Conn = psycopg.Connection[tuple[object, ...]]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BookSource = Literal["l2", "top_of_book", "candles"]
SOURCES: Final[tuple[BookSource, ...]] = ("l2", "top_of_book", "candles")
CLOSE_OFFSET_NS: Final = NS_PER_MIN - 1_000  # a candle's close: 1 µs before its minute ends

__all__ = ["SOURCES", "BookSource", "MarketBook", "load_market_book", "markets_with_book"]


@dataclass(frozen=True)
class MarketBook:
    """One market's book events over its life (its "market-day"), from one source."""

    ticker: str
    source: BookSource
    quotes: Quotes
    trades: Trades | None
    cancels: Cancels | None
    volume_minute_ns: I64  # candle minutes' starts (candles source only; else empty)
    volume: F64
    span_ns: tuple[int, int] | None = None  # first and last instant the source covers

    def minute_ends(self) -> I64:
        """The grid of minute ends from the minute of the source's first record to that of its
        last (candles: their first and last minutes, though unchanged touches were dropped)."""
        if self.quotes.t_ns.size == 0:
            return np.zeros(0, np.int64)
        start, stop = self.span_ns or (int(self.quotes.t_ns[0]), int(self.quotes.t_ns[-1]))
        first = start // NS_PER_MIN * NS_PER_MIN
        last = stop // NS_PER_MIN * NS_PER_MIN
        out: I64 = np.arange(first + NS_PER_MIN, last + 2 * NS_PER_MIN, NS_PER_MIN, dtype=np.int64)
        return out


def _epoch_ns(col: str) -> str:
    """SQL for a timestamptz as exact int8 ns since the epoch (microseconds are stored)."""
    return f"(extract(epoch FROM {col}) * 1000000)::int8 * 1000"


def _f(col: str) -> str:
    """SQL for a numeric column as float8 with NULL read as NaN (so rows load as one array)."""
    return f"coalesce({col}::float8, 'NaN'::float8)"


def _matrix(conn: Conn, sql: str, params: tuple[object, ...], width: int) -> tuple[I64, F64]:
    """The first column as exact int64 times, the other ``width`` columns as floats."""
    rows = conn.execute(sql, params).fetchall()
    t = np.array([r[0] for r in rows], dtype=np.int64)
    return t, np.array([r[1:] for r in rows], dtype=np.float64).reshape(-1, width)


def _bid_ask(bid: F64, ask: F64) -> tuple[F64, F64]:
    return np.where(bid > 0, bid, np.nan), np.where(ask < 1, ask, np.nan)


def load_trades(conn: Conn, ticker: str) -> Trades | None:
    """The market's prints with a known taker side, or None when md.trades has none."""
    rows = conn.execute(
        f"SELECT {_epoch_ns('created_time')}, yes_price::float8, count_fp::float8, "
        "CASE taker_side WHEN 'yes' THEN 1.0 ELSE -1.0 END FROM md.trades "
        "WHERE ticker = %s AND taker_side IS NOT NULL ORDER BY created_time, trade_id",
        (ticker,),
    ).fetchall()
    if not rows:
        return None
    t = np.array([r[0] for r in rows], dtype=np.int64)
    m = np.array([r[1:] for r in rows], dtype=np.float64).reshape(-1, 3)
    return Trades(t, m[:, 0], m[:, 1], m[:, 2])


def _load_l2(conn: Conn, ticker: str, trades: Trades | None) -> tuple[Quotes, Cancels] | None:
    rows = conn.execute(
        f"SELECT {_epoch_ns('ts')} AS t, 1 AS snap, (side = 'no')::int, "
        "round(price * 100)::int, size::float8, 0::int8 AS seq "
        "FROM md.orderbook_snapshot WHERE ticker = %s "
        f"UNION ALL SELECT {_epoch_ns('ts')}, 0, (side = 'no')::int, round(price * 100)::int, "
        "delta::float8, seq FROM md.orderbook_delta WHERE ticker = %s ORDER BY 1, 2 DESC, 6",
        (ticker, ticker),
    ).fetchall()
    if not rows:
        return None
    ints = np.array([r[:4] for r in rows], dtype=np.int64).reshape(-1, 4)
    size = np.array([r[4] for r in rows], dtype=np.float64)
    return replay_l2(ints[:, 0], ints[:, 1] == 1, ints[:, 2], ints[:, 3], size, trades)


def _load_top_of_book(conn: Conn, ticker: str) -> Quotes | None:
    t, m = _matrix(
        conn,
        f"SELECT {_epoch_ns('ts')}, {_f('yes_bid')}, {_f('yes_ask')} FROM md.top_of_book "
        "WHERE ticker = %s ORDER BY ts",
        (ticker,),
        2,
    )
    if not t.size:
        return None
    bid, ask = _bid_ask(m[:, 0], m[:, 1])
    return Quotes.unsized(t, bid, ask)


def _load_candles(conn: Conn, ticker: str) -> tuple[Quotes, I64, F64] | None:
    start, m = _matrix(
        conn,
        f"SELECT {_epoch_ns('ts')}, {_f('yes_bid_open')}, {_f('yes_ask_open')}, "
        f"{_f('yes_bid_close')}, {_f('yes_ask_close')}, volume::float8 FROM md.candles_1m "
        "WHERE ticker = %s AND source = 'api' ORDER BY ts",
        (ticker,),
        5,
    )
    if not start.size:
        return None
    t = np.empty(2 * start.size, np.int64)
    t[0::2], t[1::2] = start, start + CLOSE_OFFSET_NS
    bid = np.empty(t.size)
    ask = np.empty(t.size)
    bid[0::2], ask[0::2] = m[:, 0], m[:, 1]
    bid[1::2], ask[1::2] = m[:, 2], m[:, 3]
    bid, ask = _bid_ask(bid, ask)
    return Quotes.unsized(t, bid, ask).changes_only(), start, m[:, 4]


def load_market_book(conn: Conn, ticker: str, source: BookSource | None = None) -> MarketBook:
    """The market's book events from ``source`` (default: the best source with rows). Raises
    LookupError naming the market when the store has no book data for it."""
    trades = load_trades(conn, ticker)
    empty_i: I64 = np.zeros(0, np.int64)
    empty_f: F64 = np.zeros(0)
    for name in SOURCES if source is None else (source,):
        if name == "l2":
            l2 = _load_l2(conn, ticker, trades)
            if l2 is not None:
                return MarketBook(ticker, "l2", l2[0], trades, l2[1], empty_i, empty_f)
        elif name == "top_of_book":
            quotes = _load_top_of_book(conn, ticker)
            if quotes is not None:
                return MarketBook(ticker, "top_of_book", quotes, trades, None, empty_i, empty_f)
        else:
            candles = _load_candles(conn, ticker)
            if candles is not None:
                q, starts, vol = candles
                span = (int(starts[0]), int(starts[-1]) + CLOSE_OFFSET_NS)
                return MarketBook(ticker, "candles", q, trades, None, starts, vol, span)
    wanted = "any book source" if source is None else source
    raise LookupError(f"market {ticker}: no book data in the store ({wanted})")


def markets_with_book(conn: Conn, source: BookSource, series: str | None = None) -> list[str]:
    """Markets with rows in a book source (optionally of one series prefix), in ticker order."""
    table = {
        "l2": "md.orderbook_snapshot",
        "top_of_book": "md.top_of_book",
        "candles": "md.candles_1m",
    }[source]
    extra = " AND source = 'api'" if source == "candles" else ""
    pattern = f"{series}-%" if series else "%"
    rows = conn.execute(
        f"SELECT DISTINCT ticker FROM {table} WHERE ticker LIKE %s{extra} ORDER BY ticker",
        (pattern,),
    ).fetchall()
    return [str(r[0]) for r in rows]
